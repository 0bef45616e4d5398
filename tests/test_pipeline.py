"""End to end on a tiny phantom: train -> predict -> evaluate, and what predict writes."""

import json
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from advnorm.cli import main
from advnorm.data.layouts import open_domains
from advnorm.data.phantom.generate import PhantomSpec, write_phantom
from tests.conftest import LEARNING_CONFIG, copy_run, read_csv_rows

pytestmark = pytest.mark.slow  # trains networks


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pipeline")
    write_phantom(root / "phantom", PhantomSpec(domains=2, subjects=3, seed=0, scale=0.3))
    (root / "tiny.json").write_text(json.dumps(LEARNING_CONFIG))
    return root


@pytest.fixture(scope="module")
def domains(workdir) -> list[str]:
    return sorted(str(p) for p in (workdir / "phantom").glob("Dataset*"))


def _train(out: Path, config: Path, domains: list[str], method: str) -> Path:
    argv = ["train", "--method", method, "--out", str(out), "--config", str(config), "--no-progress"]
    for d in domains:
        argv += ["--data", d]
    assert main(argv) == 0
    return out


@pytest.fixture(scope="module")
def run(workdir, domains) -> Path:
    return _train(workdir / "run", workdir / "tiny.json", domains, "adversarial")


@pytest.fixture(scope="module")
def strided_run(workdir, domains) -> Path:
    """S with the strided stem (``model.segmenter_stem``): total stride 4 at widths 8-16."""
    config = json.loads(json.dumps(LEARNING_CONFIG))
    config["model"]["segmenter_stem"] = "strided"
    (workdir / "strided.json").write_text(json.dumps(config))
    return _train(workdir / "strided_run", workdir / "strided.json", domains, "standardized")


def test_train_writes_the_run_folder(run):
    for name in (
        "config.json",
        "checkpoint_best.safetensors",
        "checkpoint_final.safetensors",
        "training_log.csv",
        "progress.png",
        "summary.json",
        "train_state.pt",
    ):
        assert (run / name).exists(), name
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["method"] == "adversarial" and cfg["versions"]["torch"] == torch.__version__
    assert set(cfg["run"]["split"]) == {"InfantT1", "AdultT1Thick"}
    where = json.loads((run / "summary.json").read_text())["machine"]  # what the trajectory depends on
    assert where["cpu_kernels"] == torch.backends.cpu.get_cpu_capability() and where["device"] == "cpu"
    assert where["threads"] == torch.get_num_threads() and where["cpu"]
    header = (run / "training_log.csv").read_text().splitlines()[0].split(",")
    for col in (
        "loss_seg",
        "loss_adv",
        "loss_dis",
        "d_acc_real",
        "d_acc_fake",
        "val_dice_InfantT1_GM",
        "lr_GS",
        "lr_D",
    ):
        assert col in header, col


@pytest.mark.parametrize("which", ["run", "strided_run"])
def test_training_raises_validation_dice(which, request):
    rows = read_csv_rows(request.getfixturevalue(which) / "training_log.csv")
    start = float(rows[0]["val_dice_mean"])  # after warm-up only: S untrained
    best = max(float(r["val_dice_mean"]) for r in rows)
    assert best > start + 0.1, (start, best)


@pytest.mark.parametrize("which", ["run", "strided_run"])
def test_predict_writes_on_the_input_grid(which, request, domains, tmp_path):
    run = request.getfixturevalue(which)
    image = sorted(Path(domains[0], "imagesTr").glob("*.nii.gz"))[0]
    out = tmp_path / "pred"
    assert main(["predict", "--model", str(run), "-i", str(image), "-o", str(out)]) == 0
    case = image.name.replace("_0000.nii.gz", "_0000")
    src = nib.load(image)
    for kind in ("normalized", "seg"):
        res = nib.load(out / f"{case}_{kind}.nii.gz")
        assert res.shape == src.shape
        assert np.allclose(res.affine, src.affine)
    seg = np.asarray(nib.load(out / f"{case}_seg.nii.gz").dataobj)
    assert set(np.unique(seg)) <= {0, 1, 2, 3}
    # refuses to overwrite without --overwrite, and leaves the outputs as they were
    before = (out / f"{case}_seg.nii.gz").read_bytes()
    assert main(["predict", "--model", str(run), "-i", str(image), "-o", str(out)]) == 2
    assert (out / f"{case}_seg.nii.gz").read_bytes() == before
    assert main(["predict", "--model", str(run), "-i", str(image), "-o", str(out), "--overwrite"]) == 0


