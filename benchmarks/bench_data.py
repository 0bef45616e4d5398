"""Data pipeline: patches/s delivered to the training loop, and peak memory, vs TorchIO's Queue + LabelSampler.

An iSEG + MRBrainS-sized set held in memory: 10 volumes of 144 x 192 x 256 (iSEG-2017)
and 5 of 230 x 230 x 144 (MRBrainS13's 240 x 240 x 48 at 0.958 x 0.958 x 3 mm resampled
to 1 mm), each with a labelled brain of ~0.9 M voxels, so the stride-8 grid holds about
27,000 patch centres. advnorm: ``DomainBalancedSampler`` + ``TrainingData.batch`` (the
training loop's own calls: raw images, each patch z-scored with its image's fitted parameters as it is
gathered; TorchIO gets no intensity transform). TorchIO: ``SubjectsDataset`` -> ``Queue`` (max_length 300,
samples_per_volume 10, as in TorchIO's documentation) with a ``LabelSampler`` centring
patches on labels 1-3 -> ``DataLoader``, one process (``num_workers=0``) like advnorm.

Each pipeline runs in its own fresh process so its peak resident memory is its own;
the peak is reset after the volumes are built (Linux ``clear_refs``), and reported
above the process's memory before the volumes existed.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

ISEG_SHAPE = (144, 192, 256)
MRBRAINS_SHAPE = (230, 230, 144)


def synthetic_set(n_iseg: int = 10, n_mrbrains: int = 5, *, shape_scale: float = 1.0, seed: int = 0):
    """(images float32, labels uint8, domain per volume): nested ellipsoids (WM < GM < CSF) with noise."""
    rng = np.random.default_rng(seed)
    images, labels, domains = [], [], []
    specs = [(ISEG_SHAPE, (50, 62, 70), 0)] * n_iseg + [(MRBRAINS_SHAPE, (62, 62, 56), 1)] * n_mrbrains
    for base_shape, base_radii, dom in specs:
        shape = tuple(max(8, int(round(s * shape_scale))) for s in base_shape)
        radii = tuple(r * shape_scale for r in base_radii)
        r = np.zeros(shape, np.float32)
        for ax, (n, rad) in enumerate(zip(shape, radii, strict=True)):
            c = (np.arange(n, dtype=np.float32) - n / 2 + rng.uniform(-3, 3) * shape_scale) / rad
            r += (c**2).reshape([-1 if i == ax else 1 for i in range(3)])
        lab = np.zeros(shape, np.uint8)
        lab[r < 1.0] = 1
        lab[r < 0.8] = 2
        lab[r < 0.45] = 3
        del r
        lut = np.array([0.0, 0.3, 0.6, 0.9], np.float32) * (1.0 + 0.2 * dom)
        img = lut[lab]
        img += rng.standard_normal(shape, dtype=np.float32) * 0.05 * (lab > 0)
        images.append(img)
        labels.append(lab)
        domains.append(dom)
    return images, labels, np.asarray(domains, np.int64)


def _advnorm_pipeline(images, labels, domains, *, batch: int, n_batches: int, stride: int):
    from advnorm.data.intensity import fit_transform
    from advnorm.data.patches import PatchIndex
    from advnorm.data.sampler import DomainBalancedSampler
    from advnorm.training.data import TrainingData

    masks = [(lab > 0).astype(np.uint8) for lab in labels]
    # as training holds them: raw images and each one's fitted z-score, applied to every patch as it is gathered
    transforms = [fit_transform("zscore", image, mask.view(bool)) for image, mask in zip(images, masks, strict=True)]
    index = PatchIndex.build([lab > 0 for lab in labels], patch_size=32, stride=stride)
    data = TrainingData(
        domains=["iSEG", "MRBrainS"],
        subjects=[],
        inputs=images,
        labels=labels,
        masks=masks,
        subject_domain=domains,
        train=index,
        val=index,
        split={},
        transforms=transforms,
    )
    sampler = DomainBalancedSampler(data.row_domains(index), batch, seed=0)
    it = sampler.epoch(0, n_batches + 1)
    data.batch(index, next(it))  # warm-up
    t = time.perf_counter()
    n = 0
    for rows in it:
        x, y, m, z = data.batch(index, rows)
        n += x.shape[0]
    dt = time.perf_counter() - t
    own = sum(a.nbytes for a in images) + sum(a.nbytes for a in labels) + sum(a.nbytes for a in masks)
    return {
        "patches": n,
        "seconds": dt,
        "patches_per_s": n / dt,
        "patch_centres": len(index),
        "index_bytes": int(index.entries.nbytes),
        "volumes_bytes": own,
        "holds": "raw image float32 + label uint8 + mask uint8; each patch z-scored as gathered",
    }


def _torchio_pipeline(images, labels, domains, *, batch: int, n_batches: int, **_):
    import torch
    import torchio as tio
    from torch.utils.data import DataLoader

    subjects = [
        tio.Subject(
            image=tio.ScalarImage(tensor=torch.from_numpy(img)[None]),
            label=tio.LabelMap(tensor=torch.from_numpy(lab)[None]),
            domain=int(d),
        )
        for img, lab, d in zip(images, labels, domains, strict=True)
    ]
    dataset = tio.SubjectsDataset(subjects)
    sampler = tio.LabelSampler(32, label_name="label", label_probabilities={0: 0, 1: 1, 2: 1, 3: 1})
    queue = tio.Queue(
        dataset,
        max_length=300,
        samples_per_volume=10,
        sampler=sampler,
        num_workers=0,
        shuffle_subjects=True,
        shuffle_patches=True,
        verbose=False,
    )
    loader = DataLoader(queue, batch_size=batch, num_workers=0)
    it = iter(loader)
    next(it)  # warm-up (first queue fill is timed below as part of steady state refills)
    t = time.perf_counter()
    n = 0
    for _ in range(n_batches):
        try:
            b = next(it)
        except StopIteration:
            it = iter(loader)
            b = next(it)
        n += b["image"][tio.DATA].shape[0]
    dt = time.perf_counter() - t
    own = sum(
        s["image"].data.numel() * s["image"].data.element_size()
        + s["label"].data.numel() * s["label"].data.element_size()
        for s in subjects
    )
    return {
        "patches": n,
        "seconds": dt,
        "patches_per_s": n / dt,
        "volumes_bytes": own,
        "holds": f"image {subjects[0]['image'].data.dtype} + label {subjects[0]['label'].data.dtype}",
        "torchio": tio.__version__,
        "queue": {"max_length": 300, "samples_per_volume": 10, "num_workers": 0},
    }


PIPELINES = {"advnorm": _advnorm_pipeline, "torchio": _torchio_pipeline}
REQUIRES = {"torchio": "TorchIO's Queue + LabelSampler, the reference of the data pipeline"}
"""What the section measures against; ``run.py`` checks it before any section runs."""


def worker(args: dict) -> dict:
    """In a fresh process: build the set, reset the peak, run one pipeline, report speed and memory."""
    from _common import peak_rss_bytes, reset_peak_rss, rss_bytes

    if args["pipeline"] == "torchio":
        import torchio  # noqa: F401  (import cost and memory before the baseline)
    import torch  # noqa: F401

    import advnorm.training.data  # noqa: F401

    base = rss_bytes()
    images, labels, domains = synthetic_set(
        args.get("n_iseg", 10), args.get("n_mrbrains", 5), shape_scale=args.get("shape_scale", 1.0)
    )
    with_volumes = rss_bytes()
    reset_ok = reset_peak_rss()
    res = PIPELINES[args["pipeline"]](
        images, labels, domains, batch=args.get("batch", 16), n_batches=args["n_batches"], stride=args.get("stride", 8)
    )
    peak = peak_rss_bytes()
    res.update(
        {
            "rss_before_volumes": base,
            "rss_with_volumes": with_volumes,
            "peak_rss": peak,
            "peak_reset": reset_ok,
            "peak_above_baseline": peak - base,
            "peak_over_volumes": (peak - base) / res["volumes_bytes"],
            "voxels": int(sum(a.size for a in images)),
        }
    )
    return res


def run(smoke: bool = False) -> dict:
    from _common import log, require, run_worker

    require("data", REQUIRES)  # never a quiet substitute: a per-patch loop stood in once and reported x1.1
    ref_name = "torchio"
    base = {"shape_scale": 0.35, "n_iseg": 2, "n_mrbrains": 1} if smoke else {}
    n_ours, n_ref = (20, 4) if smoke else (400, 64)
    out: dict = {"reference": ref_name}
    # interleave: reference, ours, reference, ours (fresh process each; the median is kept)
    runs: dict[str, list[dict]] = {"advnorm": [], ref_name: []}
    for _ in range(1 if smoke else 2):
        for name, nb in ((ref_name, n_ref), ("advnorm", n_ours)):
            log(f"data: {name} ({nb} batches of 16)")
            runs[name].append(run_worker("bench_data", {**base, "pipeline": name, "n_batches": nb}))
    for name, rs in runs.items():
        rs.sort(key=lambda r: r["patches_per_s"])
        best = dict(rs[len(rs) // 2])
        best["patches_per_s_runs"] = [r["patches_per_s"] for r in rs]
        best["peak_over_volumes"] = max(r["peak_over_volumes"] for r in rs)
        out[name] = best
    out["speedup_vs_reference"] = out["advnorm"]["patches_per_s"] / out[ref_name]["patches_per_s"]
    log(
        f"data: advnorm {out['advnorm']['patches_per_s']:.0f} patches/s "
        f"vs {ref_name} {out[ref_name]['patches_per_s']:.0f} "
        f"(x{out['speedup_vs_reference']:.1f}); peak {out['advnorm']['peak_over_volumes']:.2f}x the volumes"
    )
    return out


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        print(json.dumps(worker(json.loads(sys.argv[2]))))
