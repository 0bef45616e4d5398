"""A generator that cannot erase tissue contrast: a learned intensity transfer function per image.

G(x)_v = f_b(x_v): every voxel of image b goes through the same piecewise-linear curve f_b over
the input transform's value range, whose knot values a small network predicts from the image's own intensity
statistics (its brain histogram and quantiles). So G can move, stretch, merge apart or invert the
tissues' intensities of each site (an isointense infant T1 to an adult T1; a T2 to a T1), but it
cannot paint anatomy: the same input value always gives the same output value within an image.
That is a learned, task-driven, non-monotone histogram normalization, in the spirit of Drozdzal et
al. (2018) and Karani et al. (2021); it starts as the identity.
"""

from __future__ import annotations

import torch
from torch import nn

from advnorm.config import SCALE_TOP

QUANTILES = (0.01, 0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.99)
HISTOGRAM_BINS = 16
N_STATS = len(QUANTILES) + HISTOGRAM_BINS
"""Length of the image statistics vector G is conditioned on."""


ValueRange = tuple[float, float]
SCALE_RANGE: ValueRange = (0.0, SCALE_TOP)
"""The range of the ``scale`` input transform: the default."""


def image_stats(x: torch.Tensor, mask: torch.Tensor, value_range: ValueRange = SCALE_RANGE) -> torch.Tensor:
    """(B, N_STATS): the quantiles (mapped from ``value_range`` to [0, 1]) and the normalized histogram (on
    ``value_range``) of each image's brain voxels.

    ``x`` and ``mask`` are (B, 1, ...). Computed from whole images (training: once per subject; inference: the
    volume), so a patch is normalized with its image's curve, not with one fitted to the patch.
    """
    lo, hi = value_range
    rows = []
    for xi, mi in zip(x, mask, strict=True):
        v = xi[mi > 0].float()
        if v.numel() == 0:
            v = xi.reshape(-1).float()
        q = torch.quantile(v[:: max(1, v.numel() // 200_000)], torch.tensor(QUANTILES, dtype=v.dtype))
        h = torch.histc(v.clamp(lo, hi), bins=HISTOGRAM_BINS, min=lo, max=hi)
        rows.append(torch.cat([(q - lo) / (hi - lo), h / h.sum().clamp_min(1)]))
    return torch.stack(rows)


PROFILE_POINTS = 256
"""Quantiles in an image's intensity profile (``loss.adversary_view = "image"``)."""


def intensity_profile(x: torch.Tensor, mask: torch.Tensor, points: int = PROFILE_POINTS) -> torch.Tensor:
    """(points,): the quantiles at levels (i + 0.5) / points of one image's brain voxels: its intensity
    distribution as equally weighted samples. Put through G's curve they are the distribution of G's output for
    the whole image, at a cost independent of its size."""
    v = x[mask > 0].float()
    if v.numel() == 0:
        v = x.reshape(-1).float()
    levels = (torch.arange(points, dtype=v.dtype) + 0.5) / points
    return torch.quantile(v[:: max(1, v.numel() // 400_000)], levels)


class IntensityTransfer(nn.Module):
    """G(x, stats) = f(x) with f piecewise linear on ``knots`` knots over ``value_range`` (the input transform's),
    predicted from ``stats``; inputs beyond the range take the end knots' values."""

    def __init__(self, knots: int = 24, hidden: int = 64, value_range: ValueRange = SCALE_RANGE) -> None:
        super().__init__()
        self.low, self.high = float(value_range[0]), float(value_range[1])
        self.knot_step = (self.high - self.low) / (knots - 1)
        positions = torch.linspace(self.low, self.high, knots)
        self.register_buffer("positions", positions)
        last = nn.Linear(hidden, knots)
        nn.init.zeros_(last.weight)  # the identity at the start
        nn.init.zeros_(last.bias)
        self.hyper = nn.Sequential(nn.Linear(N_STATS, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), last)

    def curve(self, stats: torch.Tensor) -> torch.Tensor:
        """(B, knots): the output value at each knot, in the value range.

        The knots are the identity plus a learned offset, clamped to the range with a straight-through gradient.
        A sigmoid bound saturates at the ends of the range (an inversion got stuck there), and a plain clamp
        freezes a knot once it leaves the range; straight-through keeps the range and lets the knot come back.
        """
        v = self.positions + (self.high - self.low) * self.hyper(stats.float())
        return v + (v.clamp(self.low, self.high) - v).detach()

    def _segment_ends(self, x: torch.Tensor, stats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For each voxel of ``x``: the curve's values at the two knots around it and its position between them."""
        values = self.curve(stats)  # (B, K)
        k = values.shape[1]
        t = ((x.float().clamp(self.low, self.high) - self.low) / (self.high - self.low)) * (k - 1)
        i = t.floor().clamp(0, k - 2)
        b = x.shape[0]
        flat_i = i.long().reshape(b, -1)
        lo = torch.gather(values, 1, flat_i).reshape(x.shape)
        hi = torch.gather(values, 1, flat_i + 1).reshape(x.shape)
        return lo, hi, t - i

    def forward(self, x: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        lo, hi, w = self._segment_ends(x, stats)
        return (lo * (1 - w) + hi * w).to(x.dtype)

    def slopes(self, x: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        """The slope of each voxel's curve at its value, relative to the identity's (1: the identity, 0: flat,
        negative: inverted); differentiable in the curve (``loss.slope_floor``)."""
        lo, hi, _ = self._segment_ends(x, stats)
        return (hi - lo) / self.knot_step
