"""Phantom anatomy: the ICBM 2009a tissue maps, scaled and deformed into one subject per seed.

Every phantom subject starts from the same real anatomy, the CSF/GM/WM probability
maps of the ICBM 2009a template (``icbm2009a_tissue_1p5mm.npz``, see ``NOTICE``),
and gets its own shape from a random but seeded transform:

* the whole brain is scaled by ``scale`` (0.7 by default: it keeps the CPU cost of
  the demo low, and an infant brain, like iSEG-2017's 6-month-olds, is smaller than
  an adult one anyway), times a small random anisotropic scaling (+-6 %);
* a small random rotation (up to +-4 degrees about each axis);
* a smooth random displacement field (gaussian-smoothed noise on a coarse 8 mm grid,
  upsampled linearly; a few mm amplitude), so gyri and ventricles move non-rigidly.

The probability maps themselves are resampled (trilinear), so partial volume is
kept; the label map is the argmax of (background, CSF, GM, WM) with background =
1 - (CSF + GM + WM), clipped at 0. The result lives on a 1 mm isotropic RAS grid
with at least :data:`PAD` voxels of background around the brain. An optional map of
region ids drawn on the template grid (e.g. cerebellum, brainstem) is carried along
by the same transform (nearest neighbour), so sub-structures follow each subject's
own deformation exactly.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import numpy as np
from scipy import ndimage as ndi

PAD = 8
"""Voxels of zero background kept around the brain on every side."""

TEMPLATE_FILE = "icbm2009a_tissue_1p5mm.npz"
_COARSE_MM = 8.0  # spacing of the coarse grid the displacement field is drawn on
_MAX_ROT_DEG = 4.0
_MAX_AXIS_SCALE = 0.06
_DISPLACEMENT_STD_MM = 2.5  # per component, at scale 1.0 (scaled with the brain)


@dataclass(frozen=True, eq=False)
class Anatomy:
    """One phantom subject on a 1 mm grid: probabilities (CSF, GM, WM), labels 0-3 and brain mask."""

    probs: np.ndarray  # float32, shape (3, X, Y, Z), CSF/GM/WM probabilities in [0, 1]
    label: np.ndarray  # uint8, shape (X, Y, Z): 0 background, 1 CSF, 2 GM, 3 WM
    mask: np.ndarray  # bool, label > 0
    regions: np.ndarray | None = None  # uint8 (X, Y, Z): template region ids, warped like probs (if asked for)


@dataclass(frozen=True, eq=False)
class Template:
    probs: np.ndarray  # float32 (3, X, Y, Z) on the template grid
    spacing: np.ndarray  # (3,) mm
    center: np.ndarray  # (3,) voxel index of the brain's bounding-box centre
    half_extent_mm: np.ndarray  # (3,) half size of the brain's bounding box in mm


@functools.lru_cache(maxsize=1)
def load_template() -> Template:
    """The ICBM 2009a CSF/GM/WM maps shipped as package data (loaded once per process)."""
    ref = resources.files("advnorm.data.phantom").joinpath(TEMPLATE_FILE)
    with ref.open("rb") as fh, np.load(fh) as npz:
        probs = np.stack([npz[name].astype(np.float32) / 255.0 for name in ("csf", "gm", "wm")])
        spacing = np.asarray(npz["spacing"], dtype=float)
    probs.setflags(write=False)
    brain = probs.sum(axis=0) > 0.5
    idx = np.argwhere(brain)
    lo, hi = idx.min(axis=0), idx.max(axis=0)
    return Template(
        probs=probs,
        spacing=spacing,
        center=(lo + hi) / 2.0,
        half_extent_mm=(hi - lo + 1) * spacing / 2.0,
    )


def make_subject(rng: np.random.Generator, scale: float, regions: np.ndarray | None = None) -> Anatomy:
    """Draw one subject: scaled, rotated and smoothly deformed template anatomy on a 1 mm grid.

    ``regions`` (integer ids on the template grid, shape ``load_template().probs.shape[1:]``)
    is warped with the same transform by nearest neighbour and returned as
    ``Anatomy.regions``; it draws nothing from ``rng``, so the anatomy is the same with or
    without it.
    """
    tpl = load_template()
    axis_scale = scale * (1.0 + rng.uniform(-_MAX_AXIS_SCALE, _MAX_AXIS_SCALE, size=3))
    rot = _rotation(np.deg2rad(rng.uniform(-_MAX_ROT_DEG, _MAX_ROT_DEG, size=3)))
    disp_std = _DISPLACEMENT_STD_MM * scale

    # An output grid (cropped below) holding the template's brain bounding box after
    # scaling and rotation, plus the largest plausible displacement and the padding.
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * tpl.half_extent_mm
    half = np.abs(corners * axis_scale @ rot.T).max(axis=0) + 5.0 * disp_std + PAD + 2
    shape = tuple(int(2 * np.ceil(h) + 1) for h in half)
    center = (np.array(shape) - 1) / 2.0

    disp = _displacement(rng, shape, disp_std)  # (3, X, Y, Z) mm, float32
    # output voxel v -> world x = v - center (mm) -> x + d(v) -> undo rotation and
    # scaling -> template mm -> template voxel.
    inv = (rot.T / axis_scale[:, None]) / tpl.spacing[:, None]  # row i: template voxel axis i
    grids = [np.arange(n, dtype=np.float32) - np.float32(c) for n, c in zip(shape, center, strict=True)]
    coords = np.empty((3, *shape), dtype=np.float32)
    for i in range(3):
        acc = np.float32(tpl.center[i])
        for j in range(3):
            g = grids[j].reshape([-1 if k == j else 1 for k in range(3)])
            acc = acc + np.float32(inv[i, j]) * (g + disp[j])
        coords[i] = acc
    del disp

    probs = np.stack(
        [ndi.map_coordinates(p, coords, order=1, mode="constant", cval=0.0, output=np.float32) for p in tpl.probs]
    )
    warped = None
    if regions is not None:
        if regions.shape != tpl.probs.shape[1:]:
            raise ValueError(f"regions must be on the template grid {tpl.probs.shape[1:]}, got {regions.shape}")
        warped = ndi.map_coordinates(
            regions.astype(np.uint8, copy=False), coords, order=0, mode="constant", cval=0, output=np.uint8
        )
    del coords
    np.clip(probs, 0.0, 1.0, out=probs)
    label, mask = labels_from_probs(probs)
    if not mask.any():  # cannot happen for sane scales; keep the error explicit
        raise RuntimeError("phantom subject has an empty brain mask")

    # Crop to the brain plus PAD voxels (zero-padding if the grid was too tight).
    idx = np.argwhere(mask)
    lo, hi = idx.min(axis=0) - PAD, idx.max(axis=0) + PAD + 1
    probs = _crop_pad(probs, lo, hi, lead=1)
    label = _crop_pad(label, lo, hi, lead=0)
    if warped is not None:
        warped = _crop_pad(warped, lo, hi, lead=0)
    return Anatomy(probs=probs, label=label, mask=label > 0, regions=warped)


def labels_from_probs(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label = argmax of (background, CSF, GM, WM), background = max(0, 1 - sum); and label > 0."""
    best = np.maximum(1.0 - probs.sum(axis=0), 0.0)
    label = np.zeros(probs.shape[1:], dtype=np.uint8)
    for t, p in enumerate(probs, start=1):  # strict ">" keeps the first maximum, like argmax
        better = p > best
        label[better] = t
        np.maximum(best, p, out=best)
    return label, label > 0


