"""How alike are the intensity distributions of several domains? (the paper's Table 2, done right)

The paper reports a "Jensen-Shannon divergence" of 3.509 for the inputs and 3.504 for
G's outputs. A Jensen-Shannon divergence is at most ln 2 ≈ 0.693 (1 in base 2), so
those values cannot be one. Here:

- :func:`jensen_shannon` is the real JSD of two histograms, in bits (base 2), in [0, 1];
- :func:`shared_histograms` bins every group on one shared axis, the precondition for
  comparing histograms bin by bin at all;
- :func:`mean_pairwise_jsd` and :func:`per_class_jsd` are what Table 2 should report;
- :func:`paper_patch_jsd` reproduces the authors' quantity for comparison only. It is
  **not a Jensen-Shannon divergence**.

Compare inputs with inputs and outputs with outputs: each call computes its own shared
range, so input and normalized values are each on the scale of their own data. A JSD
depends on the number of bins; keep ``bins`` fixed between the two rows of a table.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from advnorm.data.divergence import as_distribution as _as_distribution
from advnorm.data.divergence import jensen_shannon
from advnorm.evaluation.metrics import DEFAULT_CLASSES
from advnorm.labels import CLASS_NAMES, class_name

DEFAULT_BINS = 128
RANGE_PERCENTILES = (0.5, 99.5)
"""Percentiles of the pooled data that set the default shared histogram range."""


def _finite(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).ravel()
    return x[np.isfinite(x)]


def shared_range(samples: Sequence[np.ndarray]) -> tuple[float, float]:
    """The default histogram range: 0.5th-99.5th percentile of all groups' values pooled.

    Percentiles rather than min/max, because a handful of bright outlier voxels (vessels,
    artefacts) would otherwise squeeze all tissue into a few bins. Pooling makes the range
    the same for every group, so bins mean the same intensities in all of them.
    """
    pooled = np.concatenate([_finite(s) for s in samples]) if samples else np.empty(0)
    if pooled.size == 0:
        raise ValueError("no finite intensity values to histogram")
    lo, hi = (float(v) for v in np.percentile(pooled, RANGE_PERCENTILES))
    if hi <= lo:  # constant data: any non-empty interval around it
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def shared_histograms(
    samples: Sequence[np.ndarray],
    bins: int = DEFAULT_BINS,
    value_range: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Probability histograms ``hist[K, bins]`` of K groups on one shared binning, and the bin edges.

    ``samples[k]`` holds the intensities of group k (e.g. the brain voxels of all the
    validation images of domain k, any shape, non-finite values dropped).
    ``value_range`` defaults to :func:`shared_range`. Values outside the range are
    clipped into the first/last bin rather than dropped, so every voxel counts and each
    row sums to 1.
    """
    if len(samples) == 0:
        raise ValueError("need at least one group of intensities")
    if bins < 1:
        raise ValueError(f"bins must be positive, got {bins}")
    lo, hi = shared_range(samples) if value_range is None else (float(value_range[0]), float(value_range[1]))
    if not hi > lo:
        raise ValueError(f"empty histogram range ({lo}, {hi})")
    edges = np.linspace(lo, hi, bins + 1)
    hist = np.zeros((len(samples), bins), dtype=np.float64)
    for k, s in enumerate(samples):
        x = _finite(s)
        if x.size == 0:
            raise ValueError(f"group {k} has no finite intensity values")
        hist[k], _ = np.histogram(np.clip(x, lo, hi), bins=edges)
        hist[k] /= hist[k].sum()
    return hist, edges


def _entropy_bits(p: np.ndarray) -> float:
    nz = p[p > 0]  # 0 log 0 = 0
    return float(-(nz * np.log2(nz)).sum())


def generalized_jsd(hists: np.ndarray) -> float:
    """Equal-weight Jensen-Shannon divergence of K histograms (rows), base 2: ``H(mean) - mean H``.

    This is the paper's verbal definition ("the mean KL divergence between a
    distribution and the average of distributions"); it lies in [0, log2 K] and equals
    :func:`jensen_shannon` for K = 2.
    """
    rows = [_as_distribution(h, f"histogram {k}") for k, h in enumerate(np.atleast_2d(hists))]
    mix = np.mean(rows, axis=0)
    return max(_entropy_bits(mix) - float(np.mean([_entropy_bits(r) for r in rows])), 0.0)


def mean_pairwise_jsd(
    samples: Sequence[np.ndarray],
    bins: int = DEFAULT_BINS,
    value_range: tuple[float, float] | None = None,
) -> float:
    """Mean over all pairs of groups of the JSD (base 2) of their shared-binned histograms; in [0, 1]."""
    if len(samples) < 2:
        raise ValueError(f"need at least two groups to compare, got {len(samples)}")
    hist, _ = shared_histograms(samples, bins, value_range)
    pairs = itertools.combinations(range(len(samples)), 2)
    return float(np.mean([jensen_shannon(hist[i], hist[j]) for i, j in pairs]))


