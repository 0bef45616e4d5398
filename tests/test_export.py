"""`export_run`: a trained run as ONNX / TorchScript files that give PyTorch's outputs, and the JSON beside them."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from advnorm.data.intensity import VALUE_RANGE
from advnorm.errors import AdvnormError
from advnorm.export import export_run, run_export
from advnorm.export.exporters import EXPORTERS, SUFFIX, quiet
from advnorm.export.modules import TransferNormalizeSegment, exportable
from advnorm.export.stats import stats_code
from advnorm.inference import TrainedModel
from advnorm.labels import CLASS_NAMES
from advnorm.models.transfer import HISTOGRAM_BINS, N_STATS, QUANTILES, image_stats
from advnorm.run_folder import RunFolder

TOL = 1e-4
ONNX_NEEDS = ("onnx", "onnxscript", "onnxruntime")


def need(fmt: str) -> None:
    if fmt == "onnx":
        for name in ONNX_NEEDS:
            pytest.importorskip(name, reason=f"ONNX export needs {name} (pip install -e '.[export]' or '.[test]')")


@pytest.fixture(scope="module")
def runs(tiny_run, tiny_method_run):
    """``runs(method)`` -> the session's tiny trained run of ``method`` (tests/conftest.py)."""
    return lambda method: tiny_run if method == "adversarial" else tiny_method_run(method)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``exported(run, fmt, segmenter_only)`` -> (model file, JSON): each export made once for the module."""
    root = tmp_path_factory.mktemp("export")
    done: dict[tuple[Path, str, bool], list[Path]] = {}

    def get(run: Path, fmt: str, segmenter_only: bool) -> list[Path]:
        need(fmt)
        if (run, fmt, segmenter_only) not in done:
            out = root / f"{run.parent.name}-{fmt}"
            done[run, fmt, segmenter_only] = export_run(run, out, fmt, segmenter_only=segmenter_only)
        return done[run, fmt, segmenter_only]

    return get


@pytest.fixture(scope="module")
def models():
    """``models(run)`` -> its TrainedModel on the CPU, loaded once for the module."""
    done: dict[Path, TrainedModel] = {}

    def get(run: Path) -> TrainedModel:
        if run not in done:
            done[run] = TrainedModel(run, device="cpu")
        return done[run]

    return get


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
    """PyTorch's outputs through advnorm's own ``Networks`` (xs: the exported file's inputs)."""
    nets = model.nets
    with torch.no_grad():
        if segmenter_only:
            return [torch.softmax(nets.segment(xs[0]), dim=1).numpy()]
        x_hat = nets.normalize(*xs)  # (image, mask) or (image, mask, stats)
        return [x_hat.numpy(), torch.softmax(nets.segment(x_hat), dim=1).numpy()]


def patch(model: TrainedModel, shape: tuple[int, ...], seed: int, segmenter_only: bool) -> tuple[torch.Tensor, ...]:
    """Random inputs of the exported file: the image over the run's value range and 10 % beyond each end (a
    z-scored image goes past +-4, which a transfer G clamps), a mask with holes, the stats of each image."""
    gen = torch.Generator().manual_seed(seed)
    lo, hi = model.nets.value_range
    mask = (torch.rand(shape, generator=gen) > 0.3).float()
    image = (lo - 0.1 * (hi - lo) + 1.2 * (hi - lo) * torch.rand(shape, generator=gen)) * mask
    if segmenter_only:
        return (image,)
    if model.nets.ingredients.generator == "transfer":
        return image, mask, image_stats(image, mask, model.nets.value_range)
    return image, mask


EXPORT_CASES = [  # method, format, segmenter_only
    ("adversarial", "onnx", False),
    ("adversarial", "torchscript", False),
    ("adversarial", "onnx", True),
    ("adversarial", "torchscript", True),
    ("harmonized", "onnx", False),
    ("harmonized", "torchscript", False),
    ("harmonized", "onnx", True),
    ("harmonized", "torchscript", True),
    ("harmonized-transfer", "onnx", False),  # G takes the image's stats too
    ("harmonized-transfer", "torchscript", False),
]


@pytest.mark.parametrize(
    "method,fmt,segmenter_only", EXPORT_CASES, ids=[f"{m}-{f}-{'S' if s else 'G+S'}" for m, f, s in EXPORT_CASES]
)
def test_export_gives_pytorchs_outputs_on_any_shape(runs, exported, models, method, fmt, segmenter_only):
    run = runs(method)
    model_file, meta_file = exported(run, fmt, segmenter_only)
    model = models(run)
    call = load(model_file, fmt)
    n_out = 1 if segmenter_only else 2
    # the traced 16^3 shape, then another batch size and another size on every spatial axis (dynamic axes)
    for seed, shape in enumerate([(1, 1, 16, 16, 16), (3, 1, 24, 8, 32)]):
        xs = patch(model, shape, seed, segmenter_only)
        got, ref = call(*xs), reference(model, segmenter_only, *xs)
        assert len(got) == len(ref) == n_out
        for g, r in zip(got, ref, strict=True):
            assert g.shape == r.shape
            assert float(np.abs(g - r).max()) <= TOL
        assert ref[-1].shape[1] == len(CLASS_NAMES)
    meta = json.loads(meta_file.read_text())
    assert max(meta["check"]["max_abs_diff"].values()) <= TOL
    assert meta["check"]["image_range"] == list(model.nets.value_range)


JSON_CASES = [  # method, format, segmenter_only, inputs, input transform
    ("adversarial", "torchscript", False, ["image", "mask"], "scale"),
    ("harmonized", "onnx", False, ["image", "mask"], "zscore"),
    ("harmonized", "torchscript", True, ["normalized"], "zscore"),
    ("harmonized-transfer", "onnx", False, ["image", "mask", "stats"], "zscore"),
    ("harmonized-transfer", "torchscript", False, ["image", "mask", "stats"], "zscore"),
]


@pytest.mark.parametrize("method,fmt,segmenter_only,inputs,transform", JSON_CASES)
def test_the_json_documents_the_export(runs, exported, method, fmt, segmenter_only, inputs, transform):
    run = runs(method)
    model_file, meta_file = exported(run, fmt, segmenter_only)
    stem = "segmenter" if segmenter_only else "model"
    suffix = ".onnx" if fmt == "onnx" else ".pt"
    assert [model_file.name, meta_file.name] == [stem + suffix, stem + ".json"]
    meta = json.loads(meta_file.read_text())
    raw = json.loads((run / "config.json").read_text())
    for key in (
        "format",
        "files",
        "method",
        "axes",
        "preprocessing",
        "input_transform",
        "stats",
        "labels",
        "versions",
        "how_to_use",
        "check",
    ):
        assert key in meta, key
    assert meta["format"] == fmt and meta["method"] == method.split("-")[0] and meta["has_generator"]
    (entry,) = meta["files"]
    assert entry["name"] == model_file.name
    assert entry["sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert [i["name"] for i in entry["inputs"]] == inputs
    outputs = ["probabilities"] if segmenter_only else ["normalized", "probabilities"]
    assert [o["name"] for o in entry["outputs"]] == outputs
    assert entry["outputs"][-1]["shape"] == ["batch", len(CLASS_NAMES), "i", "j", "k"]
    assert meta["axes"]["multiple_of"] == 2  # the tiny run's S has two levels (and G too where it is a U-Net)
    assert meta["axes"]["batch"] == "dynamic" and "dynamic" in meta["axes"]["spatial"]
    assert meta["preprocessing"]["working_grid"]["spacing_mm"] == [1.0, 1.0, 1.0]
    assert "RAS" in meta["preprocessing"]["working_grid"]["orientation"]
    assert meta["input_transform"]["kind"] == transform
    assert meta["input_transform"]["fitted"] == raw["run"]["input_state"]
    if transform == "scale":
        assert meta["input_transform"]["percentile"] == raw["data"]["scale_percentile"]
    assert [c["name"] for c in meta["labels"]["classes"]] == list(CLASS_NAMES)
    assert set(meta["labels"]["dataset_label_values"]) == set(raw["run"]["domains"])
    assert meta["versions"]["torch"] == torch.__version__ and "advnorm" in meta["versions"]
    how = meta["how_to_use"]
    assert any(f"'{model_file.name}'" in line for line in how)
    value_range = VALUE_RANGE[transform]
    assert meta["check"]["image_range"] == list(value_range) and meta["check"]["inputs"] == inputs
    if "stats" not in inputs:
        assert meta["stats"] is None and not any("stats" in line for line in how)
        return
    stats = meta["stats"]
    assert entry["inputs"][2]["shape"] == stats["shape"] == ["batch", N_STATS]
    assert stats["quantiles"] == list(QUANTILES) and stats["value_range"] == list(value_range)
    assert stats["histogram"]["bins"] == HISTOGRAM_BINS and stats["histogram"]["range"] == list(value_range)
    assert all(words in stats["voxels"] for words in ("brain voxels", "whole volume", "before padding"))
    assert "200000" in stats["quantile_subsampling"]
    # the code in the JSON is the code the snippet test runs, and how_to_use runs it
    assert stats["numpy"] == stats_code(value_range).splitlines()
    assert "\n".join(stats["numpy"]) in "\n".join(how)
    assert any("stats" in line and "image_stats(" in line for line in how)
    assert any("'stats': stats" in line or "torch.from_numpy(stats)" in line for line in how)
    assert any("compute stats" in step for step in meta["preprocessing"]["steps"])


def volume(shape, value_range, mask_share, seed, on_edges=False):
    """A random image over ``value_range`` and beyond it, and a random mask (``on_edges``: a third of the voxels
    exactly on a histogram bin edge, the range's ends included: which bin they count in must agree)."""
    rng = np.random.default_rng(seed)
    lo, hi = value_range
    image = rng.uniform(lo - 0.5 * (hi - lo), hi + 0.5 * (hi - lo), shape).astype(np.float32)
    if on_edges:
        edges = np.linspace(lo, hi, HISTOGRAM_BINS + 1).astype(np.float32)
        picked = rng.random(shape) < 1 / 3
        image[picked] = rng.choice(edges, int(picked.sum()))
    return image, rng.random(shape) < mask_share


STATS_CASES = [  # name, value range, shape, brain share, values on bin edges
    ("zscore", VALUE_RANGE["zscore"], (30, 40, 50), 0.6, False),
    ("zscore-bin-edges", VALUE_RANGE["zscore"], (30, 40, 50), 0.6, True),
    ("scale-bin-edges", VALUE_RANGE["scale"], (24, 32, 40), 0.5, True),
    ("nyul", VALUE_RANGE["nyul"], (20, 30, 40), 0.7, True),
    ("quantiles-subsampled", VALUE_RANGE["zscore"], (80, 80, 80), 0.9, True),  # > 400,000 brain voxels: every 2nd
    ("empty-mask", VALUE_RANGE["zscore"], (10, 12, 14), 0.0, False),
]


@pytest.mark.parametrize("name,value_range,shape,share,on_edges", STATS_CASES, ids=[c[0] for c in STATS_CASES])
def test_the_numpy_stats_snippet_is_image_stats(name, value_range, shape, share, on_edges):
    """The JSON's numpy code, run without advnorm, gives advnorm's ``image_stats`` of a whole volume."""
    namespace: dict = {}
    exec(stats_code(value_range), namespace)  # the text written into model.json
    image, mask = volume(shape, value_range, share, seed=len(name), on_edges=on_edges)
    got = namespace["image_stats"](image, mask)
    expected = image_stats(
        torch.from_numpy(image)[None, None], torch.from_numpy(mask.astype(np.float32))[None, None], value_range
    )[0].numpy()
    assert got.dtype == np.float32 and got.shape == (N_STATS,)
    assert float(np.abs(got - expected).max()) <= 1e-6


def test_the_check_draws_images_in_the_runs_value_range(runs, models):
    """The export's check feeds a z-scored method z-scored values (negative ones too), not [0, 1.5]."""
    cases = [("adversarial", "scale"), ("harmonized", "zscore"), ("harmonized-transfer", "zscore")]
    for name, transform in cases:
        value_range = VALUE_RANGE[transform]
        exp = exportable(models(runs(name)), segmenter_only=False)
        image, mask = exp.example(exp.check_shape(), seed=1)[:2]
        inside = image[mask > 0]
        lo, hi = value_range
        assert exp.value_range == value_range and lo <= float(inside.min()) and float(inside.max()) <= hi
        assert float(inside.min()) < lo + 0.1 * (hi - lo) and float(inside.max()) > hi - 0.1 * (hi - lo)
        assert exp.inputs == (("image", "mask", "stats") if name == "harmonized-transfer" else ("image", "mask"))


TRANSFER_CASES = ["onnx", "torchscript"]


@pytest.mark.parametrize("fmt", TRANSFER_CASES)
def test_a_far_from_identity_transfer_curve_exports(runs, models, tmp_path, fmt):
    """The tiny run's G is barely trained (near the identity); with random weights its curve is far from it and
    differs per image, so the gather, clamp and floor of ``IntensityTransfer`` and the stats input are exercised."""
    need(fmt)
    exp = exportable(models(runs("harmonized-transfer")), segmenter_only=False)
    G = copy.deepcopy(exp.module.G)
    torch.manual_seed(0)
    for p in G.hyper.parameters():
        torch.nn.init.normal_(p, std=0.5)
    exp = dataclasses.replace(exp, module=TransferNormalizeSegment(G, exp.module.S).eval())
    path = tmp_path / f"g{SUFFIX[fmt]}"
    with torch.no_grad(), quiet():
        EXPORTERS[fmt](exp, path)
    image, mask, stats = exp.example((3, 1, 12, 8, 10), seed=5)
    image = image * 1.5  # beyond the value range too: clamped to the end knots
    other = stats.flip(0)  # each image with another image's stats: another curve
    for s in (stats, other):
        with torch.no_grad():
            ref = exp.module(image, mask, s)
        with quiet():  # torch.jit.load's deprecation note
            got = run_export(path, fmt, (image, mask, s))
        for g, r in zip(got, ref, strict=True):
            assert float(np.abs(g - r.numpy()).max()) <= TOL
    with torch.no_grad():
        assert float((exp.module(image, mask, stats)[0] - exp.module(image, mask, other)[0]).abs().max()) > 0.1


WHOLE_VOLUME_CASES = [("adversarial", "onnx"), ("harmonized", "onnx"), ("harmonized-transfer", "torchscript")]


@pytest.mark.parametrize("method,fmt", WHOLE_VOLUME_CASES)
def test_the_exported_model_segments_a_whole_volume_like_predict(runs, exported, models, tiny_phantom, method, fmt):
    """Following the JSON: the run's input transform on the working grid, stats from the JSON's numpy code, one call
    on a whole volume whose size is a multiple of the stride, against ``predict`` in one window."""
    from advnorm.data.layouts import open_domains

    run = runs(method)
    model_file, meta_file = exported(run, fmt, False)
    meta, model = json.loads(meta_file.read_text()), models(run)
    ds = open_domains([str(tiny_phantom[1])])[0]
    subject = ds.load_case(ds.cases[0], with_label=False)
    s = meta["axes"]["multiple_of"]
    crop = tuple(slice(0, n - n % s) for n in subject.image.shape)
    subject = dataclasses.replace(subject, image=subject.image[crop], mask=subject.mask[crop])
    x, m = model.network_input(subject), subject.mask.astype(np.float32)
    inputs = [torch.from_numpy(a)[None, None] for a in (x, m)]
    if meta["stats"] is not None:
        namespace: dict = {}
        exec("\n".join(meta["stats"]["numpy"]), namespace)
        inputs.append(torch.from_numpy(namespace["image_stats"](x, m)[None]))
    normalized, probs = load(model_file, fmt)(*inputs)
    expected = model.predict(subject, window=512)
    assert expected.probs is not None
    assert float(np.abs(probs[0] - expected.probs).max()) <= TOL
    assert float(np.abs(np.where(subject.mask, normalized[0, 0], 0) - expected.normalized).max()) <= TOL


def test_a_run_without_a_generator_exports_its_fitted_input_transform(runs, tmp_path):
    nyul_run = runs("nyul")
    model_file, meta_file = export_run(nyul_run, tmp_path / "out", "torchscript")
    meta = json.loads(meta_file.read_text())
    fitted = json.loads((nyul_run / "config.json").read_text())["run"]["input_state"]
    assert meta["method"] == "nyul" and not meta["has_generator"]
    assert meta["input_transform"]["kind"] == "nyul"
    assert meta["input_transform"]["standard_landmarks"] == fitted["standard_landmarks"]
    assert meta["input_transform"]["percentiles"] == fitted["percentiles"]
    # without G the network input is what S sees: "normalized" is the input, the mask changes nothing
    model = TrainedModel(nyul_run, device="cpu")
    image, mask = patch(model, (1, 1, 16, 24, 16), 3, False)
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
    from advnorm.export import verify

    real = verify.run_export
    monkeypatch.setattr(verify, "run_export", lambda *a: [o + 1e-3 for o in real(*a)])
    with pytest.raises(AdvnormError, match="differs from PyTorch by 0.001") as err:
        export_run(tiny_run, tmp_path / "out", "torchscript")
    assert str(tmp_path / "out" / "model.pt") in str(err.value)
    assert list(tmp_path.iterdir()) == []  # no output folder, no staging folder
