"""Per-image input intensity transforms, one per method's input (fitted state is a plain dict, saved as JSON).

* ``scale``  : linear rescale so brain intensities run from 0 to their ``percentile`` (-> 1). Keeps each
               domain's contrast (tissue order and overlap) intact: the raw input of G and of Exp. 1-4, 6, 7.
* ``zscore`` : (x - mean) / std inside the brain, per image (Exp. 5, "standardized"; the authors z-scored
               each voxel position across subjects, which is not per-image standardization).
* ``nyul``   : Nyúl & Udupa piecewise-linear histogram standardization; the standard landmarks are fitted
               on the training images (the ``nyul`` baseline).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from advnorm.config import SCALE_TOP

NYUL_PERCENTILES = (1.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 99.0)
NYUL_RANGE = (0.0, 1.0)


@dataclass(frozen=True)
class ImageTransform:
    """One image's input transform with its per-image parameters fitted (``scale``: the brain's ``percentile``;
    ``zscore``: its mean and divisor; ``nyul``: its landmarks and the standard ones).

    Fitting needs the whole image, applying does not: every transform is voxel-wise, so :meth:`apply` gives a
    patch exactly the values the whole transformed image has there. Training keeps only the raw images (memory-
    mapped from the working-grid cache) and these few numbers per image, and transforms each patch as it is
    gathered, instead of holding a transformed copy of every volume.
    """

    kind: str
    params: tuple[float, ...]
    targets: tuple[float, ...] = ()
    """``nyul`` only: the standard landmarks ``params`` (the image's own) are mapped onto."""

    def apply(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The transformed values of ``image`` (the whole image, or any block of it with ``mask``'s same block):
        float32, 0 outside ``mask``."""
        if self.kind == "scale":
            (top,) = self.params
            return np.where(mask, np.clip(image / top, 0.0, SCALE_TOP), 0.0).astype(np.float32)
        if self.kind == "zscore":
            mean, divisor = self.params
            return np.where(mask, (image - mean) / divisor, 0.0).astype(np.float32)
        if self.kind == "nyul":
            lm, std = np.asarray(self.params), np.asarray(self.targets)
            brain = image[mask]
            out = np.interp(brain, lm, std)
            lo_slope = (std[1] - std[0]) / (lm[1] - lm[0])
            hi_slope = (std[-1] - std[-2]) / (lm[-1] - lm[-2])
            out = np.where(brain < lm[0], std[0] + (brain - lm[0]) * lo_slope, out)
            out = np.where(brain > lm[-1], std[-1] + (brain - lm[-1]) * hi_slope, out)
            result = np.zeros_like(image, dtype=np.float32)
            result[mask] = out
            return result
        raise ValueError(f"unknown input transform {self.kind!r}")


def fit_transform(
    kind: str,
    image: np.ndarray,
    mask: np.ndarray,
    *,
    percentile: float = 99.5,
    fitted: dict | None = None,
    landmarks: Sequence[float] | None = None,
) -> ImageTransform:
    """The named input transform (``scale`` | ``zscore`` | ``nyul``) fitted to one whole image. ``nyul`` only:
    ``landmarks``, the image's own (:func:`image_landmarks` at ``fitted["percentiles"]``) when a caller has them."""
    if kind == "scale":
        brain = image[mask]
        top = float(np.percentile(brain, percentile)) if brain.size else 1.0
        top = top if top > 0 else float(brain.max(initial=1.0)) or 1.0
        return ImageTransform(kind, (top,))
    if kind == "zscore":
        brain = image[mask]
        mean, std = float(brain.mean()), float(brain.std())
        return ImageTransform(kind, (mean, std if std > 0 else 1.0))
    if kind == "nyul":
        if fitted is None:
            raise ValueError("nyul needs fitted landmarks")
        own = image_landmarks(image, mask, fitted["percentiles"]) if landmarks is None else landmarks
        lm = np.asarray(own, dtype=np.float64)
        lm = np.maximum.accumulate(lm + np.arange(len(lm)) * 1e-6)  # strictly increasing
        return ImageTransform(kind, tuple(map(float, lm)), tuple(map(float, fitted["standard_landmarks"])))
    raise ValueError(f"unknown input transform {kind!r}")


def scale_image(image: np.ndarray, mask: np.ndarray, percentile: float = 99.5) -> np.ndarray:
    return fit_transform("scale", image, mask, percentile=percentile).apply(image, mask)


def zscore_image(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return fit_transform("zscore", image, mask).apply(image, mask)


def image_landmarks(image: np.ndarray, mask: np.ndarray, percentiles: Sequence[float]) -> np.ndarray:
    """The brain's intensity percentiles: an image's Nyúl landmarks (float64)."""
    return np.percentile(image[mask], percentiles)


def fit_nyul(
    images: Sequence[np.ndarray], masks: Sequence[np.ndarray], percentiles: Sequence[float] = NYUL_PERCENTILES
) -> dict:
    """Learn the standard scale: each image's landmarks mapped linearly so its 1st..99th percentiles
    span ``NYUL_RANGE``, then averaged over the training images."""
    return nyul_standard(
        [image_landmarks(image, mask, percentiles) for image, mask in zip(images, masks, strict=True)], percentiles
    )


def nyul_standard(landmarks: Sequence[np.ndarray], percentiles: Sequence[float] = NYUL_PERCENTILES) -> dict:
    """:func:`fit_nyul` from the training images' landmarks (:func:`image_landmarks`), which a caller may have
    kept from an earlier fit."""
    rows = []
    for row in landmarks:
        lm = np.asarray(row, dtype=np.float64)
        span = lm[-1] - lm[0]
        rows.append((lm - lm[0]) / (span if span > 0 else 1.0))
    standard = NYUL_RANGE[0] + np.mean(rows, axis=0) * (NYUL_RANGE[1] - NYUL_RANGE[0])
    return {"percentiles": list(map(float, percentiles)), "standard_landmarks": [float(v) for v in standard]}


def nyul_image(image: np.ndarray, mask: np.ndarray, fitted: dict) -> np.ndarray:
    """Map the image's own landmarks onto the standard ones, piecewise linearly (linear extrapolation at the ends)."""
    return fit_transform("nyul", image, mask, fitted=fitted).apply(image, mask)


def transform_image(
    kind: str, image: np.ndarray, mask: np.ndarray, *, percentile: float = 99.5, fitted: dict | None = None
) -> np.ndarray:
    """Apply the named input transform (``scale`` | ``zscore`` | ``nyul``)."""
    return fit_transform(kind, image, mask, percentile=percentile, fitted=fitted).apply(image, mask)


# -- is an input within what a run was trained on? ------------------------------------------------------------

HISTOGRAM_BINS = 64
VALUE_RANGE = {"scale": (0.0, SCALE_TOP), "zscore": (-4.0, 4.0), "nyul": (-0.5, 1.5)}
"""The value range of each transform's output: the training-input histograms are taken over it, and a transfer G's
curve and a histogram D are defined on it."""
FAR_FROM_TRAINING_JSD = 0.5
"""An input whose transformed brain histogram is further than this (JSD, bits) from every training domain's
gets a warning; between the phantom's three very different domains the JSD is about 0.2."""
MAX_NEGATIVE_SHARE = 0.01
"""More negative brain voxels than this share means the image was already normalized (z-scored, ...)."""


def input_histogram(kind: str, transformed: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Probability histogram of a transformed image's brain voxels on the transform's fixed range."""
    lo, hi = VALUE_RANGE[kind]
    counts, _ = np.histogram(np.clip(transformed[mask], lo, hi), bins=HISTOGRAM_BINS, range=(lo, hi))
    return counts / max(int(counts.sum()), 1)


def raw_input_problem(kind: str, image: np.ndarray, mask: np.ndarray) -> str | None:
    """Why a raw image cannot be fed to a run whose input transform is ``kind`` (``None``: it can).

    ``scale`` divides by a high percentile and clips at 0, so it needs raw, non-negative MR magnitudes:
    an image that was z-scored before (half its brain below 0) would be clipped into garbage.
    ``zscore`` and ``nyul`` are invariant to a shift and a positive gain, so they take any image.
    """
    if kind != "scale":
        return None
    brain = image[mask]
    share = float(np.mean(brain < 0)) if brain.size else 0.0
    if share > MAX_NEGATIVE_SHARE:
        return (
            f"{share:.0%} of the brain voxels are negative: this run rescales raw MR intensities (>= 0) and "
            "would clip them; give it the image as acquired, before any z-scoring or other normalization"
        )
    if brain.size == 0 or float(np.percentile(brain, 99.5)) <= 0:
        return "the brain holds no positive intensities"
    return None
