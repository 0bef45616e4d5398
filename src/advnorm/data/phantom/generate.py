"""The built-in multi-domain brain phantom: K synthetic "sites" in nnU-Net v2 raw layout.

Runs offline from real anatomy (the ICBM 2009a tissue maps shipped with the
package): each subject is the template anatomy, scaled by ``spec.scale`` (0.7 by
default, which keeps the CPU cost down; an infant brain is smaller than an adult
one anyway) and given its own smooth random deformation (:mod:`.anatomy`); each
domain images its subjects with its own contrast, noise, bias and slice thickness
(:mod:`.acquisition`: ``InfantT1``, ``AdultT1Thick``, ``T2Like``, then seeded
random domains). Every domain has its own subjects, as real sites do.

Layout written under ``out``::

    phantom.json                      marks the folder as a phantom run (spec, domains)
    phantom.png                       one row per domain: axial slice + label map
    Dataset001_InfantT1/
        dataset.json
        imagesTr/InfantT1_001_0000.nii.gz   float32, skull-stripped, 1 mm RAS
        labelsTr/InfantT1_001.nii.gz        uint8: 0 background, 1 CSF, 2 GM, 3 WM
    Dataset002_AdultT1Thick/ ...

Arrays are a pure function of ``spec`` (same seed, byte-identical arrays); subject
``j`` of domain ``k`` depends only on (seed, k, j, scale), so asking for more
subjects keeps the earlier ones.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from advnorm.data.phantom.acquisition import Contrast, acquire, domain_contrast
from advnorm.data.phantom.anatomy import make_subject
from advnorm.data.volume_io import save_nifti
from advnorm.errors import AdvnormError
from advnorm.io_atomic import atomic_path, atomic_write_json

MARKER = "phantom.json"
PREVIEW = "phantom.png"
GENERATOR = "advnorm.data.phantom"
LABELS = {"background": 0, "CSF": 1, "GM": 2, "WM": 3}
_LABEL_COLORS = ("#000000", "#3f7fd9", "#e0a030", "#f2f2f2")  # background, CSF, GM, WM
_DATASET_DIR = re.compile(r"^Dataset\d{3}_[A-Za-z0-9]+$")


@dataclass(frozen=True)
class PhantomSpec:
    """What to generate: ``domains`` sites (>= 2) x ``subjects`` each, from ``seed``, brain scaled by ``scale``."""

    domains: int = 3
    subjects: int = 5
    seed: int = 0
    scale: float = 0.7


def write_phantom(out: Path, spec: PhantomSpec = PhantomSpec(), *, progress: bool = False) -> list[Path]:
    """Write the phantom datasets under ``out``; return the dataset folders, in domain order.

    Refuses (:class:`AdvnormError`) a ``spec`` out of range, or an ``out`` that is a
    file or a non-empty folder not written by a previous phantom run. Over a previous
    phantom run, the datasets and preview it wrote are replaced; nothing else is touched.
    """
    out = Path(out)
    _check_spec(spec, out)
    previous = _check_out(out)
    contrasts = [domain_contrast(k, spec.seed) for k in range(1, spec.domains + 1)]
    names = [f"Dataset{k:03d}_{c.name}" for k, c in enumerate(contrasts, start=1)]

    for name in previous:  # only folders a phantom run wrote (names checked in _check_out)
        target = out / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
    out.mkdir(parents=True, exist_ok=True)
    marker = {"generator": GENERATOR, "complete": False, "spec": asdict(spec), "datasets": names}
    atomic_write_json(out / MARKER, marker)
    (out / PREVIEW).unlink(missing_ok=True)

    bar = progress_bar(spec.domains * spec.subjects, progress)
    written, previews = [], []
    for k, (contrast, name) in enumerate(zip(contrasts, names, strict=True), start=1):
        folder = out / name
        for j in range(1, spec.subjects + 1):
            case = f"{contrast.name}_{j:03d}"
            bar.set_postfix_str(case, refresh=False)
            image, label = make_case(spec, k, j, contrast)
            affine = _affine(label.shape)
            save_nifti(folder / "imagesTr" / f"{case}_0000.nii.gz", image, affine)
            save_nifti(folder / "labelsTr" / f"{case}.nii.gz", label, affine)
            if j == 1:
                previews.append(_axial_slice(image, label))
            bar.update(1)
        atomic_write_json(folder / "dataset.json", _dataset_json(contrast, spec))
        written.append(folder)
    bar.close()

    _write_preview(out / PREVIEW, contrasts, names, previews)
    marker.update(complete=True, domains=[c.to_json() for c in contrasts])
    atomic_write_json(out / MARKER, marker)
    return written


def make_case(
    spec: PhantomSpec, domain: int, subject: int, contrast: Contrast | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Subject ``subject`` (1-based) of domain ``domain`` (1-based): (float32 image, uint8 labels)."""
    contrast = contrast or domain_contrast(domain, spec.seed)
    anatomy_rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(domain, subject, 0)))
    imaging_rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(domain, subject, 1)))
    anatomy = make_subject(anatomy_rng, spec.scale)
    return acquire(anatomy, contrast, imaging_rng), anatomy.label


