"""The reproduction report: table1.csv (+ per seed), table2.csv, figures and report.md from evaluated cells."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from advnorm.config import Config
from advnorm.config_file import changed_from_profile
from advnorm.data.layouts import Dataset
from advnorm.evaluation.report_figures import write_figures
from advnorm.evaluation.report_html import write_html_report
from advnorm.evaluation.report_unseen import write_unseen
from advnorm.evaluation.results import (
    Cell,
    averaged_rows,
    case_scores,
    classes_of,
    dead_pairs,
    jsd_rows,
    num,
    overlap_rows,
    per_seed_rows,
)
from advnorm.evaluation.statistics import paired_difference
from advnorm.evaluation.tables import (
    PAPER_COLUMNS,
    PAPER_TABLE1,
    PAPER_TABLE2,
    TABLE2_COLUMNS,
    markdown_table,
    per_seed_columns,
    table1_columns,
    with_mean,
    with_sd,
    write_csv,
)
from advnorm.io_atomic import atomic_write_text
from advnorm.methods import METHOD_SPECS
from advnorm.run_folder import describe_machine

DEAD_BELOW = 0.5
"""A (method, seed, test domain, tissue) under this Dice counts as a lost tissue."""


def write_report(
    out: Path,
    datasets: list[Dataset],
    cells: list[Cell],
    cfg: Config,
    run_dir: Callable[[Cell], Path],
    *,
    focus: tuple[str, ...] = ("adversarial", "harmonized"),
    log: Callable[[str], None] = print,
) -> Path:
    """Tables, figures and report.md in ``out``; ``focus``: the methods compared against every other multi-domain
    method (paired differences with confidence intervals)."""
    domains = [d.name for d in datasets]
    classes = classes_of(cells)
    unseen = write_unseen(out, cells, domains, classes, focus)
    cells = [c for c in cells if c.held_out is None]  # the rest of the report: models trained on every domain
    seed_rows = per_seed_rows(cells, domains)
    t1 = averaged_rows(seed_rows, classes)
    t2 = jsd_rows(cells)
    write_csv(t1, table1_columns(classes), out / "table1.csv")
    write_csv(seed_rows, per_seed_columns(classes), out / "table1_per_seed.csv")
    write_csv(t2, TABLE2_COLUMNS, out / "table2.csv")
    try:
        figures = write_figures(
            out,
            datasets,
            cells,
            run_dir,
            tuple(m for m in dict.fromkeys(("adversarial", *focus)) if METHOD_SPECS[m].uses_generator),
        )
    except Exception as exc:  # noqa: BLE001 - a figure must never cost the tables
        log(f"figures failed: {type(exc).__name__}: {exc}")
        figures = []
    seeds = sorted({c.seed for c in cells})
    md = [
        "# advnorm reproduction report",
        "",
        _setting(datasets, cfg, cells, seeds),
        "",
        "Dice is computed on the full test volumes on the 1 mm working grid (the paper averaged Dice over "
        "batches of test patches from a patch-level split).",
        "",
        "## Table 1: Dice on full test volumes "
        + (f"(mean ± sd over {len(seeds)} seeds)" if len(seeds) > 1 else "(one seed: no spread to show)"),
        "",
        markdown_table(with_sd(t1, classes), ["experiment", "method", "train", "test", *classes, "mean"]),
        "",
        *[line for m in focus if (v := verdict(t1, m)) for line in (v, "")],
        *_comparisons(cells, focus),
        "",
        *_dead(seed_rows, classes),
        "",
        "### The paper's Table 1 (patch-level, leaky split; for orientation, not comparable)",
        "",
        markdown_table([with_mean(r) for r in PAPER_TABLE1], PAPER_COLUMNS),
        "",
        "## Table 2: intensity agreement between domains",
        "",
        "Mean pairwise Jensen-Shannon divergence (base 2, in [0, 1]; 0 = identical histograms) between the "
        "domains' brain-voxel intensity histograms (128 shared bins), of the raw inputs (linearly rescaled) and of "
        "what each method feeds its segmenter (G's output; the z-scored or Nyul-standardized image); means over seeds.",
        "",
        markdown_table(t2, TABLE2_COLUMNS[:4]) if t2 else "(no multi-domain run)",
        "",
        intensity_verdict(t2),
        "",
        *_overlap(out, overlap_rows(cells), figures, log),
        "",
        f"The paper reports {PAPER_TABLE2['input']} (input) and {PAPER_TABLE2['normalized']} (normalized); "
        "these exceed the ln 2 bound of any JSD: its code applied a softmax to raw histogram counts (see "
        "`paper_patch_jsd` in `advnorm.evaluation.intensity_agreement`).",
        "",
        *_discriminator(cells),
        "",
        *unseen,
        "",
        "## Figures",
        "",
        *([f"![{f}]({f})" for f in figures] or ["(none)"]),
        "",
        "Per-seed rows are in `table1_per_seed.csv`; per-case metrics (Dice, HD95 and ASD in mm) in "
        "`runs/<model>/seed<k>/evaluation.json`.",
    ]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(md) + "\n")
    write_html_report(path)
    return path


def _setting(datasets: list[Dataset], cfg: Config, cells: list[Cell], seeds: list[int]) -> str:
    split = (
        "by subject, per domain, the same for every seed (train / validation / test = "
        + " / ".join(f"{f:.0%}" for f in cfg.data.fractions)
        + "; at least one subject each)"
        if cfg.data.split == "subject"
        else "**by patch** (the paper's stratified 60/20/20 split on centre-voxel class): overlapping patches of one "
        "subject are in training and test, so these scores are optimistic"
    )
    budgets = {int(b["s_updates"]) for c in cells if (b := c.summary.get("budget"))}
    warm = sorted({int(b.get("warmup_steps", 0)) for c in cells if (b := c.summary.get("budget"))} - {0})
    spent = (
        f"every model got {budgets.pop()} updates of S"
        if len(budgets) == 1
        else f"S updates differ between models ({sorted(budgets)})"
        if budgets
        else "budget not recorded"
    )
    spent += (
        f" of {cfg.train.batch_size} patches; G's identity warm-up came on top ({', '.join(map(str, warm))} steps)"
        if warm
        else f" of {cfg.train.batch_size} patches"
    )
    changed = changed_from_profile(cfg)
    settings = (
        "Settings changed from the profile: "
        + "; ".join(f"`{key}` {json.dumps(value)} (profile: {json.dumps(default)})" for key, value, default in changed)
        + "."
        if changed
        else "Every other setting is the profile's."
    )
    return (
        f"Domains: {', '.join(f'{d.name} ({d.layout}, {len(d.labelled())} labelled)' for d in datasets)}. "
        f"Profile: `{cfg.profile}`; {spent}. Seeds: {', '.join(map(str, seeds))} (each changes the "
        f"initialisation, the batches and the augmentation; not the split). Split: {split}. {settings} "
        + _machines(cells)
    )


def _machines(cells: list[Cell]) -> str:
    """Where the models were trained: the same seed on another processor or thread count trains another model."""
    recorded = [m for c in cells if isinstance(m := c.summary.get("machine"), dict)]
    seen = Counter(map(describe_machine, recorded))
    unknown = len(cells) - len(recorded)
    if not seen:
        return "Trained on: not recorded (runs made before advnorm recorded the machine)."
    where = "; ".join(
        f"{name} ({n} of {len(cells)} runs)" if len(seen) > 1 or unknown else name for name, n in seen.items()
    )
    rest = f"; {unknown} of {len(cells)} runs not recorded" if unknown else ""
    return (
        f"Trained on: {where}{rest}. Another processor or thread count sums in another order and, from the same "
        "seed, trains another model."
    )


def verdict(rows: list[dict[str, Any]], method: str = "adversarial") -> str:
    """An honest one-paragraph reading of Table 1: does ``method`` beat the baselines here (means over seeds)?"""

    def mean_of(method_id: str, cross: bool | None = None) -> float:
        vals = [
            r["mean"]
            for r in rows
            if r["method_id"] == method_id
            and math.isfinite(r["mean"])
            and (cross is None or (r["train"] != r["test"]) == cross)
        ]
        return float(np.mean(vals)) if vals else math.nan

    focus = mean_of(method)
    if not math.isfinite(focus):
        return ""
    cross = mean_of("single", cross=True)
    multi = {m: mean_of(m) for m in {r["method_id"] for r in rows} if m not in ("single", method)}
    multi = {m: v for m, v in multi.items() if math.isfinite(v)}
    best_name, best = max(multi.items(), key=lambda kv: kv[1]) if multi else ("-", math.nan)
    title = METHOD_SPECS[method].title.lower()
    parts = [f"{title} {focus:.3f}"]
    if math.isfinite(cross):
        parts.append(f"single-domain models tested on another domain {cross:.3f}")
    if math.isfinite(best):
        parts.append(f"best other multi-domain method ({best_name}) {best:.3f}")
    lines = [f"Mean Dice over test domains and tissues: {'; '.join(parts)}."]
    if math.isfinite(cross) and focus > cross:
        lines.append(
            f"Training on all domains with {title} beats cross-domain testing by {focus - cross:+.3f} Dice "
            "(the paper's Exp. 3-4 vs 7 effect)."
        )
    if math.isfinite(best):
        lines.append(
            f"Against the best other multi-domain method it is {focus - best:+.3f}; whether that is more than "
            "the seeds' spread is answered by the paired comparison below."
        )
    return " ".join(lines)


def _overlap(out: Path, rows: list[dict[str, Any]], figures: list[str], log: Callable[[str], None]) -> list[str]:
    """Table 2's other side: whether each tissue stays separable within each domain (figure added to ``figures``)."""
    if not rows:
        return []
    from advnorm.evaluation.figures import tissue_overlap_figure

    try:
        tissue_overlap_figure(rows, out / "tissue_overlap.png")
        figures.append("tissue_overlap.png")
    except Exception as exc:  # noqa: BLE001 - a figure must never cost the tables
        log(f"tissue overlap figure failed: {type(exc).__name__}: {exc}")
    pairs = [k for k in rows[0] if k not in ("method", "domain")]
    shown = [{k: f"{v:.3f}" if isinstance(v, float) else v for k, v in r.items()} for r in rows]
    return [
        "### Tissue overlap within each domain",
        "",
        "Overlap of each pair of tissues' intensity histograms within a test domain (sum of the bin-wise minimum, "
        "128 bins on the domain's range; 0 = the tissues never share an intensity, 1 = indistinguishable), for the "
        "inputs and for what each method feeds S; means over seeds. A normalizer that lowers the JSD between "
        "domains by merging tissues shows here as a higher overlap (`tissue_overlap.png`).",
        "",
        markdown_table(shown, ["domain", "method", *pairs]),
    ]


