"""Every bad input is one AdvnormError whose one-line message names the offending file or folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from advnorm.data.layouts import open_domains, open_input
from advnorm.errors import AdvnormError
from tests.fixtures import make_iseg2017, make_mrbrains13, make_mrbrains18, make_nnunet, save_analyze, save_nifti


def _nnunet(tmp: Path) -> Path:
    return make_nnunet(tmp, "Dataset001_Bad", n=2)


def _iseg(tmp: Path) -> Path:
    return make_iseg2017(tmp / "iseg", n_labelled=2, n_unlabelled=0)


def _rewrite_nifti(path: Path, fn) -> Path:
    """Replace ``path`` by ``fn(data, affine) -> (data, affine)``."""
    img = nib.load(str(path))
    data, affine = fn(np.array(np.asanyarray(img.dataobj)), img.affine.copy())  # a copy: the file is rewritten below
    save_nifti(path, data, affine)
    return path


def _rewrite_analyze(path: Path, data: np.ndarray) -> Path:
    save_analyze(path, data)
    return path


def _truncate(path: Path) -> Path:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return path


def _nnunet_image(tmp, fn):
    root = _nnunet(tmp)
    return root, _rewrite_nifti(root / "imagesTr" / "case_001_0000.nii.gz", fn)


def _with_nan(value):
    def fn(data, affine):
        data = data.astype(np.float32)
        data[5, 6, 7] = value
        return data, affine

    return fn


def _dataset_json(tmp, text):
    root = _nnunet(tmp)
    (root / "dataset.json").write_text(text)
    return root, root / "dataset.json"


def _labels_json(labels, **extra):
    return json.dumps(
        {"channel_names": {"0": "T1"}, "labels": labels, "numTraining": 2, "file_ending": ".nii.gz", **extra}
    )


def _folder(tmp, name, files=(), dirs=()):
    folder = tmp / name
    folder.mkdir()
    for f in files:
        (folder / f).write_text("hello")
    for d in dirs:
        (folder / d).mkdir()
    return folder, folder


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def _remove(path: Path) -> Path:
    path.unlink()
    return path


def _mrb13(tmp, **kw):
    return make_mrbrains13(tmp / "mrb13", n=2, **kw)


def _mrb13_without_labels(tmp):
    root = _mrb13(tmp)
    for name in ("LabelsForTesting.nii", "LabelsForTraining.nii"):
        (root / "TrainingData" / "2" / name).unlink()
    return root, root / "TrainingData" / "2" / "T1.nii"


def _mrb13_only_1mm(tmp):
    root = _mrb13(tmp)
    (root / "TrainingData" / "2" / "T1.nii").unlink()
    return root, root / "TrainingData" / "2"


def _mrb13_mhd(tmp):
    root = _mrb13(tmp)
    folder = root / "TrainingData" / "2"
    (folder / "T1.nii").rename(folder / "T1.mhd")
    return root, folder / "T1.mhd"


def _mrb18_without_segm(tmp):
    root = make_mrbrains18(tmp / "mrb18", n=2)
    _remove(root / "training" / "4" / "segm.nii.gz")
    return root, root / "training" / "4" / "pre" / "reg_T1.nii.gz"


def _iseg_label(tmp, fn):
    root = _iseg(tmp)
    path = root / "subject-2-label.hdr"
    data = np.array(np.asanyarray(nib.load(str(path)).dataobj))[..., 0]  # a copy, not a memory map of the file
    return root, _rewrite_analyze(path, fn(data))


def _iseg_add_77(data):
    data = data.copy()
    idx = np.argwhere(data == 150)[:3]
    data[tuple(idx.T)] = 77
    return data


def _garbage(path: Path) -> Path:
    path.write_bytes(os.urandom(3000))
    return path


def _nnunet_label(tmp, fn):
    root = _nnunet(tmp)
    return root, _rewrite_nifti(root / "labelsTr" / "case_001.nii.gz", fn)


def _nnunet_image_label_shift(tmp):
    def shift(data, affine):
        affine[:3, 3] += (2.0, 0.0, 0.0)
        return data, affine

    return _nnunet_label(tmp, shift)


# name -> builder(tmp) returning (spec, offending path); the error is raised by open_domains or by loading
CASES = {
    "missing_folder": lambda t: (t / "no_such_dataset", t / "no_such_dataset"),
    "empty_folder": lambda t: _folder(t, "empty_dataset"),
    "only_hidden_files": lambda t: _folder(t, "hidden_only", files=[".DS_Store"], dirs=["__MACOSX"]),
    "unrecognisable_folder": lambda t: _folder(t, "random_stuff", files=["notes.txt", "scan.dcm"], dirs=["a", "b"]),
    "file_not_folder": lambda t: (t / "notes.txt", _write(t / "notes.txt", b"x")),
    "forced_iseg_on_nnunet": lambda t: (f"iseg2017:{_nnunet(t)}", t / "Dataset001_Bad"),
    "forced_nnunet_on_iseg": lambda t: (f"nnunet:{_iseg(t)}", t / "iseg" / "dataset.json"),
    "forced_mrbrains13_on_iseg": lambda t: (f"mrbrains13:{_iseg(t)}", t / "iseg"),
    "forced_mrbrains18_on_nnunet": lambda t: (f"mrbrains18:{_nnunet(t)}", t / "Dataset001_Bad"),
    "forced_layout_missing_folder": lambda t: (f"nnunet:{t / 'gone'}", t / "gone"),
    "nnunet_image_without_label": lambda t: (
        _nnunet(t),
        _remove(t / "Dataset001_Bad" / "labelsTr" / "case_002.nii.gz").parent.parent
        / "imagesTr"
        / "case_002_0000.nii.gz",
    ),
    "nnunet_missing_dataset_json": lambda t: (_nnunet(t), _remove(t / "Dataset001_Bad" / "dataset.json")),
    "nnunet_invalid_dataset_json": lambda t: _dataset_json(t, '{"labels": {"background": 0,'),
    "nnunet_no_labels_in_json": lambda t: _dataset_json(t, json.dumps({"channel_names": {"0": "T1"}})),
    "nnunet_no_background_label": lambda t: _dataset_json(t, _labels_json({"CSF": 1, "GM": 2, "WM": 3})),
    "nnunet_one_id_for_two_labels": lambda t: _dataset_json(
        t, _labels_json({"background": 0, "CSF": 1, "GM": 1, "WM": 3})
    ),
    "nnunet_non_integer_label": lambda t: _dataset_json(
        t, _labels_json({"background": 0, "CSF": 1, "GM": "two", "WM": 3})
    ),
    "nnunet_unsupported_file_ending": lambda t: _dataset_json(
        t, _labels_json({"background": 0, "CSF": 1, "GM": 2, "WM": 3}, file_ending=".png")
    ),
    "mrbrains13_subject_without_labels": _mrb13_without_labels,
    "mrbrains13_only_t1_1mm": _mrb13_only_1mm,
    "mrbrains13_metaimage_release": _mrb13_mhd,
    "mrbrains18_subject_without_segm": _mrb18_without_segm,
    "iseg_label_without_image": lambda t: (
        _iseg(t),
        _rewrite_analyze(t / "iseg" / "subject-7-label.hdr", np.zeros((24, 28, 32), np.uint8)),
    ),
    "iseg_header_without_img": lambda t: (_iseg(t), _remove(t / "iseg" / "subject-1-T1.img").with_suffix(".hdr")),
    "shape_mismatch": lambda t: _iseg_label(t, lambda d: d[:, :, :-2]),
    "affine_mismatch": _nnunet_image_label_shift,
    "label_values_outside_map": lambda t: _iseg_label(t, _iseg_add_77),
    "nnunet_label_not_in_dataset_json": lambda t: _nnunet_label(
        t, lambda d, a: (np.where(d == 3, 7, d).astype(np.uint8), a)
    ),
    "nan_voxels": lambda t: _nnunet_image(t, _with_nan(np.nan)),
    "inf_voxels": lambda t: _nnunet_image(t, _with_nan(np.inf)),
    "image_4d": lambda t: _nnunet_image(t, lambda d, a: (np.stack([d, d], axis=-1), a)),
    "image_2d": lambda t: _nnunet_image(t, lambda d, a: (d[:, :, 10], a)),
    "truncated_nii_gz": lambda t: (_nnunet(t), _truncate(t / "Dataset001_Bad" / "imagesTr" / "case_002_0000.nii.gz")),
    # an Analyze pair is named by its header (load_volume's message names the .hdr it was given)
    "truncated_img": lambda t: (_iseg(t), _truncate(t / "iseg" / "subject-2-T1.img").with_suffix(".hdr")),
    "corrupt_nii_header": lambda t: (
        _mrb13(t),
        _garbage(t / "mrb13" / "MRBrainS13DataNii" / "TrainingData" / "1" / "T1.nii"),
    ),
    "truncated_label_file": lambda t: (_nnunet(t), _truncate(t / "Dataset001_Bad" / "labelsTr" / "case_001.nii.gz")),
    "empty_label_file": lambda t: (_nnunet(t), _write(t / "Dataset001_Bad" / "labelsTr" / "case_001.nii.gz", b"")),
    "all_zero_image": lambda t: _nnunet_image(t, lambda d, a: (np.zeros_like(d), a)),
}


def _open_and_load(spec: str) -> None:
    for ds in open_domains([spec]):
        ds.load(labelled_only=False)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_dataset_is_a_clear_error(name, tmp_path):
    spec, offending = CASES[name](tmp_path)
    with pytest.raises(AdvnormError) as info:
        _open_and_load(str(spec))
    message = str(info.value)
    assert Path(offending).name in message, message
    assert str(offending) in message, message
    assert "\n" not in message


@pytest.mark.parametrize(
    "spec,needles",
    [
        ("foo:/some/where", ["foo", "iseg2017", "mrbrains13", "mrbrains18", "nnunet"]),
        ("MRBrains:/data/x", ["MRBrains", "valid layouts"]),
    ],
)
def test_unknown_forced_layout_lists_valid_ones(spec, needles):
    with pytest.raises(AdvnormError) as info:
        open_domains([spec])
    assert all(n in str(info.value) for n in needles), str(info.value)


def test_unrecognisable_folder_lists_layouts(tmp_path):
    folder, _ = _folder(tmp_path, "whatever", files=["a.txt"])
    with pytest.raises(AdvnormError) as info:
        open_domains([str(folder)])
    assert all(n in str(info.value) for n in ("whatever", "iseg2017", "mrbrains13", "mrbrains18", "nnunet"))


def test_no_specs_is_an_error():
    with pytest.raises(AdvnormError):
        open_domains([])


INPUT_CASES = {
    "missing_file": lambda t: t / "scan.nii.gz",
    "unsupported_extension": lambda t: _write(t / "scan.txt", b"x"),
    "empty_file": lambda t: _write(t / "scan.nii.gz", b""),
    "img_without_hdr": lambda t: _write(t / "scan.img", b"\0" * 64),
    "folder_without_layout": lambda t: _folder(t, "scans", files=["a.txt"])[0],
    "garbage_nii": lambda t: _garbage(t / "scan.nii"),
    "truncated_nii_gz": lambda t: _truncate(
        save_nifti(t / "scan.nii.gz", np.ones((20, 20, 20), np.float32), np.eye(4))
    ),
    "image_2d": lambda t: save_nifti(t / "scan.nii.gz", np.ones((20, 20), np.float32), np.eye(4)),
}


@pytest.mark.parametrize("name", list(INPUT_CASES))
def test_bad_predict_input_is_a_clear_error(name, tmp_path):
    path = INPUT_CASES[name](tmp_path)
    with pytest.raises(AdvnormError) as info:
        for ds in [open_input(str(path))]:
            ds.load(labelled_only=False)
    assert str(path) in str(info.value), str(info.value)
