"""The built-in multi-domain phantom: nnU-Net layout, determinism, anatomy and genuinely different domains."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from advnorm.data.phantom.acquisition import acquire, domain_contrast
from advnorm.data.phantom.anatomy import PAD, load_template, make_subject
from advnorm.data.phantom.generate import PhantomSpec, make_case, write_phantom
from advnorm.errors import AdvnormError

SMALL = PhantomSpec(domains=3, subjects=2, seed=0, scale=0.35)
NAMES = ["Dataset001_InfantT1", "Dataset002_AdultT1Thick", "Dataset003_T2Like"]


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("phantom") / "raw"
    return out, write_phantom(out, SMALL)


def _cases(folder: Path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(image, label, affine) of every case in a dataset folder, in case order."""
    result = []
    for image_path in sorted((folder / "imagesTr").glob("*_0000.nii.gz")):
        label_path = folder / "labelsTr" / image_path.name.replace("_0000.nii.gz", ".nii.gz")
        img, lab = nib.load(str(image_path)), nib.load(str(label_path))
        result.append((np.asarray(img.dataobj), np.asarray(lab.dataobj), img.affine))
    return result


def _stats(folder: Path) -> dict[str, float]:
    image, label, _ = _cases(folder)[0]
    return {name: float(np.median(image[label == c])) for c, name in ((1, "CSF"), (2, "GM"), (3, "WM"))}


def test_template_is_package_data():
    tpl = load_template()
    assert tpl.probs.shape == (3, 107, 131, 109)
    assert np.allclose(tpl.spacing, 1.5)
    assert tpl.probs.min() >= 0.0 and tpl.probs.max() <= 1.0


def test_layout_is_nnunet_v2_raw(small):
    out, folders = small
    assert [f.name for f in folders] == NAMES
    assert all(f.parent == out for f in folders)
    for folder in folders:
        name = folder.name.split("_", 1)[1]
        meta = json.loads((folder / "dataset.json").read_text())
        assert meta["channel_names"] == {"0": "T1"}
        assert meta["labels"] == {"background": 0, "CSF": 1, "GM": 2, "WM": 3}
        assert meta["numTraining"] == SMALL.subjects
        assert meta["file_ending"] == ".nii.gz"
        assert "synthetic" in meta["description"].lower() and "ICBM 2009a" in meta["description"]
        images = sorted(p.name for p in (folder / "imagesTr").iterdir())
        labels = sorted(p.name for p in (folder / "labelsTr").iterdir())
        assert images == [f"{name}_{j:03d}_0000.nii.gz" for j in range(1, SMALL.subjects + 1)]
        assert labels == [f"{name}_{j:03d}.nii.gz" for j in range(1, SMALL.subjects + 1)]
        for image, label, affine in _cases(folder):
            assert image.dtype == np.float32 and label.dtype == np.uint8
            assert image.shape == label.shape
            assert np.allclose(affine[:3, :3], np.eye(3))
    marker = json.loads((out / "phantom.json").read_text())
    assert marker["complete"] is True and marker["datasets"] == NAMES


def test_preview_png(small):
    out, _ = small
    png = out / "phantom.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 5000


def test_labels_and_skull_stripping(small):
    _, folders = small
    for folder in folders:
        for image, label, _ in _cases(folder):
            assert set(np.unique(label).tolist()) == {0, 1, 2, 3}
            assert np.all(image[label == 0] == 0)
            assert np.all(np.isfinite(image)) and image.min() >= 0
            assert np.mean(image[label > 0] > 0) > 0.99
            brain = np.argwhere(label > 0)
            assert np.all(brain.min(axis=0) >= PAD)
            assert np.all(np.array(label.shape) - 1 - brain.max(axis=0) >= PAD)


def test_deterministic_by_seed(small, tmp_path):
    _, folders = small
    again = write_phantom(tmp_path / "again", SMALL)
    for a, b in zip(folders, again, strict=True):
        for (ia, la, _), (ib, lb, _) in zip(_cases(a), _cases(b), strict=True):
            assert ia.tobytes() == ib.tobytes() and la.tobytes() == lb.tobytes()
    other_image, other_label = make_case(PhantomSpec(domains=3, subjects=2, seed=1, scale=0.35), 1, 1)
    image, label, _ = _cases(folders[0])[0]
    assert other_label.shape != label.shape or not np.array_equal(other_label, label)
    assert other_image.shape != image.shape or not np.array_equal(other_image, image)


def test_subjects_differ(small):
    _, folders = small
    for folder in folders:
        (_, l1, _), (_, l2, _) = _cases(folder)
        if l1.shape == l2.shape:
            assert np.mean(l1 != l2) > 0.02
    # the deformation itself: same rng -> same subject, different rng -> different brain volume
    a = make_subject(np.random.default_rng(3), 0.35)
    b = make_subject(np.random.default_rng(3), 0.35)
    c = make_subject(np.random.default_rng(4), 0.35)
    assert np.array_equal(a.label, b.label)
    assert a.label.shape != c.label.shape or not np.array_equal(a.label, c.label)
    # different domains hold different subjects too
    assert _cases(folders[0])[0][1].shape != _cases(folders[1])[0][1].shape or not np.array_equal(
        _cases(folders[0])[0][1], _cases(folders[1])[0][1]
    )


