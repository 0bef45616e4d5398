"""The classes S segments: their names and order, and how a dataset's label ids map onto them.

The paper's classes are background, CSF, GM and WM (:data:`TISSUE_CLASSES`), and Table 1 uses them.
A dataset may bring its own (an nnU-Net ``dataset.json``'s ``labels``, MRBrainS18's structures); a
:class:`LabelReading` says which ids of its label files are which class, and which id to write back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CLASS_NAMES: tuple[str, ...] = ("background", "CSF", "GM", "WM")
"""The tissue classes of the paper, in label order 0-3."""

TISSUES: tuple[str, ...] = CLASS_NAMES[1:]
"""The foreground classes of the paper's tables (labels 1-3)."""

TISSUE_CLASSES = CLASS_NAMES


def class_name(label: int, classes: tuple[str, ...] = CLASS_NAMES) -> str:
    """Name of class ``label`` in ``classes`` (``label<k>`` beyond them)."""
    return classes[label] if 0 <= label < len(classes) else f"label{label}"


@dataclass(frozen=True)
class LabelReading:
    """How the label files of one dataset are read as classes.

    ``classes[k]`` names class k (0 is background); ``label_map`` maps the ids in the files to classes;
    ``values[k]`` is the dataset's own id of class k, used to write segmentations back in its convention;
    ``per_file`` overrides ``label_map`` for label files of a given (lower-case) name (MRBrainS13 ships two
    conventions side by side).
    """

    classes: tuple[str, ...]
    label_map: dict[int, int]
    values: tuple[int, ...]
    per_file: dict[str, dict[int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.values) != len(self.classes) or self.classes[0] != "background":
            raise ValueError(f"a label reading needs one value per class and background first: {self}")


IDENTITY_TISSUES = LabelReading(CLASS_NAMES, {0: 0, 1: 1, 2: 2, 3: 3}, (0, 1, 2, 3))
"""Labels already stored as 0 background, 1 CSF, 2 GM, 3 WM."""
