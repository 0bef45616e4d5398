"""The Jensen-Shannon divergence of two histograms, in bits: the one measure of how alike two intensity
distributions are, used by the evaluation's Table 2 and by inference's check that an input resembles
the training data."""

from __future__ import annotations

import numpy as np


def as_distribution(p: np.ndarray, name: str) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64).ravel()
    if p.size == 0 or not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError(f"{name} must be a non-empty array of finite non-negative weights")
    total = p.sum()
    if total <= 0:
        raise ValueError(f"{name} sums to zero")
    return p / total


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence of two histograms, base 2: in [0, 1].

    ``JSD = H(m) - (H(p) + H(q)) / 2`` with ``m = (p + q) / 2`` and ``0 log 0 = 0``;
    0 for identical histograms, 1 for histograms with disjoint support. Counts are
    accepted: each input is normalised to sum 1 first.
    """
    p, q = as_distribution(p, "p"), as_distribution(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"histograms have different numbers of bins: {p.size} and {q.size}")
    m = 0.5 * (p + q)
    # KL form, evaluated only where p (or q) is non-zero: there m > 0 as well.
    kl_pm = float(np.sum(p[p > 0] * np.log2(p[p > 0] / m[p > 0])))
    kl_qm = float(np.sum(q[q > 0] * np.log2(q[q > 0] / m[q > 0])))
    return float(min(max(0.5 * (kl_pm + kl_qm), 0.0), 1.0))
