"""Compare one method trained under several settings, each a folder written by ``advnorm reproduce``.

    .venv/bin/python experiments/variants.py METHOD BASE VARIANT [VARIANT ...]

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
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from statistics import mean

from advnorm.evaluation.statistics import paired_difference


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
            dice = [float(v) for v in case["dice"].values() if v is not None and math.isfinite(float(v))]
            per_case[(seed, case["domain"], case["case"])] = mean(dice) if dice else math.nan
        for domain, summary in data["summary"]["per_domain"].items():
            per_domain.setdefault(domain, []).append(float(summary["dice"]["mean"]["mean"]))
        if data["summary"].get("jsd"):
            jsd.append(float(data["summary"]["jsd"]["normalized"]["all"]))
    return per_case, per_domain, jsd


def main(method: str, folders: list[str]) -> None:
    base_cases = None
    print("| folder | seeds | " + " | ".join(["test Dice per domain", "mean", "JSD of G's output", "vs base"]) + " |")
    print("|---" * 6 + "|")
    for folder in folders:
        cases, domains, jsd = scores(Path(folder), method)
        if not cases:
            sys.exit(f"{folder}: no evaluated runs/{method}/seed*")
        seeds = len({k[0] for k in cases})
        per_domain = ", ".join(f"{d} {mean(v):.3f}" for d, v in sorted(domains.items()))
        overall = mean(mean(v) for v in domains.values())
        vs = "-" if base_cases is None else paired_difference(cases, base_cases).words(Path(folder).name, "base")
        j = f"{mean(jsd):.3f}" if jsd else "-"
        print(f"| {Path(folder).name} | {seeds} | {per_domain} | {overall:.3f} | {j} | {vs} |")
        base_cases = cases if base_cases is None else base_cases


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
