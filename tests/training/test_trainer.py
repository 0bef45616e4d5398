"""The adversarial step (``training/trainer.py``): which nets each half updates, and that learning happens."""

import math

import pytest
import torch

from advnorm.methods import METHOD_SPECS
from advnorm.models.transfer import N_STATS, image_stats
from advnorm.models.unet import UNet3D
from advnorm.training.losses import flat_curve_loss
from advnorm.training.trainer import step_schedulers
from tests.conftest import make_trainer, tiny_cfg

TRANSFER = {"model.generator": "transfer"}
"""``harmonized``'s G before its U-Net: the per-image intensity curve (the image view and slope floor need it)."""


def make(method="adversarial", k=2, **over):
    return make_trainer(tiny_cfg(method, **{"train.channels_last": False, **over}), k)


def batch(k=2, b=4, s=16):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(b, 1, s, s, s, generator=g)
    y = torch.randint(0, 4, (b, s, s, s), generator=g)
    return x, y, torch.ones_like(x), torch.arange(b) % k


def snapshot(net):
    return [p.detach().clone() for p in net.parameters()]


def changed(net, before):
    return any(not torch.equal(p, q) for p, q in zip(net.parameters(), before, strict=True))


def test_gs_half_never_changes_d_and_d_half_never_changes_gs():
    m = make()
    m.set_input(*batch())
    d0, g0, s0 = snapshot(m.nets.D), snapshot(m.nets.G), snapshot(m.nets.S)
    # G+S half alone
    m.opt_GS.zero_grad()
    m.forward()
    m.backward_GS()
    m.opt_GS.step()
    assert changed(m.nets.G, g0) and changed(m.nets.S, s0)
    assert not changed(m.nets.D, d0)
    # D half alone
    g1, s1 = snapshot(m.nets.G), snapshot(m.nets.S)
    m.opt_D.zero_grad()
    m.backward_D()
    m.opt_D.step()
    assert changed(m.nets.D, d0)
    assert not changed(m.nets.G, g1) and not changed(m.nets.S, s1)


def test_full_step_unfreezes_d_afterwards():
    m = make()
    m.set_input(*batch())
    m.optimize_parameters()
    assert all(p.requires_grad for p in m.nets.D.parameters())


def test_warmup_updates_only_g():
    m = make()
    m.set_input(*batch())
    s0, d0 = snapshot(m.nets.S), snapshot(m.nets.D)
    out = m.optimize_parameters("warmup")
    assert set(out) == {"loss_mse"}
    assert not changed(m.nets.S, s0) and not changed(m.nets.D, d0)


def test_warmup_brings_g_close_to_identity():
    m = make(**{"optim.lr_generator": 1e-2})
    x, y, mask, z = batch(b=4)
    x = torch.nn.functional.avg_pool3d(x, 3, 1, 1)  # smooth, image-like
    first = None
    for _ in range(40):
        m.set_input(x, y, mask, z)
        loss = float(m.optimize_parameters("warmup")["loss_mse"])
        first = first if first is not None else loss
    assert loss < 0.1 * first and loss < 5e-3


@pytest.mark.parametrize("method", list(METHOD_SPECS))
def test_every_method_steps(method):
    m = make(method)
    m.set_input(*batch())
    out = m.optimize_parameters()
    assert "loss_seg" in out and torch.isfinite(out["loss_seg"])
    assert ("loss_dis" in out) == (method in ("adversarial", "harmonized"))
    assert (m.nets.G is not None) == METHOD_SPECS[method].uses_generator


