"""Reading and writing 3-D volumes (NIfTI, Analyze 7.5, MGH) with errors a user can act on."""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from advnorm.errors import AdvnormError, one_line

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".hdr", ".img", ".mgz", ".mgh")
MAX_VOXEL_BYTES = 2 * 1024**3
"""Voxel data a header may declare (2 GiB); more is treated as a corrupt header, before allocating."""
MAX_GZIP_RATIO = 1100
"""Deflate cannot expand more than ~1032:1, so a .gz file cannot hold more than this many times its size."""
MAX_SPAN_MM = 1000.0
"""No brain MRI spans a metre: a corrupt voxel size would make the 1 mm working grid enormous."""
MAX_UPSAMPLING = 128
"""The 1 mm working grid may hold at most this many times the file's voxels (voxels up to ~5 mm across)."""


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3-D array with its voxel-to-world affine, as read from ``path``."""

    data: np.ndarray
    affine: np.ndarray
    path: Path
    header: Any = None
    """The file's own header (NIfTI, Analyze or MGH): outputs on this grid copy what still applies of it."""

    @property
    def zooms(self) -> tuple[float, float, float]:
        x, y, z = (float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))
        return x, y, z


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
    data, affine, header = _read(path, kind)
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    _check_grid(data.shape, affine, path, kind)
    _check_values(data, path, kind)
    return Volume(data=np.asarray(data), affine=affine, path=path, header=header)


def _read(path: Path, kind: str) -> tuple[np.ndarray, np.ndarray, Any]:
    """Voxels and affine as nibabel reads them; every way a file can be unreadable becomes one named line."""
    try:
        with _quiet_nibabel():
            img: Any = nib.load(str(path))  # nibabel's type says FileBasedImage; every reader here has dataobj, affine
        _check_declared_size(img, path, kind)
        with np.errstate(all="ignore"):  # overflowing scale factors etc. end up non-finite: refused later
            return np.asanyarray(img.dataobj), np.asarray(img.affine, dtype=np.float64), img.header
    except AdvnormError:
        raise
    except MemoryError:
        raise AdvnormError(f"{kind} file header declares an impossible size (corrupt header?)", path) from None
    except Exception as exc:  # nibabel raises many types for corrupt/truncated data
        reason = one_line(exc, 120) or type(exc).__name__
        raise AdvnormError(f"cannot read {kind} file (corrupt or truncated?): {reason}", path) from None


def _check_grid(shape: tuple[int, ...], affine: np.ndarray, path: Path, kind: str) -> None:
    """A 3-D volume with a usable affine whose 1 mm working grid is of a plausible size."""
    if len(shape) != 3:
        raise AdvnormError(f"{kind} must be a 3-D volume, got {len(shape)}-D with shape {tuple(shape)}", path)
    if min(shape) < 2:
        raise AdvnormError(f"{kind} has a degenerate shape {tuple(shape)}; a 3-D volume is needed", path)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-8:
        raise AdvnormError(f"{kind} has an invalid (singular or non-finite) affine", path)
    with np.errstate(all="ignore"):  # the 1 mm working grid's extent (inf for absurd affines)
        span = np.abs(affine[:3, :3]) @ (np.asarray(shape, dtype=np.float64) - 1)
        too_many = float(np.prod(np.floor(span) + 1)) > MAX_UPSAMPLING * float(np.prod(shape))
    if not span.max() <= MAX_SPAN_MM or too_many:
        mm = "x".join(f"{e:.4g}" for e in span)
        raise AdvnormError(
            f"{kind} has implausible voxel sizes: its {'x'.join(map(str, shape))} voxels would span "
            f"{mm} mm (corrupt voxel size or affine in the header?)",
            path,
        )


def _check_values(data: np.ndarray, path: Path, kind: str) -> None:
    """Numbers, finite, within float32."""
    if data.dtype.kind not in "biuf":
        raise AdvnormError(f"{kind} has unsupported data type {data.dtype}", path)
    if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
        bad = int(np.count_nonzero(~np.isfinite(data)))
        raise AdvnormError(f"{kind} contains {bad} NaN/Inf voxels", path)
    if data.dtype.itemsize > 4 and data.size and bool(np.max(np.abs(data)) > np.finfo(np.float32).max):
        raise AdvnormError(f"{kind} holds values beyond the float32 range (corrupt scale factor in the header?)", path)