def per_class_jsd(
    images: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    classes: Sequence[int] = DEFAULT_CLASSES,
    bins: int = DEFAULT_BINS,
    value_range: tuple[float, float] | None = None,
    names: tuple[str, ...] = CLASS_NAMES,
) -> dict[str, float]:
    """Mean pairwise JSD across groups of the intensities of each tissue, plus ``"all"`` for the brain.

    ``images[k]`` and ``labels[k]`` are the intensities and label map of group k (one
    domain; concatenate its subjects' arrays). ``"all"`` uses every voxel with label > 0.
    All tissues share one histogram range: ``value_range`` or, by default, the
    :func:`shared_range` of the groups' brain voxels, so a tissue's bins are the same
    intensities as in the whole-brain histogram. A tissue absent from some group gets
    ``nan``.
    """
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} image groups but {len(labels)} label groups")
    flat: list[tuple[np.ndarray, np.ndarray]] = []
    for k, (image, label) in enumerate(zip(images, labels, strict=True)):
        img, lab = np.asarray(image), np.asarray(label)
        if img.shape != lab.shape:
            raise ValueError(f"group {k}: image shape {img.shape} differs from label shape {lab.shape}")
        flat.append((img.ravel(), lab.ravel()))
    brain = [img[lab > 0] for img, lab in flat]
    rng = shared_range(brain) if value_range is None else value_range
    out: dict[str, float] = {}
    for c in classes:
        groups = [img[lab == c] for img, lab in flat]
        ok = all(_finite(g).size for g in groups)
        out[class_name(c, names)] = mean_pairwise_jsd(groups, bins, rng) if ok else math.nan
    out["all"] = mean_pairwise_jsd(brain, bins, rng)
    return out


def tissue_overlap(
    image: np.ndarray,
    label: np.ndarray,
    classes: Sequence[int] = DEFAULT_CLASSES,
    bins: int = DEFAULT_BINS,
    names: tuple[str, ...] = CLASS_NAMES,
) -> dict[str, float]:
    """Within one domain, how much each pair of tissues' intensity histograms overlap: ``sum_b min(p_a, p_b)`` on
    the domain's own shared range, in [0, 1] (0: the tissues never share an intensity; 1: indistinguishable by
    intensity). The other side of Table 2: a normalizer can make the domains alike (low JSD) by merging tissues
    (high overlap); this says whether it did. Keys ``"CSF-GM"``...; ``nan`` for a tissue absent from ``label``."""
    img, lab = np.asarray(image).ravel(), np.asarray(label).ravel()
    present = [c for c in classes if np.any(lab == c)]
    out: dict[str, float] = {}
    row: dict[int, np.ndarray] = {}
    if present:
        hist, _ = shared_histograms([img[lab == c] for c in present], bins, shared_range([img[lab > 0]]))
        row = dict(zip(present, hist, strict=True))
    for a, b in itertools.combinations(classes, 2):
        key = f"{class_name(a, names)}-{class_name(b, names)}"
        out[key] = float(np.minimum(row[a], row[b]).sum()) if a in present and b in present else math.nan
    return out


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def paper_patch_jsd(patches: Sequence[np.ndarray], bins: int = 256) -> float:
    """The authors' Table 2 quantity, reproduced for comparison. NOT a Jensen-Shannon divergence.

    For a batch of B patches (the authors used the 32³ patches of a test batch, both
    domains mixed) it computes, in natural log:

    1. for each patch j, the histogram counts of its voxels in ``bins`` bins over *that
       patch's own* min..max (``torch.histc`` with its default range), so bins of
       different patches mean different intensities;
    2. ``p_j = softmax(counts_j)``: raw counts used as logits, which turns nearly every
       histogram into an almost one-hot vector on its fullest bin;
    3. the "mixture" ``m`` taken as the mean of each ``p_j`` over its *bins* (always
       ``1 / bins``) instead of over patches, and ``KL(p_j || m)`` summed bin by bin,
       broadcast over the batch: ``value = (B / bins) * sum_j KL(p_j || uniform)``.

    That is the arithmetic of the ``js_div`` helper their trainer called on the
    ``[B, bins]`` matrix of softmaxed histograms. It measures how peaked the softmaxed
    histograms are, not how different they are from each other: identical patches score
    above zero, and with B = 16, bins = 256 the value is the mean ``KL(p_j || uniform)``,
    bounded by ln 256 ≈ 5.55, far above the ln 2 ≈ 0.69 bound of any JSD.
    """
    if len(patches) == 0:
        raise ValueError("need at least one patch")
    rows = []
    for patch in patches:
        x = _finite(patch)
        if x.size == 0:
            raise ValueError("a patch has no finite values")
        lo, hi = float(x.min()), float(x.max())
        if hi <= lo:  # torch.histc widens a constant range by one on each side
            lo, hi = lo - 1.0, hi + 1.0
        counts, _ = np.histogram(x, bins=bins, range=(lo, hi))
        rows.append(_softmax(counts.astype(np.float64)))
    p = np.asarray(rows)
    terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0) * bins), 0.0)
    return float(len(rows) / bins * terms.sum())
