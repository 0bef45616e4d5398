"""Has each run's validation Dice plateaued by the end of its budget? Read from the runs' training logs.

    .venv/bin/python experiments/plateau.py [--marks 16,32,40] [--span 16] REPRO_OUT [REPRO_OUT ...]

For every finished run's ``REPRO_OUT/runs/<cell>/seed<k>/training_log.csv`` written by
``advnorm reproduce`` (or ``advnorm train`` folders given directly), prints per cell the mean over
seeds of the validation Dice (``val_dice_mean``: the patch-level Dice of the validation subjects,
eval-mode networks) at the main epochs 4, 8, 12 and the last, and ``gain``: the last value minus the
mean of the four epochs before it, averaged over seeds, with its smallest and largest seed. A gain
within the epoch-to-epoch noise (about 0.01) is what docs/method.md calls a plateau; the figures
there come from this script. ``--marks`` picks other epochs to print; ``--span N`` adds ``gain over the last N``:
the mean of the last 4 epochs minus the mean of the 4 epochs that ended N epochs before the end (what the last N
epochs of the budget still bought, with each end averaged over 4 epochs against the epoch-to-epoch noise).
"""

from __future__ import annotations

import argparse
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


def _spread(values: list[float]) -> str:
    return f"{mean(values):+.3f} ({min(values):+.3f}, {max(values):+.3f})"


def main(folders: list[str], marks: tuple[int, ...] = MARKS, span: int = 0) -> None:
    extra = f" gain over the last {span} (min, max) |" if span else ""
    print(
        "| cell | seeds | "
        + " | ".join(f"epoch {m}" for m in marks)
        + f" | last | gain over the last 4 (min, max) |{extra}"
    )
    print("|---" * (len(marks) + 4 + bool(span)) + "|")
    for folder in folders:
        for cell, logs in runs(Path(folder)).items():
            curves = [c for c in map(main_curve, logs) if len(c) > max(4, span + 3)]
            if not curves:
                continue
            at = [mean(c[m - 1] for c in curves) if all(len(c) >= m for c in curves) else float("nan") for m in marks]
            gains = [c[-1] - mean(c[-5:-1]) for c in curves]
            cols = " | ".join(f"{v:.3f}" for v in (*at, mean(c[-1] for c in curves)))
            late = f" {_spread([mean(c[-4:]) - mean(c[-4 - span : -span]) for c in curves])} |" if span else ""
            print(f"| {cell} | {len(curves)} | {cols} | {_spread(gains)} |{late}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", metavar="REPRO_OUT")
    parser.add_argument("--marks", default="4,8,12", help="main epochs to print, comma-separated")
    parser.add_argument("--span", type=int, default=0, help="add the gain over the last N epochs")
    args = parser.parse_args()
    main(args.folders, tuple(int(m) for m in args.marks.split(",")), args.span)