def test_predict_uses_the_iseg_label_convention(run, tmp_path):
    from tests.fixtures import make_iseg2017

    folder = make_iseg2017(tmp_path / "iseg", n_labelled=1, n_unlabelled=0)
    out = tmp_path / "pred"
    assert main(["predict", "--model", str(run), "-i", str(folder), "-o", str(out)]) == 0
    seg_files = sorted(out.glob("*_seg.nii.gz"))
    assert seg_files
    seg = np.asarray(nib.load(seg_files[0]).dataobj)
    src = nib.load(sorted(Path(folder).glob("subject-*-T1.hdr"))[0])
    assert seg.shape == src.shape[:3]
    assert set(np.unique(seg)) <= {0, 10, 150, 250}


@pytest.mark.parametrize("which", ["run", "strided_run"])
def test_stitched_prediction_equals_whole_volume(which, request, domains):
    """Windows covering the volume reproduce one direct pass of S(G(x)) exactly; small overlapping
    windows (BatchNorm in eval mode, probabilities blended) agree on nearly every voxel's label."""
    from advnorm.inference import TrainedModel

    run = request.getfixturevalue(which)
    model = TrainedModel(run)
    ds = open_domains([domains[0]])[0]
    subject = ds.load_case(ds.cases[0])
    x = torch.from_numpy(model.network_input(subject))[None, None]
    m = torch.from_numpy(subject.mask.astype(np.float32))[None, None]
    stride = model.nets.S.stride
    pad = [(-s) % stride for s in x.shape[2:]]
    pads = (0, pad[2], 0, pad[1], 0, pad[0])
    with torch.no_grad():
        xp, mp = torch.nn.functional.pad(x, pads), torch.nn.functional.pad(m, pads)
        x_hat = model.nets.normalize(xp, mp)
        direct = torch.softmax(model.nets.segment(x_hat), 1)[0, :, : x.shape[2], : x.shape[3], : x.shape[4]].numpy()
    whole = model.predict(subject, window=512)
    assert np.abs(whole.probs - direct).max() < 1e-4
    stitched = model.predict(subject, window=32, overlap=0.5)
    brain = subject.mask
    agree = np.mean(whole.labels[brain] == stitched.labels[brain])
    assert agree > 0.97, agree


def test_a_models_window_is_what_predict_uses(run, domains):
    """``--window`` / ``--overlap`` reach the sliding window: the model's window is predict's default."""
    from advnorm.inference import InferenceWindow, TrainedModel

    ds = open_domains([domains[0]])[0]
    subject = ds.load_case(ds.cases[0])
    default = TrainedModel(run)
    patch = default.cfg.train.patch_size
    assert default.window == InferenceWindow(patch, 0.5)  # the training patch size, nnU-Net's overlap
    other = 2 * patch
    large = TrainedModel(run, window=InferenceWindow(other, 0.25)).predict(subject)
    assert np.array_equal(large.probs, default.predict(subject, window=other, overlap=0.25).probs)
    assert not np.array_equal(large.probs, default.predict(subject).probs)


def test_a_window_off_the_pooling_grid_given_to_predict_is_rounded_up_with_a_warning(run, domains):
    """``predict(window=...)`` treats its window as the model's own: rounded up to the networks' stride, said."""
    from advnorm.errors import AdvnormWarning
    from advnorm.inference import TrainedModel

    ds = open_domains([domains[0]])[0]
    subject = ds.load_case(ds.cases[0])
    model = TrainedModel(run)
    patch = model.cfg.train.patch_size
    with pytest.warns(AdvnormWarning, match=f"inference window {patch + 1} is not a multiple"):
        odd = model.predict(subject, window=patch + 1, overlap=0.25)
    stride = model.nets.S.stride
    rounded = model.predict(subject, window=patch + stride, overlap=0.25)
    assert np.array_equal(odd.probs, rounded.probs)


