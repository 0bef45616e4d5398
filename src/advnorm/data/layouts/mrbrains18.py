"""MRBrainS18: ``training/<id>/pre/reg_T1.nii.gz`` with ``training/<id>/segm.nii.gz``.

Label ids: 0 background, 1 cortical GM, 2 basal ganglia, 3 WM, 4 WM lesions,
5 extracerebral CSF, 6 ventricles, 7 cerebellum, 8 brainstem, 9 infarction,
10 other. Mapped GM = {1, 2}, WM = {3, 4}, CSF = {5, 6}; 7-8 go to background.
Labels 9-10 are ignored in the challenge's scoring; here they map to background.
The images hold the whole head, so the brain mask is the label map (label > 0).
"""

from __future__ import annotations

from pathlib import Path

from advnorm.data.layouts.base import CaseRef, Dataset, child, first_child, require_cases, subdirs
from advnorm.errors import AdvnormError
from advnorm.labels import CLASS_NAMES, LabelReading

NAME = "mrbrains18"
SIGNATURE = "folder with training/<id>/pre/reg_T1.nii.gz + training/<id>/segm.nii.gz"
T1_NAMES = ("reg_T1.nii.gz", "reg_T1.nii")
LABEL_NAMES = ("segm.nii.gz", "segm.nii")
LABEL_MAP = {0: 0, 1: 2, 2: 2, 3: 3, 4: 3, 5: 1, 6: 1, 7: 0, 8: 0, 9: 0, 10: 0}
TISSUES = LabelReading(CLASS_NAMES, LABEL_MAP, (0, 1, 2, 3))
"""Read as the paper's CSF/GM/WM (to combine MRBrainS18 with iSEG or MRBrainS13)."""
STRUCTURE_NAMES = (
    "background",
    "cortical GM",
    "basal ganglia",
    "WM",
    "WM lesions",
    "extracerebral CSF",
    "ventricles",
    "cerebellum",
    "brainstem",
)
STRUCTURES = LabelReading(STRUCTURE_NAMES, {**{k: k for k in range(9)}, 9: 0, 10: 0}, tuple(range(9)))
"""MRBrainS18's own eight structures (infarction, 9, and other, 10, are not scored by the challenge: background)."""


def _t1(subject: Path) -> Path | None:
    pre = child(subject, "pre")
    return first_child(pre, T1_NAMES) if pre is not None and pre.is_dir() else None


def _subjects_folder(folder: Path) -> Path | None:
    training = child(folder, "training")
    for cand in (training, folder):
        if cand is not None and cand.is_dir() and any(_t1(d) is not None for d in subdirs(cand)):
            return cand
    return None


def detect(folder: Path) -> Path | None:
    return folder if _subjects_folder(folder) is not None else None


def open_dataset(folder: Path) -> Dataset:
    subjects = _subjects_folder(folder)
    if subjects is None:
        raise AdvnormError("no MRBrainS18 subjects found (expected training/<id>/pre/reg_T1.nii.gz)", folder)
    labels_required = subjects.name.lower() == "training"
    cases = []
    for d in subdirs(subjects):
        image = _t1(d)
        if image is None:
            if first_child(d, LABEL_NAMES) is not None:  # a subject without its image: never silently left out
                raise AdvnormError("subject has segm.nii.gz but no pre/reg_T1.nii.gz", d)
            continue
        label = first_child(d, LABEL_NAMES)
        if label is None and labels_required:
            raise AdvnormError("training subject has no segm.nii.gz label file", image)
        cases.append(CaseRef(case_id=d.name, image=image, label=label))
    cases = require_cases(cases, subjects, NAME, "<id>/pre/reg_T1.nii.gz subject folders")
    return Dataset(
        name=NAME,
        layout=NAME,
        root=folder,
        cases=cases,
        reading=STRUCTURES,
        tissue_reading=TISSUES,
        mask_from="label",
    )
