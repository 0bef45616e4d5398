"""Train one method under several settings on the same phantom, seeds and budget; compare them.

The measurements behind the defaults in docs/method.md come from here. Each (variant, seed) run
lives in ``OUT/<variant>/seed<k>`` and is reused once evaluated (resumable; refused if made with other settings).
Reported per variant, averaged over seeds: test Dice per tissue on full volumes (mean over
domains), the number of (domain, tissue) pairs whose test Dice is below 0.05 ("dead"), the final
validation Dice, D's accuracy on generated patches (adversarial runs) and the JSD of G's output.
"""

from __future__ import annotations

from pathlib import Path
from statistics import mean

from advnorm.config_file import resolve
from advnorm.data.layouts import open_domains
from advnorm.data.phantom.generate import PhantomSpec, write_phantom
from advnorm.io_atomic import atomic_write_json
from advnorm.labels import TISSUES
from advnorm.run_folder import RunFolder
from advnorm.training.log import read_log
from advnorm.workflows import train_and_evaluate

DEAD = 0.05


def one_run(run: Path, datasets, overrides: dict) -> dict:
    """Train and evaluate one configuration (reused when already evaluated with the same config and data)."""
    summary = train_and_evaluate(
        run, resolve("quick", overrides=overrides), datasets, progress=False, log=lambda m: None
    )["summary"]
    rows = read_log(RunFolder(run).log)
    per_domain = summary["per_domain"]
    return {
        "test_dice": {t: summary["mean"]["dice"][t]["mean"] for t in (*TISSUES, "mean")},
        "dead": sum(per_domain[d]["dice"][t]["mean"] < DEAD for d in per_domain for t in TISSUES),
        "pairs": len(per_domain) * len(TISSUES),
        "val_dice_final": float(rows[-1]["val_dice_mean"]),
        "d_acc_generated_final": float(rows[-1]["d_acc_generated"])
        if rows[-1].get("d_acc_generated") not in (None, "")
        else None,
        "jsd_input": summary["jsd"]["input"]["all"],
        "jsd_normalized": summary["jsd"]["normalized"]["all"],
        "seconds": float(rows[-1]["seconds"]),
    }


def compare(
    out: Path,
    method: str,
    variants: dict[str, dict],
    seeds: list[int],
    *,
    domains: int = 3,
    subjects: int = 5,
    scale: float = 0.7,
    extra: dict | None = None,
) -> dict:
    """Every variant x seed on one phantom; prints and writes ``OUT/comparison.json`` and a markdown table."""
    phantom = out / "phantom"
    if not (phantom / "phantom.json").exists():
        write_phantom(phantom, PhantomSpec(domains=domains, subjects=subjects, seed=0, scale=scale))
    datasets = open_domains(sorted(str(p) for p in phantom.glob("Dataset*")))
    runs: dict[str, list[dict]] = {}
    for name, settings in variants.items():
        for seed in seeds:
            overrides = {"method": method, "train.seed": seed, **(extra or {}), **settings}
            print(f"{name} seed {seed} ...", flush=True)
            runs.setdefault(name, []).append(one_run(out / name / f"seed{seed}", datasets, overrides))
    result = {
        "method": method,
        "seeds": seeds,
        "variants": variants,
        "extra": extra or {},
        "runs": runs,
        "phantom": {"domains": domains, "subjects": subjects, "scale": scale},
    }
    atomic_write_json(out / "comparison.json", result)
    table = markdown(runs)
    (out / "comparison.md").write_text(table + "\n")
    print(table)
    return result


def markdown(runs: dict[str, list[dict]]) -> str:
    head = (
        "| variant | test Dice CSF | GM | WM | mean | dead (domain, tissue) pairs | final val Dice "
        "| D acc. on generated | JSD input -> G output | seconds |"
    )
    lines = [head, "|" + "---|" * 10]
    for name, rs in runs.items():

        def avg(key, sub=None, rs=rs):
            vals = [r[key][sub] if sub else r[key] for r in rs]
            return None if any(v is None for v in vals) else mean(vals)

        d_acc = avg("d_acc_generated_final")
        lines.append(
            f"| {name} | "
            + " | ".join(f"{avg('test_dice', t):.3f}" for t in (*TISSUES, "mean"))
            + f" | {sum(r['dead'] for r in rs)} of {sum(r['pairs'] for r in rs)} | {avg('val_dice_final'):.3f}"
            + f" | {'-' if d_acc is None else f'{d_acc:.2f}'} | {avg('jsd_input'):.3f} -> {avg('jsd_normalized'):.3f}"
            + f" | {avg('seconds'):.0f} |"
        )
    return "\n".join(lines)
