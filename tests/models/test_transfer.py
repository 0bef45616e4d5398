"""The transfer-function G (models/transfer.py): identity at the start, a function of intensity only, in range,
conditioned on whole-image statistics, and expressive enough to invert a contrast."""

import pytest
import torch

from advnorm.config import SCALE_TOP
from advnorm.models.transfer import (
    HISTOGRAM_BINS,
    N_STATS,
    QUANTILES,
    IntensityTransfer,
    image_stats,
    intensity_profile,
)


def _image(seed: int = 0, shape=(2, 1, 12, 12, 12)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g) * SCALE_TOP
    return x, torch.ones_like(x)


def test_starts_as_the_identity():
    x, m = _image()
    y = IntensityTransfer()(x, image_stats(x, m))
    assert torch.allclose(y, x, atol=1e-5)


def test_the_same_value_maps_to_the_same_value_within_an_image():
    """G cannot paint anatomy: shuffling the voxels shuffles the output the same way."""
    torch.manual_seed(0)
    g = IntensityTransfer()
    for p in g.hyper[-1].parameters():
        torch.nn.init.normal_(p, std=1.0)
    x, m = _image(shape=(1, 1, 10, 10, 10))
    stats = image_stats(x, m)
    perm = torch.randperm(x.numel())
    shuffled = x.reshape(-1)[perm].reshape(x.shape)
    assert torch.allclose(g(shuffled, stats).reshape(-1), g(x, stats).reshape(-1)[perm])


@pytest.mark.parametrize("std", [0.5, 3.0, 10.0])
def test_output_stays_in_the_working_range(std):
    torch.manual_seed(1)
    g = IntensityTransfer()
    for p in g.hyper[-1].parameters():
        torch.nn.init.normal_(p, std=std)
    x, m = _image()
    y = g(x * 1.5, image_stats(x, m))  # inputs past the top are clamped to the last knot
    assert float(y.min()) >= 0.0 and float(y.max()) <= SCALE_TOP


def test_each_image_gets_its_own_curve():
    torch.manual_seed(2)
    g = IntensityTransfer()
    for p in g.hyper[-1].parameters():
        torch.nn.init.normal_(p, std=1.0)
    x, m = _image()
    x[1] = x[1] * 0.3  # a darker second image: other statistics
    curves = g.curve(image_stats(x, m))
    assert curves.shape == (2, 24) and not torch.allclose(curves[0], curves[1])


def test_image_stats_are_quantiles_and_a_normalized_histogram_of_the_brain_only():
    x = torch.zeros(1, 1, 10, 10, 10)
    mask = torch.zeros_like(x)
    mask[..., :5, :, :] = 1
    x[..., :5, :, :] = torch.linspace(0, SCALE_TOP, 500).reshape(5, 10, 10)
    x[..., 5:, :, :] = SCALE_TOP  # outside the mask: must not count
    s = image_stats(x, mask)
    assert s.shape == (1, N_STATS)
    q, h = s[0, : len(QUANTILES)], s[0, len(QUANTILES) :]
    assert torch.allclose(q, torch.tensor(QUANTILES), atol=0.01)  # a uniform ramp: quantile p sits at p * top
    assert h.shape == (HISTOGRAM_BINS,) and float(h.sum()) == pytest.approx(1.0)
    assert float(h.max() - h.min()) < 0.01  # and its histogram is flat


def test_it_can_learn_to_invert_a_contrast():
    """A T2 (bright CSF) to a T1 (dark CSF) is a decreasing curve: the hypernetwork reaches it."""
    torch.manual_seed(3)
    g = IntensityTransfer()
    x, m = _image()
    stats = image_stats(x, m)
    opt = torch.optim.Adam(g.parameters(), lr=1e-2)
    for _ in range(200):
        opt.zero_grad()
        loss = ((g(x, stats) - (SCALE_TOP - x)) ** 2).mean()
        loss.backward()
        opt.step()
    assert float(((g(x, stats) - (SCALE_TOP - x)).abs()).mean()) < 0.01 * SCALE_TOP


