"""nnU-Net raw layout: ``DatasetXXX_Name/`` with ``imagesTr/``, ``labelsTr/`` and ``dataset.json``.

Only channel ``0000`` is used. The classes are the dataset's own: every label of ``dataset.json``'s
``labels``, in id order. When the labels name CSF, GM and WM (case-insensitive, with synonyms such as
"grey matter") the dataset can also be read as those tissues, other labels then counting as background:
that is how it combines with iSEG or MRBrainS. ``imagesTs/`` cases are unlabelled. nnU-Net v1 folders
(``TaskXXX_Name``, ``labels`` written id -> name) are read too.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from advnorm.data.layouts.base import CaseRef, Dataset, child, list_dir, require_cases
from advnorm.data.volume_io import IMAGE_SUFFIXES, has_image_suffix
from advnorm.errors import AdvnormError
from advnorm.labels import CLASS_NAMES, LabelReading

NAME = "nnunet"
SIGNATURE = "DatasetXXX_Name/ with dataset.json, imagesTr/{case}_0000.nii.gz, labelsTr/{case}.nii.gz"
SYNONYMS = {
    1: ("csf", "cerebrospinal fluid", "cerebro spinal fluid"),
    2: ("gm", "gray matter", "grey matter", "cortical gray matter", "cortical grey matter"),
    3: ("wm", "white matter"),
}
_FOLDER = re.compile(r"^(?:dataset|task)\d+_(.+)$", re.IGNORECASE)


def detect(folder: Path) -> Path | None:
    images = child(folder, "imagesTr")
    if images is not None and images.is_dir():
        return folder
    meta = child(folder, "dataset.json")
    return folder if meta is not None and meta.is_file() and _FOLDER.match(folder.name) else None


def _normal(name: str) -> str:
    return " ".join(re.sub(r"[_\-]+", " ", name.lower()).split())


def read_meta(folder: Path) -> tuple[dict, Path]:
    path = child(folder, "dataset.json") or folder / "dataset.json"
    if not path.is_file():
        raise AdvnormError("dataset.json is missing (an nnU-Net dataset needs it for its labels)", path)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdvnormError(f"cannot read dataset.json: {exc}", path) from None
    if not isinstance(meta, dict) or not isinstance(meta.get("labels"), dict) or not meta["labels"]:
        raise AdvnormError('dataset.json has no "labels" object (name -> integer)', path)
    return meta, path


def readings_from(labels: dict, path: Path) -> tuple[LabelReading, LabelReading | None]:
    """The dataset's own label set from dataset.json's ``labels`` (every label, in id order) and, when its
    labels name CSF, GM and WM (synonyms such as "grey matter" count), the reading as those tissues (other
    labels then count as background). A dataset whose own labels are exactly the tissues reads as them."""
    pairs: list[tuple[str, object]] = list(labels.items())
    if all(re.fullmatch(r"\d+", str(k)) for k in labels) and all(isinstance(v, str) for v in labels.values()):
        pairs = [(v, int(k)) for k, v in labels.items()]  # nnU-Net v1: id -> name
    by_id: dict[int, str] = {}
    for name, value in pairs:
        if _normal(str(name)) == "ignore":  # nnU-Net v2's partial annotation: not background, not a class
            raise AdvnormError(
                f'dataset.json has an "ignore" label ({value}): partial annotations are not supported '
                "(those voxels would be trained and scored as background); relabel or remove them",
                path,
            )
        if isinstance(value, list):
            raise AdvnormError(f'dataset.json label "{name}" is a region (list of ids); a single id is needed', path)
        (i,) = _ids(name, value, path)
        if i in by_id:
            raise AdvnormError(f'dataset.json gives the id {i} to two labels ("{by_id[i]}", "{name}")', path)
        by_id[i] = str(name)
    if by_id.get(0) is None:
        raise AdvnormError("dataset.json labels have no background (id 0)", path)
    ids = sorted(by_id)
    own = LabelReading(("background", *(by_id[i] for i in ids[1:])), {i: k for k, i in enumerate(ids)}, tuple(ids))
    tissue = _tissue_reading(by_id)
    if tissue is not None and len(ids) == len(CLASS_NAMES):
        return tissue, tissue  # the paper's classes under other names or in another order
    return own, tissue


def _tissue_reading(by_id: dict[int, str]) -> LabelReading | None:
    """CSF, GM and WM found by name (each exactly once); any other label is background. ``None`` if one is missing."""
    found: dict[int, list[int]] = {1: [], 2: [], 3: []}
    for i, name in by_id.items():
        cls = next((c for c, names in SYNONYMS.items() if _normal(name) in names), 0)
        if cls:
            found[cls].append(i)
    if any(len(v) != 1 for v in found.values()):
        return None
    label_map = {i: 0 for i in by_id} | {v[0]: c for c, v in found.items()}
    return LabelReading(CLASS_NAMES, label_map, (0, found[1][0], found[2][0], found[3][0]))


def _ids(name: str, value: object, path: Path) -> list[int]:
    out = []
    for v in value if isinstance(value, list) else [value]:
        try:
            f = float(v) if isinstance(v, (int, float, str)) and not isinstance(v, bool) else math.nan
            ok = f == int(f)
        except (ValueError, OverflowError):
            ok = False
        if not ok:
            raise AdvnormError(f'dataset.json label "{name}" has a non-integer value {value!r}', path)
        out.append(int(f))
    return out


def _file_ending(meta: dict, path: Path) -> str:
    ending = str(meta.get("file_ending", ".nii.gz")).lower()
    if not ending.startswith("."):
        ending = "." + ending
    if ending not in IMAGE_SUFFIXES:
        raise AdvnormError(
            f'dataset.json file_ending "{ending}" is not supported (use one of {", ".join(IMAGE_SUFFIXES)})', path
        )
    return ending


_CHANNEL = re.compile(r"^(.+)_(\d{4})$")


def _images(folder: Path | None, ending: str, meta_path: Path) -> list[tuple[str, Path]]:
    """(case, channel-0000 image) pairs of ``imagesTr``/``imagesTs``. Every image file there must follow
    ``{case}_{XXXX}{file_ending}``: a file that does not (another ending, no channel) is an error, not
    a case silently left out. Channels other than 0000 are other modalities and are not used."""
    if folder is None or not folder.is_dir():
        return []
    out: list[tuple[str, Path]] = []
    other_channels: dict[str, Path] = {}
    for p in list_dir(folder):
        if not p.is_file() or not has_image_suffix(p):
            continue
        if not p.name.lower().endswith(ending):
            raise AdvnormError(
                f"file ending does not match dataset.json's file_ending {ending!r} ({meta_path.name}); "
                "rename or convert it, or the case would be left out",
                p,
            )
        m = _CHANNEL.match(p.name[: -len(ending)])
        if m is None:
            raise AdvnormError("image file name lacks the nnU-Net channel suffix {case}_0000" + ending, p)
        if m.group(2) == "0000":
            out.append((m.group(1), p))
        else:
            other_channels.setdefault(m.group(1), p)
    lone = sorted(set(other_channels) - {case for case, _ in out})
    if lone:
        raise AdvnormError(
            f"case {lone[0]} has no channel 0000 (the one advnorm reads), only other channels", other_channels[lone[0]]
        )
    return out


def _orphan_labels(labels_tr: Path | None, ending: str, cases: set[str]) -> None:
    if labels_tr is None or not labels_tr.is_dir():
        return
    for p in list_dir(labels_tr):
        if p.is_file() and has_image_suffix(p):
            if not p.name.lower().endswith(ending):
                raise AdvnormError(f"label file ending does not match dataset.json's file_ending {ending!r}", p)
            if p.name[: -len(ending)] not in cases:
                raise AdvnormError(f"label file has no image imagesTr/{p.name[: -len(ending)]}_0000{ending}", p)


def open_dataset(folder: Path) -> Dataset:
    meta, meta_path = read_meta(folder)
    reading, tissue_reading = readings_from(meta["labels"], meta_path)
    ending = _file_ending(meta, meta_path)
    images_tr = child(folder, "imagesTr")
    labels_tr = child(folder, "labelsTr")
    cases = []
    for case, image in _images(images_tr, ending, meta_path):
        label = (labels_tr / f"{case}{ending}") if labels_tr is not None else None
        if label is None or not label.is_file():
            raise AdvnormError(f"training image has no label file labelsTr/{case}{ending}", image)
        cases.append(CaseRef(case_id=case, image=image, label=label))
    train_ids = {c.case_id for c in cases}
    _orphan_labels(labels_tr, ending, train_ids)
    for case, image in _images(child(folder, "imagesTs"), ending, meta_path):
        cases.append(CaseRef(case_id=case if case not in train_ids else f"{case}_ts", image=image, label=None))
    cases = require_cases(cases, folder, NAME, f"imagesTr/{{case}}_0000{ending} files")
    m = _FOLDER.match(folder.name)
    name = m.group(1) if m else folder.name
    return Dataset(
        name=name,
        layout=NAME,
        root=folder,
        cases=cases,
        reading=reading,
        tissue_reading=tissue_reading,
        mask_from="auto",
    )
