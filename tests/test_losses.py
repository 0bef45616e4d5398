"""Eq. (2)-(4) against hand-computed values."""

import math

import pytest
import torch

from advnorm.losses import discriminator_loss, generator_adversarial_loss, inverse_frequency_weights, weighted_dice_loss


def _probs(*rows):
    """(1, C, V) probabilities from per-voxel rows."""
    return torch.tensor(rows, dtype=torch.float64).T.unsqueeze(0)


@pytest.mark.parametrize(
    "probs, target, weights, expected",
    [
        # perfect one-hot prediction -> 0
        (_probs([1, 0], [0, 1]), [[0, 1]], [1, 1], 0.0),
        # completely wrong -> 1
        (_probs([0, 1], [1, 0]), [[0, 1]], [1, 1], 1.0),
        # s = [[.5,.5],[.5,.5]], y = one-hot(0, 1): inter per class .5, .5; totals 2, 2 -> 1 - 2*1/4
        (_probs([0.5, 0.5], [0.5, 0.5]), [[0, 1]], [1, 1], 0.5),
        # weights enter numerator AND denominator: w = (0, 1) only class 1 counts:
        # class 1: inter = .25 (voxel 1 has s=.25,y=1), total = (.75+.25) + 1 = 2 -> 1 - .5/2
        (_probs([0.25, 0.75], [0.75, 0.25]), [[0, 1]], [1, 0], 1 - 2 * 0.25 / 2.0),
        (_probs([0.25, 0.75], [0.75, 0.25]), [[0, 1]], [0, 1], 1 - 2 * 0.25 / 2.0),
        # a weight of 3 on class 0: inter (.25*3 + .25*1) , totals (2*3 + 2*1)
        (_probs([0.25, 0.75], [0.75, 0.25]), [[0, 1]], [3, 1], 1 - 2 * (0.75 + 0.25) / 8.0),
    ],
)
def test_weighted_dice_matches_hand_computation(probs, target, weights, expected):
    loss = weighted_dice_loss(probs, torch.tensor(target), torch.tensor(weights, dtype=torch.float64), epsilon=0.0)
    assert float(loss) == pytest.approx(expected, abs=1e-12)


def test_weighted_dice_can_reach_zero_per_class():
    """The authors weighted only the intersection, flooring each class near 0.75; eq. (2) reaches 0."""
    y = torch.randint(0, 4, (2, 8, 8, 8))
    perfect = torch.nn.functional.one_hot(y, 4).movedim(-1, 1).float()
    for w in ([1, 1, 1, 1], [0.1, 0.3, 0.3, 0.3], [0, 0, 0, 1]):
        assert float(weighted_dice_loss(perfect, y, torch.tensor(w))) == pytest.approx(0.0, abs=1e-6)


def test_weighted_dice_accepts_one_hot_targets():
    probs = torch.softmax(torch.randn(2, 4, 6, 6, 6), 1)
    y = torch.randint(0, 4, (2, 6, 6, 6))
    onehot = torch.nn.functional.one_hot(y, 4).movedim(-1, 1)
    w = torch.tensor([0.1, 0.2, 0.3, 0.4])
    assert torch.allclose(weighted_dice_loss(probs, y, w), weighted_dice_loss(probs, onehot, w))


@pytest.mark.parametrize("k", [2, 3])
def test_discriminator_targets(k):
    """Real patches are scored against their domain z, generated ones against index K."""
    real = torch.full((k, k + 1), -20.0)
    z = torch.arange(k)
    real[z, z] = 20.0  # confident and right
    fake = torch.full((3, k + 1), -20.0)
    fake[:, k] = 20.0  # confidently "generated"
    assert float(discriminator_loss(real, z, fake)) < 1e-6
    wrong_fake = torch.full((3, k + 1), -20.0)
    wrong_fake[:, 0] = 20.0  # generated called domain 0
    assert float(discriminator_loss(real, z, wrong_fake)) > 30
    # uniform logits: each term is ln(K+1)
    u_real, u_fake = torch.zeros(k, k + 1), torch.zeros(2, k + 1)
    assert float(discriminator_loss(u_real, z, u_fake)) == pytest.approx(2 * math.log(k + 1), rel=1e-6)


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("p_fake", [0.01, 0.3, 0.9])
def test_generator_terms(k, p_fake):
    # logits giving p(fake) = p_fake and the rest spread evenly over the K domains
    p = torch.tensor([[(1 - p_fake) / k] * k + [p_fake]])
    logits = p.log()
    assert float(generator_adversarial_loss(logits, "saturating")) == pytest.approx(math.log(p_fake), rel=1e-5)
    assert float(generator_adversarial_loss(logits, "non_saturating")) == pytest.approx(-math.log(1 - p_fake), rel=1e-5)


def test_saturating_gradient_vanishes_when_D_is_confident():
    logits = torch.tensor([[0.0, 0.0, 12.0]], requires_grad=True)  # D sure it's generated
    for form, small in (("saturating", True), ("non_saturating", False)):
        logits.grad = None
        generator_adversarial_loss(logits, form).backward()
        g = logits.grad.abs().max().item()
        assert (g < 1e-3) if small else (g > 0.5), (form, g)


def test_inverse_frequency_weights():
    w = inverse_frequency_weights(torch.tensor([100, 10, 0, 10]))
    assert float(w.sum()) == pytest.approx(1.0)
    assert float(w[2]) == 0.0 and float(w[1]) == pytest.approx(float(w[3]))
    assert float(w[1]) == pytest.approx(10 * float(w[0]))
