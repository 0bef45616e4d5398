"""The intensity augmentation of the ``augmented`` baseline (``training/augment.py``)."""

from __future__ import annotations

import torch

from advnorm.training.augment import augment_intensity


def _batch(b: int = 6, s: int = 12):
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(b, 1, s, s, s)
    mask[:, :, 2:-2, 2:-2, 2:-2] = 1
    return torch.rand(b, 1, s, s, s, generator=g) * mask, mask


def test_outside_the_brain_stays_zero_and_values_stay_finite():
    x, mask = _batch()
    y = augment_intensity(x, mask, torch.Generator().manual_seed(1))
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert float(y[mask == 0].abs().max()) == 0.0


def test_the_same_generator_state_gives_the_same_augmentation_and_another_a_different_one():
    x, mask = _batch()
    a = augment_intensity(x, mask, torch.Generator().manual_seed(3))
    b = augment_intensity(x, mask, torch.Generator().manual_seed(3))
    c = augment_intensity(x, mask, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_each_patch_draws_its_own_parameters_and_the_input_is_untouched():
    x, mask = _batch()
    x[:] = x[0:1]  # six copies of one patch
    before = x.clone()
    y = augment_intensity(x, mask, torch.Generator().manual_seed(5))
    assert torch.equal(x, before)
    inside = mask[0, 0] > 0
    means = [float(y[i, 0][inside].mean()) for i in range(len(y))]
    assert len({round(m, 4) for m in means}) == len(means)


def test_augmentation_changes_the_intensities_substantially():
    x, mask = _batch(b=32)
    y = augment_intensity(x, mask, torch.Generator().manual_seed(6))
    rel = ((y - x).abs()[mask > 0].mean() / x[mask > 0].mean()).item()
    assert rel > 0.1


def _field_spread(bias: float) -> float:
    """The spread of log(y / x) within each patch with gamma, contrast and noise fixed out: a constant patch
    (x = 1 gives x ** gamma = 1) whose affine stretch is about its own mean, so what varies inside is the field."""
    mask = torch.ones(16, 1, 12, 12, 12)
    y = augment_intensity(torch.ones(16, 1, 12, 12, 12), mask, torch.Generator().manual_seed(7), bias)
    return float(torch.stack([p.log().std() for p in y.clamp_min(1e-3)]).mean())


def test_augment_bias_sets_the_bias_fields_strength():
    spreads = [_field_spread(b) for b in (0.0, 0.05, 0.3)]
    assert spreads[0] < spreads[1] < spreads[2]


def test_augment_noise_bounds_the_noise():
    """With gamma, field and stretch acting on a constant patch as a constant gain, the within-patch spread is the
    noise: none at 0, and below the bound otherwise."""
    mask = torch.ones(16, 1, 12, 12, 12)
    x = torch.ones(16, 1, 12, 12, 12)
    spreads = {}
    for sd in (0.0, 0.02, 0.08):
        y = augment_intensity(x, mask, torch.Generator().manual_seed(8), bias=0.0, noise_sd=sd)
        spreads[sd] = torch.stack([p.std() for p in y]).max().item()
    assert spreads[0.0] < 1e-5
    assert 0 < spreads[0.02] < 0.02 * 1.1
    assert spreads[0.02] < spreads[0.08] < 0.08 * 1.1


def test_augment_share_passes_the_other_patches_through_unchanged():
    """At share 1 every patch is augmented and the draws are those of before the setting (same result as the
    default call); below 1 about that share is, and every other patch is exactly its input."""
    x, mask = _batch(b=400, s=8)
    assert torch.equal(
        augment_intensity(x, mask, torch.Generator().manual_seed(9)),
        augment_intensity(x, mask, torch.Generator().manual_seed(9), share=1.0),
    )
    for share in (0.25, 0.5):
        y = augment_intensity(x, mask, torch.Generator().manual_seed(9), share=share)
        same = [torch.equal(y[i], x[i]) for i in range(len(x))]
        changed = [(y[i] - x[i]).abs().max() > 1e-3 for i in range(len(x))]
        assert all(s != bool(c) for s, c in zip(same, changed, strict=True))
        assert abs(sum(changed) / len(x) - share) < 0.08
