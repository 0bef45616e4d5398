"""The in-memory subject record every layout reader produces, and the one function that builds it."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from advnorm.data.grid import crop_box, resample, shift_affine, working_affine
from advnorm.data.volume_io import Volume, load_volume
from advnorm.errors import AdvnormError, AdvnormWarning

CROP_MARGIN = 16
"""Voxels kept around the brain: half a 32-voxel patch, so every patch centred in the brain fits."""


@dataclass(frozen=True, eq=False)
class SourceGrid:
    """Where a subject came from: enough to write results back on the user's own grid."""

    path: str
    shape: tuple[int, int, int]
    affine: np.ndarray
    spacing: tuple[float, float, float]
    header: Any = None
    """The source file's header: outputs written on this grid keep its codes and description."""


@dataclass(eq=False)
class Subject:
    """One subject on the 1 mm working grid.

    ``image`` is float32 and zero outside ``mask``; ``label`` is uint8 class indices (0 background;
    CSF, GM, WM for the paper's classes) or ``None`` for unlabelled subjects. ``label_values`` gives
    the dataset's own id of each class (iSEG: 0, 10, 150, 250), to write segmentations back in its
    convention.
    """

    case_id: str
    domain: str
    layout: str
    image: np.ndarray
    label: np.ndarray | None
    mask: np.ndarray
    affine: np.ndarray
    source: SourceGrid
    label_values: tuple[int, ...] = (0, 1, 2, 3)
    extra: dict = field(default_factory=dict)

    @property
    def spacing(self) -> tuple[float, float, float]:
        x, y, z = (float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))
        return x, y, z

    @property
    def shape(self) -> tuple[int, int, int]:
        x, y, z = self.image.shape
        return int(x), int(y), int(z)

    def require_label(self) -> np.ndarray:
        """The label map of a labelled subject (training and evaluation only ever ask labelled ones)."""
        if self.label is None:
            raise AdvnormError("this subject has no label map", self.source.path)
        return self.label

    def to_source(self, array: np.ndarray, *, order: int) -> np.ndarray:
        """Resample a working-grid array (or (C, ...) stack) back onto the original grid."""
        return resample(array, self.affine, self.source.affine, self.source.shape, order=order)


def map_labels(raw: np.ndarray, label_map: Mapping[int, int], path: Path) -> np.ndarray:
    """Map dataset label ids to classes 0-3; any id outside ``label_map`` is an error naming the file."""
    values = np.unique(raw)
    if raw.dtype.kind == "f":
        if not np.allclose(values, np.round(values)):
            raise AdvnormError("label map holds non-integer values", path)
        values = np.round(values).astype(np.int64)
        raw = np.round(raw).astype(np.int64)
    unknown = sorted(int(v) for v in values if int(v) not in label_map)
    if unknown:
        shown = ", ".join(map(str, unknown[:8])) + (" ..." if len(unknown) > 8 else "")
        raise AdvnormError(f"label values {shown} are outside the layout's map {sorted(label_map)}", path)
    lut_min = int(min(label_map))
    lut = np.zeros(int(max(label_map)) - lut_min + 1, dtype=np.uint8)
    for k, v in label_map.items():
        lut[int(k) - lut_min] = v
    return lut[raw.astype(np.int64) - lut_min]


