"""The realistic-layout phantom: iSEG-2017 / MRBrainS13 look-alikes that advnorm's own readers must accept."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from advnorm.data.layouts import open_domains
from advnorm.data.phantom.realistic import (
    ISEG_DIR,
    MARKER,
    MRBRAINS_DIR,
    RealisticSpec,
    iseg_case,
    mrbrains_case,
    planned_headers,
    write_realistic,
)
from advnorm.data.phantom.regions import TESTING_FROM_TRAINING
from advnorm.errors import AdvnormError

SMALL = RealisticSpec(iseg_subjects=2, mrbrains_subjects=2, mrbrains_test_subjects=1, seed=0, shrink=4)
MRB_IMAGES = ("T1", "T1_1mm", "T1_IR", "T2_FLAIR")
MRB_LABELS = ("LabelsForTraining", "LabelsForTesting")


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    out = tmp_path_factory.mktemp("realistic") / "out"
    return out, write_realistic(out, SMALL)


@pytest.fixture(scope="module")
def domains(small) -> dict:
    _, folders = small
    return {ds.layout: ds for ds in open_domains([str(folders["iseg2017"]), str(folders["mrbrains13"])])}


def _load(path: Path) -> np.ndarray:
    return np.asanyarray(nib.load(str(path)).dataobj)


def _mrb(folder: Path, part: str, n: int, stem: str) -> Path:
    return folder / part / str(n) / f"{stem}.nii"


# ------------------------------------------------------------------------------ layout and reading back


# relative file names a user's download would hold (the marker sits beside the two dataset folders)
EXPECTED_FILES = sorted(
    [MARKER]
    + [
        f"{ISEG_DIR}/subject-{n}-{kind}.{ext}"
        for n in (1, 2)
        for kind in ("T1", "T2", "label")
        for ext in ("hdr", "img")
    ]
    + [f"{MRBRAINS_DIR}/TrainingData/{n}/{stem}.nii" for n in (1, 2) for stem in MRB_IMAGES + MRB_LABELS]
    + [f"{MRBRAINS_DIR}/TestData/1/{stem}.nii" for stem in MRB_IMAGES]
)


def test_files_are_the_download_layout(small):
    out, folders = small
    assert folders == {"iseg2017": out / ISEG_DIR, "mrbrains13": out / MRBRAINS_DIR}
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == EXPECTED_FILES


# layout, case ids, labelled ids, brain-mask rule
DETECTED = [
    ("iseg2017", ["subject-1", "subject-2"], ["subject-1", "subject-2"], "nonzero"),
    ("mrbrains13", ["1", "2", "test-1"], ["1", "2"], "label"),
]


@pytest.mark.parametrize("layout, case_ids, labelled, mask_from", DETECTED)
def test_layouts_are_auto_detected(domains, layout, case_ids, labelled, mask_from):
    ds = domains[layout]
    assert [c.case_id for c in ds.cases] == case_ids
    assert [c.case_id for c in ds.labelled()] == labelled
    assert ds.mask_from == mask_from


@pytest.mark.parametrize("layout", ["iseg2017", "mrbrains13"])
def test_every_labelled_case_loads_with_three_tissues(domains, layout):
    ds = domains[layout]
    for case in ds.labelled():
        subject = ds.load_case(case)
        assert subject.image.dtype == np.float32 and np.all(np.isfinite(subject.image))
        assert set(np.unique(subject.label).tolist()) == {0, 1, 2, 3}
        assert np.array_equal(subject.label > 0, subject.mask)
        assert np.allclose(subject.spacing, 1.0)
        counts = np.bincount(subject.label[subject.mask], minlength=4)
        assert counts[1:].min() > 0.05 * counts.sum()  # every tissue is a real share of the brain


# ------------------------------------------------------------------------------ what the files hold


def test_headers_match_the_plan(small):
    """Every file's shape and voxel size are what planned_headers says (and the full-size plan is tested below)."""
    out, _ = small
    plan = planned_headers(SMALL)
    for rel in EXPECTED_FILES:
        if not rel.endswith((".hdr", ".nii")):
            continue
        key = rel.replace("/subject-1-", "/subject-N-").replace("/subject-2-", "/subject-N-")
        key = key.replace("TestData/", "TrainingData/").replace("Data/1/", "Data/N/").replace("Data/2/", "Data/N/")
        header = nib.load(str(out / rel)).header
        shape, zooms = plan[key]
        assert header.get_data_shape() == shape, rel
        assert np.allclose(header.get_zooms(), zooms, atol=1e-4), rel


