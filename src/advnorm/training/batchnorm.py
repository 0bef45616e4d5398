"""BatchNorm statistics recomputed for the current weights ("precise BN", Wu & Johnson 2021).

In training, BatchNorm normalizes with each batch's own statistics; in eval mode (validation and
whole-volume inference) with running averages that trail the weights by an exponential window. While G
and S change fast, the two disagree, and a joint G + S that encodes tissues in small intensity steps
loses them at inference: measured on realistic iSEG + MRBrainS-layout data, an unconstrained run scored
iSEG WM Dice 0.18 with the running averages and 0.57 with statistics recomputed on training patches
(docs/method.md). Recomputing them before every validation makes validation, the checkpoint choice and
inference see what training saw.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn


def batchnorm_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recompute_batchnorm_statistics(module: nn.Module, forward_passes: Iterable[Callable[[], object]]) -> int:
    """Replace the running mean and variance of every BatchNorm layer in ``module`` by their plain average over
    ``forward_passes`` (each runs one batch through the networks), computed in training mode with the current
    weights. Nothing else changes: weights, the layers' mode and momentum are as before. Returns the passes run."""
    layers, passes = batchnorm_layers(module), list(forward_passes)
    if not layers or not passes:
        return 0
    saved = [(m.momentum, m.training) for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the passes, not an exponential one
        m.train()
    try:
        for run in passes:
            run()
    finally:
        for m, (momentum, training) in zip(layers, saved, strict=True):
            m.momentum = momentum
            m.train(training)
    return len(passes)
