"""Result tables in the layout of the paper's Table 1 (Dice) and Table 2 (intensity agreement).

CSV files are written atomically; :func:`markdown_table` renders rows for a report.
The paper's published numbers are kept as constants so a report can put them beside
ours. Note that they are not like-for-like: the paper's Dice was averaged over batches
of test patches drawn from a patch-level split (patches of one subject in training and
test), and its Table 2 values are not Jensen-Shannon divergences (see
:func:`advnorm.evaluation.intensity_agreement.paper_patch_jsd`).
"""

from __future__ import annotations

import csv
import io
import math
import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from advnorm.io_atomic import atomic_write_text
from advnorm.labels import TISSUES

PAPER_COLUMNS: list[str] = ["experiment", "method", "train", "test", "CSF", "GM", "WM", "mean"]
"""The paper's Table 1 (a mean column added)."""


def table1_columns(classes: Sequence[str] = TISSUES) -> list[str]:
    """table1.csv (and table3.csv): Dice per class (CSF, GM, WM for the paper's classes) as the mean over seeds of
    each seed's mean over the test subjects, their mean, the sample standard deviation over seeds (``_sd``), and the
    number of seeds. ``method_id`` is the ``--method``."""
    scores = [*classes, "mean"]
    return ["experiment", "method", "method_id", "train", "test", *scores, *(f"{s}_sd" for s in scores), "seeds"]


def per_seed_columns(classes: Sequence[str] = TISSUES) -> list[str]:
    """table1_per_seed.csv: one row per seed."""
    return ["experiment", "method", "method_id", "train", "test", "seed", *classes, "mean"]


TABLE1_COLUMNS = table1_columns()
PER_SEED_COLUMNS = per_seed_columns()
TABLE2_COLUMNS: list[str] = ["method", "tissue", "jsd_input", "jsd_normalized", "jsd_normalized_sd"]
"""``tissue`` is a class (CSF, GM, WM) or ``all`` (the whole brain); means over seeds."""

PAPER_TABLE1: list[dict[str, Any]] = [
    {
        "experiment": 1,
        "method": "No adaptation",
        "train": "iSEG",
        "test": "iSEG",
        "CSF": 0.906,
        "GM": 0.868,
        "WM": 0.863,
    },
    {
        "experiment": 2,
        "method": "No adaptation",
        "train": "MRBrainS",
        "test": "MRBrainS",
        "CSF": 0.813,
        "GM": 0.789,
        "WM": 0.839,
    },
    {
        "experiment": 3,
        "method": "No adaptation, Cross-testing",
        "train": "iSEG",
        "test": "MRBrainS",
        "CSF": 0.401,
        "GM": 0.354,
        "WM": 0.519,
    },
    {
        "experiment": 4,
        "method": "No adaptation, Cross-testing",
        "train": "MRBrainS",
        "test": "iSEG",
        "CSF": 0.293,
        "GM": 0.082,
        "WM": 0.563,
    },
    {
        "experiment": 5,
        "method": "Standardized",
        "train": "iSEG + MRBrainS Standardized",
        "test": "iSEG + MRBrainS Standardized",
        "CSF": 0.849,
        "GM": 0.808,
        "WM": 0.809,
    },
    {
        "experiment": 6,
        "method": "Without constraint",
        "train": "iSEG + MRBrainS",
        "test": "iSEG + MRBrainS",
        "CSF": 0.834,
        "GM": 0.859,
        "WM": 0.885,
    },
    {
        "experiment": 7,
        "method": "Adversarially normalized (ours)",
        "train": "iSEG + MRBrainS",
        "test": "iSEG + MRBrainS",
        "CSF": 0.919,
        "GM": 0.902,
        "WM": 0.905,
    },
]
"""Table 1 of the paper (Dice per tissue). The paper gives no mean column; :func:`with_mean` adds one."""

PAPER_TABLE2: dict[str, float] = {"input": 3.509, "normalized": 3.504}
"""Table 2 of the paper. Labelled "JSD" there, but above the ln 2 bound of any JSD."""


def with_mean(row: Mapping[str, Any], classes: Sequence[str] = ("CSF", "GM", "WM")) -> dict[str, Any]:
    """A copy of ``row`` with ``mean`` set to the mean of its finite class values (if not already set)."""
    out = dict(row)
    if out.get("mean") in (None, ""):
        vals = [float(out[c]) for c in classes if _is_number(out.get(c)) and math.isfinite(float(out[c]))]
        out["mean"] = sum(vals) / len(vals) if vals else math.nan
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _is_float(v: Any) -> bool:
    return isinstance(v, float | np.floating)


def _csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _csv_cell(row.get(c)) for c in columns})
    return buf.getvalue()


def _csv_cell(v: Any) -> Any:
    if v is None or (_is_float(v) and math.isnan(v)):
        return ""
    return repr(float(v)) if _is_float(v) else v


def write_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], out: Path) -> Path:
    """Write ``rows`` as CSV with exactly ``columns``, atomically; missing cells and ``nan`` are empty."""
    atomic_write_text(out, _csv_text(rows, columns))
    return Path(out)


def _md_cell(v: Any) -> str:
    if v is None:
        return ""
    if _is_float(v):
        return "nan" if math.isnan(v) else f"{float(v):.3f}"
    return str(v).replace("|", "\\|")


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A GitHub-flavoured Markdown table of ``rows``; floats shown with 3 decimals, missing cells empty."""
    lines = [
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join("---" for _ in columns) + " |",
    ]
    lines += ["| " + " | ".join(_md_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def with_sd(rows: list[dict[str, Any]], classes: tuple[str, ...]) -> list[dict[str, Any]]:
    """Display rows: ``0.812 ± 0.021`` where more than one seed was run."""
    out = []
    for r in rows:
        shown = dict(r)
        for score in (*classes, "mean"):
            sd = r.get(f"{score}_sd")
            v = r.get(score)
            if isinstance(v, float) and math.isfinite(v):
                shown[score] = f"{v:.3f} ± {sd:.3f}" if isinstance(sd, float) and math.isfinite(sd) else f"{v:.3f}"
        out.append(shown)
    return out
