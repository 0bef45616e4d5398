"""Has each run's validation Dice plateaued by the end of its budget? Read from the runs' training logs.

    .venv/bin/python experiments/plateau.py REPRO_OUT [REPRO_OUT ...]

For every finished run's ``REPRO_OUT/runs/<cell>/seed<k>/training_log.csv`` written by
``advnorm reproduce`` (or ``advnorm train`` folders given directly), prints per cell the mean over
seeds of the validation Dice (``val_dice_mean``: the patch-level Dice of the validation subjects,
eval-mode networks) at the main epochs 4, 8, 12 and the last, and ``gain``: the last value minus the
mean of the four epochs before it, averaged over seeds, with its smallest and largest seed. A gain
within the epoch-to-epoch noise (about 0.01) is what docs/method.md calls a plateau; the figures
there come from this script.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path
from statistics import mean

from advnorm.training.log import read_log

MARKS = (4, 8, 12)


def main_curve(log: Path) -> list[float]:
    """Validation Dice after each main (non-warm-up) epoch."""
    return [float(r["val_dice_mean"]) for r in read_log(log) if r.get("phase") == "main"]


def runs(folder: Path) -> dict[str, list[Path]]:
    """Training logs by cell name (``runs/<cell>/seed<k>``, or the folder itself for one ``advnorm train`` run)."""
    if (folder / "training_log.csv").is_file():
        return {folder.name: [folder / "training_log.csv"]}
    cells: dict[str, list[Path]] = defaultdict(list)
    for log in sorted(folder.glob("runs/*/seed*/training_log.csv")):
        if not (log.parent / "summary.json").is_file():
            continue  # still training (or killed): its curve is not the budget's
        cells[log.parent.parent.name].append(log)
    return cells


def main(folders: list[str]) -> None:
    print("| cell | seeds | " + " | ".join(f"epoch {m}" for m in MARKS) + " | last | gain over the last 4 (min, max) |")
    print("|---" * (len(MARKS) + 4) + "|")
    for folder in folders:
        for cell, logs in runs(Path(folder)).items():
            curves = [c for c in map(main_curve, logs) if len(c) > 4]
            if not curves:
                continue
            marks = [
                mean(c[m - 1] for c in curves) if all(len(c) >= m for c in curves) else float("nan") for m in MARKS
            ]
            gains = [c[-1] - mean(c[-5:-1]) for c in curves]
            cols = " | ".join(f"{v:.3f}" for v in (*marks, mean(c[-1] for c in curves)))
            print(f"| {cell} | {len(curves)} | {cols} | {mean(gains):+.3f} ({min(gains):+.3f}, {max(gains):+.3f}) |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
