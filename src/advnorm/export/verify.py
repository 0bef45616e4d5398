"""The check made before an export is written: the file gives PyTorch's outputs within ``TOLERANCE``.

It runs the written file the way a user would (onnxruntime, ``torch.jit.load``) on a random input of another shape
than the traced one, every input included (``stats`` too), so a dynamic axis frozen by the trace or an operation the
exporter translated differently is caught here, not by the user.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from advnorm.errors import AdvnormError
from advnorm.export.exporters import ExportFormat
from advnorm.export.modules import Exportable

TOLERANCE = 1e-4
"""Largest absolute difference between the exported model and PyTorch accepted by the check at export time."""


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


def check_export(exp: Exportable, path: Path, fmt: ExportFormat, target: Path) -> dict[str, Any]:
    """The exported file against PyTorch on a random input of another shape than the traced one; refused (naming
    ``target``, the file the user would have got) beyond ``TOLERANCE``. Returns what the JSON records of it."""
    shape = exp.check_shape()
    inputs = exp.example(shape, seed=1)
    with torch.no_grad():
        ref = exp.module(*inputs)
    refs = [t.numpy() for t in (ref if isinstance(ref, tuple) else (ref,))]
    got = run_export(path, fmt, inputs)
    diffs = {}
    for name, r, g in zip(exp.outputs, refs, got, strict=True):
        if r.shape != g.shape:
            raise AdvnormError(f"the exported model gives {name} of shape {g.shape}, PyTorch {r.shape}", target)
        diffs[name] = float(np.abs(r - g).max())
    if max(diffs.values()) > TOLERANCE:
        raise AdvnormError(
            f"the exported model differs from PyTorch by {max(diffs.values()):.2g} (> {TOLERANCE:g}) on a "
            f"{'x'.join(map(str, shape[2:]))} patch; not written",
            target,
        )
    stats = ", stats computed from each random image" if "stats" in exp.inputs else ""
    return {
        "input_shape": list(shape),
        "inputs": list(exp.inputs),
        "image_range": list(exp.value_range),
        "max_abs_diff": diffs,
        "tolerance": TOLERANCE,
        "against": "the run's networks in PyTorch, float32, CPU, on random inputs (image uniform in image_range "
        f"inside a random mask{stats})",
    }