@pytest.mark.parametrize(
    ("shape", "roi", "overlap"),
    [
        ((48, 48, 48), (160, 160, 160), 0.25),  # one window, padded
        ((144, 192, 256), (160, 160, 160), 0.25),  # the default on an iSEG volume
        ((144, 192, 256), (32, 32, 32), 0.5),
        ((40, 41, 47), (8, 8, 8), 0.9),  # the step floors at one voxel
        ((64, 64, 64), (64, 64, 64), 0.0),
        ((65, 64, 9), (64, 64, 8), 0.0),
    ],
)
def test_window_count_is_monais(shape, roi, overlap):
    """The count behind the many-windows warning is the number of windows MONAI places."""
    from monai.data.utils import dense_patch_slices
    from monai.inferers.utils import _get_scan_interval

    from advnorm.inference import window_count

    padded = tuple(max(s, r) for s, r in zip(shape, roi, strict=True))
    interval = _get_scan_interval(padded, roi, 3, (overlap,) * 3)
    assert window_count(shape, roi, overlap) == len(dense_patch_slices(padded, roi, interval))


@pytest.mark.parametrize(
    ("roi", "per_pass"),
    [
        ((160, 160, 160), 1),  # the default: one window's memory, as before
        ((144, 160, 160), 1),  # the default on an iSEG volume
        ((128, 128, 128), 1),
        ((96, 96, 96), 2),
        ((64, 64, 64), 2),
        ((32, 32, 32), 2),
        ((8, 8, 8), 2),
    ],
)
def test_windows_per_pass_never_exceed_the_default_windows_memory(roi, per_pass):
    from advnorm.config import INFERENCE_PASS_VOXELS
    from advnorm.inference import windows_per_pass

    assert windows_per_pass(roi) == per_pass
    assert per_pass == 1 or per_pass * int(np.prod(roi)) <= INFERENCE_PASS_VOXELS


def test_windows_in_one_pass_predict_as_one_at_a_time(run, domains, monkeypatch):
    """Batching windows changes the order of floating-point sums, nothing else (BatchNorm in eval mode)."""
    from advnorm import inference

    ds = open_domains([domains[0]])[0]
    subject = ds.load_case(ds.cases[0])
    model = inference.TrainedModel(run, window=inference.InferenceWindow(16, 0.5))
    assert inference.windows_per_pass((16, 16, 16)) > 1
    batched = model.predict(subject)
    monkeypatch.setattr(inference, "windows_per_pass", lambda roi: 1)
    alone = model.predict(subject)
    assert np.abs(batched.probs - alone.probs).max() < 1e-4
    assert np.abs(batched.normalized - alone.normalized).max() < 1e-4


def test_a_window_off_the_pooling_grid_is_rounded_up_and_said(run):
    from advnorm.config import model_stride
    from advnorm.errors import AdvnormWarning
    from advnorm.inference import InferenceWindow, TrainedModel

    stride = model_stride(TrainedModel(run).cfg.model)
    assert stride > 1
    asked = 2 * stride + 1
    said = f"inference window {asked} is not a multiple of the networks' stride {stride}: using {3 * stride}"
    with pytest.warns(AdvnormWarning, match=said):
        assert TrainedModel(run, window=InferenceWindow(asked, 0.5)).window == InferenceWindow(3 * stride, 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert TrainedModel(run, window=InferenceWindow(2 * stride, 0.5)).window.edge == 2 * stride


@pytest.mark.parametrize("verb", ["predict", "evaluate"])
def test_many_windows_are_warned_about_before_the_wait(verb, run, domains, tmp_path, monkeypatch, capsys):
    """The warning names the input; the verbs give it before predicting the volume, not after the wait."""
    from advnorm import inference

    monkeypatch.setattr(inference, "MANY_WINDOWS", 1)
    ds = open_domains([domains[0]])[0]
    image = str(ds.cases[0].image)
    if verb == "predict":
        args = ["predict", "--model", str(run), "-i", image, "-o", str(tmp_path / "out")]
    else:
        args = ["evaluate", "--model", str(run), "--data", domains[0], "-o", str(tmp_path / "eval.json")]
    assert main([*args, "--window", "16", "--overlap", "0.5", "--no-progress"]) == 0
    captured = capsys.readouterr()
    said = [line for line in captured.err.splitlines() if "inference windows of 16^3 voxels (overlap 0.5)" in line]
    assert said, captured.err
    if verb == "predict":
        assert image in said[0]


def test_live_networks_predict_as_their_checkpoint(run, domains):
    """What a benchmark or a training loop passes as ``nets`` is used as is (no checkpoint is read)."""
    from advnorm.inference import TrainedModel
    from advnorm.models.networks import Networks
    from advnorm.models.weights import load_weights

    loaded = TrainedModel(run)
    nets = Networks(loaded.cfg, len(loaded.domains), "cpu", classes=loaded.classes)
    ds = open_domains([domains[0]])[0]
    subject = ds.load_case(ds.cases[0])
    untrained = TrainedModel(run, nets=nets.eval()).predict(subject)
    load_weights(loaded.files.best, nets)
    live = TrainedModel(run, nets=nets).predict(subject)
    assert np.array_equal(live.probs, loaded.predict(subject).probs)
    assert not np.array_equal(untrained.probs, live.probs)


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("--window", "4", "the window edge must be at least 8"),
        ("--window", "big", "'big' is not a whole number of voxels"),
        ("--overlap", "1", "the overlap is a fraction in [0, 1)"),
        ("--overlap", "-0.1", "the overlap is a fraction in [0, 1)"),
        ("--overlap", "nan", "the overlap is a fraction in [0, 1)"),
    ],
)
def test_a_bad_window_is_one_line(run, tmp_path, capsys, option, value, said):
    argv = ["evaluate", "--model", str(run), "--data", str(tmp_path), "-o", str(tmp_path / "m.json"), option, value]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert said in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "m.json").exists()


