"""Scaling: time per epoch against the number of patches, against K = 2, 3, 4, 6 domains and against 5, 15,
45 subjects per domain, the share of the step spent waiting for data, and peak memory against the number
of patch centres and against the domains and subjects held.

Epochs run the training loop's own calls (``DomainBalancedSampler.epoch`` ->
``TrainingData.batch`` -> ``set_input`` -> ``optimize_parameters``, then the BatchNorm
recalibration and the validation that end every epoch), quick profile, batch 16, on
synthetic volumes (``bench_data.synthetic_set``: nested ellipsoids, cheap to make in any
number). Against patches, an epoch is one pass over its patch index (the paper's epoch).
Against domains and subjects, each point is a fresh process holding K x n volumes of
72 x 96 x 128 (its peak memory is its own); its epoch is the quick profile's (25 steps, then
the recalibration and validation), timed as a few steps (median) plus one recalibration and
validation. "Linear or better" is read off the exponent of a power law fitted through the points
(time or memory ~ volumes^b): b <= 1.1 passes. Memory is also measured in fresh processes holding
the full iSEG + MRBrainS-sized set with patch grids of stride 16, 8 and 4.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time

import numpy as np
import torch

from _common import least_squares_line, log, run_worker
from bench_data import synthetic_set


def _training_data(n_domains: int, shape_scale: float, patch: int, *, subjects: int = 1, stride: int = 4):
    """``subjects`` synthetic volumes per domain (domain k's intensities times 1 + 0.1 k), indexed on a patch grid."""
    from advnorm.data.patches import PatchIndex
    from advnorm.training.data import TrainingData

    images, labels = [], []
    domains = []
    for k in range(n_domains):
        ims, labs, _ = synthetic_set(subjects, 0, shape_scale=shape_scale, seed=k)
        images += [im * (1.0 + 0.1 * k) for im in ims]
        labels += labs
        domains += [k] * subjects
    masks = [(lab > 0).astype(np.uint8) for lab in labels]
    index = PatchIndex.build([lab > 0 for lab in labels], patch_size=patch, stride=stride)
    data = TrainingData(
        domains=[f"D{k}" for k in range(n_domains)],
        subjects=[],
        inputs=images,
        labels=labels,
        masks=masks,
        subject_domain=np.asarray(domains, np.int64),
        train=index,
        val=index,
        split={},
    )
    return data, index


def _epoch(model, data, index, n_patches: int, batch: int, seed: int) -> dict:
    """One pass over ``n_patches`` patches (a random subset of the index); the data time is what the loop waits for."""
    from advnorm.data.sampler import DomainBalancedSampler

    rng = np.random.default_rng(seed)
    sub = index.subset(np.sort(rng.choice(len(index), size=n_patches, replace=False)))
    sampler = DomainBalancedSampler(data.row_domains(sub), batch, seed=seed)
    steps = sampler.full_pass_steps()
    t0 = time.perf_counter()
    t_data = 0.0
    for rows in sampler.epoch(0, steps):
        t = time.perf_counter()
        x, y, m, z = data.batch(sub, rows)
        t_data += time.perf_counter() - t
        model.set_input(x, y, m, z)
        model.optimize_parameters()
    total = time.perf_counter() - t0
    return {
        "patches": n_patches,
        "steps": steps,
        "seconds": total,
        "data_seconds": t_data,
        "data_fraction": t_data / total,
        "seconds_per_patch": total / (steps * batch),
    }


def _model(n_domains: int, batch: int, profile: str):
    from _common import profile_config
    from advnorm.models.networks import Networks
    from advnorm.training.trainer import Trainer

    cfg = profile_config(profile)
    cfg = dataclasses.replace(cfg, method="adversarial", train=dataclasses.replace(cfg.train, batch_size=batch))
    torch.manual_seed(0)
    model = Trainer(Networks(cfg, n_domains), torch.tensor([0.1, 0.3, 0.3, 0.3]))
    model.nets.train()
    return model


def power_law_exponent(xs: list[float], ys: list[float]) -> float:
    """b of the least-squares fit of log y = a + b log x: 1 is linear growth, below 1 better than linear."""
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


GRID = ((2, 5), (3, 5), (4, 5), (6, 5), (3, 15), (3, 45))
"""(K domains, subjects per domain): K = 2, 3, 4, 6 at 5 subjects, and 5, 15, 45 subjects at K = 3."""
SMOKE_GRID = ((2, 3), (3, 4))
LINEAR_EXPONENT = 1.1
"""Growth exponent up to which time or memory counts as linear or better (a little slack for noise)."""


def grid_worker(args: dict) -> dict:
    """In a fresh process: hold K x n volumes, time the quick epoch's parts, report speed and peak memory."""
    import advnorm.models.networks
    import advnorm.training.trainer  # noqa: F401  (imported before the baseline: not the data's memory)
    from _common import peak_rss_bytes, profile_config, reset_peak_rss, rss_bytes
    from advnorm.data.sampler import DomainBalancedSampler
    from advnorm.training.fixed_batches import validation_rows
    from advnorm.training.validation import validate

    k, n, batch = args["n_domains"], args["subjects"], args["batch"]
    cfg = profile_config(args["profile"])
    base = rss_bytes()
    reset_peak_rss()
    t = time.perf_counter()
    data, index = _training_data(k, args["shape_scale"], cfg.train.patch_size, subjects=n, stride=8)
    sampler = DomainBalancedSampler(data.row_domains(index), batch, seed=0)
    set_up = time.perf_counter() - t
    model = _model(k, batch, args["profile"])
    batches = sampler.epoch(0, args["steps"] + 1)
    step_s, data_s = [], []
    for i, rows in enumerate(batches):
        t0 = time.perf_counter()
        x, y, m, z = data.batch(index, rows)
        t1 = time.perf_counter()
        model.set_input(x, y, m, z)
        model.optimize_parameters()
        if i:  # the first step warms up
            step_s.append(time.perf_counter() - t0)
            data_s.append(t1 - t0)
    bn_rows = [validation_rows(data, batch, 7919 + i, index) for i in range(args["bn_batches"])]
    t = time.perf_counter()
    model.recalibrate_batchnorm(lambda r=r: data.batch(index, r) for r in bn_rows)
    validate(model, data, validation_rows(data, args["val_patches"], 0))
    val_s = time.perf_counter() - t
    own = sum(a.nbytes for a in data.inputs) + sum(a.nbytes for a in data.labels) + sum(a.nbytes for a in data.masks)
    peak = peak_rss_bytes() - base
    step = float(np.median(step_s))
    return {
        "n_domains": k,
        "subjects_per_domain": n,
        "volumes": k * n,
        "patch_centres": len(index),
        "set_up_seconds": set_up,
        "step_seconds": step_s,
        "seconds_per_step": step,
        "data_seconds": float(sum(data_s)),
        "data_fraction": float(sum(data_s) / sum(step_s)),
        "validation_seconds": val_s,
        "steps_per_epoch": args["steps_per_epoch"],
        "epoch_seconds": args["steps_per_epoch"] * step + val_s,
        "volumes_bytes": own,
        "index_bytes": int(index.entries.nbytes),
        "peak_above_baseline": peak,
        "peak_over_volumes": peak / own,
    }


def domains_and_subjects(smoke: bool, batch: int, profile: str) -> dict:
    """The (K, n) grid, one fresh process per point, and the growth exponents of epoch time and memory."""
    from _common import profile_config

    t = profile_config(profile).train
    args = {
        "batch": batch,
        "profile": profile,
        "shape_scale": 0.3 if smoke else 0.5,
        "steps": 1 if smoke else 6,
        "steps_per_epoch": t.steps_per_epoch,
        "bn_batches": 1 if smoke else t.bn_recalibration_batches,
        "val_patches": 8 if smoke else t.val_patches,
    }
    rows = []
    for k, n in SMOKE_GRID if smoke else GRID:
        rows.append(run_worker("bench_scaling", {**args, "n_domains": k, "subjects": n}))
        r = rows[-1]
        log(
            f"scaling: K={k}, {n} subjects each: {r['seconds_per_step']:.2f} s/step, epoch {r['epoch_seconds']:.1f} s, "
            f"peak {r['peak_above_baseline'] / 2**20:.0f} MiB for {r['volumes_bytes'] / 2**20:.0f} MiB of volumes"
        )
    vols = [r["volumes"] for r in rows]
    memory = least_squares_line([r["volumes_bytes"] for r in rows], [r["peak_above_baseline"] for r in rows])
    return {
        "rows": rows,
        "volume_shape": [round(s * args["shape_scale"]) for s in (144, 192, 256)],
        "epoch_exponent": power_law_exponent(vols, [r["epoch_seconds"] for r in rows]),
        "set_up_exponent": power_law_exponent(vols, [r["set_up_seconds"] for r in rows]),
        "memory_exponent": power_law_exponent(vols, [r["peak_above_baseline"] for r in rows]),
        "memory_fit": {
            "bytes_per_volume_byte": memory["slope"],
            "intercept_bytes": memory["intercept"],
            "r2": memory["r2"],
        },
        "linear_exponent": LINEAR_EXPONENT,
    }


def run(smoke: bool = False) -> dict:
    batch = 4 if smoke else 16  # >= K: the sampler gives every domain a share of each batch
    scale = 0.3 if smoke else 0.5
    profile = "tiny" if smoke else "quick"
    patch = 16 if smoke else 32
    patch_counts = [8, 16] if smoke else [32, 64, 128]
    out: dict = {"batch": batch, "profile": profile}

    log("scaling: epoch time against patches (K = 3)")
    data, index = _training_data(3, scale, patch)
    model = _model(3, batch, profile)
    _epoch(model, data, index, batch, batch, seed=99)  # warm-up
    rows = []
    for n in patch_counts:
        rows.append(_epoch(model, data, index, n, batch, seed=n))
        log(f"scaling: {n} patches: {rows[-1]['seconds']:.1f} s")
    out["epoch_vs_patches"] = rows
    line = least_squares_line([r["patches"] for r in rows], [r["seconds"] for r in rows])
    out["epoch_vs_patches_fit"] = {
        "seconds_per_patch": line["slope"],
        "intercept_seconds": line["intercept"],
        "r2": line["r2"],
    }

    log("scaling: epoch time and peak memory against domains and subjects (fresh processes)")
    out["domains_and_subjects"] = grid = domains_and_subjects(smoke, batch, profile)
    step_s = sum(r["seconds"] for r in rows) + sum(sum(g["step_seconds"]) for g in grid["rows"])
    data_s = sum(r["data_seconds"] for r in rows) + sum(g["data_seconds"] for g in grid["rows"])
    out["data_wait_fraction"] = float(data_s / step_s)

    log("scaling: peak memory against the number of patch centres")
    mem = []
    args = {"shape_scale": 0.35, "n_iseg": 2, "n_mrbrains": 1} if smoke else {}
    for stride in (16, 8) if smoke else (16, 8, 4):
        r = run_worker("bench_data", {**args, "pipeline": "advnorm", "n_batches": 5 if smoke else 50, "stride": stride})
        mem.append(
            {
                "stride": stride,
                "patch_centres": r["patch_centres"],
                "index_bytes": r["index_bytes"],
                "volumes_bytes": r["volumes_bytes"],
                "peak_above_baseline": r["peak_above_baseline"],
                "peak_over_volumes": r["peak_over_volumes"],
            }
        )
        log(f"scaling: stride {stride}: {r['patch_centres']} centres, peak {r['peak_above_baseline'] / 2**20:.0f} MiB")
    out["memory_vs_patches"] = mem
    peaks = [m["peak_above_baseline"] for m in mem]
    out["memory_spread"] = (max(peaks) - min(peaks)) / min(peaks)
    return out


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        print(json.dumps(grid_worker(json.loads(sys.argv[2]))))