def _comparisons(cells: list[Cell], focus: tuple[str, ...]) -> list[str]:
    """Paired differences of each focus method against every other multi-domain method, in words."""
    methods = sorted({c.method for c in cells if c.multi_domain and c.held_out is None})
    lines = [
        "### Paired comparisons",
        "",
        "Mean Dice over CSF/GM/WM of each test subject, paired by seed and subject; 95% t-interval over the pairs.",
    ]
    done: set[frozenset[str]] = set()
    for a in focus:
        scores_a = case_scores(cells, a)
        if not scores_a:
            continue
        for b in methods:
            if b != a and frozenset((a, b)) not in done:  # two focus methods: their pair once, not from both sides
                done.add(frozenset((a, b)))
                lines.append(f"- {paired_difference(scores_a, case_scores(cells, b)).words(a, b)}.")
    return lines if len(lines) > 3 else []


def _dead(seed_rows: list[dict[str, Any]], classes: tuple[str, ...]) -> list[str]:
    dead = dead_pairs(seed_rows, DEAD_BELOW, classes)
    if not dead:
        return [f"No multi-domain model scored below {DEAD_BELOW} Dice on any (test domain, tissue) for any seed."]
    shown = "; ".join(dead[:12]) + (f"; and {len(dead) - 12} more" if len(dead) > 12 else "")
    return [
        f"**Lost tissues** (multi-domain, Dice below {DEAD_BELOW}, {len(dead)} of "
        f"{len([r for r in seed_rows if r['method_id'] != 'single']) * len(classes)}): {shown}."
    ]