def test_evaluate_writes_metrics(run, domains, tmp_path):
    out = tmp_path / "metrics.json"
    argv = ["evaluate", "--model", str(run), "-o", str(out), "--no-progress", "--window", "48", "--overlap", "0.5"]
    for d in domains:
        argv += ["--data", d]
    assert main(argv) == 0

    def not_json(constant):  # NaN / Infinity are not JSON: other readers (node, jq, R) choke on them
        raise AssertionError(f"{constant} in {out}")

    result = json.loads(out.read_text(), parse_constant=not_json)
    assert result["inference"] == {"window": 48, "overlap": 0.5}  # what the volumes were segmented with
    assert {c["domain"] for c in result["cases"]} == {"InfantT1", "AdultT1Thick"}
    case = result["cases"][0]
    assert set(case["dice"]) == {"CSF", "GM", "WM"} and set(case["hd95"]) == {"CSF", "GM", "WM"}
    jsd = result["summary"]["jsd"]
    for part in ("input", "normalized"):
        assert 0 <= jsd[part]["all"] <= 1


@pytest.mark.parametrize(
    "verb", ["inspect", "phantom", "train", "predict", "normalize", "evaluate", "export", "reproduce", "demo"]
)
def test_every_verb_has_help(verb, capsys):
    assert main([verb, "--help"]) == 0
    assert "usage: advnorm " + verb in capsys.readouterr().out


@pytest.mark.parametrize("verb", ["train", "predict", "normalize", "evaluate", "reproduce", "demo"])
def test_every_verb_that_runs_models_takes_no_progress(verb):
    """A script passes ``--no-progress`` to every verb that trains or runs a model (evaluate did not take it)."""
    from advnorm.cli_args import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "verb").choices[verb]
    assert "--no-progress" in sub._option_string_actions


@pytest.mark.parametrize("code", ["LIA", "PIR", "LPS"])
def test_predict_does_not_depend_on_the_stored_orientation(run, domains, tmp_path, code):
    """Regression (issue 15.1): a coronally stored copy of a subject was segmented at Dice 0.11 / 0.40 / 0.49
    where the axial copy gave 0.68 / 0.79 / 0.73. The same scan in any axis order must give the same labels."""
    image = sorted(Path(domains[0], "imagesTr").glob("*.nii.gz"))[0]
    src = nib.load(image)
    ornt = nib.orientations.ornt_transform(
        nib.orientations.io_orientation(src.affine), nib.orientations.axcodes2ornt(code)
    )
    moved = src.as_reoriented(ornt)
    copy = tmp_path / f"scan_{code}.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(moved.dataobj), moved.affine), copy)
    assert main(["predict", "--model", str(run), "-i", str(image), "-i", str(copy), "-o", str(tmp_path / "out")]) == 0
    ref = nib.load(tmp_path / "out" / f"{image.name[:-7]}_seg.nii.gz")
    got = nib.load(tmp_path / "out" / f"scan_{code}_seg.nii.gz")
    assert got.shape == moved.shape and np.allclose(got.affine, moved.affine)
    back = got.as_reoriented(
        nib.orientations.ornt_transform(
            nib.orientations.axcodes2ornt(code), nib.orientations.io_orientation(src.affine)
        )
    )
    np.testing.assert_array_equal(np.asarray(back.dataobj), np.asarray(ref.dataobj))


