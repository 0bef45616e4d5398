"""The working grid: 1 mm isotropic, axis-aligned RAS, cropped to the brain.

Every subject is resampled onto such a grid (like the paper, which resampled
MRBrainS to iSEG's 1 mm). Because the working grid and the source grid are both
plain voxel-to-world affines, mapping back to the user's original grid is the
same operation in the other direction (:func:`resample`), which is how
``advnorm predict`` writes results on the input's own grid.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage as ndi


def working_affine(
    src_affine: np.ndarray, src_shape: tuple[int, ...], spacing: float = 1.0
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """An axis-aligned RAS grid of ``spacing`` mm covering the source field of view."""
    corners = np.array(
        [[i, j, k, 1.0] for i in (0, src_shape[0] - 1) for j in (0, src_shape[1] - 1) for k in (0, src_shape[2] - 1)]
    )
    world = (src_affine @ corners.T).T[:, :3]
    lo, hi = world.min(axis=0), world.max(axis=0)
    shape = tuple(int(np.floor((hi[d] - lo[d]) / spacing + 1e-6)) + 1 for d in range(3))
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = lo
    return affine, (shape[0], shape[1], shape[2])


def resample(
    data: np.ndarray,
    src_affine: np.ndarray,
    dst_affine: np.ndarray,
    dst_shape: tuple[int, ...],
    *,
    order: int,
    cval: float = 0.0,
) -> np.ndarray:
    """Resample ``data`` (on ``src_affine``) onto the grid ``dst_affine``/``dst_shape``.

    ``order=0`` (nearest neighbour) for labels and masks, so a resampled label map
    holds only values it held before; ``order=1`` (trilinear) or higher for images.
    Channels may lead: ``data`` of shape (C, X, Y, Z) is resampled channel by channel.
    """
    if data.ndim == 4:
        return np.stack([resample(c, src_affine, dst_affine, dst_shape, order=order, cval=cval) for c in data])
    vox = np.linalg.inv(src_affine) @ dst_affine  # dst voxel -> src voxel
    matrix, offset = vox[:3, :3], vox[:3, 3]
    if _is_identity_like(matrix, offset) and tuple(data.shape) == tuple(dst_shape):
        return data.copy()
    perm = _signed_permutation(matrix, offset, data.shape, dst_shape)
    if perm is not None:
        return perm(data)
    out_dtype = data.dtype if order == 0 else np.float32
    src = data if order == 0 else data.astype(np.float32, copy=False)
    out = ndi.affine_transform(
        src, matrix, offset=offset, output_shape=tuple(dst_shape), order=order, mode="nearest", prefilter=order > 1
    ).astype(out_dtype, copy=False)
    out[~_inside(matrix, offset, data.shape, dst_shape)] = cval
    return out


def crop_box(mask: np.ndarray, margin: int) -> tuple[slice, slice, slice]:
    """The bounding box of ``mask`` grown by ``margin`` voxels and clipped to the array."""
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - margin, 0)
    hi = np.minimum(idx.max(axis=0) + margin + 1, mask.shape)
    x, y, z = (slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    return x, y, z


def shift_affine(affine: np.ndarray, box: tuple[slice, slice, slice]) -> np.ndarray:
    """The affine of the sub-array ``array[box]``."""
    out = affine.copy()
    out[:3, 3] = affine[:3, :3] @ np.array([s.start for s in box], dtype=float) + affine[:3, 3]
    return out


EDGE_TOLERANCE = 1e-3
"""Source coordinates this far (in voxels) outside the array still count as inside: a grid point on
the field of view's edge must not fall out by float rounding, whatever axis order the file stores."""


def _inside(
    matrix: np.ndarray, offset: np.ndarray, src_shape: tuple[int, ...], dst_shape: tuple[int, ...]
) -> np.ndarray:
    """Destination voxels whose source coordinate lies within the source array (one source axis at a time)."""
    axes = [np.arange(n, dtype=np.float64) for n in dst_shape]
    inside = np.ones(tuple(dst_shape), dtype=bool)
    for i in range(3):
        coord = offset[i] + sum(
            matrix[i, j] * axes[j].reshape([-1 if k == j else 1 for k in range(3)]) for j in range(3)
        )
        inside &= (coord >= -EDGE_TOLERANCE) & (coord <= src_shape[i] - 1 + EDGE_TOLERANCE)
    return inside


def _is_identity_like(matrix: np.ndarray, offset: np.ndarray) -> bool:
    return bool(np.allclose(matrix, np.eye(3), atol=1e-6) and np.allclose(offset, 0.0, atol=1e-4))


def _signed_permutation(
    matrix: np.ndarray, offset: np.ndarray, src_shape: tuple[int, ...], dst_shape: tuple[int, ...]
) -> Callable[[np.ndarray], np.ndarray] | None:
    """Exact fast path when the mapping is a pure axis permutation/flip with an integer shift.

    ``src = matrix @ dst + offset``: row ``i`` of ``matrix`` belongs to *source* axis ``i``,
    column ``j`` to *destination* axis ``j``. So destination axis ``j`` reads the source axis
    ``a`` whose row has its non-zero entry in column ``j``, with that row's sign and offset:
    ``src_a = matrix[a, j] * dst_j + offset[a]``. (Reading rows as destination axes, as an
    earlier version did, is right only for the permutations that are their own inverse and
    zero offsets: it resampled coronally stored scans wrongly.)
    """
    rounded = np.round(matrix)
    if not np.allclose(matrix, rounded, atol=1e-6) or not np.allclose(offset, np.round(offset), atol=1e-4):
        return None
    nonzero = rounded != 0
    if (
        not (nonzero.sum(axis=0) == 1).all()
        or not (nonzero.sum(axis=1) == 1).all()
        or not np.all(np.abs(rounded[nonzero]) == 1)
    ):
        return None
    shift = np.round(offset).astype(int)
    src_axis = [int(np.flatnonzero(nonzero[:, j])[0]) for j in range(3)]  # dst axis j reads src axis src_axis[j]
    signs = [int(rounded[src_axis[j], j]) for j in range(3)]
    starts = [int(shift[src_axis[j]]) for j in range(3)]

    def apply(data: np.ndarray) -> np.ndarray:
        out = np.zeros(tuple(dst_shape), dtype=data.dtype)
        dst_slices, src_index = [], []
        for j in range(3):
            d = np.arange(dst_shape[j])
            s = signs[j] * d + starts[j]
            ok = (s >= 0) & (s < src_shape[src_axis[j]])
            if not ok.any():
                return out
            d_ok = d[ok]
            dst_slices.append(slice(int(d_ok[0]), int(d_ok[-1]) + 1))
            src_index.append(s[ok])
        moved = np.transpose(data, src_axis)  # moved[j-th axis] runs along dst axis j
        out[tuple(dst_slices)] = moved[np.ix_(*src_index)]
        return out

    return apply
