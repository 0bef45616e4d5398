"""Phantom acquisition: how each domain ("site") turns an anatomy into an MR-like image.

The domains differ the way iSEG-2017 and MRBrainS13 differ, which is the problem
adversarial normalization solves (a segmenter trained on one does markedly worse on
another):

1. ``InfantT1`` - infant-like isointense T1 (6-month-old brain): GM and WM overlap
   strongly (WM mean ~14 % *below* GM, with a larger spread), CSF darker; mild noise,
   mild bias; 1 mm isotropic; intensities roughly 0-300.
2. ``AdultT1Thick`` - adult T1 contrast (WM > GM > CSF, good contrast) acquired like
   MRBrainS with 0.958 x 0.958 x 3 mm voxels: a 3 mm box slice profile along the
   superior-inferior axis, noise added on the acquisition grid, then linear
   resampling back to 1 mm, so it is blurred through-plane; intensities in the
   hundreds to ~1000.
3. ``T2Like`` - T2-like contrast (CSF bright, GM > WM), stronger Rician noise and a
   strong smooth multiplicative bias field; intensities up to ~2000-3000.
4. ``Random<k>`` (k >= 4) - a seeded random permutation of the tissue order with a
   random gamma, global scale, noise and bias level, sometimes with thick slices.

Image = partial-volume mix of the tissue means weighted by the anatomy's
probabilities (each tissue with a smooth within-tissue texture), times a smooth
bias field, plus Rician noise, then skull-stripped (zero outside the brain mask).
Each subject gets a small random jitter of the tissue means and global gain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from advnorm.data.phantom.anatomy import Anatomy, resample_axis, resample_axis_cubic

THICK_SPACING = (0.958, 0.958, 3.0)
"""MRBrainS13's acquisition voxel size in mm (x, y, z = superior-inferior)."""


@dataclass(frozen=True)
class Contrast:
    """How one domain images tissue. Means/spreads are for (CSF, GM, WM)."""

    name: str
    means: tuple[float, float, float]
    spreads: tuple[float, float, float]  # s.d. of the smooth within-tissue texture
    noise: float  # Rician noise sigma, in image units
    bias: float  # log-amplitude of the multiplicative bias field (0.3: x0.74..x1.35 at its extremes in the brain)
    thick: bool = False  # simulate 0.958 x 0.958 x 3 mm acquisition
    gamma: float = 1.0
    description: str = ""

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "tissue_means": dict(zip(("CSF", "GM", "WM"), self.means, strict=True)),
            "tissue_spreads": dict(zip(("CSF", "GM", "WM"), self.spreads, strict=True)),
            "noise_sigma": self.noise,
            "bias_log_amplitude": self.bias,
            "thick_slices_mm": list(THICK_SPACING) if self.thick else None,
            "gamma": self.gamma,
            "description": self.description,
        }


_FIXED = (
    Contrast(
        name="InfantT1",
        means=(65.0, 160.0, 138.0),
        spreads=(10.0, 12.0, 18.0),
        noise=4.0,
        bias=0.05,
        description="infant-like isointense T1: GM and WM overlap strongly, CSF darker; mild noise; 1 mm isotropic",
    ),
    Contrast(
        name="AdultT1Thick",
        means=(250.0, 600.0, 900.0),
        spreads=(30.0, 35.0, 30.0),
        noise=20.0,
        bias=0.10,
        thick=True,
        description="adult T1 contrast (WM > GM > CSF) acquired with 0.958 x 0.958 x 3 mm voxels, resampled to 1 mm",
    ),
    Contrast(
        name="T2Like",
        means=(1800.0, 1000.0, 760.0),
        spreads=(80.0, 60.0, 50.0),
        noise=90.0,
        bias=0.40,
        description="T2-like contrast (CSF > GM > WM) with strong Rician noise and a strong smooth bias field; 1 mm",
    ),
)


def domain_contrast(k: int, seed: int) -> Contrast:
    """The contrast of domain ``k`` (1-based). Domains 1-3 are fixed; 4+ are drawn from ``seed``."""
    if k <= len(_FIXED):
        return _FIXED[k - 1]
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(k, 7)))
    gain = float(np.exp(rng.uniform(np.log(100.0), np.log(3000.0))))
    levels = rng.permutation([0.3, 0.65, 1.0])
    m_csf, m_gm, m_wm = (round(float(v * gain), 2) for v in levels)
    s_csf, s_gm, s_wm = (round(float(gain * rng.uniform(0.03, 0.08)), 2) for _ in range(3))
    return Contrast(
        name=f"Random{k}",
        means=(m_csf, m_gm, m_wm),
        spreads=(s_csf, s_gm, s_wm),
        noise=round(gain * float(rng.uniform(0.01, 0.06)), 3),
        bias=round(float(rng.uniform(0.05, 0.4)), 3),
        thick=bool(rng.random() < 0.3),
        gamma=round(float(rng.uniform(0.6, 1.6)), 3),
        description="seeded random tissue order, gamma, scale, noise and bias",
    )