# the real data (shared/reference/datasets.md): file, shape as stored, voxel size
FULL_SIZE = [
    (f"{ISEG_DIR}/subject-N-T1.hdr", (144, 192, 256, 1), (1.0, 1.0, 1.0, 1.0)),
    (f"{ISEG_DIR}/subject-N-label.hdr", (144, 192, 256, 1), (1.0, 1.0, 1.0, 1.0)),
    (f"{MRBRAINS_DIR}/TrainingData/N/T1.nii", (240, 240, 48), (0.958, 0.958, 3.0)),
    (f"{MRBRAINS_DIR}/TrainingData/N/T1_IR.nii", (240, 240, 48), (0.958, 0.958, 3.0)),
    (f"{MRBRAINS_DIR}/TrainingData/N/T2_FLAIR.nii", (240, 240, 48), (0.958, 0.958, 3.0)),
    (f"{MRBRAINS_DIR}/TrainingData/N/LabelsForTesting.nii", (240, 240, 48), (0.958, 0.958, 3.0)),
    (f"{MRBRAINS_DIR}/TrainingData/N/LabelsForTraining.nii", (240, 240, 48), (0.958, 0.958, 3.0)),
]


@pytest.mark.parametrize("rel, shape, zooms", FULL_SIZE)
def test_full_size_plan_is_the_real_geometry(rel, shape, zooms):
    assert planned_headers(RealisticSpec())[rel] == (shape, zooms)


def test_t1_1mm_is_not_on_the_label_grid(small):
    out, _ = small
    one_mm, t1 = (nib.load(str(_mrb(out / MRBRAINS_DIR, "TrainingData", 1, s))) for s in ("T1_1mm", "T1"))
    assert one_mm.shape != t1.shape
    assert np.allclose(one_mm.header.get_zooms(), 1.0)
    assert not np.allclose(one_mm.affine[:3, :3] / 1.0, np.diag(np.diag(one_mm.affine[:3, :3])))  # rotated


# file kind, stored dtype, allowed values (None: any)
CONTENTS = [
    ("subject-1-T1.hdr", np.int16, None),
    ("subject-1-T2.hdr", np.int16, None),
    ("subject-1-label.hdr", np.uint8, {0, 10, 150, 250}),
    ("T1.nii", np.int16, None),
    ("T1_IR.nii", np.int16, None),
    ("T2_FLAIR.nii", np.int16, None),
    ("T1_1mm.nii", np.int16, None),
    ("LabelsForTraining.nii", np.uint8, set(range(9))),
    ("LabelsForTesting.nii", np.uint8, {0, 1, 2, 3}),
]


@pytest.mark.parametrize("name, dtype, values", CONTENTS)
def test_file_contents(small, name, dtype, values):
    out, _ = small
    path = (
        out / ISEG_DIR / name if name.startswith("subject-") else _mrb(out / MRBRAINS_DIR, "TrainingData", 1, name[:-4])
    )
    assert nib.load(str(path)).header.get_data_dtype() == dtype
    data = _load(path)
    if values is not None:
        assert set(np.unique(data).tolist()) == values  # every id present, none other
    else:
        assert data.min() >= 0 and data.max() > 100


def test_testing_labels_are_the_training_labels_merged(small):
    out, _ = small
    folder = out / MRBRAINS_DIR
    training, testing = (_load(_mrb(folder, "TrainingData", 1, s)) for s in MRB_LABELS)
    assert np.array_equal(testing, TESTING_FROM_TRAINING[training])
    assert np.all(testing[(training == 7) | (training == 8)] == 0)  # cerebellum and brainstem are background


