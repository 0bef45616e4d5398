"""Dataset layouts: read the datasets users bring, in the layout they download them in.

``open_domains(["PATH", "LAYOUT:PATH", ...])`` opens training domains (auto-detecting
or forcing each layout); ``open_input(spec)`` opens what ``predict`` is given: a dataset
folder or a single image file. Every problem raises :class:`AdvnormError` naming the
file or folder.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

from advnorm.data.layouts import iseg2017, mrbrains13, mrbrains18, nnunet
from advnorm.data.layouts.base import CaseRef, Dataset, list_dir
from advnorm.data.volume_io import has_image_suffix, strip_image_suffix
from advnorm.errors import AdvnormError
from advnorm.labels import CLASS_NAMES

__all__ = [
    "LAYOUTS",
    "CaseRef",
    "Dataset",
    "detect_layout",
    "enclosing_dataset",
    "open_dataset",
    "open_domains",
    "open_input",
    "parse_spec",
    "read_alike",
]

LAYOUTS: dict[str, ModuleType] = {m.NAME: m for m in (nnunet, mrbrains13, mrbrains18, iseg2017)}
"""Layout name -> reader module (``NAME``, ``SIGNATURE``, ``detect(folder)``, ``open_dataset(folder)``),
in detection order."""

_SPEC = re.compile(r"^([A-Za-z][A-Za-z0-9_]*):(.+)$")
_MAX_DESCENT = 2  # zips often unpack into a folder holding one folder


def parse_spec(spec: str) -> tuple[str | None, Path]:
    """``"PATH"`` -> (None, PATH); ``"LAYOUT:PATH"`` -> (LAYOUT, PATH). An existing path always wins."""
    spec = str(spec)
    m = _SPEC.match(spec)
    if m is None or len(m.group(1)) == 1 or Path(spec).expanduser().exists():  # "C:..." is a drive
        return None, Path(spec).expanduser()
    layout = m.group(1).lower()
    if layout not in LAYOUTS:
        raise AdvnormError(f"unknown layout {m.group(1)!r}; valid layouts: {', '.join(LAYOUTS)}", spec)
    return layout, Path(m.group(2)).expanduser()


def _check_folder(folder: Path) -> None:
    if not folder.exists():
        raise AdvnormError("dataset folder does not exist", folder)
    if not folder.is_dir():
        raise AdvnormError("expected a dataset folder, got a file", folder)
    if not list_dir(folder):
        raise AdvnormError("dataset folder is empty", folder)


def detect_layout(folder: Path) -> tuple[str, Path]:
    """(layout name, dataset root) for ``folder``, looking inside a lone subfolder if need be."""
    _check_folder(folder)
    current = folder
    for _ in range(_MAX_DESCENT + 1):
        hits = [(name, root) for name, mod in LAYOUTS.items() if (root := mod.detect(current)) is not None]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            names = ", ".join(n for n, _ in hits)
            raise AdvnormError(f"folder matches several layouts ({names}); choose one with LAYOUT:PATH", current)
        entries = list_dir(current)
        dirs = [p for p in entries if p.is_dir()]
        if len(dirs) != 1 or any(has_image_suffix(p) for p in entries):
            break
        current = dirs[0]
    expected = "; ".join(f"{name}: {mod.SIGNATURE}" for name, mod in LAYOUTS.items())
    raise AdvnormError(f"no recognisable dataset layout (looked for {expected}); force one with LAYOUT:PATH", folder)


def open_dataset(spec: str) -> Dataset:
    """One dataset folder, ``"PATH"`` (auto-detected) or ``"LAYOUT:PATH"`` (forced)."""
    layout, folder = parse_spec(spec)
    if layout is None:
        layout, folder = detect_layout(folder)
    else:
        _check_folder(folder)
    return LAYOUTS[layout].open_dataset(folder)


def open_domains(specs: list[str]) -> list[Dataset]:
    """Open each spec as one domain; names are made unique with suffixes ``_2``, ``_3``, ...

    The same folder twice (also through a symlink, or once forced and once auto-detected) is
    refused: it would become two domains holding the same subjects."""
    if isinstance(specs, (str, Path)):
        specs = [str(specs)]
    if not specs:
        raise AdvnormError("no dataset folders given")
    datasets = [open_dataset(str(s)) for s in specs]
    roots: dict[Path, Path] = {}
    for ds in datasets:
        real = Path(ds.root).resolve()
        if real in roots:
            same = "" if Path(ds.root) == roots[real] else f" (the same folder as {roots[real]})"
            raise AdvnormError(f"dataset folder is given twice{same}; each --data is one domain", ds.root)
        roots[real] = Path(ds.root)
    seen: set[str] = set()
    for ds in datasets:
        base, name, k = ds.name, ds.name, 1
        while name in seen:
            k += 1
            name = f"{base}_{k}"
        ds.name = name
        seen.add(name)
    return datasets


def open_input(spec: str) -> Dataset:
    """What ``predict`` reads: a dataset folder (as :func:`open_domains`) or a single image file.

    A single file becomes a one-case, unlabelled :class:`Dataset` of layout ``"file"``
    (brain mask rule ``"auto"``); an iSEG file (``subject-N-T1.hdr``, or any file given
    as ``iseg2017:FILE``) keeps the iSEG layout, its label ids (0, 10, 150, 250) and its
    ``T1 != 0`` brain mask. ``.img`` files are read through their ``.hdr``.
    """
    layout, path = parse_spec(str(spec))
    if not path.exists():
        raise AdvnormError("input file or folder does not exist", path)
    if path.is_dir():
        return open_domains([str(spec)])[0]
    if not has_image_suffix(path):
        raise AdvnormError("not a supported image file (expected .nii, .nii.gz, .hdr/.img, .mgz or .mgh)", path)
    if path.stat().st_size == 0:
        raise AdvnormError("image file is empty", path)
    if path.name.lower().endswith(".img"):
        hdr = next((p for p in (path.with_suffix(".hdr"), path.with_suffix(".HDR")) if p.exists()), None)
        if hdr is None:
            raise AdvnormError("Analyze .img data file without its .hdr header", path)
        path = hdr
    case = CaseRef(case_id=strip_image_suffix(path.name), image=path, label=None)
    iseg_case = iseg2017.case_for_file(path)
    if layout == iseg2017.NAME or (layout is None and iseg_case is not None):
        return Dataset(
            name=iseg2017.NAME,
            layout=iseg2017.NAME,
            root=path.parent,
            cases=[iseg_case or case],
            reading=iseg2017.READING,
            mask_from="nonzero",
        )
    return Dataset(name="file", layout="file", root=path.parent, cases=[case], mask_from="auto")


def enclosing_dataset(path: Path, levels: int = 3) -> Path | None:
    """The dataset folder a single image file lies in (its folder or up to ``levels`` above), if any layout
    recognises one: outputs must not be written into it, or the dataset would no longer read."""
    for folder in list(Path(path).resolve().parents)[:levels]:
        try:
            if any(mod.detect(folder) is not None for mod in LAYOUTS.values()):
                return folder
        except AdvnormError:
            continue
    return None


def read_alike(datasets: list[Dataset], classes: tuple[str, ...] | None = None) -> list[Dataset]:
    """The datasets read with one label set, as multi-domain training and evaluation need.

    ``classes`` (a trained run's) if given; else the datasets' own set if they all share it; else the paper's
    CSF/GM/WM if every dataset can be read as those (an nnU-Net dataset that names them, MRBrainS18).
    """
    if classes is None:
        own = {d.classes for d in datasets}
        classes = own.pop() if len(own) == 1 else CLASS_NAMES
    out = []
    for d in datasets:
        try:
            out.append(d.read_as(classes))
        except AdvnormError:
            others = "; ".join(f"{o.name}: {', '.join(o.classes[1:])}" for o in datasets)
            raise AdvnormError(
                f"the domains have different labels ({others}) and {d.name}'s cannot be read as "
                f"{', '.join(classes[1:])}",
                d.root,
            ) from None
    return out
