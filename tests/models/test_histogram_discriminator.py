"""The histogram discriminator and the patch D's stem: what each can see of a patch's intensities."""

import pytest
import torch

from advnorm.config import SCALE_TOP, quick_profile
from advnorm.models.discriminator import DomainDiscriminator
from advnorm.models.histogram_discriminator import HistogramDiscriminator, soft_histogram


@pytest.mark.parametrize("value, bins, expected_bin", [(0.0, 5, 0), (SCALE_TOP, 5, 4), (SCALE_TOP / 2, 5, 2)])
def test_a_constant_patch_peaks_at_its_bin(value, bins, expected_bin):
    x = torch.full((1, 1, 4, 4, 4), value)
    h = soft_histogram(x, torch.ones_like(x), bins, (0.0, SCALE_TOP))
    assert float(h.sum()) == pytest.approx(1.0) and int(h.argmax()) == expected_bin


def test_voxels_outside_the_mask_do_not_count():
    x = torch.full((1, 1, 4, 4, 4), SCALE_TOP)
    mask = torch.zeros_like(x)
    mask[..., :2, :, :] = 1
    x[..., :2, :, :] = 0.0
    assert int(soft_histogram(x, mask, 5, (0.0, SCALE_TOP)).argmax()) == 0


def test_histogram_d_has_one_logit_per_class_and_gradients_reach_the_input():
    d = HistogramDiscriminator(4)
    x = (torch.rand(3, 1, 16, 16, 16) * SCALE_TOP).requires_grad_()
    out = d(x, torch.ones_like(x))
    assert out.shape == (3, 4)
    out.sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


@pytest.mark.parametrize("stem_norm, sees_scale", [("group", False), ("none", True)])
def test_only_the_unnormalized_stem_sees_a_patch_intensity_scale(stem_norm, sees_scale):
    """The paper's GroupNorm stem divides out the patch's scale, the very thing a normalizer changes."""
    torch.manual_seed(0)
    d = DomainDiscriminator(3, quick_profile().model.discriminator_widths, stem_norm=stem_norm).eval()
    x = torch.rand(2, 1, 32, 32, 32) * SCALE_TOP
    change = float((d(x) - d(0.4 * x)).abs().max())
    assert (change > 1e-2) == sees_scale, change


def test_the_histogram_d_sees_the_scale_too():
    torch.manual_seed(0)
    d = HistogramDiscriminator(3)
    x = torch.rand(2, 1, 16, 16, 16) * SCALE_TOP
    assert float((d(x) - d(0.4 * x)).abs().max()) > 1e-2


@pytest.mark.parametrize("generated_class, n_out", [(True, 4), (False, 3)])
def test_patch_d_with_or_without_the_generated_class(generated_class, n_out):
    d = DomainDiscriminator(3, quick_profile().model.discriminator_widths, generated_class=generated_class)
    assert d(torch.rand(1, 1, 32, 32, 32)).shape == (1, n_out)
