"""``advnorm inspect``: what advnorm sees in the user's datasets, before any training.

:func:`describe` loads every case the way training/prediction will (same layout
reader, label map, skull stripping and 1 mm working grid) and reports, per domain
and per case, the source grid, the working grid, the intensity range inside the
brain and the voxel count of each class. :func:`format_text` renders the report.
The report is plain JSON-serialisable data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import nibabel as nib
import numpy as np

from advnorm.data.layouts import CaseRef, Dataset
from advnorm.errors import AdvnormError
from advnorm.labels import CLASS_NAMES

STAT_NAMES = ("min", "p1", "median", "p99", "max")


def describe(
    datasets: list[Dataset], *, keep_going: bool = True, progress: Callable[[str], None] | None = None
) -> dict:
    """A JSON-serialisable report on ``datasets``.

    With ``keep_going`` (the default), a case that cannot be loaded gets an ``"error"``
    entry (the one-line :class:`AdvnormError` message) and the others are still
    described; ``report["n_errors"]`` counts them. Otherwise the first error is raised.
    Class voxel counts are taken inside the brain mask on the working grid.
    """
    domains = []
    n_errors = 0
    for ds in datasets:
        cases = []
        for case in ds.cases:
            if progress is not None:
                progress(f"{ds.name}/{case.case_id}")
            try:
                cases.append(describe_case(ds, case))
            except AdvnormError as exc:
                if not keep_going:
                    raise
                n_errors += 1
                cases.append(
                    {
                        "case_id": case.case_id,
                        "labelled": case.label is not None,
                        "image": str(case.image),
                        "error": str(exc),
                    }
                )
        domains.append(
            {
                "name": ds.name,
                "layout": ds.layout,
                "root": str(ds.root),
                "n_labelled": len(ds.labelled()),
                "n_unlabelled": len(ds.unlabelled()),
                "classes": list(ds.classes),
                "label_values": [int(v) for v in ds.label_values],
                "mask_from": ds.mask_from,
                "cases": cases,
            }
        )
    return {"domains": domains, "n_errors": n_errors}


def describe_case(ds: Dataset, case: CaseRef) -> dict:
    subject = ds.load_case(case, with_label=True)
    header: Any = nib.load(str(case.image)).header
    zooms = [float(z) for z in header.get_zooms()[:3]]
    inside = subject.image[subject.mask]
    stats = np.percentile(inside, [0, 1, 50, 99, 100]) if inside.size else np.zeros(5)
    counts = None
    if subject.label is not None:
        n = len(ds.classes)
        per_class = np.bincount(subject.label[subject.mask].ravel(), minlength=n)[:n]
        counts = {name: int(v) for name, v in zip(ds.classes, per_class, strict=True)}
    return {
        "case_id": case.case_id,
        "labelled": subject.label is not None,
        "image": str(case.image),
        "label": None if case.label is None else str(case.label),
        "source_shape": [int(s) for s in subject.source.shape],
        "source_spacing": [round(z, 4) for z in zooms],
        "source_dtype": str(header.get_data_dtype()),
        "working_shape": [int(s) for s in subject.shape],
        "working_spacing": [round(float(z), 4) for z in subject.spacing],
        "mask_from": subject.extra.get("mask_from", ds.mask_from),
        "brain_voxels": int(subject.mask.sum()),
        "intensity": {k: round(float(v), 4) for k, v in zip(STAT_NAMES, stats, strict=True)},
        "class_voxels": counts,
    }


def format_text(report: dict) -> str:
    """A compact table per domain."""
    out: list[str] = []
    for dom in report["domains"]:
        out.append(
            f"{dom['name']}  [{dom['layout']}]  {dom['root']}\n"
            f"  {dom['n_labelled']} labelled, {dom['n_unlabelled']} unlabelled"
            f"; label ids {tuple(dom['label_values'])}, brain mask: {dom['mask_from']}"
        )
        classes = dom.get("classes", CLASS_NAMES)
        header = ["case", "lab", "source shape", "spacing mm", "working", *STAT_NAMES, *classes]
        rows = []
        errors = []
        for c in dom["cases"]:
            if "error" in c:
                errors.append(f"  ! {c['case_id']}: {c['error']}")
                continue
            counts = c["class_voxels"] or {}
            rows.append(
                [
                    c["case_id"],
                    "yes" if c["labelled"] else "no",
                    "x".join(map(str, c["source_shape"])),
                    "x".join(_num(z) for z in c["source_spacing"]),
                    "x".join(map(str, c["working_shape"])),
                    *(_num(c["intensity"][k]) for k in STAT_NAMES),
                    *(str(counts[n]) if n in counts else "-" for n in classes),
                ]
            )
        if rows:
            widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
            for r in [header, *rows]:
                out.append(
                    "  "
                    + "  ".join(
                        v.ljust(w) if i < 5 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths, strict=True))
                    ).rstrip()
                )
        out.extend(errors)
        out.append("")
    if report.get("n_errors"):
        out.append(f"{report['n_errors']} case(s) could not be read")
    return "\n".join(out).rstrip() + "\n"


def _num(x: float) -> str:
    if float(x).is_integer() and abs(x) < 1e6:
        return str(int(x))
    return f"{x:.4g}"
