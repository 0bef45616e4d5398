"""Scaling: time per epoch against the number of patches and against K (2, 3, 4 domains), the share of
the step spent waiting for data, and peak memory against the number of patch centres.

Epochs run the training loop's own calls (``DomainBalancedSampler.epoch`` ->
``TrainingData.batch`` -> ``set_input`` -> ``optimize_parameters``), quick profile,
batch 16, on synthetic volumes (``bench_data.synthetic_set``); an epoch is one pass
over its patch index. Memory is measured in fresh processes holding the full
iSEG + MRBrainS-sized set with patch grids of stride 16, 8 and 4.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from _common import log, run_worker
from bench_data import synthetic_set


def _training_data(n_domains: int, shape_scale: float, patch: int):
    from advnorm.data.patches import PatchIndex
    from advnorm.training.data import TrainingData

    images, labels = [], []
    domains = []
    for k in range(n_domains):
        im, lab, _ = synthetic_set(1, 0, shape_scale=shape_scale, seed=k)
        images += [im[0] * (1.0 + 0.1 * k)]
        labels += lab
        domains.append(k)
    masks = [(lab > 0).astype(np.uint8) for lab in labels]
    index = PatchIndex.build([lab > 0 for lab in labels], patch_size=patch, stride=4)
    data = TrainingData(domains=[f"D{k}" for k in range(n_domains)], subjects=[], inputs=images, labels=labels, masks=masks,
                        subject_domain=np.asarray(domains, np.int64), train=index, val=index, split={})
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
    return {"patches": n_patches, "steps": steps, "seconds": total, "data_seconds": t_data,
            "data_fraction": t_data / total, "seconds_per_patch": total / (steps * batch)}


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


def _linear_fit(xs: list[float], ys: list[float]) -> dict:
    a, b = np.polyfit(xs, ys, 1)
    pred = np.polyval([a, b], xs)
    ss_res = float(np.sum((np.asarray(ys) - pred) ** 2))
    ss_tot = float(np.sum((np.asarray(ys) - np.mean(ys)) ** 2)) or 1.0
    return {"seconds_per_patch": float(a), "intercept_seconds": float(b), "r2": 1.0 - ss_res / ss_tot}


def run(smoke: bool = False) -> dict:
    batch = 4 if smoke else 16  # >= K: the sampler gives every domain a share of each batch
    scale = 0.3 if smoke else 0.5
    profile = "tiny" if smoke else "quick"
    patch = 16 if smoke else 32
    patch_counts = [8, 16] if smoke else [32, 64, 128]
    k_patches = 8 if smoke else 64
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
    out["epoch_vs_patches_fit"] = _linear_fit([r["patches"] for r in rows], [r["seconds"] for r in rows])

    log("scaling: epoch time against K")
    krows = []
    for k in (2, 3, 4):
        data_k, index_k = _training_data(k, scale, patch)
        model_k = _model(k, batch, profile)
        _epoch(model_k, data_k, index_k, batch, batch, seed=98)  # warm-up
        r = _epoch(model_k, data_k, index_k, k_patches, batch, seed=7)
        r["n_domains"] = k
        krows.append(r)
        log(f"scaling: K={k}: {r['seconds']:.1f} s for {k_patches} patches")
    out["epoch_vs_domains"] = krows
    all_rows = rows + krows
    out["data_wait_fraction"] = float(sum(r["data_seconds"] for r in all_rows) / sum(r["seconds"] for r in all_rows))

    log("scaling: peak memory against the number of patch centres")
    mem = []
    args = {"shape_scale": 0.35, "n_iseg": 2, "n_mrbrains": 1} if smoke else {}
    for stride in ((16, 8) if smoke else (16, 8, 4)):
        r = run_worker("bench_data", {**args, "pipeline": "advnorm", "n_batches": 5 if smoke else 50, "stride": stride})
        mem.append({"stride": stride, "patch_centres": r["patch_centres"], "index_bytes": r["index_bytes"],
                    "volumes_bytes": r["volumes_bytes"], "peak_above_baseline": r["peak_above_baseline"],
                    "peak_over_volumes": r["peak_over_volumes"]})
        log(f"scaling: stride {stride}: {r['patch_centres']} centres, peak {r['peak_above_baseline'] / 2**20:.0f} MiB")
    out["memory_vs_patches"] = mem
    peaks = [m["peak_above_baseline"] for m in mem]
    out["memory_spread"] = (max(peaks) - min(peaks)) / min(peaks)
    return out