@pytest.mark.parametrize("over", [{}, {"model.generator": "unet", "model.generator_output": "additive"}])
def test_harmonized_starts_as_its_z_scored_input_and_its_g_learns(over):
    """Its default G, the U-Net in its additive form (spelled out or left to the method): G(x) = x at the start,
    so the method starts as ``standardized``; one step moves G, the content term counts what it changed, and D
    sees G's output."""
    m = make("harmonized", **over)
    assert isinstance(m.nets.G, UNet3D) and m.nets.ingredients.generator_output == "additive"
    x, y, mask, z = batch()
    x = (x - 0.5) * 4  # a z-scored-like range, negative values included
    m.set_input(x, y, mask, z)
    m.forward()
    assert torch.equal(m.x_hat, x * mask)
    g0 = snapshot(m.nets.G)
    out = m.optimize_parameters()
    assert changed(m.nets.G, g0)
    assert {"loss_content", "loss_adv", "loss_dis"} <= set(out) and "loss_slope" not in out
    assert all(torch.isfinite(v) for v in out.values())


def test_g_output_is_zero_outside_the_brain():
    m = make()
    x, y, mask, z = batch()
    mask[:, :, :4] = 0
    m.set_input(x, y, mask, z)
    m.forward()
    assert float(m.x_hat[:, :, :4].abs().max()) == 0.0


def _image_view(**over):
    m = make("harmonized", **{**TRANSFER, "loss.adversary_view": "image", **over})
    x, y, mask, z = batch()
    profile = torch.sort(torch.randn(len(x), 32), dim=1).values
    stats = torch.rand(len(x), m.nets.G.hyper[0].in_features)
    m.set_input(x, y, mask, z, stats, profile)
    return m, profile


def test_image_view_shows_d_the_whole_images_profile_through_g():
    m, profile = _image_view()
    torch.nn.init.normal_(m.nets.G.hyper[-1].bias, std=0.1)  # G away from the identity
    seen, seen_mask = m.adversary_input(torch.zeros(1))
    assert seen.shape == (len(profile), 1, 32, 1, 1) and bool((seen_mask == 1).all())
    expected = m.nets.G(profile[:, None, :, None, None], m.stats)
    assert torch.allclose(seen, expected) and not torch.allclose(seen.flatten(1), profile)


def test_image_view_trains_g_through_d_and_d_on_the_profiles():
    m, _ = _image_view(**{"loss.adv_lambda": 1.0})
    d0, g0 = snapshot(m.nets.D), snapshot(m.nets.G)
    m.opt_GS.zero_grad()
    m.forward()
    m.backward_GS()
    assert any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in m.nets.G.parameters())
    m.opt_GS.step()
    assert changed(m.nets.G, g0) and not changed(m.nets.D, d0)
    g1 = snapshot(m.nets.G)
    m.opt_D.zero_grad()
    out = m.backward_D()
    m.opt_D.step()
    assert changed(m.nets.D, d0) and not changed(m.nets.G, g1) and torch.isfinite(out["loss_dis"])


def test_image_view_without_profiles_fails_loudly():
    m = make("harmonized", **{**TRANSFER, "loss.adversary_view": "image"})
    m.set_input(*batch())
    m.forward()
    with pytest.raises(ValueError, match="intensity profile"):
        m.backward_GS()


def _with_profile(m):
    x, y, mask, z = batch()
    profile = torch.sort(torch.randn(len(x), 32), dim=1).values
    stats = torch.rand(len(x), N_STATS)
    return x, y, mask, z, stats, profile


@pytest.mark.parametrize("training, changes", [(True, True), (False, False)])
def test_contrast_randomisation_acts_in_training_only(training, changes):
    """``train.contrast_randomisation`` randomises G's input and the statistics G is conditioned on in training;
    validation, BatchNorm recalibration and inference (eval mode) see the images as they are."""
    m = make("harmonized", **{"train.contrast_randomisation": 1.0})
    m.nets.train(training)
    x, y, mask, z, stats, profile = _with_profile(m)
    m.set_input(x, y, mask, z, stats, profile)
    assert (not torch.equal(m.x, x)) == changes and (not torch.equal(m.stats, stats)) == changes
    assert (not torch.equal(m.profile, profile)) == changes


