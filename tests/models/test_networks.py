import pytest
import torch

from advnorm.config import paper_profile, quick_profile
from advnorm.models import build_discriminator, build_generator, build_segmenter


@pytest.mark.parametrize("shape", [(32, 32, 32), (40, 48, 24), (64, 32, 16)])
def test_unets_are_fully_convolutional(shape):
    cfg = quick_profile().model
    x = torch.rand(1, 1, *shape)
    g, s = build_generator(cfg).eval(), build_segmenter(cfg).eval()
    with torch.no_grad():
        out = g(x)
        assert out.shape == x.shape
        assert float(out.min()) >= 0 and float(out.max()) <= 1  # G's range is defined: sigmoid, train and eval
        assert s(x).shape == (1, 4, *shape)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_discriminator_has_k_plus_one_outputs(k):
    d = build_discriminator(quick_profile().model, k)
    assert d(torch.rand(3, 1, 32, 32, 32)).shape == (3, k + 1)
    assert d.fake_index == k


def test_generator_range_same_in_train_and_eval():
    g = build_generator(quick_profile().model)
    x = torch.rand(2, 1, 16, 16, 16) * 3 - 1
    for mode in (g.train, g.eval):
        mode()
        y = g(x)
        assert 0 <= float(y.min()) and float(y.max()) <= 1


def test_paper_profile_sizes():
    cfg = paper_profile().model
    assert cfg.segmenter_widths == (64, 128, 256, 512)
    d = build_discriminator(cfg, 2)
    n = sum(p.numel() for p in d.parameters())
    assert 25e6 < n < 40e6  # the authors' 3-D ResNet-18 has ~33 M


def test_kaiming_initialisation():
    s = build_segmenter(quick_profile().model)
    conv = s.down[0][0]
    fan_in = conv.weight[0].numel()
    assert float(conv.weight.std()) == pytest.approx((2 / fan_in) ** 0.5, rel=0.35)
