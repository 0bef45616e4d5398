"""`export_run`: a trained run as ONNX / TorchScript files that give PyTorch's outputs, and the JSON beside them."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from advnorm.errors import AdvnormError
from advnorm.export import export_run
from advnorm.inference import TrainedModel
from advnorm.labels import CLASS_NAMES
from advnorm.run_folder import RunFolder

TOL = 1e-4
ONNX_NEEDS = ("onnx", "onnxscript", "onnxruntime")


def need(fmt: str) -> None:
    if fmt == "onnx":
        for name in ONNX_NEEDS:
            pytest.importorskip(name, reason=f"ONNX export needs {name} (pip install -e '.[export]' or '.[test]')")


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    """``exported(fmt, segmenter_only)`` -> (model file, JSON): each export made once for the module."""
    root = tmp_path_factory.mktemp("export")
    done: dict[tuple[str, bool], list[Path]] = {}

    def get(fmt: str, segmenter_only: bool) -> list[Path]:
        need(fmt)
        if (fmt, segmenter_only) not in done:
            done[fmt, segmenter_only] = export_run(tiny_run, root / fmt, fmt, segmenter_only=segmenter_only)
        return done[fmt, segmenter_only]

    return get


@pytest.fixture(scope="module")
def model(tiny_run) -> TrainedModel:
    return TrainedModel(tiny_run, device="cpu")


def load(path: Path, fmt: str):
    """A callable running the exported file the way a user would (no advnorm code involved)."""
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        return lambda *xs: session.run(None, {n: x.numpy() for n, x in zip(names, xs, strict=True)})
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; loading it still works
        warnings.simplefilter("ignore", DeprecationWarning)
        net = torch.jit.load(str(path), map_location="cpu").eval()

    def run(*xs):
        with torch.no_grad():
            out = net(*xs)
        return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]

    return run


def reference(model: TrainedModel, segmenter_only: bool, *xs: torch.Tensor) -> list[np.ndarray]:
    nets = model.nets
    with torch.no_grad():
        if segmenter_only:
            return [torch.softmax(nets.segment(xs[0]), dim=1).numpy()]
        x_hat = nets.normalize(xs[0], xs[1])
        return [x_hat.numpy(), torch.softmax(nets.segment(x_hat), dim=1).numpy()]


def patch(shape: tuple[int, ...], seed: int, segmenter_only: bool) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    mask = (torch.rand(shape, generator=gen) > 0.3).float()
    image = torch.rand(shape, generator=gen) * 1.5 * mask
    return (image,) if segmenter_only else (image, mask)


@pytest.mark.parametrize("segmenter_only", [False, True], ids=["G+S", "S"])
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_gives_pytorchs_outputs_on_any_shape(exported, model, fmt, segmenter_only):
    model_file, meta_file = exported(fmt, segmenter_only)
    run = load(model_file, fmt)
    n_out = 1 if segmenter_only else 2
    # the traced 16^3 shape, then another batch size and another size on every spatial axis (dynamic axes)
    for seed, shape in enumerate([(1, 1, 16, 16, 16), (3, 1, 24, 8, 32)]):
        xs = patch(shape, seed, segmenter_only)
        got, ref = run(*xs), reference(model, segmenter_only, *xs)
        assert len(got) == len(ref) == n_out
        for g, r in zip(got, ref, strict=True):
            assert g.shape == r.shape
            assert float(np.abs(g - r).max()) <= TOL
        assert ref[-1].shape[1] == len(CLASS_NAMES)
    meta = json.loads(meta_file.read_text())
    assert max(meta["check"]["max_abs_diff"].values()) <= TOL


def test_the_json_documents_the_export(exported, tiny_run):
    model_file, meta_file = exported("torchscript", False)
    assert [model_file.name, meta_file.name] == ["model.pt", "model.json"]
    meta = json.loads(meta_file.read_text())
    raw = json.loads((tiny_run / "config.json").read_text())
    for key in ("format", "files", "method", "axes", "preprocessing", "input_transform", "labels", "versions",
                "how_to_use", "check"):
        assert key in meta, key
    assert meta["format"] == "torchscript" and meta["method"] == "adversarial" and meta["has_generator"]
    (entry,) = meta["files"]
    assert entry["name"] == "model.pt"
    assert entry["sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert [i["name"] for i in entry["inputs"]] == ["image", "mask"]
    assert [o["name"] for o in entry["outputs"]] == ["normalized", "probabilities"]
    assert entry["outputs"][1]["shape"] == ["batch", len(CLASS_NAMES), "i", "j", "k"]
    assert meta["axes"]["multiple_of"] == 2  # the tiny run's U-Nets have two levels
    assert meta["axes"]["batch"] == "dynamic" and "dynamic" in meta["axes"]["spatial"]
    assert meta["preprocessing"]["working_grid"]["spacing_mm"] == [1.0, 1.0, 1.0]
    assert "RAS" in meta["preprocessing"]["working_grid"]["orientation"]
    transform = meta["input_transform"]
    assert transform["kind"] == "scale" and transform["percentile"] == raw["data"]["scale_percentile"]
    assert transform["fitted"] == raw["run"]["input_state"]
    assert [c["name"] for c in meta["labels"]["classes"]] == list(CLASS_NAMES)
    assert set(meta["labels"]["dataset_label_values"]) == set(raw["run"]["domains"])
    assert meta["versions"]["torch"] == torch.__version__ and "advnorm" in meta["versions"]
    assert any("torch.jit.load('model.pt'" in line for line in meta["how_to_use"])


def test_the_exported_model_segments_a_whole_volume_like_predict(exported, model, tiny_phantom):
    """Following the JSON: the run's input transform on the working grid, padded to the stride, one call."""
    need("onnx")
    from advnorm.data.layouts import open_domains

    model_file, meta_file = exported("onnx", False)
    meta = json.loads(meta_file.read_text())
    ds = open_domains([str(tiny_phantom[1])])[0]
    subject = ds.load_case(ds.cases[0], with_label=False)
    x, m = model.network_input(subject), subject.mask.astype(np.float32)
    s = meta["axes"]["multiple_of"]
    pad = [(0, -n % s) for n in x.shape]
    image, mask = (torch.from_numpy(np.pad(a, pad))[None, None] for a in (x, m))
    normalized, probs = load(model_file, "onnx")(image, mask)
    z, y, w = x.shape
    expected = model.predict(subject, window=512)
    assert expected.probs is not None
    assert float(np.abs(probs[0, :, :z, :y, :w] - expected.probs).max()) <= TOL
    assert float(np.abs(np.where(subject.mask, normalized[0, 0, :z, :y, :w], 0) - expected.normalized).max()) <= TOL