def test_domains_have_different_contrast(small):
    _, folders = small
    infant, adult, t2 = (_stats(f) for f in folders)
    # InfantT1 is isointense (WM at or slightly below GM); AdultT1Thick has WM well above GM
    assert 0.8 < infant["WM"] / infant["GM"] < 1.0
    assert adult["WM"] / adult["GM"] > 1.25
    assert infant["CSF"] < infant["WM"] and adult["CSF"] < adult["GM"] < adult["WM"]
    # T2Like inverts the order: CSF brightest, WM darkest
    assert t2["CSF"] > t2["GM"] > t2["WM"]
    # global intensity ranges differ
    maxima = [max(float(image.max()) for image, _, _ in _cases(f)) for f in folders]
    assert maxima[0] < 400 and 600 < maxima[1] < maxima[2]


def test_gm_wm_overlap_is_strong_only_in_infant(small):
    _, folders = small

    def auc(folder: Path) -> float:  # P(WM voxel > GM voxel)
        image, label, _ = _cases(folder)[0]
        gm, wm = np.sort(image[label == 2]), image[label == 3]
        return float(np.searchsorted(gm, wm).mean() / gm.size)

    assert 0.2 < auc(folders[0]) < 0.5
    assert auc(folders[1]) > 0.9


def test_a_classifier_from_one_domain_fails_on_another(small):
    """Nearest tissue mean on z-scored intensities: fine in-domain, much worse across domains."""
    _, folders = small

    def zscored(folder: Path, j: int):
        image, label, _ = _cases(folder)[j]
        brain = label > 0
        values = image[brain]
        return (values - values.mean()) / values.std(), label[brain]

    def mean_dice(train: Path, test: Path) -> float:
        z, lab = zscored(train, 0)
        centres = np.array([z[lab == c].mean() for c in (1, 2, 3)])
        z2, lab2 = zscored(test, 1)
        pred = np.argmin(np.abs(z2[:, None] - centres[None]), axis=1) + 1
        return float(
            np.mean(
                [2 * np.sum((pred == c) & (lab2 == c)) / (np.sum(pred == c) + np.sum(lab2 == c)) for c in (1, 2, 3)]
            )
        )

    adult_in, adult_to_t2, adult_to_infant = (mean_dice(folders[1], f) for f in (folders[1], folders[2], folders[0]))
    assert adult_in > 0.75
    assert adult_to_t2 < adult_in - 0.3
    assert adult_to_infant < adult_in - 0.15


def test_thick_slices_blur_through_plane():
    """AdultT1Thick's 3 mm slices cut the superior-inferior gradient energy more than the in-plane one."""
    anatomy = make_subject(np.random.default_rng(0), 0.35)
    adult = dataclasses.replace(domain_contrast(2, 0), noise=0.0, bias=0.0)
    assert adult.thick

    def gradient_energy(image: np.ndarray) -> np.ndarray:
        out = []
        for axis in range(3):
            inside = anatomy.mask.take(range(1, image.shape[axis]), axis=axis) & anatomy.mask.take(
                range(image.shape[axis] - 1), axis=axis
            )
            out.append(float(np.mean(np.diff(image, axis=axis)[inside] ** 2)))
        return np.array(out)

    thin = gradient_energy(acquire(anatomy, dataclasses.replace(adult, thick=False), np.random.default_rng(1)))
    thick = gradient_energy(acquire(anatomy, adult, np.random.default_rng(1)))
    kept = thick / thin
    assert kept[2] < 0.85 * kept[:2].min()  # the superior-inferior axis loses the most
    assert kept[2] < 0.5


def test_more_domains_are_seeded_random(tmp_path):
    spec = PhantomSpec(domains=4, subjects=1, seed=5, scale=0.3)
    folders = write_phantom(tmp_path / "four", spec)
    assert [f.name for f in folders][-1] == "Dataset004_Random4"
    image, label, _ = _cases(folders[3])[0]
    assert set(np.unique(label).tolist()) == {0, 1, 2, 3}
    again_image, _ = make_case(spec, 4, 1)
    assert np.array_equal(image, again_image)


def test_rerun_over_previous_phantom_replaces_it(tmp_path):
    out = tmp_path / "raw"
    write_phantom(out, PhantomSpec(domains=3, subjects=2, scale=0.25))
    folders = write_phantom(out, PhantomSpec(domains=2, subjects=1, scale=0.25))
    assert sorted(p.name for p in out.glob("Dataset*")) == NAMES[:2]
    assert [p.name for p in (folders[0] / "imagesTr").iterdir()] == ["InfantT1_001_0000.nii.gz"]
    assert json.loads((folders[0] / "dataset.json").read_text())["numTraining"] == 1


@pytest.mark.parametrize(
    "spec",
    [
        PhantomSpec(domains=1),
        PhantomSpec(domains=0),
        PhantomSpec(subjects=0),
        PhantomSpec(seed=-1),
        PhantomSpec(scale=0.0),
        PhantomSpec(scale=float("nan")),
    ],
)
def test_bad_spec_is_refused(tmp_path, spec):
    with pytest.raises(AdvnormError):
        write_phantom(tmp_path / "raw", spec)
    assert not (tmp_path / "raw").exists()


def test_foreign_output_folder_is_refused(tmp_path):
    out = tmp_path / "raw"
    out.mkdir()
    (out / "mine.txt").write_text("precious")
    with pytest.raises(AdvnormError, match="not written by a previous phantom run") as info:
        write_phantom(out, SMALL)
    assert str(out) in str(info.value)
    assert (out / "mine.txt").read_text() == "precious"
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]

    (out / "phantom.json").write_text("not json")
    with pytest.raises(AdvnormError):
        write_phantom(out, SMALL)

    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(AdvnormError, match="not a folder"):
        write_phantom(a_file, SMALL)


def test_empty_existing_folder_is_fine(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    folders = write_phantom(out, PhantomSpec(domains=2, subjects=1, scale=0.25))
    assert len(folders) == 2 and (out / "phantom.png").exists()
