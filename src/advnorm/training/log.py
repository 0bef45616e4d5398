"""The training log: ``training_log.csv`` (one row per epoch) and its learning-curve plot ``progress.png``.

One writer and one reader for every consumer: the training loop (which appends and, on
``--resume``, reads back the rows of finished epochs), the report's curves and the experiments.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from advnorm.io_atomic import atomic_write_text

FIRST_COLUMNS = ("epoch", "phase")
Row = dict[str, float | int | str]


def write_log(path: str | Path, rows: list[Row]) -> None:
    """Write every row (columns in order of first appearance, ``epoch`` and ``phase`` first); atomically."""
    cols = list(FIRST_COLUMNS)
    for r in rows:
        cols += [k for k in r if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, restval="")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    atomic_write_text(path, buf.getvalue())


def read_log(path: str | Path) -> list[Row]:
    """The rows of a log (numbers as int or float, empty cells as ``""``); ``[]`` if there is no log."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return [{k: _number(v) for k, v in r.items() if k is not None} for r in csv.DictReader(fh)]


def log_columns(path: str | Path) -> dict[str, np.ndarray]:
    """Numeric columns of a log as float arrays (empty or non-numeric cells become ``nan``)."""
    rows = read_log(path)
    names = list(rows[0]) if rows else []
    columns = {}
    for name in names:
        vals = np.asarray([v if isinstance(v := r.get(name), (int, float)) else math.nan for r in rows], dtype=float)
        if np.isfinite(vals).any():
            columns[name] = vals
    return columns


def _number(v: str | None) -> float | int | str:
    if v is None:
        return ""
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return v


def plot_learning_curves(log_csv: str | Path, out: str | Path) -> Path:
    """Training curves from a log: ``loss*`` columns, ``val_*`` columns, and ``d_*`` (discriminator) if present.

    The x axis is ``epoch`` if the log has it (else the row number). Missing columns and
    empty cells are tolerated: a panel with nothing to plot says so. Loss panels switch
    to a log scale when all their values are positive and span more than two decades.
    """
    from advnorm.plotting import plt, save_figure

    cols = log_columns(log_csv)
    x = cols.pop("epoch", None)
    n = max((v.size for v in cols.values()), default=0)
    if x is None:
        x = np.arange(n, dtype=float)
    groups = [
        ("losses", [c for c in cols if c.startswith("loss")]),
        ("validation", [c for c in cols if c.startswith("val_")]),
    ]
    d_cols = [c for c in cols if c.startswith("d_")]
    if d_cols:
        groups.append(("discriminator", d_cols))
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 3.8), squeeze=False)
    for ax, (title, names) in zip(axes[0], groups, strict=True):
        plotted = False
        for name in names:
            y = cols[name]
            ok = np.isfinite(y) & np.isfinite(x)
            if ok.any():
                ax.plot(x[ok], y[ok], marker="." if ok.sum() < 30 else None, label=name)
                plotted = True
        if plotted:
            ax.legend(fontsize=8)
            if title == "losses":
                vals = np.concatenate([cols[c][np.isfinite(cols[c])] for c in names])
                if vals.size and vals.min() > 0 and vals.max() / vals.min() > 100:
                    ax.set_yscale("log")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
    fig.tight_layout()
    return save_figure(fig, out)


def epoch_line(row: Row) -> str:
    losses = " ".join(f"{k}={row[k]:.3f}" for k in row if k.startswith("loss"))
    return (
        f"epoch {row['epoch']} [{row['phase']}] {losses} val_loss={row['val_loss']:.3f} "
        f"val_dice={row['val_dice_mean']:.3f} ({row['seconds']:.0f}s)"
    )
