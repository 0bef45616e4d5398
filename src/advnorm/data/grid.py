"""The working grid: 1 mm isotropic, axis-aligned RAS, cropped to the brain.

Every subject is resampled onto such a grid (like the paper, which resampled
MRBrainS to iSEG's 1 mm). Because the working grid and the source grid are both
plain voxel-to-world affines, mapping back to the user's original grid is the
same operation in the other direction (:func:`resample`), which is how
``advnorm predict`` writes results on the input's own grid.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def working_affine(src_affine: np.ndarray, src_shape: tuple[int, ...], spacing: float = 1.0) -> tuple[np.ndarray, tuple[int, int, int]]:
    """An axis-aligned RAS grid of ``spacing`` mm covering the source field of view."""
    corners = np.array([[i, j, k, 1.0] for i in (0, src_shape[0] - 1) for j in (0, src_shape[1] - 1) for k in (0, src_shape[2] - 1)])
    world = (src_affine @ corners.T).T[:, :3]
    lo, hi = world.min(axis=0), world.max(axis=0)
    shape = tuple(int(np.floor((hi[d] - lo[d]) / spacing + 1e-6)) + 1 for d in range(3))
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = lo
    return affine, shape  # type: ignore[return-value]


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
    return ndi.affine_transform(
        src, matrix, offset=offset, output_shape=tuple(dst_shape), order=order, mode="constant", cval=cval, prefilter=order > 1
    ).astype(out_dtype, copy=False)


def crop_box(mask: np.ndarray, margin: int) -> tuple[slice, slice, slice]:
    """The bounding box of ``mask`` grown by ``margin`` voxels and clipped to the array."""
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - margin, 0)
    hi = np.minimum(idx.max(axis=0) + margin + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))  # type: ignore[return-value]


def shift_affine(affine: np.ndarray, box: tuple[slice, slice, slice]) -> np.ndarray:
    """The affine of the sub-array ``array[box]``."""
    out = affine.copy()
    out[:3, 3] = affine[:3, :3] @ np.array([s.start for s in box], dtype=float) + affine[:3, 3]
    return out


def _is_identity_like(matrix: np.ndarray, offset: np.ndarray) -> bool:
    return bool(np.allclose(matrix, np.eye(3), atol=1e-6) and np.allclose(offset, 0.0, atol=1e-4))


def _signed_permutation(matrix, offset, src_shape, dst_shape):
    """Exact fast path when the mapping is a pure axis permutation/flip with integer shift."""
    rounded = np.round(matrix)
    if not np.allclose(matrix, rounded, atol=1e-6) or not np.allclose(offset, np.round(offset), atol=1e-4):
        return None
    if not all(np.count_nonzero(rounded[i]) == 1 for i in range(3)) or abs(abs(np.linalg.det(rounded)) - 1) > 1e-6:
        return None
    offset = np.round(offset).astype(int)
    axes = [int(np.flatnonzero(rounded[i])[0]) for i in range(3)]  # dst axis i reads src axis axes[i]
    signs = [int(rounded[i, axes[i]]) for i in range(3)]

    def apply(data: np.ndarray) -> np.ndarray:
        out = np.zeros(tuple(dst_shape), dtype=data.dtype)
        # src index along axes[i] = signs[i] * dst_i + offset[i]
        dst_slices, src_index = [], []
        for i in range(3):
            n_src, n_dst = src_shape[axes[i]], dst_shape[i]
            d = np.arange(n_dst)
            s = signs[i] * d + offset[i]
            ok = (s >= 0) & (s < n_src)
            if not ok.any():
                return out
            d_ok = d[ok]
            dst_slices.append(slice(int(d_ok[0]), int(d_ok[-1]) + 1))
            src_index.append(s[ok])
        moved = np.transpose(data, axes)
        block = moved[np.ix_(*src_index)]
        out[tuple(dst_slices)] = block
        return out

    return apply