def test_contrast_randomisation_off_by_default_and_loud_without_profiles():
    m = make("harmonized")
    x, y, mask, z, stats, profile = _with_profile(m)
    m.set_input(x, y, mask, z, stats, profile)
    assert torch.equal(m.x, x)
    on = make("harmonized", **{"train.contrast_randomisation": 0.5})
    with pytest.raises(ValueError, match="contrast_randomisation"):
        on.set_input(x, y, mask, z)


@pytest.mark.parametrize(("form", "low", "high"), [("cross_entropy", 0.69, None), ("entropy", 0.0, 0.6932)])
def test_confusion_form_sets_gs_adversarial_term(form, low, high):
    """harmonized's G term is the chosen form of the confusion loss: cross-entropy >= log 2, entropy in [0, log 2]."""
    m = make("harmonized", **{"loss.confusion_form": form})
    m.set_input(*batch())
    out = m.optimize_parameters()
    assert float(out["loss_adv"]) >= low and (high is None or float(out["loss_adv"]) <= high)


@pytest.mark.parametrize(
    ("method", "weight", "logged"),
    [("harmonized", 1.0, True), ("unconstrained", 0.5, True), ("harmonized", 0.0, False), ("standardized", 1.0, False)],
)
def test_content_term_is_logged_for_g_only_when_weighted(method, weight, logged):
    """``loss.content_weight`` adds G's mean squared change of its input to G + S's loss; methods without G
    have nothing to preserve."""
    m = make(method, **{"loss.content_weight": weight})
    m.set_input(*batch())
    out = m.optimize_parameters()
    assert ("loss_content" in out) == logged
    if logged:
        assert float(out["loss_content"]) >= 0.0


def test_content_term_changes_gs_update():
    """The term reaches G's gradient: the same step with and without it leaves G different (the sigmoid G
    of ``unconstrained`` is not the identity at the start, so the term is not 0)."""
    after = []
    for weight in (0.0, 10.0):
        torch.manual_seed(0)
        m = make("unconstrained", **{"loss.content_weight": weight})
        m.set_input(*batch())
        m.optimize_parameters()
        after.append(torch.cat([p.detach().flatten() for p in m.nets.G.parameters()]))
    assert not torch.allclose(after[0], after[1])


@pytest.mark.parametrize(("floor", "logged"), [(0.5, True), (0.0, False)])
def test_slope_floor_term_is_logged_when_on(floor, logged):
    m = make("harmonized", **{**TRANSFER, "loss.slope_floor": floor})
    m.set_input(*batch())
    out = m.optimize_parameters()
    assert ("loss_slope" in out) == logged
    if logged:
        assert 0.0 <= float(out["loss_slope"]) <= floor


def _nearly_flat(G, slope: float = 0.1) -> None:
    """Make a fresh transfer G's curve ``slope`` times the identity, through 0 (curve = positions + range * bias)."""
    with torch.no_grad():
        G.hyper[-1].bias.copy_(-(1 - slope) * G.positions / (G.high - G.low))


def test_slope_floor_term_reaches_g():
    """The same G + S step on a nearly flat curve leaves G different with the term and without it (SGD: Adam's
    first step is the gradient's sign, which the term need not flip)."""
    after = []
    for floor in (0.0, 1.0):
        torch.manual_seed(0)
        m = make("harmonized", **{**TRANSFER, "loss.slope_floor": floor, "optim.optimizer": "sgd"})
        _nearly_flat(m.nets.G)
        m.set_input(*batch())
        m.optimize_parameters()
        after.append(torch.cat([p.detach().flatten() for p in m.nets.G.parameters()]))
    assert not torch.allclose(after[0], after[1])


