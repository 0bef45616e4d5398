"""The JSON beside an exported model: everything needed to feed it without advnorm.

The tensors, the axes and the stride, the preprocessing onto the working grid, the run's fitted input transform,
the whole-image statistics a transfer-function G needs (:mod:`advnorm.export.stats`), the classes and the dataset
label ids, the check against PyTorch, the versions, and a few lines of Python that run it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from advnorm.config import SCALE_TOP
from advnorm.export.exporters import ExportFormat
from advnorm.export.modules import io_names, uses_stats
from advnorm.export.stats import stats_code, stats_doc
from advnorm.inference import InferenceWindow, TrainedModel
from advnorm.labels import CLASS_NAMES
from advnorm.models.transfer import N_STATS, ValueRange
from advnorm.run_folder import versions

EXPORT_SCHEMA = "advnorm-export-1"


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
    inputs, outputs = io_names(model, segmenter_only)
    with_stats = uses_stats(model, segmenter_only)
    classes = _classes(model)
    channels = {"image": 1, "mask": 1, "normalized": 1, "probabilities": len(classes)}

    def tensor(name: str) -> dict[str, Any]:
        shape = ["batch", N_STATS] if name == "stats" else ["batch", channels[name], "i", "j", "k"]
        return {"name": name, "shape": shape, "dtype": "float32", "description": _TENSOR_DOC[name]}

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
        else f"G and S: ({', '.join(_INPUT_WORDS[n] for n in inputs)}) -> (normalized image, class probabilities)",
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
        "preprocessing": _preprocessing(stride, with_stats, model.window),
        "input_transform": _input_transform(model),
        "stats": stats_doc(model.nets.value_range, spec.input_transform) if with_stats else None,
        "labels": _labels(model, classes),
        "check": check,
        "versions": pkg,
        "how_to_use": _how_to_use(fmt, path.name, inputs, stride, classes, model.nets.value_range),
    }


_INPUT_WORDS = {"image": "network input", "mask": "brain mask", "stats": "whole-image statistics"}
_TENSOR_DOC = {
    "image": "the run's input transform (see input_transform) of the image on the working grid, 0 outside the brain",
    "mask": "the brain mask on the working grid: 1 inside, 0 outside",
    "stats": "the statistics of the whole image each item of the batch belongs to (see stats), one row per item",
    "normalized": "the normalized image S segments: G's output (methods with G; 0 outside the mask) or the input "
    "transform's output itself (methods without G)",
    "probabilities": "S's softmax class probabilities (channels in the order of labels.classes)",
}


def _preprocessing(stride: int, with_stats: bool, window: InferenceWindow) -> dict[str, Any]:
    steps = [
        "zero the image outside the brain mask (skull-stripped images: mask = image != 0)",
        "resample image (linear) and mask (nearest) to a 1 mm isotropic axis-aligned RAS grid "
        "(e.g. nibabel.processing.resample_to_output(img, voxel_sizes=1, order=1)); zero the image outside the "
        "resampled mask",
        "apply the input transform (input_transform) inside the mask, 0 outside",
        *(["compute stats (see stats) from this whole image and mask"] if with_stats else []),
        f"pad every spatial axis at its far end with zeros (image and mask) to a multiple of {stride}",
        "run the model; crop the outputs back; labels = argmax over the class axis; resample the "
        "probabilities (not the labels) back to the source grid if needed",
    ]
    windows = (
        "G and S use BatchNorm in eval mode, so no statistic depends on the window, but the zero padding at its "
        f"border does: advnorm predict slides windows of the training patch size ({window.edge}^3 voxels) at "
        f"overlap {window.overlap:g} with Gaussian blending of G's output and the probabilities, what the networks "
        "saw in training; one "
        "pass over the whole volume (or 160^3 windows) is faster and moves most methods' mean Dice by 0.010 or less, "
        "but not that of the adversarial and augmented methods (advnorm's docs/method.md)"
    )
    return {
        "working_grid": {
            "spacing_mm": [1.0, 1.0, 1.0],
            "orientation": "RAS+ axis-aligned (voxel axes i, j, k along Right, Anterior, Superior)",
            "image_interpolation": "linear (of the image with 0 outside the brain)",
            "mask_interpolation": "nearest",
        },
        "steps": [f"{k}. {step}" for k, step in enumerate(steps, start=1)],
        "windows": windows + ("; every window gets the stats of the whole volume" if with_stats else ""),
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


def _how_to_use(
    fmt: ExportFormat,
    name: str,
    inputs: tuple[str, ...],
    stride: int,
    classes: tuple[str, ...],
    value_range: ValueRange,
) -> list[str]:
    shape = f"(N, 1, I, J, K) float32 arrays on the working grid, I, J, K multiples of {stride}"
    out = "probabilities" if inputs == ("normalized",) else "normalized, probabilities"
    lines = [f"# {', '.join(n for n in inputs if n != 'stats')}: {shape} (see preprocessing)"]
    if "stats" in inputs:
        lines = [
            *stats_code(value_range).splitlines(),
            "",
            *lines,
            f"# stats: (N, {N_STATS}) float32, a row per whole volume (zero padding outside the mask changes nothing);",
            "# each window of a volume gets that volume's row",
            "stats = np.stack([image_stats(i[0], m[0]) for i, m in zip(image, mask)])",
        ]
    if fmt == "onnx":
        feed = ", ".join(f"'{n}': {n}" for n in inputs)
        lines = [
            "import onnxruntime as ort",
            *lines,
            f"session = ort.InferenceSession('{name}', providers=['CPUExecutionProvider'])",
            f"{out}{',' if out == 'probabilities' else ''} = session.run(None, {{{feed}}})",
        ]
    else:
        lines = [
            "import torch",
            *lines,
            f"net = torch.jit.load('{name}', map_location='cpu').eval()",
            "with torch.no_grad():",
            f"    {out} = net({', '.join(f'torch.from_numpy({n})' for n in inputs)})",
        ]
    names = ", ".join(f"{k} {n}" for k, n in enumerate(classes))
    return [*lines, f"labels = probabilities.argmax(1)  # {names}"]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