def test_an_input_unlike_every_training_domain_gets_one_warning_line(run, domains, tmp_path, capsys):
    """Regression (issue 15.6): inputs far from the training data were segmented as garbage without a word."""
    label = sorted(Path(domains[0], "labelsTr").glob("*.nii.gz"))[0]
    img = nib.load(label)
    scan = tmp_path / "labels_as_image.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj).astype(np.float32) * 100, img.affine), scan)
    capsys.readouterr()
    assert main(["predict", "--model", str(run), "-i", str(scan), "-o", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"advnorm: warning: {scan}: intensities unlike every training domain"), (
        err
    )


def test_the_run_records_each_tissues_share_range_over_its_training_subjects(run, domains):
    from advnorm.data.tissue_shares import share_ranges, tissue_shares

    record = json.loads((run / "config.json").read_text())["run"]
    shares = []
    for ds in open_domains(domains):
        for case in ds.labelled():
            if case.case_id in record["split"][ds.name]["train"]:
                shares.append(tissue_shares(ds.load_case(case).require_label(), len(ds.classes)))
    assert len(shares) >= 2 and record["tissue_shares"] == share_ranges(shares, ds.classes)


def test_an_implausible_segmentation_gets_one_warning_line_and_strict_refuses_it(run, domains, tmp_path, capsys):
    """A T2 image given to a T1 model came back with CSF nowhere, silently (its histogram passed the intensity
    check). A prediction whose tissue shares lie far outside the training subjects' gets one line naming the file;
    ``--strict`` makes it an error with no output. Here the run's recorded ranges are moved instead of the image."""
    image = sorted(Path(domains[0], "imagesTr").glob("*.nii.gz"))[0]
    capsys.readouterr()
    assert main(["predict", "--model", str(run), "-i", str(image), "-o", str(tmp_path / "plain"), "--no-progress"]) == 0
    assert capsys.readouterr().err.strip() == ""  # a trained model on its own domain is plausible
    moved = copy_run(run, tmp_path / "moved")
    config = json.loads((moved / "config.json").read_text())
    config["run"]["tissue_shares"]["CSF"] = [0.9, 0.95]
    (moved / "config.json").write_text(json.dumps(config))
    assert main(["predict", "--model", str(moved), "-i", str(image), "-o", str(tmp_path / "out"), "--no-progress"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"advnorm: warning: {image}: the segmentation is implausible"), err
    assert "CSF is" in err[0] and "GM is" not in err[0]
    assert len(list((tmp_path / "out").iterdir())) == 2
    strict = ["predict", "--model", str(moved), "-i", str(image), "-o", str(tmp_path / "strict"), "--strict"]
    assert main([*strict, "--no-progress"]) == 2
    assert "the segmentation is implausible" in capsys.readouterr().err
    assert not (tmp_path / "strict").exists()


def test_normalize_writes_only_the_harmonized_image_on_the_input_grid(run, domains, tmp_path):
    image = sorted(Path(domains[1], "imagesTr").glob("*.nii.gz"))[0]
    out = tmp_path / "norm"
    assert main(["normalize", "--model", str(run), "-i", str(image), "-o", str(out), "--no-progress"]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == [image.name.replace("_0000.nii.gz", "_0000_normalized.nii.gz")]
    src, norm = nib.load(image), nib.load(out / written[0])
    assert norm.shape == src.shape and np.allclose(norm.affine, src.affine)
    values = np.asarray(norm.dataobj)
    assert values.min() >= 0 and values.max() <= 1.5 + 1e-4  # G's range (docs: the output intensity range)
    assert np.all(values[np.asarray(src.dataobj) == 0] == 0)


def test_a_config_files_method_is_used_unless_the_command_line_says_otherwise(domains, tmp_path):
    """Regression (issue 15, second round): the CLI's default silently replaced the file's method."""
    config = tmp_path / "single.json"
    config.write_text(
        json.dumps({**LEARNING_CONFIG, "method": "single", "train": {**LEARNING_CONFIG["train"], "epochs": 1}})
    )
    data = [a for d in domains for a in ("--data", d)]
    assert main(["train", "--out", str(tmp_path / "a"), "--config", str(config), "--no-progress", *data]) == 0
    assert json.loads((tmp_path / "a" / "config.json").read_text())["method"] == "single"
    assert (
        main(
            [
                "train",
                "--out",
                str(tmp_path / "b"),
                "--config",
                str(config),
                "--method",
                "standardized",
                "--no-progress",
                *data,
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "b" / "config.json").read_text())["method"] == "standardized"
