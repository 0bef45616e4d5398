"""Compare one method trained under several settings, each a folder written by ``advnorm reproduce``.

    .venv/bin/python experiments/variants.py [--unseen] [--per-domain] METHOD BASE VARIANT [VARIANT ...]

Example (an ingredient of ``harmonized`` measured on 3 seeds: a stronger domain-confusion term)::

    advnorm reproduce --data A --data B --out base --methods harmonized
    echo '{"loss": {"adv_lambda": 10}}' > lam10.json
    advnorm reproduce --data A --data B --out lam10 --methods harmonized --config lam10.json
    .venv/bin/python experiments/variants.py harmonized base lam10

Each folder must hold METHOD's multi-domain runs ``runs/METHOD/seed<k>`` on the same data and split (reproduce
keeps the split fixed across seeds). Prints per folder the test Dice (mean over seeds of the per-domain means),
the whole-brain JSD between domains of G's output, and the paired difference to BASE over seeds x test
subjects with its 95% interval (``advnorm.evaluation.statistics.paired_difference``, the report's own).
The ablations in docs/method.md come from here.

A folder may name its own method as ``FOLDER:METHOD`` (compare two methods, each measured in its own folder).
``--unseen`` scores the leave-one-domain-out runs instead (``reproduce --unseen``: ``runs/METHOD-without-D``),
each on its left-out domain's test subjects only, and adds the gap to the method's own in-domain score on that
domain (``runs/METHOD`` of the same folder, same seed and subjects). ``--per-domain`` adds each variant's paired
difference to BASE on each test domain alone.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from statistics import mean

from advnorm.evaluation.statistics import paired_difference


def _case_dice(case: dict) -> float:
    dice = [float(v) for v in case["dice"].values() if v is not None and math.isfinite(float(v))]
    return mean(dice) if dice else math.nan


def scores(folder: Path, method: str) -> tuple[dict[tuple, float], dict[str, list[float]], list[float]]:
    """(seed, domain, case) -> mean Dice over tissues; domain -> per-seed mean Dice; per-seed JSD of G's output."""
    per_case: dict[tuple, float] = {}
    per_domain: dict[str, list[float]] = {}
    jsd = []
    for run in sorted((folder / "runs" / method).glob("seed*")):
        evaluation = run / "evaluation.json"
        if not evaluation.is_file():
            continue
        data = json.loads(evaluation.read_text())
        seed = int(run.name.removeprefix("seed"))
        for case in data["cases"]:
            per_case[(seed, case["domain"], case["case"])] = _case_dice(case)
        for domain, summary in data["summary"]["per_domain"].items():
            per_domain.setdefault(domain, []).append(float(summary["dice"]["mean"]["mean"]))
        if data["summary"].get("jsd"):
            jsd.append(float(data["summary"]["jsd"]["normalized"]["all"]))
    return per_case, per_domain, jsd


def unseen_scores(folder: Path, method: str) -> tuple[dict[tuple, float], dict[str, list[float]], list[float]]:
    """As :func:`scores`, from the runs that left a domain out, on that domain's test subjects only; the third
    value is the per-(seed, subject) gap to the in-domain run's score of the same subject."""
    per_case: dict[tuple, float] = {}
    per_domain: dict[str, list[float]] = {}
    inside, _, _ = scores(folder, method)
    prefix = f"{method}-without-"
    for left_out in sorted((folder / "runs").glob(prefix + "*")):
        domain = left_out.name.removeprefix(prefix)
        for run in sorted(left_out.glob("seed*/evaluation.json")):
            seed = int(run.parent.name.removeprefix("seed"))
            cases = [c for c in json.loads(run.read_text())["cases"] if c["domain"] == domain]
            for case in cases:
                per_case[(seed, domain, case["case"])] = _case_dice(case)
            if cases:
                per_domain.setdefault(domain, []).append(mean(_case_dice(c) for c in cases))
    gaps = [v - inside[k] for k, v in per_case.items() if k in inside]
    return per_case, per_domain, gaps


def main(method: str, folders: list[str], unseen: bool = False, per_domain_pairs: bool = False) -> None:
    base_cases = None
    said: list[str] = []
    third = "gap to in-domain" if unseen else "JSD of G's output"
    print("| folder | seeds | " + " | ".join(["test Dice per domain", "mean", third, "vs base"]) + " |")
    print("|---" * 6 + "|")
    for spec in folders:
        folder, _, own = spec.partition(":")
        name = f"{Path(folder).name} ({own or method})" if own else Path(folder).name
        cases, domains, jsd = (unseen_scores if unseen else scores)(Path(folder), own or method)
        if not cases:
            sys.exit(f"{folder}: no evaluated runs of {own or method}")
        seeds = len({k[0] for k in cases})
        per_domain = ", ".join(f"{d} {mean(v):.3f}" for d, v in sorted(domains.items()))
        overall = mean(mean(v) for v in domains.values())
        vs = "-" if base_cases is None else paired_difference(cases, base_cases).words(name, "base")
        j = f"{mean(jsd):+.3f}" if unseen and jsd else f"{mean(jsd):.3f}" if jsd else "-"
        print(f"| {name} | {seeds} | {per_domain} | {overall:.3f} | {j} | {vs} |")
        if base_cases is not None and per_domain_pairs:
            for d in sorted(domains):
                mine = {k: v for k, v in cases.items() if k[1] == d}
                said.append(f"- on {d}: " + paired_difference(mine, base_cases).words(name, "base"))
        base_cases = cases if base_cases is None else base_cases
    if said:
        print("\nPer test domain (pairs of seed x subject of that domain):\n")
        print("\n".join(said))


if __name__ == "__main__":
    args = sys.argv[1:]
    flags = {a for a in args if a.startswith("--")}
    args = [a for a in args if not a.startswith("--")]
    if len(args) < 3 or flags - {"--unseen", "--per-domain"}:
        sys.exit(__doc__)
    main(args[0], args[1:], "--unseen" in flags, "--per-domain" in flags)