@pytest.mark.parametrize("value_range", [(0.0, SCALE_TOP), (-4.0, 4.0)])
def test_the_curve_lives_on_the_input_transforms_range(value_range):
    lo, hi = value_range
    x = torch.linspace(lo, hi, 1000).reshape(1, 1, 10, 10, 10)
    m = torch.ones_like(x)
    g = IntensityTransfer(value_range=value_range)
    stats = image_stats(x, m, value_range)
    assert torch.allclose(g(x, stats), x, atol=1e-5)  # the identity on the whole range
    assert float(g(x * 2, stats).max()) <= hi and float(g(x * 2, stats).min()) >= lo  # beyond it: the end knots
    q = stats[0, : len(QUANTILES)]
    assert torch.allclose(q, torch.tensor(QUANTILES), atol=0.01)  # quantiles mapped to [0, 1] from the range


@pytest.mark.parametrize(
    "values, mask, points, expected",
    [
        # 0..7 in the brain: the quantiles at levels 1/8, 3/8, 5/8, 7/8 (linear interpolation over 8 sorted values)
        (torch.arange(8.0), torch.ones(8), 4, [0.875, 2.625, 4.375, 6.125]),
        # voxels outside the mask never count, however bright
        (torch.tensor([1.0, 1.0, 100.0, 100.0]), torch.tensor([1.0, 1.0, 0.0, 0.0]), 2, [1.0, 1.0]),
        # an empty mask falls back to every voxel
        (torch.tensor([2.0, 4.0]), torch.zeros(2), 2, [2.5, 3.5]),
    ],
)
def test_intensity_profile_is_the_brains_quantiles(values, mask, points, expected):
    assert intensity_profile(values, mask, points).tolist() == pytest.approx(expected)


def test_a_profile_through_the_curve_is_the_profile_of_the_output():
    """The ``image`` adversary view's premise: G's curve is monotone here, so mapping the profile equals
    profiling the mapped image (up to the quantiles' interpolation)."""
    torch.manual_seed(0)
    g = IntensityTransfer()
    torch.nn.init.normal_(g.hyper[-1].bias, std=0.02)
    x, m = _image(shape=(1, 1, 16, 16, 16))
    stats = image_stats(x, m)
    profile = intensity_profile(x, m, 64)
    mapped = g(profile[None, None, :, None, None], stats).flatten()
    direct = intensity_profile(g(x, stats), m, 64)
    assert torch.allclose(mapped, direct, atol=2e-2)


def test_slopes_of_the_identity_are_one():
    x, m = _image()
    assert torch.allclose(IntensityTransfer().slopes(x, image_stats(x, m)), torch.ones_like(x), atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_slopes_are_the_curves_finite_differences(seed):
    """Property: within a knot segment, G(x + h) - G(x) = slope * h (relative to the identity's slope 1)."""
    torch.manual_seed(seed)
    g = IntensityTransfer(knots=8)
    for p in g.hyper[-1].parameters():
        torch.nn.init.normal_(p, std=0.1)
    x, m = _image(seed)
    step = SCALE_TOP / 7
    x = (x / step).floor() * step + step * (0.25 + 0.5 * torch.rand_like(x))  # inside a segment, off its knots
    x = x.clamp(max=SCALE_TOP - step / 2)
    stats = image_stats(x, m)
    h = step * 0.05  # stays within the segment (x sits in its middle half); large enough for float32
    with torch.no_grad():
        finite = (g(x.double() + h, stats) - g(x.double(), stats)) / h
        assert torch.allclose(g.slopes(x, stats).double(), finite, atol=1e-3)


def test_slopes_carry_the_curves_gradient():
    g = IntensityTransfer()
    x, m = _image()
    g.slopes(x, image_stats(x, m)).sum().backward()
    assert g.hyper[-1].bias.grad is not None and float(g.hyper[-1].bias.grad.abs().sum()) > 0
