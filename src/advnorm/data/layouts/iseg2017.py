"""iSEG-2017 / iSEG-2019: a flat folder of Analyze pairs ``subject-N-T1.hdr/.img`` (+ ``subject-N-label``).

Labels 0/10/150/250 map to background/CSF/GM/WM. The images are skull-stripped
(zero background), so the brain mask is ``T1 != 0``. Subjects without a label
file (the challenge's test subjects) are unlabelled. T2 images are ignored.
"""

from __future__ import annotations

import re
from pathlib import Path

from advnorm.data.layouts.base import CaseRef, Dataset, list_dir, require_cases
from advnorm.errors import AdvnormError
from advnorm.labels import CLASS_NAMES, LabelReading

NAME = "iseg2017"
SIGNATURE = "flat folder of subject-N-T1.hdr/.img (+ subject-N-label.hdr/.img)"
LABEL_VALUES = (0, 10, 150, 250)
LABEL_MAP = {0: 0, 10: 1, 150: 2, 250: 3}
READING = LabelReading(CLASS_NAMES, LABEL_MAP, LABEL_VALUES)

_FILE = re.compile(r"^subject-(\d+)-(t1|t2|label)\.(hdr|img|nii|nii\.gz)$", re.IGNORECASE)
T1_FILE = re.compile(r"^subject-(\d+)-t1\.(hdr|img|nii|nii\.gz)$", re.IGNORECASE)


def detect(folder: Path) -> Path | None:
    """``folder`` itself when it holds ``subject-N-T1`` images."""
    return folder if any(T1_FILE.match(p.name) for p in list_dir(folder) if p.is_file()) else None


def open_dataset(folder: Path) -> Dataset:
    files: dict[tuple[int, str], dict[str, Path]] = {}
    spelling: dict[tuple[int, str], str] = {}
    for p in list_dir(folder):
        m = _FILE.match(p.name)
        if m and p.is_file():
            key = (int(m.group(1)), m.group(2).lower())
            if spelling.setdefault(key, m.group(1)) != m.group(1):  # subject-01 beside subject-1: which is it?
                raise AdvnormError(
                    f"two files for subject {key[0]} (subject-{spelling[key]}-... and "
                    f"subject-{m.group(1)}-...); keep one",
                    p,
                )
            files.setdefault(key, {})[m.group(3).lower()] = p
    cases = []
    for (num, kind), found in sorted(files.items()):
        if kind == "t2":
            continue
        path = _volume_path(found)
        if kind == "label":
            if (num, "t1") not in files:
                raise AdvnormError(f"label file without its image subject-{num}-T1.hdr/.img", path)
            continue
        label = _volume_path(files[(num, "label")]) if (num, "label") in files else None
        cases.append(CaseRef(case_id=f"subject-{num}", image=path, label=label))
    cases = require_cases(cases, folder, NAME, "subject-N-T1.hdr/.img files")
    return Dataset(
        name=NAME,
        layout=NAME,
        root=folder,
        cases=cases,
        reading=READING,
        mask_from="nonzero",
    )


def _volume_path(found: dict[str, Path]) -> Path:
    """The file to load for one volume; an Analyze header must come with its ``.img`` and vice versa."""
    for ext in ("nii.gz", "nii"):
        if ext in found:
            return found[ext]
    if "hdr" in found and "img" not in found:
        raise AdvnormError("Analyze header without its .img data file", found["hdr"])
    if "img" in found and "hdr" not in found:
        raise AdvnormError("Analyze .img data file without its .hdr header", found["img"])
    return found["hdr"]


def case_for_file(path: Path) -> CaseRef | None:
    """A single iSEG T1 file (``.hdr`` already resolved) given to ``predict``: its case, else ``None``."""
    m = T1_FILE.match(path.name)
    if m is None:
        return None
    return CaseRef(case_id=f"subject-{int(m.group(1))}", image=path, label=None)