def acquire(anatomy: Anatomy, contrast: Contrast, rng: np.random.Generator) -> np.ndarray:
    """Image ``anatomy`` with ``contrast``: float32, zero outside ``anatomy.mask``."""
    shape = anatomy.label.shape
    gain = rng.uniform(0.9, 1.1)
    means = np.asarray(contrast.means) * gain * (1.0 + rng.uniform(-0.03, 0.03, size=3))
    spreads = np.asarray(contrast.spreads) * gain

    signal = np.zeros(shape, dtype=np.float32)
    for p, mu, sd in zip(anatomy.probs, means, spreads, strict=True):
        signal += p * (np.float32(mu) + np.float32(sd) * texture(rng, shape))
    np.maximum(signal, 0.0, out=signal)
    if contrast.gamma != 1.0:
        top = np.float32(max(means))
        signal = top * (signal / top) ** np.float32(contrast.gamma)
    if contrast.bias > 0:
        signal *= bias_field(rng, anatomy.mask, contrast.bias)

    sigma = contrast.noise * gain
    image = _thick_slice_acquisition(signal, rng, sigma) if contrast.thick else rician(signal, rng, sigma)
    image[~anatomy.mask] = 0.0
    return image.astype(np.float32, copy=False)


def texture(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Smooth (sigma 1 voxel) unit-variance noise: within-tissue intensity variation."""
    field = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma=1.0, truncate=3.0)
    # s.d. of white noise after a 3-D gaussian of sigma s is (2 sqrt(pi) s)^(-3/2)
    field *= np.float32((2.0 * np.sqrt(np.pi) * 1.0) ** 1.5)
    return field


def bias_field(rng: np.random.Generator, mask: np.ndarray, amplitude: float) -> np.ndarray:
    """exp(amplitude * f), f a random cubic polynomial over the volume scaled to max |f| = 1 in ``mask``."""
    shape = mask.shape
    axes = [
        np.linspace(-1.0, 1.0, n, dtype=np.float32).reshape([-1 if i == d else 1 for i in range(3)])
        for d, n in enumerate(shape)
    ]
    field = np.zeros(shape, dtype=np.float32)
    for a in range(4):
        for b in range(4 - a):
            for c in range(4 - a - b):
                if a + b + c == 0:
                    continue
                coef = np.float32(rng.standard_normal() / (a + b + c))
                field += coef * (axes[0] ** a) * (axes[1] ** b) * (axes[2] ** c)
    field *= np.float32(amplitude / max(float(np.abs(field[mask]).max()), 1e-6))
    return np.exp(field)


def rician(signal: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Magnitude of the signal plus complex gaussian noise of s.d. ``sigma`` per channel."""
    if sigma <= 0:
        return signal.astype(np.float32, copy=True)
    s = np.float32(sigma)
    real = signal + s * rng.standard_normal(signal.shape, dtype=np.float32)
    imag = s * rng.standard_normal(signal.shape, dtype=np.float32)
    return np.sqrt(real * real + imag * imag)


def _thick_slice_acquisition(signal: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Acquire on a 0.958 x 0.958 x 3 mm grid (3 mm box slice profile), add noise there, resample to 1 mm."""
    dx, dy, dz = THICK_SPACING
    nx, ny, nz = signal.shape
    offset = int(rng.integers(0, 3))  # where the first 3 mm slice centre falls
    acq = thick_slices(signal, offset)
    acq = sample_in_plane(acq, np.arange(0.0, nx - 1.0 + 1e-6, dx), np.arange(0.0, ny - 1.0 + 1e-6, dy))
    acq = rician(acq, rng, sigma)
    # back to 1 mm with linear interpolation, as MRBrainS is resampled to iSEG's grid
    out = resample_axis(acq, 2, (np.arange(nz) - offset) / dz)
    out = resample_axis(out, 1, np.arange(ny) / dy)
    out = resample_axis(out, 0, np.arange(nx) / dx)
    return out


def thick_slices(signal: np.ndarray, first: int) -> np.ndarray:
    """What 3 mm slices along axis 2 see of a 1 mm ``signal``: a 3-voxel box slice profile, one slice
    centred on voxel ``first``, ``first + 3``, ... (the signal is zero beyond the array)."""
    step = int(round(THICK_SPACING[2]))
    profile = ndi.uniform_filter1d(signal, size=step, axis=2, mode="constant")
    return profile[:, :, first::step]


def sample_in_plane(acq: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Sample axes 0 and 1 at fractional voxel positions ``xs``/``ys`` (e.g. every 0.958 mm).

    Cubic interpolation: the 1 mm signal stands for the object here, and linear
    interpolation would add a blur no scanner adds. Cubic overshoot below 0 is clipped.
    """
    acq = resample_axis_cubic(acq, 0, xs)
    acq = resample_axis_cubic(acq, 1, ys)
    np.maximum(acq, 0.0, out=acq)
    return acq
