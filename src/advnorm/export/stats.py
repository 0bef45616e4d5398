"""The ``stats`` input of an exported transfer-function G, for users without advnorm: numpy code and its description.

:func:`advnorm.models.transfer.image_stats` is torch code inside advnorm; an exported model is run elsewhere, so the
JSON carries the same computation as a short numpy function (:func:`stats_code`, the one copy of it: the JSON's text
is what the tests run against ``image_stats``) and says in words what it computes (:func:`stats_doc`). The
histogram's bin index is computed in float32 as torch's ``histc`` does, so a voxel on a bin edge lands in the same
bin; the quantiles agree to float32 rounding.
"""

from __future__ import annotations

from typing import Any

from advnorm.models.transfer import HISTOGRAM_BINS, N_STATS, QUANTILES, ValueRange

QUANTILE_SAMPLE = 200_000
"""``image_stats`` takes the quantiles of every k-th brain voxel, k = max(1, n // QUANTILE_SAMPLE)."""

_CODE = '''\
import numpy as np


def image_stats(image, mask, lo={lo!r}, hi={hi!r}):
    """({n},) float32 stats of a whole volume: image, mask (I, J, K) on the working grid, before windowing."""
    v = np.asarray(image, np.float32)[np.asarray(mask) > 0]
    if v.size == 0:  # no brain voxel: all voxels
        v = np.asarray(image, np.float32).reshape(-1)
    q = np.quantile(v[:: max(1, v.size // {sample})], {quantiles!r})
    lo32, hi32 = np.float32(lo), np.float32(hi)
    b = ((np.clip(v, lo32, hi32) - lo32) * np.float32({bins}) / (hi32 - lo32)).astype(np.int64)
    h = np.bincount(np.minimum(b, {bins} - 1), minlength={bins})
    return np.concatenate([(q - lo) / (hi - lo), h / max(h.sum(), 1)]).astype(np.float32)
'''


def stats_code(value_range: ValueRange) -> str:
    """Python source defining ``image_stats(image, mask)`` with numpy only, for the run's ``value_range``."""
    lo, hi = (float(v) for v in value_range)
    return _CODE.format(n=N_STATS, lo=lo, hi=hi, sample=QUANTILE_SAMPLE, quantiles=list(QUANTILES), bins=HISTOGRAM_BINS)


def stats_doc(value_range: ValueRange, transform: str) -> dict[str, Any]:
    """What the JSON says about ``stats``: which quantiles, how mapped, which histogram, of which voxels."""
    lo, hi = (float(v) for v in value_range)
    return {
        "shape": ["batch", N_STATS],
        "dtype": "float32",
        "why": "G is an intensity curve chosen per image from these statistics: every window of a volume must get "
        "the statistics of the whole volume, never of the window",
        "voxels": "the brain voxels (mask > 0) of the whole volume: the input transform's output on the 1 mm "
        "working grid (preprocessing steps 1-3), before padding and windowing; all its voxels if the mask is empty",
        "layout": f"{len(QUANTILES)} quantiles, then {HISTOGRAM_BINS} histogram bins: {N_STATS} values",
        "value_range": [lo, hi],
        "value_range_of": f"the {transform} input transform",
        "quantiles": list(QUANTILES),
        "quantile_method": "linear interpolation between order statistics (numpy.quantile's default 'linear')",
        "quantile_subsampling": f"of every k-th brain voxel in C order (image[mask > 0][::k]), k = max(1, n // "
        f"{QUANTILE_SAMPLE}) for n brain voxels",
        "quantile_mapping": "(q - lo) / (hi - lo), lo, hi = value_range: the range onto [0, 1], not clipped",
        "histogram": {
            "bins": HISTOGRAM_BINS,
            "range": [lo, hi],
            "voxels": "all brain voxels (not subsampled), clipped to the range first (the end bins count the "
            "values beyond it)",
            "bin_index": f"floor((v - lo) * {HISTOGRAM_BINS} / (hi - lo)) in float32; v = hi goes to the last bin",
            "normalization": "counts / max(number of voxels, 1): sums to 1",
        },
        "numpy": stats_code(value_range).splitlines(),
    }
