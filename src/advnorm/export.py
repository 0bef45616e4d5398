"""A trained run as portable files: G + S (or S alone) as ONNX or TorchScript, plus a JSON that says how to feed them.

The exported model takes what advnorm's networks take: the run's input transform of an image already
resampled to the 1 mm RAS working grid and masked, and the brain mask; it returns G's output (the input
itself for methods without G) and S's softmax probabilities. With ``segmenter_only`` it is S alone, whose
input is the normalized image. Batch and spatial axes are dynamic; each spatial size must be a multiple
of the U-Nets' total stride. The JSON beside the model (``model.json`` / ``segmenter.json``) records the
input transform with its fitted state, the preprocessing, the stride, the classes and the dataset label
ids, the versions, and a few lines of Python that run it. Every export is checked against PyTorch on a
random patch of another shape than the one it was traced with before anything is written.

ONNX export uses ``torch.onnx.export(..., dynamo=True)``, PyTorch's supported exporter (the TorchScript-based
one is deprecated); it needs the ``export`` extra (onnx, onnxscript, onnxruntime for the check). TorchScript
export is ``torch.jit.trace`` of the same module and needs nothing more; PyTorch 2.13 deprecates TorchScript
(``torch.jit.load`` warns) but still loads and runs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from advnorm.config import SCALE_TOP, total_stride
from advnorm.errors import AdvnormError, one_line
from advnorm.inference import TrainedModel
from advnorm.io_atomic import atomic_write_json, staged_folder
from advnorm.labels import CLASS_NAMES
from advnorm.paths import check_output_target
from advnorm.run_folder import RunFolder, versions

ExportFormat = Literal["onnx", "torchscript"]
FORMATS: tuple[str, ...] = ("onnx", "torchscript")
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}
EXPORT_SCHEMA = "advnorm-export-1"
TOLERANCE = 1e-4
"""Largest absolute difference between the exported model and PyTorch accepted by the check at export time."""
MAX_BLOCKS = 4096
"""Upper bound of the dynamic spatial axes, in strides (ONNX needs one; 4096 x 8 voxels is far beyond any scan)."""
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")


class _NormalizeSegment(nn.Module):
    """(image, mask) -> (G's output, S's probabilities): ``Networks.normalize`` then softmax of ``Networks.segment``."""

    def __init__(self, G: nn.Module | None, S: nn.Module) -> None:
        super().__init__()
        self.G = G
        self.S = S

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        normalized = image if self.G is None else self.G(image) * mask  # as Networks.normalize
        return normalized, torch.softmax(self.S(normalized), dim=1)


class _Segment(nn.Module):
    """normalized -> S's probabilities."""

    def __init__(self, S: nn.Module) -> None:
        super().__init__()
        self.S = S

    def forward(self, normalized: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.S(normalized), dim=1)