def test_iseg_is_skull_stripped_with_exact_zeros(small):
    out, _ = small
    for n in (1, 2):
        label = _load(out / ISEG_DIR / f"subject-{n}-label.hdr")
        for kind in ("T1", "T2"):
            image = _load(out / ISEG_DIR / f"subject-{n}-{kind}.hdr")
            assert np.array_equal(image != 0, label > 0)  # T1 != 0 is exactly the brain mask


def test_mrbrains_holds_the_whole_head_and_noise(small):
    out, _ = small
    folder = out / MRBRAINS_DIR
    brain = _load(_mrb(folder, "TrainingData", 1, "LabelsForTesting")) > 0
    for stem in ("T1", "T1_IR", "T2_FLAIR"):
        image = _load(_mrb(folder, "TrainingData", 1, stem)).astype(np.float32)
        outside = image[~brain]
        assert np.mean(outside != 0) > 0.99  # Rician background, never a zero mask
        corner = image[:6, :6, :].ravel()  # air: noise only
        assert 5 < np.median(corner) < 60
        if stem == "T1":  # scalp fat is brighter than white matter on T1
            wm = _load(_mrb(folder, "TrainingData", 1, "LabelsForTesting")) == 3
            assert np.percentile(outside, 99.5) > np.median(image[wm])


# sequence, expected order of median intensity over (CSF, GM, WM)
MRB_CONTRAST = [("T1", (1, 2, 3)), ("T1_IR", (1, 2, 3)), ("T2_FLAIR", (1, 3, 2))]


@pytest.mark.parametrize("stem, order", MRB_CONTRAST)
def test_mrbrains_tissue_contrast(small, stem, order):
    out, _ = small
    folder = out / MRBRAINS_DIR
    label = _load(_mrb(folder, "TrainingData", 1, "LabelsForTesting"))
    image = _load(_mrb(folder, "TrainingData", 1, stem))
    medians = [np.median(image[label == c]) for c in order]
    assert medians == sorted(medians)


def test_iseg_contrast_is_isointense():
    """Full-size subject: T1 WM a little below GM and heavily overlapping it, CSF darker; T2 CSF brightest."""
    case = iseg_case(RealisticSpec(), 1)
    label, t1, t2 = case["label"], case["T1"], case["T2"]
    csf, gm, wm = (t1[label == v] for v in (10, 150, 250))
    assert np.median(csf) < np.median(wm) < np.median(gm)
    assert 0.8 < np.median(wm) / np.median(gm) < 1.0
    overlap = np.mean((wm > np.percentile(gm, 5)) & (wm < np.percentile(gm, 95)))
    assert overlap > 0.5
    assert np.median(t2[label == 10]) > 1.3 * max(np.median(t2[label == 150]), np.median(t2[label == 250]))


def test_iseg_brain_fits_with_sensible_axes():
    """Full-size: LR on the 144 axis, AP on 192, the brain inside with margin, longer front-to-back than wide."""
    label = iseg_case(RealisticSpec(), 2)["label"]
    idx = np.argwhere(label > 0)
    lo, hi = idx.min(axis=0), idx.max(axis=0)
    assert np.all(lo >= 6) and np.all(np.array(label.shape) - 1 - hi >= 6)
    extent = hi - lo + 1
    assert extent[1] > extent[0] and extent[1] > extent[2]  # anterior-posterior is the brain's long axis
    assert 100 < extent[0] < 138  # an infant brain: ~0.8 of an adult's


# ------------------------------------------------------------------------------ determinism, marker, refusal


def test_arrays_are_a_pure_function_of_seed_and_subject(small):
    out, _ = small
    case = iseg_case(SMALL, 2)
    for kind, data in case.items():
        assert np.array_equal(_load(out / ISEG_DIR / f"subject-2-{kind}.hdr")[..., 0], data)
    fewer = dataclasses.replace(SMALL, iseg_subjects=1, mrbrains_subjects=1)  # subject n does not depend on the count
    assert all(np.array_equal(case[k], v) for k, v in iseg_case(fewer, 2).items())
    mrb = mrbrains_case(SMALL, 1)
    for stem, (data, affine) in mrb.items():
        img = nib.load(str(_mrb(out / MRBRAINS_DIR, "TrainingData", 1, stem)))
        assert np.array_equal(np.asanyarray(img.dataobj), data) and np.allclose(img.affine, affine, atol=1e-5)
    other = dataclasses.replace(SMALL, seed=1)
    assert not np.array_equal(iseg_case(other, 2)["T1"], case["T1"])
    assert not np.array_equal(mrbrains_case(other, 1)["T1"][0], mrb["T1"][0])
    assert not np.array_equal(iseg_case(SMALL, 1)["label"], case["label"])  # subjects differ