def _check_spec(spec: PhantomSpec, out: Path) -> None:
    def is_int(v) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    if not is_int(spec.domains) or spec.domains < 2:
        raise AdvnormError(f"the phantom needs at least 2 domains, got {spec.domains!r}", out)
    if spec.domains > 999:
        raise AdvnormError(f"at most 999 phantom domains (nnU-Net dataset ids), got {spec.domains}", out)
    if not is_int(spec.subjects) or spec.subjects < 1:
        raise AdvnormError(f"the phantom needs at least 1 subject per domain, got {spec.subjects!r}", out)
    if spec.subjects > 999:
        raise AdvnormError(f"at most 999 phantom subjects per domain, got {spec.subjects}", out)
    if not is_int(spec.seed) or spec.seed < 0:
        raise AdvnormError(f"the phantom seed must be a non-negative integer, got {spec.seed!r}", out)
    if not isinstance(spec.scale, (int, float)) or not math.isfinite(spec.scale) or not 0.2 <= spec.scale <= 1.5:
        raise AdvnormError(f"the phantom brain scale must be between 0.2 and 1.5, got {spec.scale!r}", out)


def _check_out(out: Path) -> list[str]:
    """Refuse an unusable ``out``; return the dataset folder names a previous phantom run wrote there."""
    marker = previous_run(out, MARKER, GENERATOR, "phantom")
    if marker is None:
        return []
    names = marker.get("datasets")
    if not isinstance(names, list):
        return []
    return [n for n in names if isinstance(n, str) and _DATASET_DIR.match(n)]


def previous_run(out: Path, marker_name: str, generator: str, what: str) -> dict | None:
    """The marker a previous ``generator`` run left in ``out``, or ``None`` for a new or empty folder.

    Generators overwrite only their own earlier output: anything else in a non-empty
    ``out`` (a user's real data, say) is refused with :class:`AdvnormError`.
    """
    if out.exists() and not out.is_dir():
        raise AdvnormError(f"{what} output exists and is not a folder", out)
    if not out.exists() or not any(out.iterdir()):
        return None
    try:
        marker = json.loads((out / marker_name).read_text(encoding="utf-8"))
        ok = isinstance(marker, dict) and marker.get("generator") == generator
    except (OSError, ValueError):
        ok = False
    if not ok:
        raise AdvnormError(
            f"{what} output folder is not empty and was not written by a previous {what} run; "
            "choose an empty or new folder",
            out,
        )
    return marker


def _dataset_json(contrast: Contrast, spec: PhantomSpec) -> dict:
    return {
        "name": contrast.name,
        "description": (
            f"Synthetic multi-domain brain phantom derived from the ICBM 2009a template tissue maps "
            f"(advnorm built-in phantom; domain '{contrast.name}': {contrast.description}; "
            f"seed {spec.seed}, brain scale {spec.scale}). Not real patient data."
        ),
        "reference": "Fonov et al., NeuroImage 47 (2009) S102 and 54 (2011) 313-327 (ICBM 2009a template)",
        "licence": "ICBM 2009a template: Copyright (C) 1993-2009 Louis Collins, MNI, McGill University (see NOTICE)",
        "channel_names": {"0": "T1"},
        "labels": dict(LABELS),
        "numTraining": spec.subjects,
        "file_ending": ".nii.gz",
    }


def _affine(shape: tuple[int, ...]) -> np.ndarray:
    """1 mm isotropic RAS, world origin near the centre of the volume."""
    affine = np.eye(4)
    affine[:3, 3] = -np.floor((np.asarray(shape) - 1) / 2.0)
    return affine


def _axial_slice(image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The axial (constant superior-inferior) slice through the brain's centre of mass."""
    z = int(round(float(np.argwhere(label > 0)[:, 2].mean())))
    return image[:, :, z].copy(), label[:, :, z].copy()


def _write_preview(path: Path, contrasts: list[Contrast], names: list[str], slices) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.figure import Figure

    cmap = ListedColormap(_LABEL_COLORS)
    norm = BoundaryNorm([-0.5, 0.5, 1.5, 2.5, 3.5], cmap.N)
    rows = len(slices)
    fig = Figure(figsize=(6.4, 3.0 * rows), dpi=100)
    FigureCanvasAgg(fig)
    for r, (contrast, name, (image, label)) in enumerate(zip(contrasts, names, slices, strict=True)):
        inside = image[label > 0]
        vmax = float(np.percentile(inside, 99.5)) if inside.size else 1.0
        ax_img = fig.add_subplot(rows, 2, 2 * r + 1)
        ax_img.imshow(image.T, cmap="gray", origin="lower", vmin=0.0, vmax=max(vmax, 1e-6), interpolation="nearest")
        ax_img.set_title(f"{name}\nimage (0-{vmax:.0f})", fontsize=9)
        ax_lab = fig.add_subplot(rows, 2, 2 * r + 2)
        ax_lab.imshow(label.T, cmap=cmap, norm=norm, origin="lower", interpolation="nearest")
        ax_lab.set_title(f"{contrast.name}\nlabels: CSF blue, GM orange, WM white", fontsize=9)
        for ax in (ax_img, ax_lab):
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("advnorm phantom (ICBM 2009a anatomy), axial slices of subject 001", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def progress_bar(total: int, enabled: bool, desc: str = "phantom"):
    """A tqdm bar over generated cases (silent unless ``enabled``)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="case", disable=not enabled)
