"""Random intensity augmentation for the ``augmented`` baseline: gamma, bias field, contrast, noise.

Applied to a batch of patches on the device, inside the brain only; each patch
draws its own parameters from a torch Generator, so runs are reproducible.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BIAS_LOG_AMPLITUDE = 0.3
"""The default bias field: log-gains drawn in [-0.3, 0.3] at 4^3 points across each patch."""

NOISE_SD = 0.0
"""The default noise bound (``train.augment_noise``): none. Gaussian noise of a standard deviation drawn in
[0, 0.08] (the default until measured) hid an isointense infant T1's GM-WM contrast (about 0.03 on this [0, 1.5]
scale) and made S lose tissues on realistic-layout data (docs/method.md)."""


def augment_intensity(
    x: torch.Tensor,
    mask: torch.Tensor,
    gen: torch.Generator,
    bias: float = BIAS_LOG_AMPLITUDE,
    noise_sd: float = NOISE_SD,
    share: float = 1.0,
) -> torch.Tensor:
    """``x``, ``mask``: (B, 1, D, H, W), ``x`` roughly in [0, 1.5]. Returns a new tensor.

    ``bias`` bounds the bias field's log-gain at its coarse grid points. The field varies across one patch
    (up to x1.8 between points a third of a patch apart at the default 0.3), far faster than a scanner's field
    varies across a head; ``train.augment_bias`` sets it. ``noise_sd`` bounds the noise's standard deviation
    (``train.augment_noise``). ``share`` is the chance that a patch is augmented at all (``train.augment_share``);
    the others pass through as they are, so S also sees each site's own intensities. Below 1 it draws one more
    number per patch after the augmentation's own draws, so at 1 the draws, and runs, are those of before."""
    b = x.shape[0]

    def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return (lo + (hi - lo) * torch.rand((b, *shape), generator=gen)).to(x.device, x.dtype)

    gamma = torch.exp(uniform(-0.7, 0.7, 1, 1, 1, 1))
    y = x.clamp_min(0) ** gamma
    # a smooth multiplicative bias field: random coarse 4^3 grid upsampled trilinearly
    coarse = uniform(-bias, bias, 1, 4, 4, 4)
    field = torch.exp(F.interpolate(coarse, size=x.shape[2:], mode="trilinear", align_corners=True))
    y = y * field
    # contrast: random affine stretch about the patch mean
    mean = (y * mask).sum(dim=(2, 3, 4), keepdim=True) / mask.sum(dim=(2, 3, 4), keepdim=True).clamp_min(1)
    y = (y - mean) * uniform(0.6, 1.5, 1, 1, 1, 1) + mean * uniform(0.7, 1.3, 1, 1, 1, 1)
    noise = torch.randn(x.shape, generator=gen).to(x.device, x.dtype) * uniform(0.0, noise_sd, 1, 1, 1, 1)
    y = torch.where(mask > 0, y + noise, torch.zeros_like(y))
    if share >= 1:
        return y
    keep = torch.rand(b, generator=gen) < share
    return torch.where(keep.to(x.device).view(b, 1, 1, 1, 1), y, x)
