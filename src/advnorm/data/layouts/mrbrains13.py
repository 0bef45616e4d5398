"""MRBrainS13: ``MRBrainS13DataNii/{TrainingData,TestData}/N/`` with ``T1.nii`` and label files.

``LabelsForTesting.nii`` (0 background, 1 CSF, 2 GM, 3 WM) is preferred; without it,
``LabelsForTraining.nii`` is mapped CSF = {5, 6}, GM = {1, 2}, WM = {3, 4}, and
cerebellum (7) / brainstem (8) to background. ``T1_1mm.nii`` is the original scan,
not aligned to the labels, and is never used. The images hold the whole head: like
the paper, the brain mask is the label map (label > 0). ``TestData`` subjects have
no labels and are unlabelled.
"""

from __future__ import annotations

from pathlib import Path

from advnorm.data.layouts.base import CaseRef, Dataset, child, first_child, require_cases, subdirs
from advnorm.errors import AdvnormError
from advnorm.labels import CLASS_NAMES, LabelReading

NAME = "mrbrains13"
SIGNATURE = "MRBrainS13DataNii/ or its TrainingData/ (N/T1.nii + N/LabelsForTesting.nii)"
T1_NAMES = ("T1.nii", "T1.nii.gz")
TESTING_LABELS = ("LabelsForTesting.nii", "LabelsForTesting.nii.gz")
TRAINING_LABELS = ("LabelsForTraining.nii", "LabelsForTraining.nii.gz")
TRAINING_LABEL_MAP = {0: 0, 1: 2, 2: 2, 3: 3, 4: 3, 5: 1, 6: 1, 7: 0, 8: 0}


def _is_subject(folder: Path) -> bool:
    return folder.name.isdigit() and (first_child(folder, T1_NAMES + ("T1.mhd",)) is not None)


def _holds_subjects(folder: Path) -> bool:
    return any(_is_subject(d) for d in subdirs(folder))


def _parts(folder: Path) -> list[tuple[Path, bool]]:
    """(subjects folder, labels required) pairs that ``folder`` stands for; empty if none."""
    training, test = child(folder, "TrainingData"), child(folder, "TestData")
    parts = [
        (p, req) for p, req in ((training, True), (test, False)) if p is not None and p.is_dir() and _holds_subjects(p)
    ]
    if parts:
        return parts
    if _holds_subjects(folder):
        return [(folder, folder.name.lower() != "testdata")]
    return []


def detect(folder: Path) -> Path | None:
    return folder if _parts(folder) else None


def open_dataset(folder: Path) -> Dataset:
    parts = _parts(folder)
    if not parts:
        raise AdvnormError("no MRBrainS13 subjects found (expected TrainingData/N/T1.nii or N/T1.nii)", folder)
    cases = []
    for subjects, labels_required in parts:
        prefix = "" if labels_required else "test-"
        for d in subdirs(subjects):
            if not d.name.isdigit():
                if first_child(d, T1_NAMES) is not None:  # a renamed subject would be silently left out
                    raise AdvnormError("subject folders are numbered (1, 2, ...); this one is not", d)
                continue
            image = first_child(d, T1_NAMES)
            if image is None:
                if first_child(d, ("T1.mhd",)) is not None:
                    raise AdvnormError(
                        "MetaImage (.mhd/.raw) release is not supported: use the NIfTI release MRBrainS13DataNii",
                        d / "T1.mhd",
                    )
                raise AdvnormError(
                    "subject folder has no T1.nii (T1_1mm.nii is not aligned with the labels and is never used)", d
                )
            label = first_child(d, TESTING_LABELS) or first_child(d, TRAINING_LABELS)
            if label is None and labels_required:
                raise AdvnormError(
                    "training subject has no LabelsForTesting.nii or LabelsForTraining.nii next to T1.nii", image
                )
            cases.append(CaseRef(case_id=f"{prefix}{d.name}", image=image, label=label))
    cases = require_cases(cases, folder, NAME, "N/T1.nii subject folders")
    training_map = dict(TRAINING_LABEL_MAP)
    return Dataset(
        name=NAME,
        layout=NAME,
        root=folder,
        cases=cases,
        reading=LabelReading(
            CLASS_NAMES,
            {0: 0, 1: 1, 2: 2, 3: 3},
            (0, 1, 2, 3),
            per_file={n.lower(): training_map for n in TRAINING_LABELS},
        ),
        mask_from="label",
    )
