"""Builders of tiny datasets in the real download layouts (see /work/shared/reference/datasets.md).

Plain functions, importable by any test: ``from tests.fixtures import make_iseg2017, ...``.
Each writes into ``root`` and returns the path a user would give advnorm. The anatomy
is a crude brain: nested ellipsoids (WM inside GM inside CSF) with ventricles, basal
ganglia, a lesion, cerebellum and brainstem, distinct intensities and a little noise.
Every volume stays under 40^3 voxels so tests are fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

MRBRAINS18_IDS = ("1", "4", "5", "7", "14", "070", "148")
MRBRAINS_ZOOMS = (0.958, 0.958, 3.0)
MRBRAINS_SHAPE = (36, 36, 10)
# detailed (MRBrainS18-style) label id -> class 0-3
DETAIL_TO_CLASS = {0: 0, 1: 2, 2: 2, 3: 3, 4: 3, 5: 1, 6: 1, 7: 0, 8: 0, 9: 0, 10: 0}
# T1 intensity per detailed label (adult contrast); 11 = skull/scalp
ADULT_T1 = {
    0: 0.0,
    1: 70.0,
    2: 80.0,
    3: 110.0,
    4: 60.0,
    5: 30.0,
    6: 25.0,
    7: 85.0,
    8: 100.0,
    9: 45.0,
    10: 55.0,
    11: 150.0,
}
SKULL = 11


def brain_phantom(
    shape: tuple[int, int, int], zooms: tuple[float, float, float], seed: int = 0, *, skull: bool = False
) -> np.ndarray:
    """Detailed labels 0-10 (MRBrainS18 ids) and, with ``skull``, 11 for a skull shell."""
    rng = np.random.default_rng(seed)
    ext = np.array(shape) * np.array(zooms)
    radii = ext * (0.40 if skull else 0.46) * (1 + rng.uniform(-0.04, 0.04, 3))
    grids = np.meshgrid(
        *[(np.arange(n) + 0.5) * z - e / 2 for n, z, e in zip(shape, zooms, ext, strict=True)], indexing="ij"
    )
    x, y, z = (g / r for g, r in zip(grids, radii, strict=True))
    r = np.sqrt(x**2 + y**2 + z**2)

    def blob(cx, cy, cz, rad):
        return (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 < rad**2

    out = np.zeros(shape, dtype=np.uint8)
    out[r < 1.0] = 5  # extracerebral CSF
    out[r < 0.86] = 1  # cortical GM
    out[r < 0.62] = 3  # WM
    out[blob(0.28, 0.05, 0.05, 0.16) | blob(-0.28, 0.05, 0.05, 0.16)] = 2  # basal ganglia
    out[blob(0.0, -0.1, 0.1, 0.17)] = 6  # ventricles
    out[blob(0.2, 0.3, 0.25, 0.13)] = 4  # WM lesion
    out[(r < 0.86) & (z < -0.45) & (y < -0.2)] = 7  # cerebellum
    out[blob(0.0, 0.05, -0.65, 0.2) & (r < 0.86)] = 8  # brainstem
    out[blob(-0.55, 0.45, 0.0, 0.14) & (r < 0.86)] = 9  # infarction
    out[blob(0.6, -0.3, 0.2, 0.12) & (r < 0.86)] = 10  # other
    if skull:
        out[(r >= 1.08) & (r < 1.22)] = SKULL
    return out


def t1_image(
    detail: np.ndarray,
    seed: int,
    *,
    contrast: dict[int, float] = ADULT_T1,
    noise: float = 3.0,
    background_noise: bool = False,
) -> np.ndarray:
    """A float32 T1 from detailed labels; background stays exactly 0 unless ``background_noise``."""
    rng = np.random.default_rng(1000 + seed)
    lut = np.array([contrast.get(i, 0.0) for i in range(SKULL + 1)], dtype=np.float32)
    img = lut[detail] * (1 + rng.uniform(-0.05, 0.05)) + rng.normal(0.0, noise, detail.shape).astype(np.float32)
    inside = detail > 0
    img = np.where(inside, np.maximum(img, 1.0), np.abs(img) if background_noise else 0.0)
    return img.astype(np.float32)


def to_classes(detail: np.ndarray) -> np.ndarray:
    lut = np.array([DETAIL_TO_CLASS.get(i, 0) for i in range(SKULL + 1)], dtype=np.uint8)
    return lut[detail]


def nifti_affine(zooms, flip: bool = False, origin=(-20.0, -22.0, -15.0)) -> np.ndarray:
    aff = np.diag([*zooms, 1.0]).astype(float)
    if flip:  # LPS-like storage, as ITK-converted NIfTI often is
        aff[0, 0], aff[1, 1] = -zooms[0], -zooms[1]
    aff[:3, 3] = origin
    return aff


def save_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, str(path))
    return path


def save_analyze(path: Path, data: np.ndarray, zooms=(1.0, 1.0, 1.0)) -> Path:
    """An Analyze 7.5 .hdr/.img pair; stored with a trailing singleton axis like iSEG's files."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.AnalyzeImage(data[..., None], np.diag([*zooms, 1.0]))
    img.header.set_zooms((*zooms, 1.0))
    nib.save(img, str(path))
    return path