def test_marker(small):
    out, _ = small
    marker = json.loads((out / MARKER).read_text())
    assert marker["generator"] == "advnorm.data.phantom.realistic" and marker["complete"] is True
    assert marker["spec"] == dataclasses.asdict(SMALL)
    assert marker["datasets"] == {"iseg2017": ISEG_DIR, "mrbrains13": MRBRAINS_DIR}
    assert "not real" in marker["description"].lower()


def test_rerun_replaces_only_its_own_folders(tmp_path):
    out = tmp_path / "out"
    spec = dataclasses.replace(SMALL, iseg_subjects=2, mrbrains_subjects=1, mrbrains_test_subjects=0)
    write_realistic(out, spec)
    (out / "notes.txt").write_text("mine")
    write_realistic(out, dataclasses.replace(spec, iseg_subjects=1))
    assert (out / "notes.txt").read_text() == "mine"
    assert not (out / ISEG_DIR / "subject-2-T1.hdr").exists()
    assert json.loads((out / MARKER).read_text())["spec"]["iseg_subjects"] == 1


@pytest.mark.parametrize("setup", ["foreign_file", "foreign_marker", "is_a_file", "dataset_is_a_link"])
def test_foreign_output_is_refused(tmp_path, setup):
    out = tmp_path / "out"
    real = tmp_path / "users_real_data"
    real.mkdir()
    (real / "subject-1-T1.hdr").write_text("real data")
    if setup == "is_a_file":
        out.write_text("x")
    else:
        out.mkdir()
        if setup == "foreign_file":
            (out / "subject-1-T1.hdr").write_text("real data")
        elif setup == "foreign_marker":
            (out / MARKER).write_text(json.dumps({"generator": "someone else"}))
        else:  # our marker, but the dataset folder now links to someone's data
            (out / MARKER).write_text(json.dumps({"generator": "advnorm.data.phantom.realistic"}))
            (out / ISEG_DIR).symlink_to(real)
    before = sorted(p.name for p in out.iterdir()) if out.is_dir() else None
    with pytest.raises(AdvnormError, match="not a folder|not written by a previous|a link or a file"):
        write_realistic(out, SMALL)
    assert (sorted(p.name for p in out.iterdir()) if out.is_dir() else None) == before
    assert (real / "subject-1-T1.hdr").read_text() == "real data"


@pytest.mark.parametrize(
    "change",
    [
        {"iseg_subjects": 0},
        {"mrbrains_subjects": 0},
        {"mrbrains_test_subjects": -1},
        {"seed": -1},
        {"shrink": 0},
        {"shrink": 5},
        {"shrink": 1.5},
        {"iseg_subjects": True},
        {"iseg_subjects": 1000},
    ],
)
def test_bad_spec_is_refused(tmp_path, change):
    with pytest.raises(AdvnormError, match="realistic phantom"):
        write_realistic(tmp_path / "out", dataclasses.replace(SMALL, **change))
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_one_full_size_subject_of_each(tmp_path):
    """Writes full-size files (one subject per set) and checks them against the real geometry, read back by advnorm."""
    spec = RealisticSpec(iseg_subjects=1, mrbrains_subjects=1)
    folders = write_realistic(tmp_path / "full", spec)
    plan = planned_headers(spec)
    for rel, (shape, zooms) in plan.items():
        header = nib.load(str(tmp_path / "full" / rel.replace("subject-N-", "subject-1-").replace("/N/", "/1/"))).header
        assert header.get_data_shape() == shape and np.allclose(header.get_zooms(), zooms, atol=1e-4)
    for ds in open_domains([str(folders["iseg2017"]), str(folders["mrbrains13"])]):
        subject = ds.load_case(ds.cases[0])
        assert set(np.unique(subject.label).tolist()) == {0, 1, 2, 3}