def _rotation(angles: np.ndarray) -> np.ndarray:
    ax, ay, az = angles
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _displacement(rng: np.random.Generator, shape: tuple[int, ...], std_mm: float) -> np.ndarray:
    """A smooth random displacement field (3, *shape) in mm: smoothed coarse noise, upsampled."""
    coarse_shape = tuple(max(3, int(np.ceil(n / _COARSE_MM)) + 1) for n in shape)
    out = np.empty((3, *shape), dtype=np.float32)
    for c in range(3):
        noise = ndi.gaussian_filter(rng.standard_normal(coarse_shape), sigma=1.0, mode="reflect")
        noise *= std_mm / max(float(noise.std()), 1e-6)
        out[c] = upsample_linear(noise.astype(np.float32), shape)
    return out


def upsample_linear(coarse: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Separable linear interpolation of ``coarse`` onto ``shape``, corners aligned."""
    out = coarse
    for axis, n in enumerate(shape):
        out = resample_axis(out, axis, np.linspace(0.0, coarse.shape[axis] - 1.0, n))
    return out


def resample_axis(a: np.ndarray, axis: int, positions: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``a`` along ``axis`` at fractional indices ``positions`` (edges clamped)."""
    n = a.shape[axis]
    pos = np.clip(np.asarray(positions, dtype=np.float64), 0.0, n - 1.0)
    i0 = np.minimum(np.floor(pos).astype(np.intp), max(n - 2, 0))
    i1 = np.minimum(i0 + 1, n - 1)
    w = (pos - i0).astype(a.dtype if a.dtype.kind == "f" else np.float32)
    bshape = [1] * a.ndim
    bshape[axis] = -1
    w = w.reshape(bshape)
    return np.take(a, i0, axis=axis) * (1 - w) + np.take(a, i1, axis=axis) * w


def _crop_pad(a: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, lead: int) -> np.ndarray:
    spatial = a.shape[lead:]
    pad_before = np.maximum(-lo, 0)
    pad_after = np.maximum(hi - np.array(spatial), 0)
    if pad_before.any() or pad_after.any():
        a = np.pad(a, [(0, 0)] * lead + list(zip(pad_before, pad_after, strict=True)))
        lo, hi = lo + pad_before, hi + pad_before
    box = tuple(slice(int(start), int(stop)) for start, stop in zip(lo, hi, strict=True))
    return np.ascontiguousarray(a[(slice(None),) * lead + box])


def resample_axis_cubic(a: np.ndarray, axis: int, positions: np.ndarray) -> np.ndarray:
    """Keys cubic (a = -0.5) interpolation of ``a`` along ``axis`` at fractional indices (edges clamped)."""
    n = a.shape[axis]
    pos = np.clip(np.asarray(positions, dtype=np.float64), 0.0, n - 1.0)
    base = np.floor(pos).astype(np.intp)
    t = pos - base
    weights = (
        ((-0.5 * t + 1.0) * t - 0.5) * t,
        (1.5 * t - 2.5) * t * t + 1.0,
        ((-1.5 * t + 2.0) * t + 0.5) * t,
        (0.5 * t - 0.5) * t * t,
    )
    bshape = [1] * a.ndim
    bshape[axis] = -1
    dtype = a.dtype if a.dtype.kind == "f" else np.float32
    terms = [
        np.take(a, np.clip(base + k, 0, n - 1), axis=axis) * w.astype(dtype).reshape(bshape)
        for k, w in zip(range(-1, 3), weights, strict=True)
    ]
    return terms[0] + terms[1] + terms[2] + terms[3]
