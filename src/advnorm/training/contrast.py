"""Random contrast curves: training images of contrasts no site showed (``train.contrast_randomisation``).

A chosen share of each batch's patches has its whole image put through a random piecewise-linear intensity
curve (knot values drawn uniformly, so tissues get random, possibly inverted, intensities: a T1 can come out
T2-like), rescaled so the brain keeps its input transform's mean and spread. It is in the spirit of SynthSeg's
contrast randomisation (Billot et al., 2023), with two differences on purpose:

- the curve maps intensity, not labels, so each tissue's texture, partial volume and the image's own noise are
  kept, and every voxel of an image goes through one curve: what a site, not a label map, does;
- the image's statistics that a transfer-function G is conditioned on (``advnorm.models.transfer.image_stats``)
  stay consistent with the randomised patch, because they are recomputed from the image's intensity profile put
  through the same curve (256 equally weighted quantiles: the whole image's distribution at a fixed cost).

So G sees, during training, images whose histogram it must bring to what S expects, which is what a site it
never saw asks of it at inference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from advnorm.models.transfer import image_stats

CURVE_KNOTS = 6
"""Knots of a random curve over the brain's intensity range: enough to give CSF, GM and WM their own levels."""


@dataclass(frozen=True)
class RandomisedBatch:
    x: torch.Tensor
    """The patches, those chosen put through their image's curve (outside the brain unchanged)."""
    profile: torch.Tensor
    """Each patch's image's intensity profile after its curve (sorted again)."""
    stats: torch.Tensor
    """Each patch's image's statistics after its curve."""
    chosen: torch.Tensor
    """(B,) bool: which patches were randomised."""


def random_curves(profile: torch.Tensor, gen: torch.Generator, knots: int = CURVE_KNOTS) -> tuple[torch.Tensor, ...]:
    """Per row of ``profile`` (B, N): knot positions spanning its range and random knot values in [0, 1]."""
    b = profile.shape[0]
    lo, hi = profile[:, :1], profile[:, -1:]
    steps = torch.linspace(0, 1, knots, dtype=profile.dtype, device=profile.device)
    positions = lo + (hi - lo).clamp_min(1e-6) * steps
    values = torch.rand((b, knots), generator=gen).to(profile.device, profile.dtype)
    return positions, values


def apply_curves(x: torch.Tensor, positions: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Each row b of ``x`` (B, ...) through its piecewise-linear curve; flat beyond the end knots."""
    b, k = positions.shape
    flat = x.reshape(b, -1).float().clamp(positions[:, :1], positions[:, -1:]).contiguous()
    idx = torch.searchsorted(positions.contiguous(), flat).clamp(1, k - 1)
    x0, x1 = torch.gather(positions, 1, idx - 1), torch.gather(positions, 1, idx)
    y0, y1 = torch.gather(values, 1, idx - 1), torch.gather(values, 1, idx)
    w = ((flat - x0) / (x1 - x0).clamp_min(1e-12)).clamp(0, 1)
    return (y0 + w * (y1 - y0)).reshape(x.shape).to(x.dtype)


def randomise_contrast(
    x: torch.Tensor,
    mask: torch.Tensor,
    profile: torch.Tensor,
    stats: torch.Tensor,
    value_range: tuple[float, float],
    share: float,
    gen: torch.Generator,
) -> RandomisedBatch:
    """Puts a ``share`` of the patches ``x`` (B, 1, P, P, P) through a random contrast curve of their image.

    ``profile`` (B, N) is each patch's image's sorted brain intensity profile and ``stats`` (B, N_STATS) its
    statistics over ``value_range``; both are returned for the randomised images. The curve's output is
    rescaled so that the profile keeps its mean and standard deviation (a z-scored input stays z-scored).
    Draws come from ``gen`` (CPU), so a run is reproducible."""
    b = x.shape[0]
    chosen = (torch.rand(b, generator=gen) < share).to(x.device)
    positions, values = random_curves(profile, gen)
    curved_profile = apply_curves(profile, positions, values)
    mean, sd = profile.mean(1, keepdim=True), profile.std(1, keepdim=True)
    c_mean, c_sd = curved_profile.mean(1, keepdim=True), curved_profile.std(1, keepdim=True)
    flat = c_sd < 1e-3  # a curve that merged every tissue into one level: not a contrast, keep the image
    chosen = chosen & ~flat[:, 0]
    gain = sd / c_sd.clamp_min(1e-3)
    new_profile = torch.sort((curved_profile - c_mean) * gain + mean, dim=1).values
    out_x, out_profile, out_stats = x.clone(), profile.clone(), stats.clone()
    rows = torch.nonzero(chosen).flatten()  # only the chosen patches go through their curve: the hot path
    if rows.numel():
        view = (len(rows),) + (1,) * (x.dim() - 1)
        curved = apply_curves(x[rows], positions[rows], values[rows])
        rescaled = (curved - c_mean[rows].reshape(view)) * gain[rows].reshape(view) + mean[rows].reshape(view)
        out_x[rows] = torch.where(mask[rows] > 0, rescaled, x[rows])
        out_profile[rows] = new_profile[rows]
        ones = torch.ones_like(new_profile[rows])[:, None]
        out_stats[rows] = image_stats(new_profile[rows][:, None], ones, value_range).to(stats.dtype)
    return RandomisedBatch(out_x, out_profile, out_stats, chosen)
