"""Precise BatchNorm statistics (training/batchnorm.py): hand-computed averages, nothing else touched."""

import pytest
import torch
from torch import nn

from advnorm.training.batchnorm import recompute_batchnorm_statistics


def _batches(n: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(4, 3, 5, 5, 5, generator=g) * (i + 1) + i for i in range(n)]


@pytest.mark.parametrize("n", [1, 2, 5])
def test_running_statistics_are_the_plain_average_of_the_batches(n):
    bn = nn.BatchNorm3d(3)
    bn.running_mean.fill_(7.0)  # stale averages: must be replaced, not blended
    bn.running_var.fill_(9.0)
    batches = _batches(n)
    assert recompute_batchnorm_statistics(bn, [lambda b=b: bn(b) for b in batches]) == n
    means = torch.stack([b.mean(dim=(0, 2, 3, 4)) for b in batches])
    vars_ = torch.stack([b.transpose(0, 1).reshape(3, -1).var(dim=1, unbiased=True) for b in batches])
    assert torch.allclose(bn.running_mean, means.mean(0), atol=1e-5)
    assert torch.allclose(bn.running_var, vars_.mean(0), atol=1e-4)


def test_mode_momentum_and_weights_are_kept():
    net = nn.Sequential(nn.Conv3d(1, 3, 3), nn.BatchNorm3d(3, momentum=0.3)).eval()
    before = {k: v.clone() for k, v in net.state_dict().items() if "running" not in k and "num_batches" not in k}
    recompute_batchnorm_statistics(net, [lambda: net(torch.randn(2, 1, 6, 6, 6))])
    assert not net.training and not net[1].training and net[1].momentum == 0.3
    after = net.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())


def test_eval_output_then_matches_training_output_on_that_batch():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(1, 3, 3), nn.BatchNorm3d(3), nn.ReLU(), nn.Conv3d(3, 2, 1), nn.BatchNorm3d(2))
    x = torch.randn(8, 1, 6, 6, 6) * 5 + 2
    recompute_batchnorm_statistics(net, [lambda: net(x)])
    net.eval()
    eval_out = net(x)
    net.train()
    with torch.no_grad():
        train_out = net(x)
    # equal up to BatchNorm's unbiased (running) against biased (batch) variance
    assert torch.allclose(eval_out, train_out, atol=0.02)


@pytest.mark.parametrize("passes", [[], None])
def test_without_passes_or_layers_nothing_changes(passes):
    bn = nn.BatchNorm3d(2)
    bn.running_mean.fill_(3.0)
    net = bn if passes is not None else nn.Linear(2, 2)
    assert recompute_batchnorm_statistics(net, passes if passes is not None else [lambda: None]) == 0
    assert torch.all(bn.running_mean == 3.0)
