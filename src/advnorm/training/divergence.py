"""Stop a training whose losses became NaN/Inf or whose discriminator diverged, with one line saying where."""

from __future__ import annotations

import torch

from advnorm.errors import AdvnormError

DIVERGENCE_LIMIT = 50.0
"""A discriminator loss above this (chance level is ~2 ln(K+1)) means D has diverged."""


def check_finite(
    history: list[torch.Tensor], names: list[str], epoch: int, first_step: int, has_checkpoint: bool
) -> None:
    """Stop with a one-line error naming the loss, epoch and step when a loss is NaN/Inf or D has diverged."""
    block = torch.stack(history)
    bad = ~torch.isfinite(block)
    if "loss_dis" in names:
        bad[:, names.index("loss_dis")] |= block[:, names.index("loss_dis")] > DIVERGENCE_LIMIT
    if bool(bad.any()):
        i, j = (int(t) for t in torch.nonzero(bad)[0])
        what = "diverged" if torch.isfinite(block[i, j]) else "became NaN/Inf"
        kept = (
            "checkpoint_best.safetensors of an earlier epoch is kept"
            if has_checkpoint
            else "no checkpoint was written before it"
        )
        raise AdvnormError(
            f"training stopped: {names[j]} {what} ({float(block[i, j]):.4g}) at epoch {epoch + 1}, "
            f"step {first_step + i + 1}; {kept}"
        )