def test_slope_floor_alone_steepens_a_flat_curve_where_the_brain_lies():
    """Property: descending the term alone lifts the curve's slope at the brain's values to the floor, and leaves
    the knots where no brain voxel lies where they were."""
    m = make("harmonized", **{**TRANSFER, "loss.slope_floor": 0.5})
    G = m.nets.G
    _nearly_flat(G)
    x = torch.linspace(-1.0, 1.0, 4096).reshape(1, 1, 16, 16, 16)  # the brain's values: a middle stretch
    mask = torch.ones_like(x)
    stats = image_stats(x, mask, m.nets.value_range)
    far = (G.positions < -1.5) | (G.positions > 1.5)
    before = G.curve(stats).detach()
    opt = torch.optim.SGD(G.parameters(), lr=0.01)
    for _ in range(100):
        opt.zero_grad()
        flat_curve_loss(m.nets.curve_slopes(x, mask, stats), mask, 0.5).backward()
        opt.step()
    slopes = m.nets.curve_slopes(x, mask, stats).detach()
    assert float(slopes.abs().min()) >= 0.45  # 0.1 before
    assert torch.equal(G.curve(stats).detach()[:, far], before[:, far])


def _rates(m, schedulers) -> dict[tuple[str, int], float]:
    """The learning rate of every parameter group of each scheduled optimizer, by (optimizer, group)."""
    return {(k, i): g["lr"] for k in schedulers for i, g in enumerate(m.optimizers()[k].param_groups)}


@pytest.mark.parametrize(
    ("floor", "cuts_to"),
    [
        (0.0, 1e-3),  # the paper's rule: every plateau cuts again, 3 cuts in 12 bad epochs
        (0.01, 1e-2),  # two cuts of 0.1, then held at the floor
        (0.05, 5e-2),  # the floor lies between cuts: the second cut stops on it
    ],
)
def test_plateau_rule_never_cuts_below_its_floor(floor, cuts_to):
    m = make("adversarial", **{"optim.plateau_floor": floor, "optim.plateau_patience": 3})
    schedulers = m.schedulers()
    assert set(schedulers) == {"GS", "D"}  # G's warm-up is not on the plateau rule
    start = _rates(m, schedulers)
    for sch in schedulers.values():
        sch.step(1.0)  # the best epoch
        for _ in range(12):  # 12 epochs no better: 3 plateaus of patience 3
            sch.step(2.0)
    assert _rates(m, schedulers) == pytest.approx({k: lr0 * cuts_to for k, lr0 in start.items()}, rel=1e-6)


def test_plateau_floor_must_be_a_fraction():
    with pytest.raises(Exception, match="plateau_floor"):
        make(**{"optim.plateau_floor": 1.0})


@pytest.mark.parametrize(
    ("epochs_done", "fraction"),
    [
        (0, 1.0),  # the first main epoch trains at the initial rate
        (4, 0.5 * (1 + math.cos(math.pi / 4))),  # a quarter of 16 epochs: 0.854
        (8, 0.5),  # half way: half the rate
        (15, 0.5 * (1 + math.cos(math.pi * 15 / 16))),  # the last epoch trains at about 1 % of it
        (16, 0.0),  # annealed to 0 at the budget
    ],
)
@pytest.mark.filterwarnings("ignore:Detected call of")  # no optimizer step here: only the rates are read
def test_cosine_schedule_anneals_every_main_rate_over_the_budget(epochs_done, fraction):
    m = make("adversarial", **{"optim.schedule": "cosine", "train.epochs": 16})
    schedulers = m.schedulers()
    assert set(schedulers) == {"GS", "D"}  # G's warm-up keeps its rate
    start = _rates(m, schedulers)
    for _ in range(epochs_done):
        step_schedulers(schedulers, 5.0)  # the validation loss is ignored: no plateau can cut or hold it
    assert _rates(m, schedulers) == pytest.approx({k: lr0 * fraction for k, lr0 in start.items()}, abs=1e-12)


@pytest.mark.filterwarnings("ignore:Detected call of")
def test_step_schedulers_feeds_the_plateau_rule_the_validation_loss():
    m = make("standardized", **{"optim.plateau_patience": 0})
    schedulers = m.schedulers()
    lr0 = m.optimizers()["GS"].param_groups[0]["lr"]
    step_schedulers(schedulers, 1.0)
    step_schedulers(schedulers, 1.0)  # no lower loss, patience 0: cut at once
    assert m.optimizers()["GS"].param_groups[0]["lr"] == pytest.approx(lr0 * 0.1)