@pytest.fixture(scope="module")
def nyul_run(tiny_phantom, tiny_config, tmp_path_factory) -> Path:
    from advnorm.workflows import train

    out = tmp_path_factory.mktemp("nyul_run") / "run"
    train([str(p) for p in tiny_phantom], out, method="nyul", config_file=str(tiny_config),
          progress=False, log=lambda _msg: None)
    return out


def test_a_run_without_a_generator_exports_its_fitted_input_transform(nyul_run, tmp_path):
    model_file, meta_file = export_run(nyul_run, tmp_path / "out", "torchscript")
    meta = json.loads(meta_file.read_text())
    fitted = json.loads((nyul_run / "config.json").read_text())["run"]["input_state"]
    assert meta["method"] == "nyul" and not meta["has_generator"]
    assert meta["input_transform"]["kind"] == "nyul"
    assert meta["input_transform"]["standard_landmarks"] == fitted["standard_landmarks"]
    assert meta["input_transform"]["percentiles"] == fitted["percentiles"]
    # without G the network input is what S sees: "normalized" is the input, the mask changes nothing
    model = TrainedModel(nyul_run, device="cpu")
    image, mask = patch((1, 1, 16, 24, 16), 3, False)
    normalized, probs = load(model_file, "torchscript")(image, mask)
    assert np.array_equal(normalized, image.numpy())
    assert float(np.abs(probs - reference(model, False, image, mask)[1]).max()) <= TOL
    assert np.allclose(load(model_file, "torchscript")(image, torch.ones_like(mask))[1], probs, atol=TOL)


# -- refused, with one line naming the path; nothing written ---------------------------------------------------


def test_not_a_run_folder_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(AdvnormError, match="not a training run folder") as err:
        export_run(tmp_path / "empty", tmp_path / "out", "torchscript")
    assert str(tmp_path / "empty") in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_an_unknown_format_is_refused(tiny_run, tmp_path):
    with pytest.raises(AdvnormError, match="unknown export format 'tflite'") as err:
        export_run(tiny_run, tmp_path / "out", "tflite")  # type: ignore[arg-type]
    assert str(tmp_path / "out") in str(err.value)
    assert not (tmp_path / "out").exists()


def test_an_unwritable_output_is_refused(tiny_run, tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(AdvnormError, match="this is a file") as err:
        export_run(tiny_run, tmp_path / "a_file" / "out", "torchscript")
    assert str(tmp_path / "a_file") in str(err.value)


def test_existing_files_are_kept_unless_overwrite(tiny_run, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.json").write_text("mine")
    with pytest.raises(AdvnormError, match="exists; pass --overwrite") as err:
        export_run(tiny_run, out, "torchscript")
    assert str(out / "model.json") in str(err.value)
    assert (out / "model.json").read_text() == "mine" and sorted(p.name for p in out.iterdir()) == ["model.json"]
    export_run(tiny_run, out, "torchscript", overwrite=True)
    assert json.loads((out / "model.json").read_text())["format"] == "torchscript"
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.pt"]  # no staging folder left


def test_into_the_run_folder_leaves_the_runs_files_alone(tiny_run, tmp_path):
    from tests.conftest import copy_run

    run = copy_run(tiny_run, tmp_path / "run")
    before = {p.name: p.read_bytes() for p in RunFolder(run).own_files() if p.exists()}
    written = export_run(run, run, "torchscript", segmenter_only=True)
    assert [p.name for p in written] == ["segmenter.pt", "segmenter.json"]
    assert {p.name: p.read_bytes() for p in RunFolder(run).own_files() if p.exists()} == before


def test_missing_onnx_packages_are_named(tiny_run, tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    with pytest.raises(AdvnormError, match=r"needs onnxscript: pip install 'advnorm\[export\]'"):
        export_run(tiny_run, tmp_path / "out", "onnx")
    assert not (tmp_path / "out").exists()


def test_an_export_that_does_not_reproduce_pytorch_is_not_written(tiny_run, tmp_path, monkeypatch):
    from advnorm import export

    real = export.run_export
    monkeypatch.setattr(export, "run_export", lambda *a: [o + 1e-3 for o in real(*a)])
    with pytest.raises(AdvnormError, match="differs from PyTorch by 0.001") as err:
        export_run(tiny_run, tmp_path / "out", "torchscript")
    assert str(tmp_path / "out" / "model.pt") in str(err.value)
    assert list(tmp_path.iterdir()) == []  # no output folder, no staging folder
