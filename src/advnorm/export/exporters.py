"""Writing an :class:`~advnorm.export.modules.Exportable` as ONNX (dynamo exporter) or TorchScript (trace).

Both trace the module on a random input of :meth:`~advnorm.export.modules.Exportable.trace_shape`; batch and the
spatial axes stay dynamic (ONNX: declared, each spatial axis a multiple of the stride; TorchScript: the trace
records sizes as operations), which :mod:`advnorm.export.verify` then checks on another shape.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import torch

from advnorm.errors import AdvnormError
from advnorm.export.modules import VOLUMES, Exportable

ExportFormat = Literal["onnx", "torchscript"]
FORMATS: tuple[str, ...] = ("onnx", "torchscript")
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}
MAX_BLOCKS = 4096
"""Upper bound of the dynamic spatial axes, in strides (ONNX needs one; 4096 x 8 voxels is far beyond any scan)."""
MAX_BATCH = 1 << 16
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")


def export_onnx(exp: Exportable, path: Path) -> None:
    from torch.export import Dim

    batch = Dim("batch", min=1, max=MAX_BATCH)
    blocks = [Dim(f"{a}_blocks", min=1, max=MAX_BLOCKS) for a in "ijk"]
    volume = {0: batch, 2: exp.stride * blocks[0], 3: exp.stride * blocks[1], 4: exp.stride * blocks[2]}
    dynamic: dict[str, dict[int, Any]] = {name: volume if name in VOLUMES else {0: batch} for name in exp.inputs}
    torch.onnx.export(
        exp.module,
        exp.example(exp.trace_shape(), seed=0),
        str(path),
        dynamo=True,
        input_names=list(exp.inputs),
        output_names=list(exp.outputs),
        dynamic_shapes=dynamic,
        external_data=False,
        verbose=False,
        report=False,
    )


def export_torchscript(exp: Exportable, path: Path) -> None:
    traced = torch.jit.trace(exp.module, exp.example(exp.trace_shape(), seed=0), check_trace=False)
    torch.jit.save(traced, str(path))


EXPORTERS: dict[str, Callable[[Exportable, Path], None]] = {"onnx": export_onnx, "torchscript": export_torchscript}


@contextlib.contextmanager
def quiet() -> Iterator[None]:
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


def require_onnx_packages() -> None:
    """Refuse an ONNX export up front, naming what to install, rather than after loading the run."""
    missing = [p for p in ONNX_PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        raise AdvnormError(
            f"ONNX export needs {', '.join(missing)}: pip install 'advnorm[export]' (or {' '.join(missing)})"
        )
