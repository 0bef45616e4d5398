"""User brain masks (``--mask``): one file for one image, or a folder of masks matched by case name.

Masks come from a skull-stripping tool the user already runs (SynthStrip, FSL BET, HD-BET), saved on
each image's own grid. In a folder, the mask of a case is the file named like the case or like its
image, with or without a common suffix (``_mask``, ``_brainmask``, ``_brain_mask``, ``-mask``,
``_brain``): ``case_001.nii.gz``, ``case_001_mask.nii.gz`` and ``case_001_0000_brainmask.nii.gz``
all match the nnU-Net case ``case_001``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from advnorm.data.layouts.base import CaseRef, Dataset, list_dir
from advnorm.data.volume_io import has_image_suffix, strip_image_suffix
from advnorm.errors import AdvnormError

MASK_SUFFIXES = ("", "_mask", "_brainmask", "_brain_mask", "-mask", "_brain")


def attach_masks(
    datasets: list[Dataset], mask: str | Path | None, needed: Callable[[Dataset, CaseRef], bool] | None = None
) -> list[Dataset]:
    """The datasets with every case's mask set from ``mask`` (a file or a folder); unchanged for ``None``.

    ``needed``: the cases that must have a mask (default: all); others get theirs if the folder has one.
    """
    if mask is None:
        return datasets
    path = Path(mask).expanduser()
    if not path.exists():
        raise AdvnormError("mask file or folder does not exist", path)
    if path.is_file():
        n_cases = sum(len(d.cases) for d in datasets)
        if not has_image_suffix(path):
            raise AdvnormError("not a supported mask file (expected .nii, .nii.gz, .hdr/.img, .mgz or .mgh)", path)
        if n_cases != 1:
            raise AdvnormError(f"one mask file for {n_cases} images: give a folder of masks named by case", path)
        return [dataclasses.replace(d, cases=[dataclasses.replace(c, mask=path) for c in d.cases]) for d in datasets]
    index = {strip_image_suffix(p.name).lower(): p for p in list_dir(path) if p.is_file() and has_image_suffix(p)}
    if not index:
        raise AdvnormError("mask folder holds no image files", path)
    out = []
    for d in datasets:
        cases = []
        for c in d.cases:
            found = _find(index, c.case_id, c.image)
            if found is None and (needed is None or needed(d, c)):
                stem = strip_image_suffix(c.image.name)
                raise AdvnormError(
                    f"no mask for case {c.case_id} (looked for {c.case_id}.nii.gz, "
                    f"{c.case_id}_mask.nii.gz, {stem}_mask.nii.gz and other names)",
                    path,
                )
            cases.append(dataclasses.replace(c, mask=found))
        out.append(dataclasses.replace(d, cases=cases))
    return out


def _find(index: dict[str, Path], case_id: str, image: Path) -> Path | None:
    stems = (case_id, strip_image_suffix(image.name))
    names = dict.fromkeys(f"{stem}{suffix}".lower() for stem in stems for suffix in MASK_SUFFIXES)
    return next((index[n] for n in names if n in index), None)
