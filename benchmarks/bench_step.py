"""Training step: patches/s of one full adversarial step (G+S update, then D update) on 32^3 patches.

advnorm's ``Trainer.optimize_parameters`` against the straightforward
reference of ``reference.py`` (same architecture and weights, float32, default memory
format, stock convolution gradients, one optimizer per net), interleaved round by
round in this process, plus the share of the float32 matmul peak measured in the
same rounds. FLOPs are counted once with ``torch.utils.flop_counter`` on the plain
path (they are the model's FLOPs, whatever the implementation).
"""

from __future__ import annotations

import dataclasses
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from _common import interleaved, log, matmul_peak, median, profile_config, ratio_of_medians_per_round
from advnorm.models.conv3d import fast_weight_grad
from advnorm.models.networks import Networks
from advnorm.training.trainer import Trainer
from reference import MonaiClassGAN, ReferenceGAN

N_DOMAINS = 3
DICE_WEIGHTS = torch.tensor([0.1, 0.3, 0.3, 0.3])


def make_batch(batch: int, patch: int = 32, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    ax = torch.linspace(-1, 1, patch)
    r = (ax[:, None, None] ** 2 + ax[None, :, None] ** 2 + ax[None, None, :] ** 2).sqrt()
    mask = (r < 1.3).float().expand(batch, 1, patch, patch, patch).contiguous()
    x = torch.rand(batch, 1, patch, patch, patch, generator=g) * mask
    y = torch.randint(0, 4, (batch, patch, patch, patch), generator=g) * mask[:, 0].long()
    z = torch.randint(0, N_DOMAINS, (batch,), generator=g)
    return x, y, mask, z


def build_ours(cfg, batch: int, **train_overrides) -> Trainer:
    cfg = dataclasses.replace(
        cfg, method="adversarial", train=dataclasses.replace(cfg.train, batch_size=batch, **train_overrides)
    )
    torch.manual_seed(0)
    model = Trainer(Networks(cfg, N_DOMAINS), DICE_WEIGHTS)
    model.nets.train()
    return model


def ours_step(model: Trainer, *, fast_grad: bool = True):
    def run(batch) -> None:
        with fast_weight_grad(fast_grad):
            model.set_input(*batch)
            model.optimize_parameters()

    return run


def count_flops(step, batch_for_count: int, batch: int) -> float:
    """FLOPs of one step at ``batch`` (counted at a small batch; every FLOP is per patch)."""
    with FlopCounterMode(display=False) as fc:
        step()
    return fc.get_total_flops() * batch / batch_for_count


def same_work(cfg, small: tuple[torch.Tensor, ...], count_batch: int, batch: int) -> tuple[dict, float]:
    """One step of advnorm and of the reference, from the same weights on the batch ``small`` (of ``count_batch``
    patches): their losses side by side, and the reference's FLOPs of one step at ``batch``."""
    ours = build_ours(cfg, count_batch)
    ref = ReferenceGAN(cfg, N_DOMAINS, DICE_WEIGHTS)
    ref.load_from(ours.nets.G, ours.nets.S, ours.nets.D)
    ours.set_input(*small)
    a = ours.optimize_parameters()
    b = ref.step(*small)
    same_losses = {k: [float(a[k]), float(b[k])] for k in b}
    return same_losses, count_flops(lambda: ref.step(*small), count_batch, batch)


def measure_profile(
    name: str,
    *,
    batch: int,
    rounds: int,
    budget_s: float,
    ablations: bool,
    monai_class: bool,
    count_batch: int = 2,
    warmup_full: bool = True,
) -> dict:
    cfg = profile_config(name)
    patch = cfg.train.patch_size
    log(f"step[{name}]: building nets (batch {batch})")
    ours = build_ours(cfg, batch)
    ref = ReferenceGAN(cfg, N_DOMAINS, DICE_WEIGHTS)
    ref.load_from(ours.nets.G, ours.nets.S, ours.nets.D)

    # same work: one step from the same weights on the same batch gives the same losses
    small = make_batch(count_batch, patch, seed=1)
    ours.set_input(*small)
    with fast_weight_grad(False):
        flops_model = count_flops(ours.optimize_parameters, count_batch, batch)
    same_losses, ref_flops = same_work(cfg, small, count_batch, batch)

    steps = {"reference": lambda b: ref.step(*b), "advnorm": ours_step(ours)}
    extra: dict[str, dict] = {}
    if ablations:
        steps["advnorm_without_fast_weight_grad"] = ours_step(build_ours(cfg, batch), fast_grad=False)
        steps["advnorm_without_channels_last"] = ours_step(build_ours(cfg, batch, channels_last=False))
    if monai_class:
        mc = MonaiClassGAN(cfg, N_DOMAINS, DICE_WEIGHTS)
        small_mc = MonaiClassGAN(cfg, N_DOMAINS, DICE_WEIGHTS)
        extra["monai_class_nets"] = {"flops_per_step": count_flops(lambda: small_mc.step(*small), count_batch, batch)}
        steps["monai_class_nets"] = lambda b: mc.step(*b)

    # warm-up (oneDNN kernels, first-touch memory): at the timed batch when cheap, else at a small one
    log(f"step[{name}]: warm-up")
    warm = make_batch(batch if warmup_full else count_batch, patch, seed=2)
    for fn in steps.values():
        fn(warm)
    data = make_batch(batch, patch)
    variants = {k: (lambda fn=fn: fn(data)) for k, fn in steps.items()}
    peaks: list[float] = []
    deadline = time.perf_counter() + budget_s
    log(f"step[{name}]: {rounds} interleaved rounds of {', '.join(variants)}")
    times = interleaved(variants, rounds, before_round=lambda: peaks.append(matmul_peak()), deadline=deadline)
    n = len(times["advnorm"])
    peak = median(peaks)
    res: dict = {
        "batch": batch,
        "patch": patch,
        "rounds": n,
        "n_domains": N_DOMAINS,
        "widths": {
            "G": list(cfg.model.generator_widths),
            "S": list(cfg.model.segmenter_widths),
            "D": list(cfg.model.discriminator_widths),
            "D_blocks": cfg.model.discriminator_blocks,
        },
        "optimizer": cfg.optim.optimizer,
        "model_flops_per_step": flops_model,
        "model_gflop_per_patch": flops_model / batch / 1e9,
        "reference_flops_per_step": ref_flops,
        "same_losses_first_step": same_losses,
        "matmul_peak_gflops_per_round": [p / 1e9 for p in peaks],
        "matmul_peak_gflops": peak / 1e9,
        "variants": {},
    }
    for k, ts in times.items():
        fl = extra.get(k, {}).get("flops_per_step", flops_model)
        res["variants"][k] = {
            "seconds_per_step": ts,
            "median_seconds": median(ts),
            "patches_per_s": batch / median(ts),
            "gflop_per_patch": fl / batch / 1e9,
            "achieved_gflops": fl / median(ts) / 1e9,
            # per round: FLOP rate over the matmul peak measured just before that round
            "fraction_of_matmul_peak": median([fl / t / p for t, p in zip(ts, peaks, strict=True)]),
            "speedup_vs_reference": ratio_of_medians_per_round(times["reference"], ts),
        }
    log(
        f"step[{name}]: advnorm {res['variants']['advnorm']['patches_per_s']:.2f} patches/s, "
        f"x{res['variants']['advnorm']['speedup_vs_reference']:.2f} vs reference, "
        f"{100 * res['variants']['advnorm']['fraction_of_matmul_peak']:.0f}% of matmul peak ({peak / 1e9:.0f} GFLOP/s)"
    )
    return res


def run(smoke: bool = False) -> dict:
    out = {}
    if smoke:
        out["tiny"] = measure_profile(
            "tiny", batch=4, rounds=1, budget_s=5, ablations=True, monai_class=True, count_batch=2
        )
        return out
    out["quick"] = measure_profile("quick", batch=16, rounds=5, budget_s=240, ablations=True, monai_class=True)
    out["paper"] = measure_profile(
        "paper", batch=16, rounds=3, budget_s=420, ablations=False, monai_class=False, count_batch=1, warmup_full=False
    )
    return out
