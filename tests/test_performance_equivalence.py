"""Each performance optimization gives the plain path's losses and outputs, within float32 tolerance.

* the batch-split convolution weight gradient (``advnorm.models.conv3d.Conv3d``) vs PyTorch's own;
* channels-last 3-D memory format vs the default format, for a whole adversarial step;
* D scoring real and generated patches in one pass vs two passes;
* the foreach optimizers vs PyTorch's per-parameter loop;
* the vectorized patch gathering vs a per-patch loop;
* whole-volume (fully convolutional) eval-mode inference vs the same nets on a window.

Small sizes: the whole file runs in seconds.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advnorm.config import quick_profile
from advnorm.data.patches import PatchIndex, gather, patch_corner
from advnorm.models import build_discriminator, build_generator, build_segmenter, conv3d
from advnorm.models.conv3d import Conv3d, conv3d_weight_grad, fast_weight_grad
from advnorm.training.trainer import Trainer
from tests.conftest import make_trainer

CL = torch.channels_last_3d


def _close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-4) -> bool:
    """Equal within ``rel`` of the larger magnitude (float32 sums in another order)."""
    a, b = a.detach(), b.detach()
    scale = max(float(a.abs().max()), float(b.abs().max()), 1e-12)
    return float((a - b).abs().max()) <= rel * scale


@pytest.fixture
def split_in_two_or_three(monkeypatch):
    """Force the batch-split path even for small convolutions and on one-core machines."""
    monkeypatch.setattr(conv3d, "FAST_GRAD_MIN_FLOP", 0.0)
    monkeypatch.setattr(conv3d, "WEIGHT_GRAD_SHARES", 3)


@pytest.mark.parametrize(
    "cin,cout,k,stride,pad,bias,batch,fmt,size",
    [
        (6, 8, 3, 1, 1, False, 5, CL, (12, 10, 14)),  # U-Net conv, odd batch over 3 shares
        (1, 8, 3, 1, 1, False, 4, CL, (12, 10, 14)),  # first layer: one input channel
        (8, 16, 3, 2, 1, False, 3, CL, (12, 10, 14)),  # D's strided conv
        (8, 4, 1, 1, 0, True, 4, CL, (12, 10, 14)),  # 1x1x1 head with bias
        (8, 16, 1, 2, 0, False, 2, CL, (12, 10, 14)),  # D's strided 1x1x1 skip
        (6, 8, 3, 1, 1, True, 4, torch.contiguous_format, (12, 10, 14)),  # default memory format
        (6, 8, 3, 1, 1, False, 1, CL, (12, 10, 14)),  # batch of one: nothing to split
        (16, 12, 3, 1, 1, True, 3, CL, (8, 6, 7)),  # deep layer: as a forward conv
        (16, 12, 3, 1, 1, False, 2, torch.contiguous_format, (4, 4, 4)),  # deep layer, default format
        (5, 7, 3, 1, 0, False, 3, CL, (7, 8, 6)),  # deep layer without padding
    ],
)
def test_conv3d_gradients_match_pytorch(split_in_two_or_three, cin, cout, k, stride, pad, bias, batch, fmt, size):
    torch.manual_seed(0)
    fast = Conv3d(cin, cout, k, stride=stride, padding=pad, bias=bias).to(memory_format=fmt)
    plain = nn.Conv3d(cin, cout, k, stride=stride, padding=pad, bias=bias).to(memory_format=fmt)
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(batch, cin, *size).contiguous(memory_format=fmt)
    xf, xp = x.clone().requires_grad_(), x.clone().requires_grad_()
    yf, yp = fast(xf), plain(xp)
    assert torch.equal(yf, yp)  # the forward pass is PyTorch's own
    g = torch.randn_like(yp)
    yf.backward(g)
    yp.backward(g)
    assert _close(fast.weight.grad, plain.weight.grad)
    assert fast.weight.grad.stride() == fast.weight.stride()  # the parameter's own memory format
    assert _close(xf.grad, xp.grad)
    if bias:
        assert _close(fast.bias.grad, plain.bias.grad)


def test_conv3d_weight_grad_with_a_non_contiguous_gradient(split_in_two_or_three):
    # U-Net skip connections hand back a channel slice of the concatenation's gradient
    torch.manual_seed(1)
    x = torch.randn(4, 6, 8, 8, 8).contiguous(memory_format=CL)
    w = torch.randn(8, 6, 3, 3, 3).contiguous(memory_format=CL)
    g = torch.randn(4, 12, 8, 8, 8).contiguous(memory_format=CL)[:, 2:10]
    assert not g.is_contiguous(memory_format=CL)
    ref = torch.ops.aten.convolution_backward(
        g.contiguous(), x, w, None, [1] * 3, [1] * 3, [1] * 3, False, [0] * 3, 1, [False, True, False]
    )[1]
    assert _close(conv3d_weight_grad(g, x, w, (1, 1, 1), (1, 1, 1), (1, 1, 1)), ref)


def test_conv3d_is_plain_without_grad_and_in_eval():
    conv = Conv3d(2, 4, 3, padding=1)
    x = torch.randn(2, 2, 6, 6, 6)
    with torch.no_grad():
        assert torch.equal(conv(x), F.conv3d(x, conv.weight, conv.bias, padding=1))
    assert isinstance(conv, nn.Conv3d)  # state dicts, kaiming_init, checkpoints see a Conv3d


def test_split_workers_leave_the_thread_setting_alone():
    before = torch.get_num_threads()
    pool = conv3d._single_thread_workers(2)
    assert [pool.submit(torch.get_num_threads).result() for _ in range(4)] == [1, 1, 1, 1]
    assert torch.get_num_threads() == before


GRAD_REL = 5e-3
"""A wrong gradient is off by O(1) of its scale; reordered float32 sums by ~1e-3 on gradients of ~1e-4."""


def _tiny_cfg(**train):
    cfg = quick_profile()
    model = dataclasses.replace(
        cfg.model, generator_widths=(4, 8), segmenter_widths=(4, 8, 8), discriminator_widths=(4, 8)
    )
    return dataclasses.replace(
        cfg, model=model, train=dataclasses.replace(cfg.train, batch_size=4, patch_size=16, **train)
    )


def _batch(b: int = 4, p: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(b, 1, p, p, p, generator=g) > 0.2).float()
    x = torch.rand(b, 1, p, p, p, generator=g) * mask
    y = torch.randint(0, 4, (b, p, p, p), generator=g) * mask[:, 0].long()
    z = torch.arange(b) % 2
    return x, y, mask, z


def _model(cfg) -> Trainer:
    m = make_trainer(cfg, 2, [0.1, 0.3, 0.3, 0.3])
    m.nets.train()
    return m


def _grads_of_one_step(m: Trainer, batch) -> tuple[dict, dict]:
    """The G+S and the D half of ``optimize_parameters``, stopping before each optimizer step."""
    m.set_input(*batch)
    for p in m.nets.D.parameters():
        p.requires_grad_(False)
    m.forward()
    out = m.backward_GS()
    grads = {
        f"{n}.{k}": p.grad.clone() for n, net in (("G", m.nets.G), ("S", m.nets.S)) for k, p in net.named_parameters()
    }
    for p in m.nets.D.parameters():
        p.requires_grad_(True)
    out.update(m.backward_D())
    grads.update({f"D.{k}": p.grad.clone() for k, p in m.nets.D.named_parameters()})
    return {k: float(v) for k, v in out.items()}, grads


def test_step_with_split_weight_grad_matches_plain(split_in_two_or_three):
    batch = _batch()
    with fast_weight_grad(False):
        loss_a, grad_a = _grads_of_one_step(_model(_tiny_cfg()), batch)
    with fast_weight_grad(True):
        loss_b, grad_b = _grads_of_one_step(_model(_tiny_cfg()), batch)
    assert loss_a == pytest.approx(loss_b, rel=1e-5, abs=1e-6)
    for k in grad_a:  # float32 sums in another order: ~1e-3 of a tensor's largest entry on tiny BN gradients
        assert _close(grad_a[k], grad_b[k], GRAD_REL), k


def test_channels_last_step_matches_default_format():
    batch = _batch(seed=3)
    loss_a, grad_a = _grads_of_one_step(_model(_tiny_cfg(channels_last=False)), batch)
    loss_b, grad_b = _grads_of_one_step(_model(_tiny_cfg(channels_last=True)), batch)
    assert loss_a == pytest.approx(loss_b, rel=1e-5, abs=1e-6)
    for k in grad_a:  # float32 sums in another order: ~1e-3 of a tensor's largest entry on tiny BN gradients
        assert _close(grad_a[k], grad_b[k], GRAD_REL), k


def test_full_step_losses_match_plain_over_steps():
    batch = _batch(seed=5)
    ma, mb = _model(_tiny_cfg(channels_last=False)), _model(_tiny_cfg())
    for _ in range(2):
        with fast_weight_grad(False):
            ma.set_input(*batch)
            a = ma.optimize_parameters()
        mb.set_input(*batch)
        b = mb.optimize_parameters()
    # Adam turns float32 rounding of near-zero gradients into +-lr steps, so after updates the
    # losses agree to ~1e-3 rather than to the last digit
    for k in a:
        assert float(a[k]) == pytest.approx(float(b[k]), rel=1e-2, abs=1e-3), k


def test_discriminator_one_pass_equals_two_passes():
    torch.manual_seed(0)
    d = build_discriminator(quick_profile().model, 3).to(memory_format=CL)
    real, fake = torch.rand(3, 1, 16, 16, 16), torch.rand(3, 1, 16, 16, 16)
    both = d(torch.cat([real, fake]).contiguous(memory_format=CL))
    assert _close(both, torch.cat([d(real.contiguous(memory_format=CL)), d(fake.contiguous(memory_format=CL))]), 1e-5)


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_foreach_optimizer_matches_per_parameter_loop(kind):
    torch.manual_seed(0)
    a = build_segmenter(_tiny_cfg().model, 4)
    b = build_segmenter(_tiny_cfg().model, 4)
    b.load_state_dict(a.state_dict())
    mk = (
        (lambda ps, fe: torch.optim.Adam(ps, lr=1e-3, foreach=fe))
        if kind == "adam"
        else (lambda ps, fe: torch.optim.SGD(ps, lr=1e-2, momentum=0.9, weight_decay=0.1, foreach=fe))
    )
    oa, ob = mk(a.parameters(), True), mk(b.parameters(), False)
    x = torch.rand(2, 1, 16, 16, 16)
    for _ in range(3):
        for net, opt in ((a, oa), (b, ob)):
            opt.zero_grad()
            net(x).square().mean().backward()
            opt.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.allclose(pa, pb, rtol=1e-5, atol=1e-6)


def _gather_loop(volumes, index, rows):
    s = index.patch_size
    out = np.zeros((len(rows), s, s, s), dtype=volumes[0].dtype)
    for k, row in enumerate(rows):
        sid, x, y, z = index.entries[row]
        vol = volumes[sid]
        cx, cy, cz = patch_corner(np.array((x, y, z)), vol.shape, s)
        block = vol[cx : cx + s, cy : cy + s, cz : cz + s]
        out[k, : block.shape[0], : block.shape[1], : block.shape[2]] = block
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_vectorized_gather_matches_per_patch_loop(dtype):
    rng = np.random.default_rng(0)
    shapes = [(40, 36, 44), (20, 50, 33), (10, 12, 9)]  # the last is smaller than a patch: zero-padded
    vols = [(rng.random(s) * 200).astype(dtype) for s in shapes]
    idx = PatchIndex.build([np.ones(s, bool) for s in shapes], patch_size=16, stride=3)
    rows = rng.permutation(len(idx))[:300]
    rows = np.concatenate([rows, [0, len(idx) - 1]])  # corners at both ends of the index
    assert np.array_equal(gather(vols, idx, rows), _gather_loop(vols, idx, rows))
    out = np.full((5, 16, 16, 16), 7, dtype)
    assert gather(vols, idx, rows[:5], out) is out and np.array_equal(out, _gather_loop(vols, idx, rows[:5]))
    assert gather(vols, idx, np.array([], dtype=np.int64)).shape == (0, 16, 16, 16)


def test_whole_volume_inference_matches_a_window_away_from_its_border():
    # eval-mode BatchNorm does not depend on the window: a large window and the whole volume agree
    # wherever the window's zero padding is out of reach (G then S with widths (4, 8): radius < 20 voxels)
    torch.manual_seed(0)
    cfg = _tiny_cfg().model
    g, s = build_generator(cfg), build_segmenter(dataclasses.replace(cfg, segmenter_widths=(4, 8)), 4)
    for net in (g, s):
        net.train()
        with torch.no_grad():
            net(torch.rand(4, 1, 16, 16, 16))  # non-trivial running statistics
        net.eval().to(memory_format=CL)
    x = torch.rand(1, 1, 64, 56, 56).contiguous(memory_format=CL)
    with torch.no_grad():
        whole = s(g(x))
        window = s(g(x[:, :, 8:56, 4:52, 6:54].contiguous(memory_format=CL)))
    m = 20
    assert _close(whole[:, :, 8 + m : 56 - m, 4 + m : 52 - m, 6 + m : 54 - m], window[:, :, m:-m, m:-m, m:-m], 1e-5)
    assert not _close(whole[:, :, 8:56, 4:52, 6:54], window, 1e-5)  # near the window's border they differ
