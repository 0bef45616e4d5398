"""A ``Conv3d`` whose weight gradient is fast on the CPU (used by G, S and D).

PyTorch computes a 3-D convolution's weight gradient on the CPU with oneDNN. On CPUs
without AVX-512 (this project's 2-core AVX2 machines), for the dense layouts PyTorch
hands it, oneDNN uses an im2col + GEMM kernel ("x64:gemm:jit") whose multi-threaded
reduction is erratic: 60 GFLOP/s on one thread, but anywhere from 4 to 100 GFLOP/s
on two, collapsing whenever the other core is busy for a moment (its threads meet
at many barriers). On a shared machine the weight gradients of the 32^3 layers
were most of a training step (docs/performance.md). The gradient is a sum over
the batch, so here each thread computes the gradient of its own share of the batch
with a single-threaded oneDNN call (no barriers), and the shares are added: the
same oneDNN kernel, the same sum, another summation order (float32 rounding, ~1e-6).
Deep layers (8^3 voxels or fewer) compute it as a forward convolution instead, 1x1x1
kernels as a single matrix product. Forward and input gradient are unchanged.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F
from torch import nn

_FAST_WEIGHT_GRAD = True
FAST_GRAD_MIN_FLOP = 2e7
"""Weight gradients cheaper than this (FLOP) are left to oneDNN as they are."""

AS_FORWARD_MAX_VOXELS = 8**3
"""Stride-1 convolutions with at most this many output voxels per sample and channel get their weight
gradient as a forward convolution (measured on 2 AVX2 cores: 8^3 and below win, 16^3 and above lose)."""

WEIGHT_GRAD_SHARES: int | None = None
"""Batch shares the weight gradient is split into (``None``: one per PyTorch thread)."""

_POOL: dict[str, object] = {"pool": None, "key": None}


@contextlib.contextmanager
def fast_weight_grad(enabled: bool) -> Iterator[None]:
    """Switch the batch-split weight gradient on or off (tests and benchmarks compare the two)."""
    global _FAST_WEIGHT_GRAD  # noqa: PLW0603 - a process-wide switch, set and restored by this context manager
    previous, _FAST_WEIGHT_GRAD = _FAST_WEIGHT_GRAD, bool(enabled)
    try:
        yield
    finally:
        _FAST_WEIGHT_GRAD = previous


def _shares(batch: int) -> int:
    return max(1, min(WEIGHT_GRAD_SHARES or torch.get_num_threads(), batch))


def _single_thread_workers(n: int):
    """A pool of ``n`` threads, each running PyTorch single-threaded (made again after a fork).

    ``torch.set_num_threads`` is per thread for OpenMP, but also stores a process-wide
    default that threads created later start from; the workers are started and set up
    here, then that default is put back, so nothing outside the pool changes.
    """
    key = (os.getpid(), n)
    if _POOL["key"] != key:
        default = torch.get_num_threads()
        ready = threading.Barrier(n + 1)

        def setup() -> None:
            torch.get_num_threads()  # PyTorch's lazy per-thread init first, so it cannot undo the next line
            torch.set_num_threads(1)
            ready.wait()

        pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="advnorm-wgrad", initializer=setup)
        for _ in range(n):
            pool.submit(int)
        ready.wait()
        torch.set_num_threads(default)
        _POOL["pool"], _POOL["key"] = pool, key
    return _POOL["pool"]


def _onednn_backward(grad_out, x, weight, stride, padding, dilation, which: int):
    """oneDNN's convolution backward for one output: 0 the input gradient, 1 the weight gradient."""
    mask = [which == 0, which == 1, False]
    return torch.ops.aten.convolution_backward(
        grad_out, x, weight, None, list(stride), list(padding), list(dilation), False, [0, 0, 0], 1, mask
    )[which]


def _onednn_weight_grad(grad_out, x, weight, stride, padding, dilation):
    return _onednn_backward(grad_out, x, weight, stride, padding, dilation, 1)


def _onednn_input_grad(grad_out, x, weight, stride, padding, dilation):
    return _onednn_backward(grad_out, x, weight, stride, padding, dilation, 0)


