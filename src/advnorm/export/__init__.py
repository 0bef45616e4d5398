"""A trained run as portable files: G + S (or S alone) as ONNX or TorchScript, plus a JSON that says how to feed them.

The exported model takes what advnorm's networks take: the run's input transform of an image already
resampled to the 1 mm RAS working grid and masked, and the brain mask; it returns G's output (the input
itself for methods without G) and S's softmax probabilities. A transfer-function G (the ``harmonized`` method)
also takes ``stats``, the statistics of the whole image each window belongs to (:mod:`advnorm.export.stats`:
the JSON gives numpy code for them), because its curve is chosen per image, not per window. With
``segmenter_only`` it is S alone, whose input is the normalized image. Batch and spatial axes are dynamic; each
spatial size must be a multiple of S's total stride (and of a U-Net G's). The JSON beside the model
(``model.json`` / ``segmenter.json``) records the input transform with its fitted state, the preprocessing, the
stride, the classes and the dataset label ids, the versions, and a few lines of Python that run it. Every export
is checked against PyTorch on a random input of another shape than the one it was traced with before anything is
written.

ONNX export uses ``torch.onnx.export(..., dynamo=True)``, PyTorch's supported exporter (the TorchScript-based
one is deprecated); it needs the ``export`` extra (onnx, onnxscript, onnxruntime for the check). TorchScript
export is ``torch.jit.trace`` of the same module and needs nothing more; PyTorch 2.13 deprecates TorchScript
(``torch.jit.load`` warns) but still loads and runs it.

The package: :mod:`~advnorm.export.modules` (what the files compute and its example inputs),
:mod:`~advnorm.export.exporters` (ONNX, TorchScript), :mod:`~advnorm.export.verify` (the check against
PyTorch), :mod:`~advnorm.export.stats` (the ``stats`` input, as numpy code and prose),
:mod:`~advnorm.export.metadata` (the JSON), :mod:`~advnorm.export.write` (``export_run``: all of it, written
together or not at all).
"""

from advnorm.export.exporters import FORMATS, ExportFormat
from advnorm.export.metadata import describe
from advnorm.export.verify import run_export
from advnorm.export.write import export_run

__all__ = ["FORMATS", "ExportFormat", "describe", "export_run", "run_export"]