def build_subject(
    image_path: str | Path,
    label_path: str | Path | None,
    *,
    domain: str,
    case_id: str,
    layout: str,
    label_map: Mapping[int, int] | None = None,
    mask_from: str = "nonzero",
    label_values: tuple[int, ...] = (0, 1, 2, 3),
    spacing: float = 1.0,
    mask_path: str | Path | None = None,
) -> Subject:
    """Load an image (and label), validate, skull-strip, resample to ``spacing`` mm RAS and crop.

    ``mask_from``: ``"nonzero"`` (already skull-stripped: image != 0), ``"label"`` (the
    paper's skull stripping for MRBrainS: label > 0), or ``"auto"`` (nonzero if the
    image has a zero background, else the label when there is one). A ``mask_path`` (a brain
    mask on the image's grid, from SynthStrip, BET, HD-BET...) overrides the rule. Without
    one, a brain mask that looks like a whole head gets an :class:`AdvnormWarning`.
    """
    img: Volume = load_volume(image_path, kind="image")
    label_raw = None
    if label_path is not None:
        lab = load_volume(label_path, kind="label")
        if lab.data.shape != img.data.shape:
            raise AdvnormError(
                f"label shape {lab.data.shape} does not match image shape {img.data.shape} ({img.path.name})", lab.path
            )
        if not np.allclose(lab.affine, img.affine, atol=1e-3, rtol=1e-4):
            raise AdvnormError(
                f"label affine does not match the affine of {img.path.name} (not on the same grid)", lab.path
            )
        label_raw = map_labels(lab.data, label_map or {0: 0, 1: 1, 2: 2, 3: 3}, lab.path)

    image = img.data.astype(np.float32)
    if mask_path is not None:
        mask = _mask_file(Path(mask_path), img)
    else:
        mask = _brain_mask(image, label_raw, mask_from, img.path, None if label_path is None else Path(label_path))
        if mask_from != "label" and (whole_head := looks_unstripped(mask, img.zooms)):
            warnings.warn(
                AdvnormWarning(
                    f"{whole_head}: pass a brain mask with --mask (SynthStrip, FSL BET or HD-BET "
                    "make one), or the skull is segmented as tissue",
                    img.path,
                ),
                stacklevel=2,
            )
    image = np.where(mask, image, 0.0).astype(np.float32)

    dst_affine, dst_shape = working_affine(img.affine, image.shape, spacing)
    w_mask = resample(mask.astype(np.uint8), img.affine, dst_affine, dst_shape, order=0).astype(bool)
    if not w_mask.any():
        raise AdvnormError("brain mask is empty after resampling", img.path)
    w_image = resample(image, img.affine, dst_affine, dst_shape, order=1)
    w_image = np.where(w_mask, w_image, 0.0).astype(np.float32)
    w_label = None
    if label_raw is not None:
        w_label = resample(label_raw, img.affine, dst_affine, dst_shape, order=0)
        w_label = np.where(w_mask, w_label, 0).astype(np.uint8)

    box = crop_box(w_mask, CROP_MARGIN)
    return Subject(
        case_id=case_id,
        domain=domain,
        layout=layout,
        image=np.ascontiguousarray(w_image[box]),
        label=None if w_label is None else np.ascontiguousarray(w_label[box]),
        mask=np.ascontiguousarray(w_mask[box]),
        affine=shift_affine(dst_affine, box),
        source=SourceGrid(
            path=str(img.path), shape=tuple(image.shape), affine=img.affine, spacing=img.zooms, header=img.header
        ),
        label_values=label_values,
    )


MAX_BRAIN_LITRES = 2.3
"""A skull-stripped brain (CSF included) is under ~1.8 l even in large adults; a head is 3.5 l and more."""
MAX_FIELD_SHARE = 0.8
"""A brain never fills this share of a scan's field of view; background noise around a head does."""


def looks_unstripped(mask: np.ndarray, zooms: tuple[float, float, float]) -> str | None:
    """Why ``mask`` (image != 0) looks like a whole head rather than a brain; ``None`` if it looks like a brain."""
    litres = float(mask.sum()) * float(np.prod(zooms)) / 1e6
    share = float(mask.mean())
    if litres > MAX_BRAIN_LITRES or share > MAX_FIELD_SHARE:
        return (
            f"looks unstripped: {litres:.1f} l of non-zero voxels, {share:.0%} of the field of view "
            f"(a brain is under {MAX_BRAIN_LITRES} l)"
        )
    return None


def _mask_file(path: Path, img: Volume) -> np.ndarray:
    """A user's brain mask: on the image's grid, non-zero inside the brain."""
    mask = load_volume(path, kind="mask")
    if mask.data.shape != img.data.shape:
        raise AdvnormError(
            f"mask shape {mask.data.shape} does not match the image's {img.data.shape} ({img.path.name})", path
        )
    if not np.allclose(mask.affine, img.affine, atol=1e-3, rtol=1e-4):
        raise AdvnormError(f"mask affine does not match the affine of {img.path.name} (not on the same grid)", path)
    inside = mask.data > 0.5 if mask.data.dtype.kind == "f" else mask.data > 0
    if not inside.any():
        raise AdvnormError("brain mask is empty", path)
    return inside


def _brain_mask(
    image: np.ndarray, label: np.ndarray | None, mask_from: str, path: Path, label_path: Path | None
) -> np.ndarray:
    if mask_from == "auto":
        zero_fraction = float(np.mean(image == 0))
        mask_from = "nonzero" if zero_fraction > 0.05 or label is None else "label"
    if mask_from == "label":
        if label is None:
            raise AdvnormError("this layout skull-strips with the label map, but no label file was found", path)
        mask = label > 0
        if not mask.any():  # the label file is at fault, not the image
            raise AdvnormError(
                "label map holds only background (0): this layout skull-strips with the label map, "
                "so the brain mask would be empty",
                label_path or path,
            )
    elif mask_from == "nonzero":
        mask = image != 0
    else:  # pragma: no cover - programming error
        raise ValueError(mask_from)
    if not mask.any():
        raise AdvnormError("brain mask is empty (no non-zero voxels)", path)
    return mask
