"""What an exported file computes: the run's networks wrapped as one module with named tensors in and out.

The wrappers do what :class:`advnorm.models.networks.Networks` does at inference (``normalize`` then the softmax
of ``segment``) with the same weights, so the exported file and ``advnorm predict`` agree. A transfer-function G
takes the whole image's statistics as a third input instead of computing them: a window (or a padded volume) is
not the image its curve was chosen for.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from advnorm.config import model_stride
from advnorm.inference import TrainedModel
from advnorm.models.transfer import ValueRange, image_stats

VOLUMES = ("image", "mask", "normalized")
"""Inputs of shape (batch, 1, i, j, k); ``stats`` is (batch, N_STATS)."""


class NormalizeSegment(nn.Module):
    """(image, mask) -> (G's output, S's probabilities): ``Networks.normalize`` then softmax of ``Networks.segment``."""

    def __init__(self, G: nn.Module | None, S: nn.Module) -> None:
        super().__init__()
        self.G = G
        self.S = S

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        normalized = image if self.G is None else self.G(image) * mask  # as Networks.normalize
        return normalized, torch.softmax(self.S(normalized), dim=1)


class TransferNormalizeSegment(nn.Module):
    """(image, mask, stats) -> (G's output, S's probabilities) for a transfer-function G, whose curve comes from
    ``stats`` (:func:`advnorm.models.transfer.image_stats` of the whole image), as ``Networks.normalize`` with
    ``stats`` given."""

    def __init__(self, G: nn.Module, S: nn.Module) -> None:
        super().__init__()
        self.G = G
        self.S = S

    def forward(
        self, image: torch.Tensor, mask: torch.Tensor, stats: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        normalized = self.G(image, stats) * mask
        return normalized, torch.softmax(self.S(normalized), dim=1)


class Segment(nn.Module):
    """normalized -> S's probabilities."""

    def __init__(self, S: nn.Module) -> None:
        super().__init__()
        self.S = S

    def forward(self, normalized: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.S(normalized), dim=1)


def uses_stats(model: TrainedModel, segmenter_only: bool) -> bool:
    """Whether the exported module takes ``stats``: G + S of a run whose G is a transfer function."""
    return not segmenter_only and model.nets.ingredients.generator == "transfer"


def io_names(model: TrainedModel, segmenter_only: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The exported file's input and output names, in call order."""
    if segmenter_only:
        return ("normalized",), ("probabilities",)
    inputs = ("image", "mask", "stats") if uses_stats(model, segmenter_only) else ("image", "mask")
    return inputs, ("normalized", "probabilities")


def export_stride(model: TrainedModel, segmenter_only: bool) -> int:
    """What every spatial size must be a multiple of: S's total stride, and a U-Net G's (a transfer G is voxelwise)."""
    unet_g = not segmenter_only and model.nets.G is not None and model.nets.ingredients.generator != "transfer"
    return model_stride(model.cfg.model, unet_generator=unet_g)


@dataclass(frozen=True)
class Exportable:
    """The module an export writes, with its tensor names, its stride and the value range of its image input."""

    module: nn.Module
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    stride: int
    value_range: ValueRange

    def example(self, shape: tuple[int, ...], seed: int) -> tuple[torch.Tensor, ...]:
        """A random input of ``shape`` (batch, 1, i, j, k), as real inputs are: the image (or the normalized image)
        uniform in the run's value range inside a mask with holes and 0 outside it, and ``stats`` of each image."""
        gen = torch.Generator().manual_seed(seed)
        mask = (torch.rand(shape, generator=gen) > 0.2).float()
        lo, hi = self.value_range
        image = (lo + (hi - lo) * torch.rand(shape, generator=gen)) * mask
        tensors = {"image": image, "normalized": image, "mask": mask}
        if "stats" in self.inputs:
            tensors["stats"] = image_stats(image, mask, self.value_range)
        return tuple(tensors[name] for name in self.inputs)

    def trace_shape(self) -> tuple[int, ...]:
        e = max(2 * self.stride, 16)
        return (2, 1, e, e, e)

    def check_shape(self) -> tuple[int, ...]:
        """Another shape than the traced one (batch and every spatial axis differ): the dynamic axes are exercised."""
        e = max(2 * self.stride, 16)
        return (1, 1, e + self.stride, e, e + 2 * self.stride)


def exportable(model: TrainedModel, segmenter_only: bool) -> Exportable:
    """The run's G + S (or S alone) as one module in eval mode, with plain weights."""
    nets = model.nets
    module: nn.Module
    if segmenter_only:
        module = Segment(nets.S)
    elif uses_stats(model, segmenter_only):
        assert nets.G is not None  # a transfer generator is a G
        module = TransferNormalizeSegment(nets.G, nets.S)
    else:
        module = NormalizeSegment(nets.G, nets.S)
    # plain (contiguous) weights: the file does not depend on the run's channels-last training layout
    module = module.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]  # stubs omit memory_format
    inputs, outputs = io_names(model, segmenter_only)
    return Exportable(module.eval(), inputs, outputs, export_stride(model, segmenter_only), nets.value_range)
