"""A discriminator that sees only what a normalizer changes: the intensity distribution of a patch.

A patch discriminator also sees anatomy, slice thickness and noise texture, which no intensity
normalization can make alike (an infant brain stays an infant brain): pushed to fool it, G would
distort intensities for nothing. This D looks at a soft (differentiable) histogram of the brain voxels
of each patch, so the adversary aligns exactly the intensity distributions of the sites.
"""

from __future__ import annotations

import torch
from torch import nn

from advnorm.models.transfer import SCALE_RANGE, ValueRange


def soft_histogram(x: torch.Tensor, mask: torch.Tensor, bins: int, value_range: ValueRange) -> torch.Tensor:
    """(B, bins): Gaussian-kernel histogram on ``value_range`` of each patch's voxels inside ``mask``, summing to 1."""
    lo, hi = value_range
    centres = torch.linspace(lo, hi, bins, device=x.device, dtype=torch.float32)
    width = (hi - lo) / (bins - 1)
    v = x.float().reshape(x.shape[0], -1, 1)
    m = mask.float().reshape(mask.shape[0], -1, 1)
    k = torch.exp(-0.5 * ((v - centres) / width) ** 2) * m  # (B, N, bins)
    h = k.sum(dim=1)
    return h / h.sum(dim=1, keepdim=True).clamp_min(1e-6)


class HistogramDiscriminator(nn.Module):
    """Logits over ``n_outputs`` classes from the soft histogram of each patch's brain voxels."""

    def __init__(self, n_outputs: int, bins: int = 48, hidden: int = 64, value_range: ValueRange = SCALE_RANGE) -> None:
        super().__init__()
        self.bins, self.value_range = bins, (float(value_range[0]), float(value_range[1]))
        self.net = nn.Sequential(
            nn.Linear(bins, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, n_outputs),
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = (x != 0).float() if mask is None else mask
        x, mask = x[..., ::2, ::2, ::2], mask[..., ::2, ::2, ::2]  # every 8th voxel: the same histogram, 1/8 the memory
        return self.net(soft_histogram(x, mask, self.bins, self.value_range) * self.bins)
