"""Eq. (2)-(4) against hand-computed values."""

import math

import pytest
import torch

from advnorm.training.losses import (
    confusion_loss,
    content_loss,
    default_dice_weights,
    discriminator_loss,
    flat_curve_loss,
    generator_adversarial_loss,
    inverse_frequency_weights,
    per_class_dice_loss,
    ramp,
    segmentation_loss,
    weighted_dice_loss,
)


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


@pytest.mark.parametrize(
    "probs, target, weights, expected",
    [
        (_probs([1, 0], [0, 1]), [[0, 1]], [1, 1], 0.0),
        (_probs([0, 1], [1, 0]), [[0, 1]], [1, 1], 1.0),
        # class 0: inter .25, total 2 -> dice .25; class 1: the same -> 1 - .25
        (_probs([0.25, 0.75], [0.75, 0.25]), [[0, 1]], [1, 1], 0.75),
        # class 0: inter .9 (voxel 0), total (.9+.1+.2) + 1 = 2.2; class 1: inter 1.7, total (.1+.9+.8) + 2 = 3.8
        (_probs([0.9, 0.1], [0.1, 0.9], [0.2, 0.8]), [[0, 1, 1]], [1, 1], 1 - (1.8 / 2.2 + 3.4 / 3.8) / 2),
        # weighted mean of the two ratios, weights 3:1
        (_probs([0.9, 0.1], [0.1, 0.9], [0.2, 0.8]), [[0, 1, 1]], [3, 1], 1 - (3 * 1.8 / 2.2 + 3.4 / 3.8) / 4),
    ],
)
def test_per_class_dice_matches_hand_computation(probs, target, weights, expected):
    loss = per_class_dice_loss(probs, torch.tensor(target), torch.tensor(weights, dtype=torch.float64), epsilon=0.0)
    assert float(loss) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("form, fn", [("single_ratio", weighted_dice_loss), ("per_class", per_class_dice_loss)])
def test_segmentation_loss_dispatches_on_the_form(form, fn):
    probs = torch.softmax(torch.randn(2, 4, 5, 5, 5), 1)
    y = torch.randint(0, 4, (2, 5, 5, 5))
    w = torch.tensor([0.1, 0.5, 0.2, 0.2])
    assert torch.equal(segmentation_loss(probs, y, w, 1e-5, form), fn(probs, y, w, 1e-5))
    with pytest.raises(ValueError):
        segmentation_loss(probs, y, w, 1e-5, "mean")


def _dead_class_state(form: str, gap: float) -> tuple[float, float]:
    """(loss, d loss / d b_CSF) when S predicts background, GM and WM right but CSF nowhere: CSF's logit
    sits ``gap`` below, shifted by a shared offset b_CSF. Realistic class shares (70/5/15/10 %), each form
    with its default weights. A negative derivative: gradient descent raises CSF again."""
    torch.manual_seed(0)
    y = torch.multinomial(torch.tensor([0.7, 0.05, 0.15, 0.1]), 2 * 16**3, replacement=True).view(2, 16, 16, 16)
    w = default_dice_weights(form, torch.bincount(y.ravel(), minlength=4)).double()
    offset = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    shift = offset - torch.tensor([0.0, gap, 0.0, 0.0], dtype=torch.float64)
    logits = torch.nn.functional.one_hot(y, 4).movedim(-1, 1).double() * 4.0 + shift.view(1, 4, 1, 1, 1)
    loss = segmentation_loss(torch.softmax(logits, 1), y, w, 1e-5, form)
    loss.backward()
    return float(loss), float(offset.grad[1])


@pytest.mark.parametrize("gap", [4.0, 8.0])
def test_a_dead_class_costs_more_and_pulls_harder_in_the_per_class_form(gap):
    """The reason measured for the quick profile's per-class Dice (docs/method.md): a class S has stopped
    predicting costs its full share of the per-class loss and gets a pull back 1.5 times as strong or more as
    in eq. (2), where the other classes' sums dilute it."""
    loss_eq2, pull_eq2 = _dead_class_state("single_ratio", gap)
    loss_pc, pull_pc = _dead_class_state("per_class", gap)
    assert pull_eq2 < 0 and pull_pc < 0  # both pull it back up, ...
    assert pull_pc < 1.5 * pull_eq2  # ... the per-class form harder (1.9x and 2.7x here)
    assert loss_pc > loss_eq2 and loss_pc >= 0.2  # a dead class costs ~ its 1/4 share


def test_default_weights_per_form():
    counts = torch.tensor([700, 50, 150, 100])
    assert torch.equal(default_dice_weights("per_class", counts), torch.full((4,), 0.25))
    assert torch.allclose(default_dice_weights("single_ratio", counts), inverse_frequency_weights(counts))


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


def test_saturating_gradient_vanishes_when_the_discriminator_is_confident():
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