def export_run(
    run_dir: str | Path,
    out_dir: str | Path,
    fmt: ExportFormat,
    *,
    segmenter_only: bool = False,
    overwrite: bool = False,
    checkpoint: Literal["best", "final"] = "best",
) -> list[Path]:
    """Export the run in ``run_dir`` to ``out_dir`` as ``fmt``; returns the model file and its JSON.

    Every check comes first (format, packages, run folder, output folder); the files then appear in
    ``out_dir`` together or not at all. Existing files are refused unless ``overwrite``; the run's own
    files are never overwritten.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if fmt not in FORMATS:
        raise AdvnormError(f"unknown export format {fmt!r}; use onnx or torchscript", out_dir)
    if checkpoint not in ("best", "final"):
        raise AdvnormError(f"unknown checkpoint {checkpoint!r}; use best or final", run_dir)
    if fmt == "onnx":
        _require_onnx_packages()
    run_files = RunFolder(run_dir)
    run_files.read_raw_config()  # not a run folder, or an unreadable config.json: one line naming it
    stem = "segmenter" if segmenter_only else "model"
    targets = [out_dir / f"{stem}{SUFFIX[fmt]}", out_dir / f"{stem}.json"]
    own = {p.resolve() for p in run_files.own_files()}
    for t in targets:
        if t.resolve() in own:
            raise AdvnormError("export would overwrite a file of the run folder", t)
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        raise AdvnormError("export file exists; pass --overwrite to replace it", existing[0])
    check_output_target(out_dir, "export folder", is_dir=True)

    model = TrainedModel(run_dir, checkpoint=checkpoint, device="cpu")
    if not segmenter_only and model.nets.ingredients.generator == "transfer":
        raise AdvnormError(
            "this run's G is an intensity transfer function conditioned on whole-image statistics, "
            "which the export does not support yet: export S with --segmenter-only and feed it the "
            "output of `advnorm normalize`",
            run_dir,
        )
    module = _module(model, segmenter_only).eval()
    stride = _stride(model, segmenter_only)
    try:
        with staged_folder(out_dir) as staging:
            started = time.perf_counter()
            model_file = staging / targets[0].name
            with torch.no_grad(), _quiet():
                try:
                    _EXPORTERS[fmt](module, model_file, stride, segmenter_only)
                except (RuntimeError, TypeError, ValueError, AssertionError, ImportError) as exc:
                    raise AdvnormError(f"{fmt} export failed: {type(exc).__name__}: {one_line(exc)}", run_dir) from exc
            seconds = time.perf_counter() - started
            with _quiet():
                check = _check(module, model_file, fmt, stride, segmenter_only, targets[0])
            meta = describe(model, fmt, model_file, stride, segmenter_only, check, checkpoint)
            meta["export_seconds"] = round(seconds, 2)
            atomic_write_json(staging / targets[1].name, meta)
    except OSError as exc:
        raise AdvnormError(f"cannot write the export: {exc.strerror or exc}", out_dir) from None
    return targets


# -- the exportable modules --------------------------------------------------------------------------------------


def _module(model: TrainedModel, segmenter_only: bool) -> nn.Module:
    nets = model.nets
    module: nn.Module = _Segment(nets.S) if segmenter_only else _NormalizeSegment(nets.G, nets.S)
    # plain (contiguous) weights: the file does not depend on the run's channels-last training layout
    return module.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]  # stubs omit memory_format


def _stride(model: TrainedModel, segmenter_only: bool) -> int:
    m = model.cfg.model
    s = total_stride(m.segmenter_widths)
    return s if segmenter_only or model.nets.G is None else max(s, total_stride(m.generator_widths))


def _names(segmenter_only: bool) -> tuple[list[str], list[str]]:
    return (
        (["normalized"], ["probabilities"]) if segmenter_only else (["image", "mask"], ["normalized", "probabilities"])
    )


def _example(stride: int, segmenter_only: bool, shape: tuple[int, ...], seed: int) -> tuple[torch.Tensor, ...]:
    """A random input of ``shape`` (batch, 1, z, y, x): image values in the range of the rescaled inputs and a
    mask with holes, zero outside it (as real inputs are)."""
    gen = torch.Generator().manual_seed(seed)
    mask = (torch.rand(shape, generator=gen) > 0.2).float()
    image = torch.rand(shape, generator=gen) * SCALE_TOP * mask
    return (image,) if segmenter_only else (image, mask)


def _trace_shape(stride: int) -> tuple[int, ...]:
    e = max(2 * stride, 16)
    return (2, 1, e, e, e)


def _check_shape(stride: int) -> tuple[int, ...]:
    """Another shape than the traced one (batch and every spatial axis differ): the dynamic axes are exercised."""
    e = max(2 * stride, 16)
    return (1, 1, e + stride, e, e + 2 * stride)


def _export_onnx(module: nn.Module, path: Path, stride: int, segmenter_only: bool) -> None:
    from torch.export import Dim

    inputs, outputs = _names(segmenter_only)
    batch = Dim("batch", min=1, max=1 << 16)
    blocks = [Dim(f"{a}_blocks", min=1, max=MAX_BLOCKS) for a in "ijk"]
    axes = {0: batch, 2: stride * blocks[0], 3: stride * blocks[1], 4: stride * blocks[2]}
    torch.onnx.export(
        module,
        _example(stride, segmenter_only, _trace_shape(stride), seed=0),
        str(path),
        dynamo=True,
        input_names=inputs,
        output_names=outputs,
        dynamic_shapes={name: axes for name in inputs},
        external_data=False,
        verbose=False,
        report=False,
    )


def _export_torchscript(module: nn.Module, path: Path, stride: int, segmenter_only: bool) -> None:
    traced = torch.jit.trace(module, _example(stride, segmenter_only, _trace_shape(stride), seed=0), check_trace=False)
    torch.jit.save(traced, str(path))


_EXPORTERS = {"onnx": _export_onnx, "torchscript": _export_torchscript}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters' deprecation notes, tracer warnings and progress lines are not the user's business."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _require_onnx_packages() -> None:
    import importlib.util

    missing = [p for p in ONNX_PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        raise AdvnormError(
            f"ONNX export needs {', '.join(missing)}: pip install 'advnorm[export]' (or {' '.join(missing)})"
        )


# -- the check ---------------------------------------------------------------------------------------------------


def run_export(path: str | Path, fmt: ExportFormat, inputs: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    """Run an exported model file on ``inputs`` (CPU): onnxruntime for ONNX, ``torch.jit.load`` for TorchScript."""
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        return list(session.run(None, {n: t.numpy() for n, t in zip(names, inputs, strict=True)}))
    net = torch.jit.load(str(path), map_location="cpu").eval()
    with torch.no_grad():
        out = net(*inputs)
    return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]


def _check(
    module: nn.Module, path: Path, fmt: ExportFormat, stride: int, segmenter_only: bool, target: Path
) -> dict[str, Any]:
    """The exported file against PyTorch on a random patch of another shape than the traced one."""
    shape = _check_shape(stride)
    inputs = _example(stride, segmenter_only, shape, seed=1)
    with torch.no_grad():
        ref = module(*inputs)
    refs = [t.numpy() for t in (ref if isinstance(ref, tuple) else (ref,))]
    got = run_export(path, fmt, inputs)
    _, outputs = _names(segmenter_only)
    diffs = {}
    for name, r, g in zip(outputs, refs, got, strict=True):
        if r.shape != g.shape:
            raise AdvnormError(f"the exported model gives {name} of shape {g.shape}, PyTorch {r.shape}", target)
        diffs[name] = float(np.abs(r - g).max())
    if max(diffs.values()) > TOLERANCE:
        raise AdvnormError(
            f"the exported model differs from PyTorch by {max(diffs.values()):.2g} (> {TOLERANCE:g}) on a "
            f"{'x'.join(map(str, shape[2:]))} patch; not written",
            target,
        )
    return {
        "input_shape": list(shape),
        "max_abs_diff": diffs,
        "tolerance": TOLERANCE,
        "against": "the run's networks in PyTorch, float32, CPU, on random inputs",
    }


# -- the JSON ----------------------------------------------------------------------------------------------------


def describe(
    model: TrainedModel,
    fmt: ExportFormat,
    path: Path,
    stride: int,
    segmenter_only: bool,
    check: dict[str, Any],
    checkpoint: str = "best",
) -> dict[str, Any]:
    """What the JSON beside an exported model says (see the module docstring)."""
    inputs, outputs = _names(segmenter_only)
    classes = _classes(model)
    shapes = {"image": 1, "mask": 1, "normalized": 1, "probabilities": len(classes)}
    axes = ["batch", "i", "j", "k"]

    def tensor(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "shape": [axes[0], shapes[name], *axes[1:]],
            "dtype": "float32",
            "description": _TENSOR_DOC[name],
        }

    file_info: dict[str, Any] = {
        "name": path.name,
        "bytes": path.stat().st_size,
        "sha256": _sha256(path),
        "inputs": [tensor(n) for n in inputs],
        "outputs": [tensor(n) for n in outputs],
    }
    pkg = versions()
    if fmt == "onnx":
        import onnx
        import onnxruntime
        import onnxscript

        proto = onnx.load(str(path), load_external_data=False)
        file_info["opset"] = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        pkg.update(onnx=onnx.__version__, onnxscript=onnxscript.__version__, onnxruntime=onnxruntime.__version__)
    spec = model.spec
    return {
        "schema": EXPORT_SCHEMA,
        "format": fmt,
        "what": "S alone: normalized image -> class probabilities"
        if segmenter_only
        else "G and S: (network input, brain mask) -> (normalized image, class probabilities)",
        "method": model.cfg.method,
        "method_title": spec.title,
        "has_generator": model.nets.G is not None,
        "run": {
            "folder": str(model.files.root.resolve()),
            "checkpoint": model.files.checkpoint(checkpoint).name,
            "profile": model.cfg.profile,
            "domains": list(model.domains),
            "model": model.cfg.to_dict()["model"],
        },
        "files": [file_info],
        "precision": "float32",
        "axes": {
            "batch": "dynamic",
            "spatial": f"dynamic: i, j, k each any positive multiple of {stride} voxels",
            "multiple_of": stride,
            "layout": "(batch, channel, i, j, k): i, j, k the voxel axes of the 1 mm RAS working grid "
            "(i towards Right, j towards Anterior, k towards Superior)",
        },
        "preprocessing": _preprocessing(stride),
        "input_transform": _input_transform(model),
        "labels": _labels(model, classes),
        "check": check,
        "versions": pkg,
        "how_to_use": _how_to_use(fmt, path.name, segmenter_only, stride, classes),
    }


_TENSOR_DOC = {
    "image": "the run's input transform (see input_transform) of the image on the working grid, 0 outside the brain",
    "mask": "the brain mask on the working grid: 1 inside, 0 outside",
    "normalized": "the normalized image S segments: G's output (methods with G; 0 outside the mask) or the input "
    "transform's output itself (methods without G)",
    "probabilities": "S's softmax class probabilities (channels in the order of labels.classes)",
}


def _preprocessing(stride: int) -> dict[str, Any]:
    return {
        "working_grid": {
            "spacing_mm": [1.0, 1.0, 1.0],
            "orientation": "RAS+ axis-aligned (voxel axes i, j, k along Right, Anterior, Superior)",
            "image_interpolation": "linear (of the image with 0 outside the brain)",
            "mask_interpolation": "nearest",
        },
        "steps": [
            "1. zero the image outside the brain mask (skull-stripped images: mask = image != 0)",
            "2. resample image (linear) and mask (nearest) to a 1 mm isotropic axis-aligned RAS grid "
            "(e.g. nibabel.processing.resample_to_output(img, voxel_sizes=1, order=1)); zero the image outside the "
            "resampled mask",
            "3. apply the input transform (input_transform) inside the mask, 0 outside",
            f"4. pad every spatial axis at its far end with zeros (image and mask) to a multiple of {stride}",
            "5. run the model; crop the outputs back; labels = argmax over the class axis; resample the "
            "probabilities (not the labels) back to the source grid if needed",
        ],
        "windows": "G and S use BatchNorm in eval mode, so a voxel's output does not depend on the window: a large "
        "volume may be processed in overlapping windows (advnorm predict uses up to 160^3 with Gaussian blending)",
    }


def _input_transform(model: TrainedModel) -> dict[str, Any]:
    kind = model.spec.input_transform
    fitted = model.run.get("input_state") or {}
    if kind == "scale":
        p = model.cfg.data.scale_percentile
        return {
            "kind": "scale",
            "percentile": p,
            "clip_max": SCALE_TOP,
            "fitted": fitted,
            "formula": f"x = clip(image / t, 0, {SCALE_TOP}) inside the mask, 0 outside; t = the {p}th percentile of "
            "the brain voxels' raw intensities (their maximum if that is <= 0). Needs raw, non-negative MR intensities",
        }
    if kind == "zscore":
        return {
            "kind": "zscore",
            "fitted": fitted,
            "formula": "x = (image - mean) / std over the brain voxels (std 0 -> 1) inside the mask, 0 outside",
        }
    return {
        "kind": "nyul",
        "percentiles": fitted.get("percentiles"),
        "standard_landmarks": fitted.get("standard_landmarks"),
        "fitted": fitted,
        "formula": "Nyul & Udupa: the image's brain-voxel percentiles (made strictly increasing by adding 1e-6 * k "
        "to the k-th) are mapped onto standard_landmarks piecewise linearly, extrapolating linearly below the first "
        "and above the last landmark; 0 outside the mask",
    }


def _classes(model: TrainedModel) -> tuple[str, ...]:
    """S's class names, background first: the run's recorded label set (the paper's tissues when it has none)."""
    names = model.run.get("classes") or getattr(model.nets, "classes", None) or CLASS_NAMES
    return tuple(str(n) for n in names)


def _labels(model: TrainedModel, classes: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, list[int]] = {}
    for fp in model.run.get("data") or []:
        reading = fp.get("reading") if isinstance(fp, dict) else None
        if isinstance(reading, dict) and isinstance(reading.get("label_values"), list):
            values[str(fp.get("name"))] = [int(v) for v in reading["label_values"]]
    return {
        "classes": [{"index": i, "name": n} for i, n in enumerate(classes)],
        "dataset_label_values": values or None,
        "note": "class index k of the probabilities' channel axis is written as dataset_label_values[domain][k] "
        "in that training domain's own label convention (null: not recorded by the run)",
    }


def _how_to_use(fmt: ExportFormat, name: str, segmenter_only: bool, stride: int, classes: tuple[str, ...]) -> list[str]:
    shape = f"(N, 1, I, J, K) float32 arrays on the working grid, I, J, K multiples of {stride}"
    feed = "normalized" if segmenter_only else "image, mask"
    out = "probabilities" if segmenter_only else "normalized, probabilities"
    if fmt == "onnx":
        args = "{'normalized': normalized}" if segmenter_only else "{'image': image, 'mask': mask}"
        lines = [
            "import onnxruntime as ort",
            f"session = ort.InferenceSession('{name}', providers=['CPUExecutionProvider'])",
            f"# {feed}: {shape} (see preprocessing)",
            f"{out}{',' if segmenter_only else ''} = session.run(None, {args})",
        ]
    else:
        lines = [
            "import torch",
            f"net = torch.jit.load('{name}', map_location='cpu').eval()",
            f"# {feed}: {shape} (see preprocessing)",
            "with torch.no_grad():",
            f"    {out} = net({', '.join('torch.from_numpy(' + a + ')' for a in feed.split(', '))})",
        ]
    names = ", ".join(f"{k} {n}" for k, n in enumerate(classes))
    return [*lines, f"labels = probabilities.argmax(1)  # {names}"]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
