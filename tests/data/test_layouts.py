"""Layout readers on tiny fixtures in the real download layouts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from advnorm.data.grid import resample
from advnorm.data.layouts import LAYOUTS, CaseRef, Dataset, open_domains, open_input, read_alike
from advnorm.data.layouts.nnunet import readings_from
from advnorm.errors import AdvnormError
from advnorm.labels import CLASS_NAMES
from tests.fixtures import make_iseg2017, make_mrbrains13, make_mrbrains18, make_nnunet

ISEG_MAP = {0: 0, 10: 1, 150: 2, 250: 3}
MRB13_TRAINING_MAP = {0: 0, 1: 2, 2: 2, 3: 3, 4: 3, 5: 1, 6: 1, 7: 0, 8: 0}
MRB18_MAP = {0: 0, 1: 2, 2: 2, 3: 3, 4: 3, 5: 1, 6: 1, 7: 0, 8: 0, 9: 0, 10: 0}
REORDERED = {"background": 0, "WM": 1, "GM": 2, "CSF": 3}


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("layouts")
    return {
        "iseg2017": make_iseg2017(base / "iSeg-2017-Training"),
        "mrbrains13": make_mrbrains13(base / "mrb13", n_test=2),
        "mrbrains13_training_labels": make_mrbrains13(base / "mrb13t", training_labels=True),
        "mrbrains18": make_mrbrains18(base / "mrb18"),
        "nnunet": make_nnunet(base, "Dataset001_Test", n_test=1),
        "nnunet_reordered": make_nnunet(base, "Dataset002_Reordered", labels=REORDERED),
    }


# key, layout, domain name, n labelled, n unlabelled, label_values, case ids
READERS = [
    ("iseg2017", "iseg2017", "iseg2017", 2, 1, (0, 10, 150, 250), ["subject-1", "subject-2", "subject-3"]),
    ("mrbrains13", "mrbrains13", "mrbrains13", 2, 2, (0, 1, 2, 3), ["1", "2", "test-1", "test-2"]),
    ("mrbrains18", "mrbrains18", "mrbrains18", 2, 0, (0, 1, 2, 3), ["1", "4"]),
    ("nnunet", "nnunet", "Test", 3, 1, (0, 1, 2, 3), ["case_001", "case_002", "case_003", "case_004"]),
    ("nnunet_reordered", "nnunet", "Reordered", 3, 0, (0, 3, 2, 1), ["case_001", "case_002", "case_003"]),
]


@pytest.mark.parametrize("forced", [False, True], ids=["auto", "forced"])
@pytest.mark.parametrize("key,layout,name,n_lab,n_unlab,values,ids", READERS, ids=[r[0] for r in READERS])
def test_reader_finds_cases(roots, forced, key, layout, name, n_lab, n_unlab, values, ids):
    spec = f"{layout}:{roots[key]}" if forced else str(roots[key])
    (ds,) = read_alike(open_domains([spec]), CLASS_NAMES)  # MRBrainS18 as tissues; the others are
    assert (ds.layout, ds.name, ds.label_values) == (layout, name, values)
    assert [c.case_id for c in ds.cases] == ids
    assert (len(ds.labelled()), len(ds.unlabelled())) == (n_lab, n_unlab)
    for case in ds.cases:
        assert case.image.is_file() and (case.label is None or case.label.is_file())
    subjects = ds.load()
    assert [s.case_id for s in subjects] == [c.case_id for c in ds.labelled()]
    for s in subjects:
        assert s.domain == name and s.layout == layout and s.label_values == values
        assert s.image.dtype == np.float32 and s.label.dtype == np.uint8
        assert set(np.unique(s.label)) == {0, 1, 2, 3}
        assert np.allclose(s.spacing, 1.0)
        assert not s.image[~s.mask].any()


def _expected_label(label_path: Path, mapping: dict[int, int], subject) -> np.ndarray:
    """The label the reader should produce, computed independently of the layout code."""
    src = nib.load(str(label_path))
    raw = np.asarray(src.dataobj).reshape(src.shape[:3]).astype(np.int64)
    mapped = np.vectorize(mapping.__getitem__, otypes=[np.uint8])(raw)
    out = resample(mapped, src.affine, subject.affine, subject.shape, order=0)
    return np.where(subject.mask, out, 0)


# key, case index, label file expected, its own id -> class map
MAPPINGS = [
    ("iseg2017", 0, "subject-1-label.hdr", ISEG_MAP),
    ("mrbrains13", 1, "LabelsForTesting.nii", {0: 0, 1: 1, 2: 2, 3: 3}),
    ("mrbrains13_training_labels", 0, "LabelsForTraining.nii", MRB13_TRAINING_MAP),
    ("mrbrains18", 1, "segm.nii.gz", MRB18_MAP),
    ("nnunet", 0, "case_001.nii.gz", {0: 0, 1: 1, 2: 2, 3: 3}),
    ("nnunet_reordered", 2, "case_003.nii.gz", {0: 0, 1: 3, 2: 2, 3: 1}),
]


@pytest.mark.parametrize("key,index,label_name,mapping", MAPPINGS, ids=[m[0] for m in MAPPINGS])
def test_label_mapping(roots, key, index, label_name, mapping):
    (ds,) = read_alike(open_domains([str(roots[key])]), CLASS_NAMES)
    case = ds.cases[index]
    assert case.label.name == label_name
    subject = ds.load_case(case)
    np.testing.assert_array_equal(subject.label, _expected_label(case.label, mapping, subject))


def test_mrbrains13_training_labels_give_same_classes_as_testing_labels(roots):
    (a,) = open_domains([str(roots["mrbrains13"])])
    (b,) = open_domains([str(roots["mrbrains13_training_labels"])])
    sa, sb = a.load_case(a.cases[0]), b.load_case(b.cases[0])
    np.testing.assert_array_equal(sa.label, sb.label)
    np.testing.assert_array_equal(sa.image, sb.image)


def test_nnunet_label_order_does_not_matter(roots):
    (a,) = open_domains([str(roots["nnunet"])])
    (b,) = open_domains([str(roots["nnunet_reordered"])])
    for ca, cb in zip(a.labelled(), b.labelled(), strict=True):
        np.testing.assert_array_equal(a.load_case(ca).label, b.load_case(cb).label)


@pytest.mark.parametrize("key", ["mrbrains13", "mrbrains18"])
def test_3mm_slices_resample_to_1mm_with_valid_labels(roots, key):
    (ds,) = read_alike(open_domains([str(roots[key])]), CLASS_NAMES)
    for s in ds.load():
        assert s.source.shape == (36, 36, 10)
        assert np.allclose(s.source.spacing, (0.958, 0.958, 3.0), atol=1e-3)
        assert np.allclose(s.spacing, 1.0) and np.allclose(s.affine[:3, :3], np.eye(3))
        assert set(np.unique(s.label)) <= {0, 1, 2, 3}
        assert s.image.shape[2] > 20  # 30 mm of slices became ~30 voxels
        assert np.array_equal(s.mask, s.label > 0)  # skull-stripped with the label map


def test_mrbrains13_never_uses_t1_1mm(roots):
    (ds,) = open_domains([str(roots["mrbrains13"])])
    assert {c.image.name for c in ds.cases} == {"T1.nii"}
    for s in ds.load(labelled_only=False):
        assert Path(s.source.path).name == "T1.nii" and s.source.shape != (30, 30, 30)


def test_mrbrains13_accepts_training_and_test_folders(roots):
    base = roots["mrbrains13"]
    (train,) = open_domains([str(base / "TrainingData")])
    (test,) = open_domains([str(base / "TestData")])
    assert [c.case_id for c in train.cases] == ["1", "2"] and not train.unlabelled()
    assert [c.case_id for c in test.cases] == ["test-1", "test-2"] and not test.labelled()


def test_mrbrains18_accepts_training_folder(roots):
    (ds,) = open_domains([str(roots["mrbrains18"] / "training")])
    assert ds.layout == "mrbrains18" and [c.case_id for c in ds.cases] == ["1", "4"]


def test_unlabelled_subjects_load_without_label(roots):
    for key in ("iseg2017", "mrbrains13", "nnunet"):
        (ds,) = open_domains([str(roots[key])])
        subjects = ds.load(labelled_only=False)
        assert len(subjects) == len(ds.cases)
        assert [s.label is None for s in subjects] == [c.label is None for c in ds.cases]
        assert all(s.mask.any() for s in subjects)


def test_with_label_false_keeps_label_based_skull_stripping(roots):
    (ds,) = open_domains([str(roots["mrbrains13"])])
    full, bare = ds.load_case(ds.cases[0]), ds.load_case(ds.cases[0], with_label=False)
    assert bare.label is None
    np.testing.assert_array_equal(full.mask, bare.mask)
    np.testing.assert_array_equal(full.image, bare.image)


def test_domain_names_are_made_unique(roots, tmp_path):
    other = make_iseg2017(tmp_path / "iSeg-2019-Training")
    specs = [str(roots["iseg2017"]), f"iseg2017:{other}", str(roots["nnunet"])]
    assert [d.name for d in open_domains(specs)] == ["iseg2017", "iseg2017_2", "Test"]


@pytest.mark.parametrize("second", ["same", "forced", "symlink", "trailing-slash"])
def test_the_same_folder_twice_is_refused(roots, tmp_path, second):
    """Regression (issue 15.5): --data X --data X became two domains and counted every subject twice."""
    folder = roots["iseg2017"]
    spec = {"same": str(folder), "forced": f"iseg2017:{folder}", "trailing-slash": str(folder) + "/"}.get(second)
    if second == "symlink":
        (tmp_path / "link").symlink_to(folder, target_is_directory=True)
        spec = str(tmp_path / "link")
    with pytest.raises(AdvnormError, match="dataset folder is given twice"):
        open_domains([str(folder), spec])


NNUNET_SILENT_DROPS = [
    (
        "other-ending",
        lambda d: (d / "imagesTr" / "case_002_0000.nii.gz").rename(d / "imagesTr" / "case_002_0000.nii"),
        "file_ending",
    ),
    (
        "no-channel",
        lambda d: (d / "imagesTr" / "case_002_0000.nii.gz").rename(d / "imagesTr" / "case_002.nii.gz"),
        "channel suffix",
    ),
    (
        "orphan-label",
        lambda d: shutil.copy(d / "labelsTr" / "case_001.nii.gz", d / "labelsTr" / "case_099.nii.gz"),
        "has no image",
    ),
]


@pytest.mark.parametrize("name,change,message", NNUNET_SILENT_DROPS, ids=[c[0] for c in NNUNET_SILENT_DROPS])
def test_nnunet_files_are_never_silently_ignored(tmp_path, name, change, message):
    """Regression (issue 15.7): a case saved as .nii in a .nii.gz dataset was dropped without a word."""
    folder = make_nnunet(tmp_path, "Dataset005_Mixed")
    change(folder)
    with pytest.raises(AdvnormError, match=message):
        open_domains([str(folder)])


def test_iseg2019_folder_and_zip_nesting(tmp_path):
    make_iseg2017(tmp_path / "iSeg-2019-Validation" / "iSeg-2019-Validation", n_labelled=0, n_unlabelled=2)
    (tmp_path / "iSeg-2019-Validation" / "__MACOSX").mkdir()
    (ds,) = open_domains([str(tmp_path / "iSeg-2019-Validation")])
    assert ds.layout == "iseg2017" and ds.root.name == "iSeg-2019-Validation" and len(ds.unlabelled()) == 2


def test_macos_resource_forks_are_ignored(tmp_path):
    root = make_iseg2017(tmp_path / "iseg", n_labelled=1, n_unlabelled=0)
    (root / "._subject-1-T1.hdr").write_bytes(b"\0\5\26\7 junk")
    (ds,) = open_domains([str(root)])
    assert [c.image.name for c in ds.cases] == ["subject-1-T1.hdr"]


@pytest.mark.parametrize(
    "labels,values",
    [
        ({"background": 0, "CSF": 1, "GM": 2, "WM": 3}, (0, 1, 2, 3)),
        ({"background": 0, "WM": 1, "GM": 2, "CSF": 3}, (0, 3, 2, 1)),
        (
            {"background": 0, "cerebrospinal_fluid": 3, "Grey Matter": 1, "white-matter": 2, "cerebellum": 4},
            (0, 3, 1, 2),
        ),
        ({"Background": 0, "Cortical Gray Matter": 5, "White Matter": 6, "csf": 7, "tumour": 8}, (0, 7, 5, 6)),
        ({"0": "background", "1": "CSF", "2": "GM", "3": "WM"}, (0, 1, 2, 3)),  # nnU-Net v1: id -> name
    ],
)
def test_nnunet_labels_found_by_name(labels, values, tmp_path):
    own, tissues = readings_from(labels, tmp_path / "dataset.json")
    assert tissues is not None and tissues.classes == CLASS_NAMES
    label_map, label_values = tissues.label_map, tissues.values
    assert label_values == values
    assert len(own.classes) == len(labels) and (own == tissues) == (len(labels) == 4)
    assert {label_map[v] for v in values} == {0, 1, 2, 3} and [label_map[v] for v in values] == [0, 1, 2, 3]
    assert all(label_map[i] == 0 for i in label_map if i not in values)


def test_nnunet_other_named_labels_map_to_background(tmp_path):
    labels = {"background": 0, "CSF": 1, "gray matter": 2, "WM": 3, "cerebellum": 4}
    (own,) = open_domains([str(make_nnunet(tmp_path, "Dataset010_Extra", n=1, labels=labels))])
    assert own.classes == ("background", "CSF", "gray matter", "WM", "cerebellum")
    ds = own.read_as(CLASS_NAMES)
    assert ds.label_map[4] == 0
    raw = np.asarray(nib.load(str(ds.cases[0].label)).dataobj)
    assert 4 in raw
    s = ds.load_case(ds.cases[0])
    assert set(np.unique(s.label)) == {0, 1, 2, 3}


def test_nnunet_v1_task_folder_and_other_file_ending(tmp_path):
    root = make_nnunet(tmp_path, "Task005_Brains", n=2, file_ending=".nii")
    (ds,) = open_domains([str(root)])
    assert ds.name == "Brains" and ds.layout == "nnunet" and ds.cases[0].image.name == "case_001_0000.nii"
    assert ds.load()[0].label is not None


def test_nnunet_ignores_other_channels(tmp_path):
    root = make_nnunet(tmp_path, "Dataset003_TwoChannels", n=2)
    for img in sorted((root / "imagesTr").glob("*_0000.nii.gz")):
        shutil.copy(img, img.with_name(img.name.replace("_0000", "_0001")))
    meta = json.loads((root / "dataset.json").read_text())
    meta["channel_names"] = {"0": "T1", "1": "FLAIR"}
    (root / "dataset.json").write_text(json.dumps(meta))
    (ds,) = open_domains([str(root)])
    assert [c.image.name for c in ds.cases] == ["case_001_0000.nii.gz", "case_002_0000.nii.gz"]


def test_open_input_folder(roots):
    ds = open_input(str(roots["nnunet"]))
    assert ds.layout == "nnunet" and len(ds.cases) == 4


@pytest.mark.parametrize(
    "key,relative,layout,values,case_id",
    [
        ("nnunet", "imagesTs/case_004_0000.nii.gz", "file", (0, 1, 2, 3), "case_004_0000"),
        ("mrbrains13", "TestData/1/T1.nii", "file", (0, 1, 2, 3), "T1"),
        ("iseg2017", "subject-3-T1.hdr", "iseg2017", (0, 10, 150, 250), "subject-3"),
        ("iseg2017", "subject-3-T1.img", "iseg2017", (0, 10, 150, 250), "subject-3"),
        ("nnunet", "iseg2017:imagesTs/case_004_0000.nii.gz", "iseg2017", (0, 10, 150, 250), "case_004_0000"),
    ],
)
def test_open_input_single_file(roots, key, relative, layout, values, case_id):
    forced, _, relative = relative.rpartition(":")
    ds = open_input(f"{forced}:{roots[key] / relative}" if forced else str(roots[key] / relative))
    assert isinstance(ds, Dataset) and ds.layout == layout and ds.label_values == values
    (case,) = ds.cases
    assert isinstance(case, CaseRef) and case.case_id == case_id and case.label is None
    assert case.image.name.endswith((".nii.gz", ".nii", ".hdr"))
    s = ds.load_case(case)
    assert s.label is None and s.mask.any() and np.allclose(s.spacing, 1.0)


def test_layout_registry():
    assert set(LAYOUTS) == {"iseg2017", "mrbrains13", "mrbrains18", "nnunet"}
    for name, mod in LAYOUTS.items():
        assert name == mod.NAME and callable(mod.detect) and callable(mod.open_dataset) and mod.SIGNATURE


def _duplicate_iseg_subject(root):
    for ext in ("hdr", "img"):
        shutil.copy(root / f"subject-2-T1.{ext}", root / f"subject-02-T1.{ext}")


def _mrbrains18_without_image(root):
    shutil.rmtree(root / "training" / "4" / "pre")


def _nnunet_case_without_channel_0(root):
    (root / "imagesTs" / "case_004_0000.nii.gz").rename(root / "imagesTs" / "case_004_0001.nii.gz")


def _mrbrains13_renamed_subject(root):
    (root / "TrainingData" / "2").rename(root / "TrainingData" / "subject2")


SILENT_DROPS = [
    (
        "iseg-subject-02-beside-subject-2",
        lambda t: make_iseg2017(t / "is", n_labelled=3),
        _duplicate_iseg_subject,
        "two files for subject 2",
    ),
    (
        "mrbrains18-subject-without-image",
        lambda t: make_mrbrains18(t / "m18", n=3),
        _mrbrains18_without_image,
        "no pre/reg_T1",
    ),
    (
        "nnunet-case-without-channel-0000",
        lambda t: make_nnunet(t, "Dataset001_C", n=3, n_test=1),
        _nnunet_case_without_channel_0,
        "case case_004 has no channel 0000",
    ),
    (
        "mrbrains13-subject-folder-not-a-number",
        lambda t: make_mrbrains13(t / "m13", n=3),
        _mrbrains13_renamed_subject,
        "numbered",
    ),
]


@pytest.mark.parametrize("name,make,change,message", SILENT_DROPS, ids=[c[0] for c in SILENT_DROPS])
def test_layout_readers_never_silently_drop_a_case(tmp_path, name, make, change, message):
    """Regression (issue 15, second round): these cases were left out without a word."""
    root = make(tmp_path)
    change(root)
    with pytest.raises(AdvnormError, match=message):
        open_domains([str(root)])


def test_the_fingerprint_sees_content_and_reading_rules_not_bytes(tmp_path):
    """Regression: a decompressed copy passed as new data; a relabelled dataset.json reused old runs."""
    import gzip

    from advnorm.data.fingerprint import dataset_fingerprint, fingerprint_differences

    a = make_nnunet(tmp_path / "a", "Dataset001_A")
    b = Path(shutil.copytree(a, tmp_path / "b" / "Dataset001_A"))
    for f in sorted(b.glob("*Tr/*.nii.gz")):  # compressed again, other bytes, same content
        f.write_bytes(gzip.compress(gzip.decompress(f.read_bytes()), compresslevel=1))
    fa, fb = (dataset_fingerprint(open_domains([str(p)])[0]) for p in (a, b))
    assert fa["digest"] == fb["digest"]
    meta = json.loads((b / "dataset.json").read_text())
    (b / "dataset.json").write_text(json.dumps({**meta, "labels": {"background": 0, "CSF": 1, "GM": 3, "WM": 2}}))
    fb = dataset_fingerprint(open_domains([str(b)])[0])
    assert fa["digest"] != fb["digest"] and "label map" in fingerprint_differences([fa], [fb])[0]


def test_a_whole_head_without_a_label_is_warned_about_and_a_mask_fixes_it(roots, tmp_path):
    """Regression (issue 13/15): MRBrainS13 TestData was segmented with the whole head as brain, silently."""
    import nibabel as nib

    from advnorm.data.layouts.masks import attach_masks
    from advnorm.errors import AdvnormWarning

    (ds,) = open_domains([str(roots["mrbrains13"])])
    case = next(c for c in ds.cases if c.label is None)
    with pytest.warns(AdvnormWarning, match="looks unstripped"):
        ds.load_case(case)
    img = nib.load(case.image)
    brain = np.zeros(img.shape, np.uint8)
    brain[10:-10, 10:-10, 2:-2] = 1
    mask = tmp_path / "masks" / f"{case.case_id}_mask.nii.gz"
    mask.parent.mkdir()
    nib.save(nib.Nifti1Image(brain, img.affine), mask)
    (masked,) = attach_masks([ds], mask.parent, needed=lambda d, c: c is case)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", AdvnormWarning)
        subject = masked.load_case(next(c for c in masked.cases if c.case_id == case.case_id))
    assert subject.extra["mask_from"] == "file" and subject.mask.sum() < 0.5 * subject.mask.size


def test_mrbrains18_reads_its_own_eight_structures_unless_combined(roots, tmp_path):
    (own,) = open_domains([str(roots["mrbrains18"])])
    assert own.classes == (
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
    s = own.load_case(own.cases[0])
    assert set(np.unique(s.label)) <= set(range(9)) and {7, 8} & set(np.unique(s.label))  # cerebellum, brainstem
    both = read_alike([own, *open_domains([str(roots["iseg2017"])])])
    assert [d.classes for d in both] == [CLASS_NAMES, CLASS_NAMES]


def test_domains_whose_labels_cannot_be_read_alike_are_refused(roots, tmp_path):
    other = make_nnunet(tmp_path, "Dataset020_Lesions", labels={"background": 0, "lesion": 1, "oedema": 2})
    with pytest.raises(AdvnormError, match="different labels.*cannot be read as CSF, GM, WM"):
        read_alike(open_domains([str(roots["iseg2017"]), str(other)]))
    (alone,) = read_alike(open_domains([str(other)]))
    assert alone.classes == ("background", "lesion", "oedema")
