"""The patch index: (subject, centre) pairs on a stride grid over the brain, gathered on demand.

No patch is ever written or stored: the index holds 4 int32 per patch and
patches are sliced out of the volumes (memory-mapped from the working-grid
cache, or in memory) when a batch is drawn, so memory is at most the volumes'
own size plus 16 bytes per patch (the paper wrote 27,647 patch files).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class PatchIndex:
    """``entries[i] = (subject, x, y, z)`` of patch i's centre voxel."""

    entries: np.ndarray  # (N, 4) int32
    patch_size: int

    def __len__(self) -> int:
        return int(self.entries.shape[0])

    @property
    def subjects(self) -> np.ndarray:
        return self.entries[:, 0]

    def subset(self, rows: np.ndarray) -> PatchIndex:
        return PatchIndex(self.entries[rows], self.patch_size)

    @classmethod
    def build(
        cls,
        masks: Iterable[np.ndarray],
        *,
        patch_size: int = 32,
        stride: int = 8,
    ) -> PatchIndex:
        """Centres on a ``stride`` grid (anchored at each volume's origin) where ``mask`` is true (non-zero).

        Pass the label map (or label map > 0) as mask to centre on labelled foreground, like the paper. Only the
        grid's voxels are read, and ``masks`` may be a generator: each is used once, in turn, so they need not all
        be in memory together.
        """
        parts = []
        for sid, mask in enumerate(masks):
            grid = mask[::stride, ::stride, ::stride]
            pts = np.argwhere(grid).astype(np.int32) * stride
            parts.append(np.column_stack([np.full(len(pts), sid, dtype=np.int32), pts]))
        entries = np.concatenate(parts) if parts else np.zeros((0, 4), np.int32)
        return cls(np.ascontiguousarray(entries, dtype=np.int32), patch_size)


def patch_corner(centre: np.ndarray, shape: tuple[int, ...], size: int) -> np.ndarray:
    """Corner of the ``size``-cube around ``centre`` (voxels centre-size/2 .. centre+size/2-1),
    shifted inwards where it would leave the volume."""
    lo = np.asarray(centre) - size // 2
    return np.clip(lo, 0, np.maximum(np.asarray(shape) - size, 0))


def gather(
    volumes: Sequence[np.ndarray], index: PatchIndex, rows: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """Stack the patches ``rows`` of ``index`` from ``volumes`` into ``out`` (len(rows), size, size, size).

    The corners of the whole batch are computed in one vectorized pass (same rule as
    :func:`patch_corner`); what is left per patch is one strided block copy.
    """
    s = index.patch_size
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    if out is None:
        out = np.empty((len(rows), s, s, s), dtype=volumes[0].dtype)
    if len(rows) == 0:
        return out
    ent = index.entries[rows]
    sids = ent[:, 0]
    shapes = np.array([volumes[i].shape for i in range(len(volumes))], dtype=np.int64)[sids]
    corners = np.clip(ent[:, 1:].astype(np.int64) - s // 2, 0, np.maximum(shapes - s, 0))
    small = (shapes < s).any(axis=1)
    for k, (sid, (cx, cy, cz)) in enumerate(zip(sids.tolist(), corners.tolist(), strict=True)):
        block = volumes[sid][cx : cx + s, cy : cy + s, cz : cz + s]
        if not small[k]:
            out[k] = block
        else:  # a volume smaller than a patch: zero-pad
            out[k] = 0
            out[k, : block.shape[0], : block.shape[1], : block.shape[2]] = block
    return out