@pytest.mark.parametrize(
    "logits, expected",
    [
        ([[0.0, 0.0]], math.log(2)),  # D cannot tell: the minimum, log K
        ([[0.0, 0.0, 0.0]], math.log(3)),
        ([[5.0, 5.0, 5.0]], math.log(3)),  # a shift of the logits changes nothing
        # p = softmax(0, log 3) = (1/4, 3/4): -(log 1/4 + log 3/4) / 2
        ([[0.0, math.log(3)]], -(math.log(0.25) + math.log(0.75)) / 2),
    ],
)
def test_confusion_loss_hand_computed(logits, expected):
    assert float(confusion_loss(torch.tensor(logits, dtype=torch.float64))) == pytest.approx(expected)


@pytest.mark.parametrize(
    "logits, expected",
    [
        ([[0.0, 0.0]], 0.0),  # D cannot tell: the minimum
        ([[5.0, 5.0, 5.0]], 0.0),
        # p = (1/4, 3/4): 1/4 log 1/4 + 3/4 log 3/4 + log 2
        ([[0.0, math.log(3)]], 0.25 * math.log(0.25) + 0.75 * math.log(0.75) + math.log(2)),
        ([[0.0, -60.0, -60.0]], math.log(3)),  # D certain: the bound, log K
    ],
)
def test_entropy_confusion_loss_hand_computed(logits, expected):
    got = float(confusion_loss(torch.tensor(logits, dtype=torch.float64), "entropy"))
    assert got == pytest.approx(expected, abs=1e-6)  # computed in float32


@pytest.mark.parametrize("form", ["cross_entropy", "entropy"])
def test_confusion_forms_agree_on_the_minimum(form):
    """Both are least exactly where D's posterior is uniform: the gradient vanishes there."""
    logits = torch.zeros(3, 4, requires_grad=True)
    confusion_loss(logits, form).backward()
    assert logits.grad is not None and float(logits.grad.abs().max()) < 1e-7


def test_entropy_form_gradient_vanishes_as_d_grows_certain_and_cross_entropy_does_not():
    grads = {}
    for form in ("cross_entropy", "entropy"):
        logits = torch.tensor([[20.0, -20.0]], requires_grad=True)
        confusion_loss(logits, form).backward()
        grads[form] = float(logits.grad.abs().max())
    assert grads["cross_entropy"] == pytest.approx(0.5, abs=1e-6)  # d/dz of -(log p1 + log p2)/2 -> 1/2
    assert grads["entropy"] < 1e-12


def test_confusion_loss_is_least_when_d_is_uniform():
    torch.manual_seed(0)
    for _ in range(20):
        logits = torch.randn(4, 3) * 3
        assert float(confusion_loss(logits)) >= math.log(3) - 1e-6


@pytest.mark.parametrize(
    "progress, expected",
    [
        (0.0, 0.0),
        (-1.0, 0.0),
        (0.1, 2 / (1 + math.exp(-1)) - 1),
        (1.0, 2 / (1 + math.exp(-10)) - 1),
        (3.0, 2 / (1 + math.exp(-10)) - 1),
    ],
)
def test_dann_ramp(progress, expected):
    assert ramp(progress) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("x_hat", "x", "mask", "expected"),
    [
        ([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], [1, 1, 1, 1], 0.0),  # the identity costs nothing
        ([2.0, 2.0, 3.0, 9.0], [1.0, 2.0, 3.0, 4.0], [1, 1, 1, 0], 1 / 3),  # outside the brain does not count
        ([0.5, 0.5, 0.0, 0.0], [0.0, 1.5, 0.0, 0.0], [1, 1, 0, 0], (0.25 + 1.0) / 2),
        ([5.0, 5.0], [0.0, 0.0], [0, 0], 0.0),  # no brain: 0, not a division by zero
    ],
)
def test_content_loss_hand_computed(x_hat, x, mask, expected):
    t = [torch.tensor(v, dtype=torch.float64).reshape(1, 1, -1, 1, 1) for v in (x_hat, x, mask)]
    assert float(content_loss(*t)) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("slopes", "mask", "floor", "expected"),
    [
        ([1.0, 1.0, 1.0], [1, 1, 1], 0.5, 0.0),  # the identity costs nothing
        ([0.0, 0.0, 0.0], [1, 1, 1], 0.5, 0.5),  # flat everywhere: the floor itself
        ([-1.0, -0.6, 2.0], [1, 1, 1], 0.5, 0.0),  # steep inversions are free
        ([0.2, -0.1, 0.0], [1, 1, 0], 0.5, (0.3 + 0.4) / 2),  # outside the brain does not count
        ([0.2, 0.0], [0, 0], 0.5, 0.0),  # no brain: 0, not a division by zero
        ([0.0, 0.4], [1, 1], 0.0, 0.0),  # floor 0: off
    ],
)
def test_flat_curve_loss_hand_computed(slopes, mask, floor, expected):
    s, m = (torch.tensor(v, dtype=torch.float64).reshape(1, 1, -1, 1, 1) for v in (slopes, mask))
    assert float(flat_curve_loss(s, m, floor)) == pytest.approx(expected)