def _discriminator(cells: list[Cell]) -> list[str]:
    """What D learnt: its K-way domain accuracy on real validation patches and the AUC of p(generated), last epoch."""
    rows = [(c.name, c.seed, c.summary.get("final", {})) for c in cells if "d_domain_acc" in c.summary.get("final", {})]
    if not rows:
        return []
    lines = [
        "## The discriminator",
        "",
        "On the validation patches after the last epoch: K-way accuracy over the domain logits only on real patches "
        "(chance 1/K) and the AUC of p(generated) for G's output against real patches (0.5: cannot tell).",
        "",
        "| model | seed | domain accuracy | AUC generated vs real |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {n} | {s} | {num(f['d_domain_acc']):.3f} | {num(f.get('d_generated_auc')):.3f} |" for n, s, f in rows]
    return lines


def intensity_verdict(rows: list[dict[str, Any]], change: float = 0.1) -> str:
    """What G did to the domains' whole-brain intensity agreement, in words (Table 2's 'all' rows)."""
    lines = []
    for row in (r for r in rows if r["tissue"] == "all" and METHOD_SPECS[r["method"]].uses_generator):
        before, after = row["jsd_input"], row["jsd_normalized"]
        if not (before and before > 0 and math.isfinite(after)):
            continue
        rel = (after - before) / before
        what = (
            f"reduces it by {-rel:.0%}"
            if rel < -change
            else f"increases it by {rel:.0%}"
            if rel > change
            else f"leaves it essentially unchanged ({rel:+.0%})"
        )
        lines.append(
            f"{METHOD_SPECS[row['method']].title}: the whole-brain JSD between domains is {before:.3f} for "
            f"the inputs and {after:.3f} for G's output; G {what}."
        )
    return " ".join(lines)
