"""The whole head around a phantom brain, imaged like MRBrainS13 (T1, T1_IR, T2_FLAIR on 3 mm slices).

MRBrainS13 scans are not skull-stripped: the brain sits inside CSF and dura, the skull
(dark cortical bone around brighter marrow), and the scalp (muscle, bright fat, skin), and
the air around the head holds Rician noise, never exact zeros. Those structures are what
a skull-stripping-by-label pipeline has to cope with, so the phantom builds them:

* a smooth hull of the brain (the brain mask closed by a gaussian) and the distance from
  it, divided by a smooth random thickness field (x0.8-1.25), gives the shells
  dura/CSF 1.5 mm, inner table 1.5 mm, diploe (marrow) 2.5 mm, outer table 1.5 mm;
* the head's outline is that hull grown by 13 mm; below its widest section it is
  extruded downwards (face, ears and neck, crudely), and the scalp is measured inwards
  from that outline: skin 1.5 mm, fat 3 mm, muscle beneath;
* partial volume at every shell edge (1 mm linear ramps); texture per tissue.

Each sequence mixes the tissue fractions with its own means, on a 1 mm world grid; the
acquisition is then simulated on 0.958 x 0.958 x 3 mm voxels with the thick-slice helpers
of :mod:`.acquisition` (3 mm box slice profile, cubic in-plane sampling), a smooth bias
field and Rician noise. The lengths above are divided by ``shrink`` in the scaled-down
test version.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from advnorm.data.phantom.acquisition import bias_field, rician, sample_in_plane, texture, thick_slices
from advnorm.data.phantom.anatomy import upsample_linear

TISSUES = ("csf", "gm", "wm", "lesion", "bone", "marrow", "fat", "muscle", "skin")
_SHELLS_MM = (("csf", 1.5), ("bone", 3.0), ("marrow", 5.5), ("bone", 7.0))  # (tissue, outer radius from the hull)
_SCALP_MM = (("skin", 1.5), ("fat", 4.5))  # (tissue, depth from the head's outline); muscle beneath
_HEAD_MM = 13.0  # head outline: hull grown by this much
_TEXTURE_OF = {"csf": 0, "gm": 1, "wm": 2, "lesion": 2}  # any other tissue: shared field 3 (the shells do not overlap)


@dataclass(frozen=True)
class Sequence:
    """One MR sequence: mean signal per tissue (of :data:`TISSUES`), texture, noise and bias."""

    name: str
    means: tuple[float, ...]
    noise: float  # Rician sigma on the acquisition grid
    bias: float  # log-amplitude of the smooth multiplicative bias field
    spread: float = 0.05  # texture s.d. as a fraction of each tissue's mean

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "tissue_means": dict(zip(TISSUES, self.means, strict=True)),
            "texture_fraction": self.spread,
            "noise_sigma": self.noise,
            "bias_log_amplitude": self.bias,
        }


SEQUENCES = (
    # adult 3 T contrasts; CSF, GM, WM, lesion, cortical bone, marrow, fat, muscle, skin
    Sequence("T1", (250, 600, 900, 640, 70, 760, 1150, 430, 520), noise=18.0, bias=0.08),
    Sequence("T1_IR", (35, 430, 860, 520, 25, 540, 620, 330, 380), noise=16.0, bias=0.08),
    Sequence("T2_FLAIR", (70, 560, 420, 900, 25, 420, 480, 240, 330), noise=14.0, bias=0.10),
)


@dataclass(frozen=True, eq=False)
class Head:
    """Tissue fractions of a whole head on a 1 mm RAS world grid (float32 arrays, summing to <= 1)."""

    fractions: dict[str, np.ndarray]
    mask: np.ndarray  # bool: inside the head's outline


def build_head(probs: np.ndarray, lesion: np.ndarray, rng: np.random.Generator, *, shrink: float = 1.0) -> Head:
    """The head around a brain given as (CSF, GM, WM) ``probs`` on the world grid, ``lesion`` the WM lesion share.

    The world grid must leave room for the shells around the brain (at least 13 mm /
    ``shrink``) except where the field of view is meant to cut the head.
    """
    shape = probs.shape[1:]
    brain = probs.sum(axis=0)
    hull = ndi.gaussian_filter((brain > 0.5).astype(np.float32), sigma=3.0 / shrink) > 0.3
    hull |= brain > 0.5
    thickness = _smooth_field(rng, shape, spacing=30.0 / shrink)
    # mm from the hull's surface (half a voxel beyond its outer voxels), in units of the local thickness
    dist = (ndi.distance_transform_edt(~hull).astype(np.float32) - np.float32(0.5)) / thickness
    del thickness

    head = dist <= _HEAD_MM / shrink
    areas = head.sum(axis=(0, 1))
    widest = int(np.argmax(areas))
    head[:, :, :widest] |= head[:, :, widest : widest + 1]
    depth = ndi.distance_transform_edt(head).astype(np.float32) - np.float32(0.5)  # mm inwards from the outline

    outside_brain = np.clip(1.0 - brain, 0.0, 1.0)
    del brain
    fractions = {"csf": probs[0].copy(), "gm": probs[1], "wm": probs[2] * (1.0 - lesion), "lesion": probs[2] * lesion}
    for name in TISSUES[4:]:
        fractions[name] = np.zeros(shape, dtype=np.float32)
    inner = np.zeros(shape, dtype=np.float32)  # fraction below the previous shell's outer radius
    for name, radius in _SHELLS_MM:
        below = _ramp(radius / shrink - dist)  # share of the voxel within ``radius`` of the hull
        fractions[name] += outside_brain * (below - inner)
        inner = below
    beyond_skull = outside_brain * (1.0 - inner) * head
    del inner, dist
    done = np.zeros(shape, dtype=np.float32)
    for name, reach in _SCALP_MM:
        within = _ramp(reach / shrink - depth)
        fractions[name] += beyond_skull * (within - done)
        done = within
    fractions["muscle"] += beyond_skull * (1.0 - done)
    return Head(fractions=fractions, mask=head)


def image_head(head: Head, sequence: Sequence, rng: np.random.Generator, textures: list[np.ndarray]) -> np.ndarray:
    """The noise-free 1 mm signal of ``sequence`` (float32), with per-subject gain and tissue-mean jitter."""
    gain = rng.uniform(0.9, 1.1)
    jitter = 1.0 + rng.uniform(-0.04, 0.04, size=len(TISSUES))
    signal = np.zeros(head.mask.shape, dtype=np.float32)
    for name, mean, j in zip(TISSUES, sequence.means, jitter, strict=True):
        mu = np.float32(mean * gain * j)
        sd = np.float32(mean * gain * sequence.spread)
        signal += head.fractions[name] * (mu + sd * textures[_TEXTURE_OF.get(name, 3)])
    np.maximum(signal, 0.0, out=signal)
    return signal


def head_textures(rng: np.random.Generator, shape: tuple[int, ...]) -> list[np.ndarray]:
    """Within-tissue texture fields shared by all sequences of a subject (CSF, GM, WM+lesion, the rest)."""
    return [texture(rng, shape) for _ in range(4)]


def acquire_thick(
    signal: np.ndarray, head_mask: np.ndarray, grid: ThickGrid, sequence: Sequence, rng: np.random.Generator
) -> np.ndarray:
    """Acquire a 1 mm ``signal`` on ``grid``'s 3 mm slices: slice profile, in-plane sampling, bias, Rician noise."""
    acq = thick_slices(signal, grid.first)[:, :, : grid.shape[2]]
    acq = sample_in_plane(acq, grid.xs, grid.ys)
    acq *= bias_field(rng, grid.nearest(head_mask), sequence.bias)
    return rician(acq, rng, sequence.noise)