@contextlib.contextmanager
def _quiet_nibabel():
    """nibabel logs header fix-ups to stderr; problems it cannot fix still raise (and become AdvnormError)."""
    logger = logging.getLogger("nibabel.global")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def _check_declared_size(img, path: Path, kind: str) -> None:
    """Refuse, before any voxel is read, a header whose shape needs more data than is sane or than the file holds.

    (nibabel allocates the whole array up front, so a corrupt dimension would otherwise
    ask for terabytes.)
    """
    shape = tuple(int(n) for n in img.header.get_data_shape())
    if any(n < 0 for n in shape):
        raise AdvnormError(f"{kind} header declares a negative dimension {shape} (corrupt header?)", path)
    n_bytes = math.prod(shape) * int(img.header.get_data_dtype().itemsize)
    if n_bytes > MAX_VOXEL_BYTES:
        raise AdvnormError(
            f"{kind} header declares a {'x'.join(map(str, shape))} volume ({n_bytes / 1024**3:.3g} GiB), "
            f"more than the {MAX_VOXEL_BYTES // 1024**3} GiB supported (corrupt header?)",
            path,
        )
    data_file = Path(img.file_map["image"].filename or path)
    what = f"{kind} file" if data_file == path else f"{kind} data file {data_file.name}"
    if not data_file.is_file():
        raise AdvnormError(f"{what} is missing", path)
    size = data_file.stat().st_size
    offset = int(getattr(img.dataobj, "offset", 0) or 0)
    if data_file.name.lower().endswith((".gz", ".mgz")):
        if n_bytes > MAX_GZIP_RATIO * size + 65536:
            raise AdvnormError(
                f"{kind} header declares {n_bytes} bytes of voxel data, more than the "
                f"{size}-byte compressed {what} can hold (corrupt or truncated?)",
                path,
            )
    elif offset + n_bytes > size:
        raise AdvnormError(
            f"{what} is truncated: the header declares {n_bytes} bytes of voxel data "
            f"at offset {offset}, the file holds {size} bytes",
            path,
        )


def save_nifti(path: str | Path, data: np.ndarray, affine: np.ndarray, *, template_header: Any = None) -> None:
    """Write ``data`` as NIfTI atomically (temporary file in the same folder, then rename).

    With ``template_header`` (the input's own header, for outputs on its grid) the output keeps what still
    applies of it: description, units, and the NIfTI qform/sform codes (scanner, aligned, MNI...). What
    describes the input's voxel values (data type, scaling, intent, display range) is not copied.
    """
    from advnorm.io_atomic import atomic_path

    header, qcode, scode = None, 1, 1
    if template_header is not None:
        header = nib.Nifti1Header.from_header(template_header)
        header.set_data_dtype(data.dtype)
        header.set_slope_inter(None, None)
        header.set_intent("none")
        header["cal_min"] = header["cal_max"] = 0
        if isinstance(template_header, nib.Nifti1Header):
            qcode, scode = int(template_header["qform_code"]) or 1, int(template_header["sform_code"]) or 1
    img = nib.Nifti1Image(data, affine, header=header)
    img.set_qform(affine, code=qcode)
    img.set_sform(affine, code=scode)
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))


def save_analyze(path: str | Path, data: np.ndarray, zooms: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> None:
    """Write ``data`` as an Analyze 7.5 ``.hdr``/``.img`` pair, atomically, in ``data``'s own type.

    Stored with a trailing singleton 4th axis, as iSEG-2017's files are (readers must
    squeeze it). Analyze keeps no orientation: nibabel reads the pair back with its
    default affine (axis 0 flipped: radiological storage). The ``.img`` is renamed into
    place before the ``.hdr``, so whoever finds the header also finds its data.
    """
    from advnorm.io_atomic import atomic_path

    path = Path(path)
    if path.suffix.lower() != ".hdr":
        raise ValueError(f"an Analyze pair is named by its .hdr, got {path.name}")
    img = nib.AnalyzeImage(np.asarray(data)[..., None], None)
    img.header.set_zooms((*(float(z) for z in zooms), 1.0))
    with atomic_path(path) as tmp_hdr, atomic_path(path.with_suffix(".img")) as tmp_img:
        img.to_file_map(nib.AnalyzeImage.make_file_map({"header": str(tmp_hdr), "image": str(tmp_img)}))