def _split_batch(fn, grad_out, x, *args):
    """``fn`` on each thread's share of the batch, single-threaded, in parallel: a list of results."""
    n = _shares(x.shape[0])
    bounds = [round(i * x.shape[0] / n) for i in range(n + 1)]
    pool = _single_thread_workers(n)
    parts = [pool.submit(fn, grad_out[a:b], x[a:b], *args) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return [p.result() for p in parts]


def conv3d_weight_grad(
    grad_out: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    stride=(1, 1, 1),
    padding=(0, 0, 0),
    dilation=(1, 1, 1),
) -> torch.Tensor:
    """dL/dW of ``conv3d(x, weight, stride, padding, dilation)`` (groups 1) given ``grad_out`` = dL/dY."""
    kernel = tuple(weight.shape[2:])
    if all(k == 1 for k in kernel) and all(p == 0 for p in padding):
        xs = x[:, :, :: stride[0], :: stride[1], :: stride[2]] if any(s != 1 for s in stride) else x
        g2 = grad_out.permute(0, 2, 3, 4, 1).reshape(-1, grad_out.shape[1])
        x2 = xs.permute(0, 2, 3, 4, 1).reshape(-1, x.shape[1])
        return (g2.t() @ x2).view(weight.shape)
    if all(s == 1 for s in stride) and grad_out[0, 0].numel() <= AS_FORWARD_MAX_VOXELS:
        # deep layers (few voxels, many channels): the same sum as a forward convolution of x with
        # grad_out as its kernel (batch and channel axes swapped); oneDNN's direct forward kernel runs it
        # 1.3-10x faster than its GEMM-based weight gradient here. Output position k = kernel offset k.
        out = F.conv3d(x.transpose(0, 1), grad_out.transpose(0, 1), None, dilation, padding, stride)
        return out[:, :, : kernel[0], : kernel[1], : kernel[2]].transpose(0, 1)
    flop = 2.0 * grad_out.numel() * weight[0].numel()
    if _shares(x.shape[0]) < 2 or flop < FAST_GRAD_MIN_FLOP:
        return _onednn_weight_grad(grad_out, x, weight, stride, padding, dilation)
    parts = _split_batch(_onednn_weight_grad, grad_out, x, weight, stride, padding, dilation)
    return sum(parts[1:], parts[0])


class _Conv3dFastWeightGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation):
        ctx.save_for_backward(x, weight)
        ctx.conf = (tuple(stride), tuple(padding), tuple(dilation), bias is not None)
        return F.conv3d(x, weight, bias, stride, padding, dilation)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        stride, padding, dilation, has_bias = ctx.conf
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = _onednn_input_grad(grad_out, x, weight, stride, padding, dilation)
        if ctx.needs_input_grad[1]:
            # in the parameter's own memory format, so the optimizer sees matching layouts
            gw = torch.empty_like(weight).copy_(conv3d_weight_grad(grad_out, x, weight, stride, padding, dilation))
        if has_bias and ctx.needs_input_grad[2]:
            gb = grad_out.sum(dim=(0, 2, 3, 4))
        return gx, gw, gb, None, None, None


class Conv3d(nn.Conv3d):
    """``nn.Conv3d`` (same parameters, state dict and forward) with the batch-split CPU weight gradient."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fast_grad_applies(x):
            return _Conv3dFastWeightGrad.apply(x, self.weight, self.bias, self.stride, self.padding, self.dilation)
        return super().forward(x)

    def _fast_grad_applies(self, x: torch.Tensor) -> bool:
        if not (_FAST_WEIGHT_GRAD and torch.is_grad_enabled() and self.weight.requires_grad):
            return False
        if x.device.type != "cpu" or x.dtype != torch.float32 or x.dim() != 5 or torch.is_autocast_enabled("cpu"):
            return False
        plain = self.groups == 1 and self.padding_mode == "zeros" and not isinstance(self.padding, str)
        return plain and not torch.compiler.is_compiling()
