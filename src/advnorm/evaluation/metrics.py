"""Full-volume segmentation metrics: Dice, HD95 and ASD per tissue class.

Everything here works on whole label volumes (numpy in, plain floats out), never on
patches: the original implementation averaged Dice over batches of patches, which is
not what a user of a segmentation wants to know.

Conventions (all documented in the function docstrings):

- Dice of a class absent from both prediction and truth is 1.0 (nothing to find,
  nothing found); absent from exactly one of them it is 0.0.
- Surface distances of a class absent from either volume are ``nan`` (a distance to
  an empty surface is undefined); :func:`summarize` skips ``nan`` when averaging.
- Distances are in millimetres: voxel steps are scaled by ``spacing``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from advnorm.labels import CLASS_NAMES, class_name

DEFAULT_CLASSES: tuple[int, ...] = (1, 2, 3)
METRICS: tuple[str, ...] = ("dice", "hd95", "asd")
"""The per-class metrics :func:`case_metrics` returns, in order."""


def _check_pair(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground-truth shape {target.shape}")
    return pred, target


def dice_per_class(
    pred: np.ndarray, target: np.ndarray, classes: Sequence[int] = DEFAULT_CLASSES, names: tuple[str, ...] = CLASS_NAMES
) -> dict[str, float]:
    """Dice ``2|A∩B| / (|A|+|B|)`` of each label in ``classes`` between two label volumes.

    A class present in neither volume scores 1.0 (the prediction is exactly right about
    it); present in only one of them, 0.0.
    """
    pred, target = _check_pair(pred, target)
    out: dict[str, float] = {}
    for c in classes:
        a, b = pred == c, target == c
        total = int(a.sum()) + int(b.sum())
        out[class_name(c, names)] = 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total
    return out


def _surface(mask: np.ndarray) -> np.ndarray:
    """Boundary voxels: the mask minus its erosion (6-connected, outside the array counts as background)."""
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def _crop_box(a: np.ndarray, b: np.ndarray) -> tuple[slice, ...]:
    """Bounding box of ``a | b`` grown by one voxel (clipped to the array)."""
    coords = np.argwhere(a | b)
    lo = np.maximum(coords.min(axis=0) - 1, 0)
    hi = np.minimum(coords.max(axis=0) + 2, a.shape)
    return tuple(slice(int(start), int(stop)) for start, stop in zip(lo, hi, strict=True))


def directed_surface_distances(a: np.ndarray, b: np.ndarray, spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Distances (mm) from every surface voxel of ``a`` to the surface of ``b``, and from ``b`` to ``a``.

    Both masks must be non-empty. The volumes are first cropped to their joint bounding
    box plus one voxel: that leaves every surface voxel unchanged (the margin keeps the
    erosion honest, and the array border already counts as background) and the exact
    Euclidean distance transform does not depend on what lies outside the box, so the
    result is exact while a brain-sized volume costs a fraction of the time.
    """
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if not a.any() or not b.any():
        raise ValueError("surface distances need two non-empty masks")
    box = _crop_box(a, b)
    sa, sb = _surface(a[box]), _surface(b[box])
    sampling = tuple(float(s) for s in spacing)
    to_b = ndimage.distance_transform_edt(~sb, sampling=sampling)
    to_a = ndimage.distance_transform_edt(~sa, sampling=sampling)
    return to_b[sa], to_a[sb]


def surface_distances(
    pred: np.ndarray,
    target: np.ndarray,
    spacing: Sequence[float],
    classes: Sequence[int] = DEFAULT_CLASSES,
    names: tuple[str, ...] = CLASS_NAMES,
) -> dict[str, dict[str, float]]:
    """HD95 and average symmetric surface distance (ASD), in millimetres, per class.

    - ``hd95``: the larger of the two directed 95th percentiles (pred→truth and
      truth→pred surface distances), the convention of MONAI's
      ``compute_hausdorff_distance(percentile=95)``.
    - ``asd``: the mean of all surface distances in both directions pooled together,
      as MONAI's ``compute_average_surface_distance(symmetric=True)``.

    A class absent from either volume gets ``nan`` for both (undefined, not zero and not
    infinite); :func:`summarize` averages over the cases where it is defined.
    """
    pred, target = _check_pair(pred, target)
    if len(spacing) != pred.ndim:
        raise ValueError(f"spacing {tuple(spacing)} has {len(spacing)} values for a {pred.ndim}-D volume")
    out: dict[str, dict[str, float]] = {}
    for c in classes:
        a, b = pred == c, target == c
        if not a.any() or not b.any():
            out[class_name(c, names)] = {"hd95": math.nan, "asd": math.nan}
            continue
        d_ab, d_ba = directed_surface_distances(a, b, spacing)
        hd95 = max(float(np.percentile(d_ab, 95)), float(np.percentile(d_ba, 95)))
        asd = float((d_ab.sum() + d_ba.sum()) / (d_ab.size + d_ba.size))
        out[class_name(c, names)] = {"hd95": hd95, "asd": asd}
    return out


def case_metrics(
    pred: np.ndarray,
    target: np.ndarray,
    spacing: Sequence[float],
    classes: Sequence[int] | None = None,
    names: tuple[str, ...] = CLASS_NAMES,
) -> dict[str, dict[str, float]]:
    """All metrics of one case: ``{"dice"|"hd95"|"asd": {class name: value}}``.

    The layout is keyed by label name, as in nnU-Net's ``summary.json``; callers may add
    non-metric keys (a case id, a domain) before passing cases to :func:`summarize`.
    """
    classes = range(1, len(names)) if classes is None else classes
    dice = dice_per_class(pred, target, classes, names)
    dist = surface_distances(pred, target, spacing, classes, names)
    return {
        "dice": dice,
        "hd95": {name: d["hd95"] for name, d in dist.items()},
        "asd": {name: d["asd"] for name, d in dist.items()},
    }


def _stats(values: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=float)
    ok = arr[np.isfinite(arr)]
    if ok.size == 0:
        return {"mean": math.nan, "std": math.nan, "n": 0}
    return {"mean": float(ok.mean()), "std": float(ok.std()), "n": int(ok.size)}


def summarize(cases: Sequence[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean and standard deviation over cases of every metric and class.

    Returns ``{metric: {class name: {"mean", "std", "n"}, "mean": {...}}}`` where ``n``
    counts the cases in which the value was defined (``nan`` values are skipped, so an
    HD95 mean is over the cases where both volumes contained the class). ``std`` is the
    population standard deviation (``ddof=0``). The ``"mean"`` entry summarises, over
    cases, each case's mean over its defined classes. Keys of a case other than
    :data:`METRICS` are ignored.
    """
    if not cases:
        raise ValueError("no cases to summarize")
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for metric in METRICS:
        if not any(metric in case for case in cases):
            continue
        names: list[str] = []
        for case in cases:
            names.extend(n for n in case.get(metric, {}) if n not in names)
        per_class = {n: _stats([case.get(metric, {}).get(n, math.nan) for case in cases]) for n in names}
        case_means = []
        for case in cases:
            vals = np.asarray([case.get(metric, {}).get(n, math.nan) for n in names], dtype=float)
            vals = vals[np.isfinite(vals)]
            case_means.append(float(vals.mean()) if vals.size else math.nan)
        per_class["mean"] = _stats(case_means)
        summary[metric] = per_class
    return summary
