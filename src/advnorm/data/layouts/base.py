"""What every layout reader produces (:class:`Dataset` of :class:`CaseRef`) and small shared helpers."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from advnorm.data.cache import cached_subject
from advnorm.data.subject import Subject, build_subject
from advnorm.errors import AdvnormError
from advnorm.labels import IDENTITY_TISSUES, LabelReading


@dataclass(frozen=True)
class CaseRef:
    """One subject of a dataset: its image file and, when it has one, its label file."""

    case_id: str
    image: Path
    label: Path | None
    mask: Path | None = None
    """A brain mask given by the user (``--mask``); it overrides the layout's skull-stripping rule."""


@dataclass
class Dataset:
    """A dataset folder read in its own layout: one domain of the multi-domain problem.

    ``reading`` says how its label files are read: which class each id is, and which id to write back
    (see :class:`advnorm.labels.LabelReading`). It is the dataset's own label set; ``tissue_reading``,
    when the dataset has one, reads the same files as the paper's CSF/GM/WM, so datasets with different
    own labels can still be combined. ``mask_from`` is the skull-stripping rule handed to
    :func:`advnorm.data.subject.build_subject`.
    """

    name: str
    layout: str
    root: Path
    cases: list[CaseRef]
    reading: LabelReading = IDENTITY_TISSUES
    mask_from: str = "nonzero"
    tissue_reading: LabelReading | None = None

    @property
    def classes(self) -> tuple[str, ...]:
        return self.reading.classes

    @property
    def label_values(self) -> tuple[int, ...]:
        return self.reading.values

    @property
    def label_map(self) -> dict[int, int]:
        return self.reading.label_map

    @property
    def label_maps(self) -> dict[str, dict[int, int]]:
        return self.reading.per_file

    def read_as(self, classes: tuple[str, ...]) -> Dataset:
        """This dataset with its labels read as ``classes`` (its own, or the tissues if it can)."""
        if classes == self.reading.classes:
            return self
        if self.tissue_reading is not None and classes == self.tissue_reading.classes:
            return dataclasses.replace(self, reading=self.tissue_reading)
        raise AdvnormError(
            f"its labels ({', '.join(self.classes[1:])}) cannot be read as {', '.join(classes[1:])}", self.root
        )

    def labelled(self) -> list[CaseRef]:
        return [c for c in self.cases if c.label is not None]

    def unlabelled(self) -> list[CaseRef]:
        return [c for c in self.cases if c.label is None]

    def label_map_for(self, case: CaseRef) -> Mapping[int, int]:
        if case.label is None:
            return self.label_map
        return self.reading.per_file.get(case.label.name.lower(), self.reading.label_map)

    def load_case(self, case: CaseRef, *, with_label: bool = True) -> Subject:
        """Load one case onto the 1 mm working grid with this layout's label map and mask rule.

        Through the working-grid cache (:mod:`advnorm.data.cache`): a case preprocessed before, by any process, is
        memory-mapped from there (read-only arrays) instead of being read and resampled again.

        Layouts that skull-strip with the label map (``mask_from="label"``, MRBrainS) still
        use the label file for the brain mask when ``with_label=False`` and then drop the
        label, so a case is preprocessed identically whether or not its label is wanted.
        A case with no label file at all in such a layout falls back to ``image != 0``
        (the image is then assumed to be skull-stripped already); ``subject.extra["mask_from"]``
        records the rule actually used.
        """
        mask_from = self.mask_from
        label = case.label
        drop_label = False
        if label is None:
            if mask_from == "label":
                mask_from = "nonzero"
        elif not with_label:
            if mask_from == "label":
                drop_label = True
            else:
                label = None
        label_map = self.label_map_for(case) if label is not None else None

        def build() -> Subject:
            return build_subject(
                case.image,
                label,
                domain=self.name,
                case_id=case.case_id,
                layout=self.layout,
                label_map=label_map,
                mask_from=mask_from,
                label_values=self.reading.values,
                mask_path=case.mask,
            )

        subject = cached_subject(  # every argument of build_subject that shapes the arrays is in the key
            build,
            files={"image": case.image, "label": label, "mask": case.mask},
            rules={
                "layout": self.layout,
                "label_map": None if label_map is None else sorted(label_map.items()),
                "mask_from": mask_from,
                "label_values": list(self.reading.values),
            },
            case_id=case.case_id,
            domain=self.name,
        )
        if drop_label:
            subject.label = None
        subject.extra["mask_from"] = "file" if case.mask is not None else mask_from
        return subject

    def load(self, *, labelled_only: bool = True) -> list[Subject]:
        """All labelled cases (with labels), or every case when ``labelled_only=False``."""
        cases = self.labelled() if labelled_only else self.cases
        return [self.load_case(c) for c in cases]


# ---------------------------------------------------------------- helpers for layout modules


def visible(entries) -> list[Path]:
    """Drop hidden files, macOS resource forks (``._x``) and ``__MACOSX`` folders left by zips."""
    return [p for p in entries if not p.name.startswith(".") and p.name != "__MACOSX"]


def list_dir(folder: Path) -> list[Path]:
    try:
        return sorted(visible(folder.iterdir()))
    except OSError as exc:
        raise AdvnormError(f"cannot list folder: {exc.strerror or exc}", folder) from None


def subdirs(folder: Path) -> list[Path]:
    return [p for p in list_dir(folder) if p.is_dir()]


def child(folder: Path, name: str) -> Path | None:
    """The entry of ``folder`` called ``name``, ignoring case (downloads differ in capitalisation)."""
    exact = folder / name
    if exact.exists():
        return exact
    lower = name.lower()
    try:
        for p in folder.iterdir():
            if p.name.lower() == lower:
                return p
    except OSError:
        return None
    return None


def first_child(folder: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        found = child(folder, name)
        if found is not None and found.is_file():
            return found
    return None


def natural_key(text: str) -> list:
    """Sort "2" before "10" and keep zero-padded ids ("070") next to their value."""
    return [(0, int(t), t) if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", text) if t != ""]


def sorted_cases(cases: list[CaseRef]) -> list[CaseRef]:
    return sorted(cases, key=lambda c: natural_key(c.case_id))


def require_cases(cases: list[CaseRef], folder: Path, layout: str, what: str) -> list[CaseRef]:
    if not cases:
        raise AdvnormError(f"no {layout} subjects found (expected {what})", folder)
    return sorted_cases(cases)
