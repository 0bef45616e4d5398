"""Multi-process training on PyTorch's own engine: ``torchrun --nproc_per_node=N -m advnorm train ...``.

NCCL on GPUs (one process per GPU, SyncBatchNorm in G and S), gloo on CPUs. Every process
draws the same global batch from the domain-balanced sampler and trains on its share;
DistributedDataParallel averages the gradients. Only rank 0 writes files. Checkpoints hold
the plain (unwrapped) state dicts, and the batches are a pure function of (seed, epoch), the
same global batch whatever the number of processes, so a run resumes at any world size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from advnorm.models.networks import Networks


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Average a dict of floats over processes (identity when not distributed)."""
        if not self.enabled or not values:
            return values
        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
        dist.all_reduce(t)
        return {k: float(v) / self.world_size for k, v in zip(keys, t, strict=True)}

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def context_from_env() -> DistContext:
    """The torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK), or a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    return DistContext(
        rank=int(os.environ["RANK"]), world_size=world, local_rank=int(os.environ.get("LOCAL_RANK", "0"))
    )


def init(ctx: DistContext, device: torch.device) -> torch.device:
    """Start the process group; on CUDA each process takes GPU ``local_rank``."""
    if not ctx.enabled:
        return device
    if device.type == "cuda":
        torch.cuda.set_device(ctx.local_rank)
        device = torch.device("cuda", ctx.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def wrap(nets: Networks, ctx: DistContext) -> None:
    """Wrap G, S and D in DDP, in place; the plain nets stay in ``nets.plain`` for checkpoints and D's frozen pass."""
    if not ctx.enabled:
        return
    from torch.nn.parallel import DistributedDataParallel

    ids = [nets.device.index] if nets.device.type == "cuda" else None
    for name in ("G", "S", "D"):
        net = getattr(nets, name)
        if net is None:
            continue
        if nets.device.type == "cuda" and name in ("G", "S"):
            net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
        nets.plain[name] = net
        setattr(nets, name, DistributedDataParallel(net, device_ids=ids))


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