def make_iseg2017(root, n_labelled: int = 2, n_unlabelled: int = 1, shape=(24, 28, 32)) -> Path:
    """A flat iSEG folder: subject-N-T1/-T2/-label.hdr/.img; labels 0/10/150/250; zero background."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    iso_t1 = {1: 95.0, 2: 98.0, 3: 100.0, 4: 96.0, 5: 40.0, 6: 38.0, 7: 96.0, 8: 100.0, 9: 90.0, 10: 92.0}
    iso_t2 = {1: 120.0, 2: 118.0, 3: 100.0, 4: 115.0, 5: 200.0, 6: 210.0, 7: 118.0, 8: 105.0, 9: 130.0, 10: 125.0}
    for n in range(1, n_labelled + n_unlabelled + 1):
        detail = brain_phantom(shape, (1.0, 1.0, 1.0), seed=n)
        save_analyze(root / f"subject-{n}-T1.hdr", np.round(t1_image(detail, n, contrast=iso_t1)).astype(np.int16))
        save_analyze(root / f"subject-{n}-T2.hdr", np.round(t1_image(detail, n + 50, contrast=iso_t2)).astype(np.int16))
        if n <= n_labelled:
            iseg = np.array([0, 10, 150, 250], dtype=np.uint8)[to_classes(detail)]
            save_analyze(root / f"subject-{n}-label.hdr", iseg)
    return root


def make_mrbrains13(root, n: int = 2, training_labels: bool = False, n_test: int = 0) -> Path:
    """``MRBrainS13DataNii/TrainingData/N/`` (+ ``TestData/N/`` for ``n_test``); returns MRBrainS13DataNii.

    Each training subject has T1.nii, T1_1mm.nii (another shape; never to be used),
    T1_IR.nii, T2_FLAIR.nii, LabelsForTraining.nii (0-8) and, unless
    ``training_labels``, LabelsForTesting.nii (0-3). 0.958 x 0.958 x 3.0 mm, full head
    (non-zero skull shell in T1, noisy background).
    """
    base = Path(root) / "MRBrainS13DataNii"
    subjects = [("TrainingData", i, True) for i in range(1, n + 1)] + [
        ("TestData", i, False) for i in range(1, n_test + 1)
    ]
    aff = nifti_affine(MRBRAINS_ZOOMS, flip=True)
    for part, i, labelled in subjects:
        folder = base / part / str(i)
        seed = i if labelled else 100 + i
        detail = brain_phantom(MRBRAINS_SHAPE, MRBRAINS_ZOOMS, seed=seed, skull=True)
        t1 = t1_image(detail, seed, background_noise=True)
        save_nifti(folder / "T1.nii", np.round(t1).astype(np.int16), aff)
        save_nifti(folder / "T1_IR.nii", np.round(200 - t1 / 2).astype(np.int16), aff)
        save_nifti(folder / "T2_FLAIR.nii", np.round(t1 / 2 + 20).astype(np.int16), aff)
        one_mm = t1_image(brain_phantom((30, 30, 30), (1.0, 1.0, 1.0), seed=seed, skull=True), seed)
        save_nifti(folder / "T1_1mm.nii", one_mm.astype(np.int16), nifti_affine((1.0, 1.0, 1.0)))
        if labelled:
            training = np.where(detail > 8, 0, detail).astype(np.uint8)  # MRBrainS13 has ids 0-8 only
            save_nifti(folder / "LabelsForTraining.nii", training, aff)
            if not training_labels:
                save_nifti(folder / "LabelsForTesting.nii", to_classes(training), aff)
    return base


def make_mrbrains18(root, n: int = 2) -> Path:
    """``training/<id>/segm.nii.gz`` + ``pre/reg_T1.nii.gz`` (+ FLAIR, reg_IR, orig/); labels 0-10, 3 mm slices."""
    root = Path(root)
    aff = nifti_affine(MRBRAINS_ZOOMS)
    for k, sid in enumerate(MRBRAINS18_IDS[:n]):
        folder = root / "training" / sid
        detail = brain_phantom(MRBRAINS_SHAPE, MRBRAINS_ZOOMS, seed=200 + k, skull=True)
        t1 = t1_image(detail, 200 + k, background_noise=True)
        save_nifti(folder / "segm.nii.gz", np.where(detail == SKULL, 0, detail).astype(np.uint8), aff)
        save_nifti(folder / "pre" / "reg_T1.nii.gz", t1, aff)
        save_nifti(folder / "pre" / "FLAIR.nii.gz", t1 / 2 + 20, aff)
        save_nifti(folder / "pre" / "reg_IR.nii.gz", 200 - t1 / 2, aff)
        save_nifti(folder / "orig" / "reg_T1.nii.gz", t1 * 1.1 + 5, aff)
    return root


_CLASS_SYNONYMS = {
    1: ("csf", "cerebrospinal fluid"),
    2: ("gm", "gray matter", "grey matter", "cortical gray matter"),
    3: ("wm", "white matter"),
}


def make_nnunet(
    root,
    name: str = "Dataset001_Test",
    n: int = 3,
    labels: dict | None = None,
    *,
    n_test: int = 0,
    shape=(26, 30, 28),
    file_ending: str = ".nii.gz",
) -> Path:
    """``<name>/imagesTr/{case}_0000``, ``labelsTr/{case}``, ``dataset.json``; returns the dataset folder.

    Label files use the ids of ``labels`` (name -> id), found by name; labels that are not
    CSF/GM/WM/background are painted on the cerebellum so readers must map them to 0.
    """
    labels = {"background": 0, "CSF": 1, "GM": 2, "WM": 3} if labels is None else labels
    folder = Path(root) / name
    class_id = {0: 0}
    extra_ids = []
    for lname, lid in labels.items():
        cls = next((c for c, names in _CLASS_SYNONYMS.items() if lname.lower() in names), None)
        if cls is not None:
            class_id.setdefault(cls, lid)
        elif lname.lower() != "background":
            extra_ids.append(lid)
    aff = nifti_affine((1.0, 1.0, 1.0))
    for i in range(n + n_test):
        labelled = i < n
        case = f"case_{i + 1:03d}"
        detail = brain_phantom(shape, (1.0, 1.0, 1.0), seed=300 + i)
        t1 = t1_image(detail, 300 + i)
        save_nifti(folder / ("imagesTr" if labelled else "imagesTs") / f"{case}_0000{file_ending}", t1, aff)
        if labelled:
            classes = to_classes(detail)
            lab = np.zeros(shape, dtype=np.uint8)
            for cls in (1, 2, 3):
                if cls in class_id:
                    lab[classes == cls] = class_id[cls]
            if extra_ids:
                lab[detail == 7] = extra_ids[0]
            save_nifti(folder / "labelsTr" / f"{case}{file_ending}", lab, aff)
    meta = {"channel_names": {"0": "T1"}, "labels": labels, "numTraining": n, "file_ending": file_ending, "name": name}
    (folder / "dataset.json").write_text(json.dumps(meta, indent=2))
    return folder
