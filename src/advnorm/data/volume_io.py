"""Reading and writing 3-D volumes (NIfTI, Analyze 7.5, MGH) with errors a user can act on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from advnorm.errors import AdvnormError

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".hdr", ".img", ".mgz", ".mgh")


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3-D array with its voxel-to-world affine, as read from ``path``."""

    data: np.ndarray
    affine: np.ndarray
    path: Path

    @property
    def zooms(self) -> tuple[float, float, float]:
        return tuple(float(z) for z in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]


def has_image_suffix(path: Path) -> bool:
    return path.name.lower().endswith(IMAGE_SUFFIXES)


def strip_image_suffix(name: str) -> str:
    lower = name.lower()
    for suffix in IMAGE_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def load_volume(path: str | Path, *, kind: str = "image") -> Volume:
    """Load a 3-D volume; ``kind`` ("image" or "label") only shapes the error messages.

    A trailing singleton 4th axis (as nibabel returns for iSEG's Analyze files) is
    squeezed. Anything else that is not 3-D, not finite, truncated or unreadable
    raises :class:`AdvnormError` naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise AdvnormError(f"{kind} file does not exist", path)
    if path.is_dir():
        raise AdvnormError(f"expected a {kind} file, found a folder", path)
    if path.stat().st_size == 0:
        raise AdvnormError(f"{kind} file is empty", path)
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
        affine = np.asarray(img.affine, dtype=np.float64)
    except MemoryError:
        raise AdvnormError(f"{kind} file header declares an impossible size (corrupt header?)", path) from None
    except Exception as exc:  # nibabel raises many types for corrupt/truncated data
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if len(reason) > 120:
            reason = reason[:117] + "..."
        raise AdvnormError(f"cannot read {kind} file (corrupt or truncated?): {reason}", path) from None
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise AdvnormError(f"{kind} must be a 3-D volume, got {data.ndim}-D with shape {tuple(data.shape)}", path)
    if min(data.shape) < 2:
        raise AdvnormError(f"{kind} has a degenerate shape {tuple(data.shape)}; a 3-D volume is needed", path)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-8:
        raise AdvnormError(f"{kind} has an invalid (singular or non-finite) affine", path)
    if data.dtype.kind not in "biuf":
        raise AdvnormError(f"{kind} has unsupported data type {data.dtype}", path)
    if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
        bad = int(np.count_nonzero(~np.isfinite(data)))
        raise AdvnormError(f"{kind} contains {bad} NaN/Inf voxels", path)
    return Volume(data=np.asarray(data), affine=affine, path=path)


def save_nifti(path: str | Path, data: np.ndarray, affine: np.ndarray, *, template_header=None) -> None:
    """Write ``data`` as NIfTI atomically (temporary file in the same folder, then rename)."""
    from advnorm.io_atomic import atomic_path

    header = None
    if template_header is not None:
        header = nib.Nifti1Header.from_header(template_header)
        header.set_data_dtype(data.dtype)
    img = nib.Nifti1Image(data, affine, header=header)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
