"""Random contrast curves (``training/contrast.py``): cases and properties."""

from __future__ import annotations

import pytest
import torch

from advnorm.models.transfer import image_stats, intensity_profile
from advnorm.training.contrast import apply_curves, randomise_contrast

ZSCORE_RANGE = (-4.0, 6.0)


def _images(b: int = 8, s: int = 12, seed: int = 0):
    """Patches of three 'tissues' at levels -1, 0, 1.5 plus noise, z-scored-like, inside a brain mask, with each
    patch's whole-image profile and statistics computed from the patch itself (the patch is its whole image)."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(b, 1, s, s, s)
    mask[:, :, 1:-1, 1:-1, 1:-1] = 1
    levels = torch.tensor([-1.0, 0.0, 1.5])
    tissue = torch.randint(0, 3, (b, 1, s, s, s), generator=g)
    x = (levels[tissue] + 0.1 * torch.randn(b, 1, s, s, s, generator=g)) * mask
    profile = torch.stack([intensity_profile(xi[0], mi[0]) for xi, mi in zip(x, mask, strict=True)])
    stats = image_stats(x, mask, ZSCORE_RANGE)
    return x, mask, profile, stats


@pytest.mark.parametrize(
    "positions, values, inputs, expected",
    [
        # hand-computed: a V-shaped curve through (0, 1), (1, 0), (2, 1)
        ([0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [0.0, 0.5, 1.0, 1.5, 2.0], [1.0, 0.5, 0.0, 0.5, 1.0]),
        # flat beyond the end knots
        ([0.0, 1.0, 2.0], [0.2, 0.4, 0.8], [-3.0, 5.0], [0.2, 0.8]),
        # the identity
        ([0.0, 1.0], [0.0, 1.0], [0.25, 0.75], [0.25, 0.75]),
    ],
)
def test_apply_curves_hand_computed(positions, values, inputs, expected):
    out = apply_curves(torch.tensor([inputs]), torch.tensor([positions]), torch.tensor([values]))
    assert torch.allclose(out, torch.tensor([expected]), atol=1e-6)


def test_share_zero_changes_nothing_and_share_one_changes_every_patch():
    x, mask, profile, stats = _images()
    none = randomise_contrast(x, mask, profile, stats, ZSCORE_RANGE, 0.0, torch.Generator().manual_seed(1))
    assert torch.equal(none.x, x) and torch.equal(none.stats, stats) and not none.chosen.any()
    every = randomise_contrast(x, mask, profile, stats, ZSCORE_RANGE, 1.0, torch.Generator().manual_seed(1))
    assert every.chosen.all()
    for i in range(len(x)):
        assert not torch.allclose(every.x[i], x[i], atol=1e-3)


def test_outside_the_brain_is_untouched_and_the_brain_keeps_its_mean_and_spread():
    x, mask, profile, stats = _images()
    out = randomise_contrast(x, mask, profile, stats, ZSCORE_RANGE, 1.0, torch.Generator().manual_seed(2))
    assert torch.equal(out.x[mask == 0], x[mask == 0])
    assert torch.allclose(out.profile.mean(1), profile.mean(1), atol=1e-4)
    assert torch.allclose(out.profile.std(1), profile.std(1), atol=1e-4)
    for i in range(len(x)):  # the profile is the image's distribution: its voxels agree with it
        inside = out.x[i][mask[i] > 0]
        assert abs(float(inside.mean() - out.profile[i].mean())) < 0.05
        assert abs(float(inside.std() - out.profile[i].std())) < 0.05


def test_one_curve_per_image_the_same_input_gives_the_same_output():
    """A site, not a label map: voxels of equal intensity in one image stay equal."""
    x, mask, profile, stats = _images(b=4)
    x[:, :, 2, 2, 2] = x[:, :, 5, 5, 5] = 0.3
    out = randomise_contrast(x, mask, profile, stats, ZSCORE_RANGE, 1.0, torch.Generator().manual_seed(3))
    assert torch.equal(out.x[:, :, 2, 2, 2], out.x[:, :, 5, 5, 5])


def test_the_statistics_follow_the_randomised_image():
    """What a transfer G is conditioned on must describe the image it sees: the returned statistics match those
    computed from the randomised voxels themselves (up to the profile's 256-point sampling)."""
    x, mask, profile, stats = _images(b=6, s=16)
    out = randomise_contrast(x, mask, profile, stats, ZSCORE_RANGE, 1.0, torch.Generator().manual_seed(4))
    direct = image_stats(out.x, mask, ZSCORE_RANGE)
    assert (out.stats - direct).abs().max() < 0.05
    assert (out.stats - stats).abs().max() > 0.1


def test_contrast_can_be_inverted_some_draws_reverse_the_tissue_order():
    x, mask, profile, stats = _images(b=64)
    low = (x < -0.5) & (mask > 0)
    high = (x > 1.0) & (mask > 0)
    out = randomise_contrast(x, mask, profile, stats, ZSCORE_RANGE, 1.0, torch.Generator().manual_seed(5))
    inverted = [
        float(out.x[i][low[i]].mean()) > float(out.x[i][high[i]].mean()) for i in range(len(x)) if out.chosen[i]
    ]
    assert 0.1 < sum(inverted) / len(inverted) < 0.9


def test_the_share_is_drawn_per_patch_and_reproducible():
    x, mask, profile, stats = _images(b=200, s=8)
    a = randomise_contrast(x, mask, profile, stats, ZSCORE_RANGE, 0.3, torch.Generator().manual_seed(6))
    b = randomise_contrast(x, mask, profile, stats, ZSCORE_RANGE, 0.3, torch.Generator().manual_seed(6))
    assert torch.equal(a.x, b.x) and torch.equal(a.chosen, b.chosen)
    assert 0.2 < a.chosen.float().mean() < 0.4
    untouched = ~a.chosen
    assert torch.equal(a.x[untouched], x[untouched]) and torch.equal(a.stats[untouched], stats[untouched])