@dataclass(frozen=True)
class ThickGrid:
    """Where the acquisition voxels (0.958 x 0.958 x 3 mm, RAS order) sit on the 1 mm world grid."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    first: int  # world z index of slice 0's centre
    origin_xy: float = 1.0  # world x and y index of voxel (0, 0)

    @property
    def xs(self) -> np.ndarray:
        return self.origin_xy + self.spacing[0] * np.arange(self.shape[0])

    @property
    def ys(self) -> np.ndarray:
        return self.origin_xy + self.spacing[1] * np.arange(self.shape[1])

    @property
    def zs(self) -> np.ndarray:
        return self.first + int(round(self.spacing[2])) * np.arange(self.shape[2])

    def nearest(self, world: np.ndarray) -> np.ndarray:
        """A world-grid array sampled at the acquisition voxel centres by nearest neighbour (labels, masks)."""
        ix, iy = np.rint(self.xs).astype(np.intp), np.rint(self.ys).astype(np.intp)
        return world[np.ix_(ix, iy, self.zs)]

    def world_shape(self) -> tuple[int, int, int]:
        """The smallest world grid holding the field of view (and the slice profile of its last slice)."""
        return int(np.ceil(self.xs[-1])) + 2, int(np.ceil(self.ys[-1])) + 2, int(self.zs[-1]) + 2

    def affine(self, world_origin: np.ndarray) -> np.ndarray:
        """Voxel-to-mm affine (RAS order) when world voxel ``world_origin`` is at 0 mm."""
        aff = np.diag([*self.spacing, 1.0])
        aff[:3, 3] = np.array([self.origin_xy, self.origin_xy, self.first], dtype=float) - world_origin
        return aff


def rotated_grid(
    signal: np.ndarray, shape: tuple[int, int, int], rotation: np.ndarray, centre_world: np.ndarray
) -> np.ndarray:
    """``signal`` (1 mm world grid) seen on another 1 mm grid of ``shape``,
    rotated about its centre at ``centre_world``."""
    centre = (np.asarray(shape, dtype=float) - 1.0) / 2.0
    offset = centre_world - rotation @ centre
    return ndi.affine_transform(signal, rotation, offset=offset, output_shape=shape, order=1, mode="constant", cval=0.0)


def _ramp(x: np.ndarray) -> np.ndarray:
    """Share of a 1 mm voxel on the near side of a surface ``x`` mm beyond the voxel's centre (linear)."""
    return np.clip(x + 0.5, 0.0, 1.0).astype(np.float32, copy=False)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], spacing: float) -> np.ndarray:
    """A smooth positive field around 1 (x0.8-1.25) varying over ``spacing`` mm: local skull and scalp thickness."""
    coarse_shape = tuple(max(2, int(np.ceil(n / spacing)) + 1) for n in shape)
    coarse = rng.uniform(np.log(0.8), np.log(1.25), size=coarse_shape).astype(np.float32)
    return np.exp(upsample_linear(coarse, shape))
