import dataclasses

import pytest
import torch

from advnorm.config import ingredients, paper_profile, quick_profile, segmenter_stride
from advnorm.config_checks import validate
from advnorm.data.intensity import SCALE_TOP
from advnorm.errors import AdvnormError
from advnorm.models import build_discriminator, build_generator, build_segmenter

G_FORMS = ["residual", "sigmoid"]


def _model_cfg(generator_output: str = "residual"):
    return dataclasses.replace(quick_profile().model, generator_output=generator_output)


@pytest.mark.parametrize("shape", [(32, 32, 32), (40, 48, 24), (64, 32, 16)])
def test_unets_are_fully_convolutional(shape):
    cfg = quick_profile().model
    x = torch.rand(1, 1, *shape)
    g, s = build_generator(cfg).eval(), build_segmenter(cfg, 4).eval()
    with torch.no_grad():
        out = g(x)
        assert out.shape == x.shape
        assert float(out.min()) >= 0 and float(out.max()) <= SCALE_TOP  # G's range is defined, train and eval
        assert s(x).shape == (1, 4, *shape)


@pytest.mark.parametrize("shape", [(32, 32, 32), (48, 16, 32)])
def test_strided_stem_segmenter_is_fully_convolutional_at_its_stride(shape):
    cfg = dataclasses.replace(quick_profile().model, segmenter_stem="strided")
    s = build_segmenter(cfg, 4).eval()
    assert s.stride == segmenter_stride(cfg) == 16
    with torch.no_grad():
        assert s(torch.rand(1, 1, *shape)).shape == (1, 4, *shape)


@pytest.mark.parametrize(
    ("stem", "patch", "ok"), [("full", 8, True), ("strided", 8, False), ("strided", 16, True), ("strided", 24, False)]
)
def test_patch_size_must_be_divisible_by_the_segmenters_stride(stem, patch, ok):
    """Widths 8-16-32-64: total stride 8 with the full stem, 16 with the strided one."""
    cfg = dataclasses.replace(
        quick_profile(),
        model=dataclasses.replace(quick_profile().model, segmenter_stem=stem),
        train=dataclasses.replace(quick_profile().train, patch_size=patch),
    )
    if ok:
        validate(cfg)
    else:
        with pytest.raises(AdvnormError, match="patch_size"):
            validate(cfg)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_discriminator_has_k_plus_one_outputs(k):
    d = build_discriminator(quick_profile().model, k)
    assert d(torch.rand(3, 1, 32, 32, 32)).shape == (3, k + 1)


@pytest.mark.parametrize("form", G_FORMS)
def test_generator_range_same_in_train_and_eval(form):
    g = build_generator(_model_cfg(form))
    with torch.no_grad():
        g.head.weight.normal_(0, 10.0)  # a G far from its start still stays in range
    x = torch.rand(2, 1, 16, 16, 16) * 3 - 1
    for mode in (g.train, g.eval):
        mode()
        y = g(x)
        assert float(y.min()) >= 0 and float(y.max()) <= SCALE_TOP


def test_residual_generator_starts_as_the_identity_on_the_input_range():
    g = build_generator(_model_cfg("residual")).eval()
    x = torch.rand(2, 1, 16, 16, 16) * SCALE_TOP
    x[0, 0, :4] = 0.0  # background
    with torch.no_grad():
        y = g(x)
    # exact up to the logit clamp at [1e-3, 1 - 1e-3] of the range
    assert float((y - x).abs().max()) <= 1e-3 * SCALE_TOP + 1e-6


def test_additive_generator_starts_as_the_identity_and_is_unbounded():
    """The U-Net G of the z-scored input: exactly the identity at the start, and free of (0, SCALE_TOP) after."""
    g = build_generator(_model_cfg("additive")).eval()
    x = torch.randn(2, 1, 16, 16, 16) * 3
    with torch.no_grad():
        assert torch.equal(g(x), x)
        g.head.bias.fill_(-5.0)
        assert float(g(x).min()) < -5.0 + float(x.min()) + 1e-4


@pytest.mark.parametrize(
    ("method", "output", "ok"),
    [
        ("harmonized", "additive", True),
        ("harmonized", "residual", False),
        ("harmonized", "sigmoid", False),
        ("unconstrained", "additive", False),
        ("unconstrained", "residual", True),
    ],
)
def test_a_unet_generators_output_must_fit_its_input_range(method, output, ok):
    cfg = dataclasses.replace(
        quick_profile(),
        method=method,
        model=dataclasses.replace(quick_profile().model, generator="unet", generator_output=output),
    )
    if ok:
        validate(cfg)
    else:
        with pytest.raises(AdvnormError, match="generator_output"):
            validate(cfg)


def test_sigmoid_generator_does_not_start_as_the_identity():
    """The plain form must learn the identity in the warm-up (the residual form starts there)."""
    torch.manual_seed(0)
    g = build_generator(_model_cfg("sigmoid")).eval()
    x = torch.rand(2, 1, 16, 16, 16) * SCALE_TOP
    with torch.no_grad():
        assert float((g(x) - x).abs().mean()) > 0.1


def test_generator_form_is_part_of_the_architecture():
    from advnorm.models.networks import architecture

    a = architecture(quick_profile(), 2)
    b = architecture(dataclasses.replace(quick_profile(), model=_model_cfg("residual")), 2)
    assert a != b  # weights trained as one form are refused by the other


def test_profiles_choose_their_generator_form_and_dice():
    """Both profiles leave G's form to the method: the paper's sigmoid for its rescaled input."""
    quick, paper = quick_profile(), paper_profile()
    assert (quick.model.generator_output, paper.model.generator_output) == ("auto", "auto")
    assert (ingredients(quick).generator_output, quick.loss.dice_form) == ("sigmoid", "per_class")
    assert (ingredients(paper).generator_output, paper.loss.dice_form) == ("sigmoid", "single_ratio")


def test_paper_profile_sizes():
    cfg = paper_profile().model
    assert cfg.segmenter_widths == (64, 128, 256, 512)
    d = build_discriminator(cfg, 2)
    n = sum(p.numel() for p in d.parameters())
    assert 25e6 < n < 40e6  # the authors' 3-D ResNet-18 has ~33 M


def test_kaiming_initialisation():
    s = build_segmenter(quick_profile().model, 4)
    conv = s.down[0][0]
    fan_in = conv.weight[0].numel()
    assert float(conv.weight.std()) == pytest.approx((2 / fan_in) ** 0.5, rel=0.35)
