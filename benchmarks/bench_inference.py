"""Full-volume inference: seconds to normalize and segment one 144 x 192 x 256 volume.

advnorm's ``TrainedModel.predict`` (whole-volume, few large windows: ``advnorm predict --window 160
--overlap 0.25``, the default until 2026-11-28) against MONAI's ``sliding_window_inference`` with 32^3 windows at 0.75
overlap (the patch-style inference of the original work), with the *same* trained
weights and the same G -> S predictor, and the Dice (mean over CSF, GM, WM) of both
against the ground truth, on a phantom subject of the training domain.

The model is a quick-profile adversarial run trained here for a fixed number of steps
on two phantom domains; it is kept in ``benchmarks/model/`` so later runs reuse the
same weights (``--retrain`` rebuilds it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _common import BENCH_DIR, LARGE_OVERLAP, LARGE_WINDOW, log, median

VOLUME_SHAPE = (144, 192, 256)
TRAIN_STEPS, WARMUP_STEPS = 150, 30
"""Adversarial and identity warm-up steps (batch 16) of the model the inference benchmark uses."""
CACHE = BENCH_DIR / "model"
REFERENCE_WINDOW, REFERENCE_OVERLAP = 32, 0.75
"""The reference's sliding window: the training patch size at MONAI's tutorial overlap (the original work's)."""


def _canvas(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Centre ``a`` in a zero array of ``shape`` (cropping where it is larger)."""
    out = np.zeros(shape, a.dtype)
    src, dst = [], []
    for n, m in zip(a.shape, shape, strict=True):
        if n <= m:
            lo = (m - n) // 2
            src.append(slice(0, n))
            dst.append(slice(lo, lo + n))
        else:
            lo = (n - m) // 2
            src.append(slice(lo, lo + m))
            dst.append(slice(0, m))
    out[tuple(dst)] = a[tuple(src)]
    return out


PHANTOM_SCALE = 0.8


def phantom_subject(
    domain: int, subject: int, shape=VOLUME_SHAPE, scale: float = PHANTOM_SCALE, synthetic: bool = False
):
    """A phantom subject (``advnorm.data.phantom``) centred in ``shape``.

    ``synthetic``: nested ellipsoids instead (fast, for smoke runs).
    """
    from advnorm.data.subject import SourceGrid, Subject

    if synthetic:
        from bench_data import synthetic_set

        imgs, labs, _ = synthetic_set(
            1,
            0,
            shape_scale=min(s / t for s, t in zip(shape, (144, 192, 256), strict=True)),
            seed=10 * domain + subject,
        )
        img, lab = imgs[0] * domain, labs[0]
    else:
        from advnorm.data.phantom.generate import PhantomSpec, make_case

        img, lab = make_case(PhantomSpec(domains=2, subjects=subject, seed=0, scale=scale), domain, subject)
    img, lab = _canvas(img.astype(np.float32), shape), _canvas(lab.astype(np.uint8), shape)
    mask = img != 0
    img = np.where(mask, img, 0).astype(np.float32)
    lab = np.where(mask, lab, 0).astype(np.uint8)
    return Subject(
        case_id=f"d{domain}s{subject}",
        domain=f"D{domain}",
        layout="phantom",
        image=img,
        label=lab,
        mask=mask,
        affine=np.eye(4),
        source=SourceGrid(path="phantom", shape=shape, affine=np.eye(4), spacing=(1.0, 1.0, 1.0)),
    )


def _train_run(run_dir: Path, steps: int, warmup_steps: int, profile: str = "quick") -> dict:
    """A short adversarial training (advnorm's own ``fit``) on a two-domain phantom of 3 subjects each; a run folder."""
    from _common import profile_config
    from advnorm.data.layouts import open_domains
    from advnorm.data.phantom.generate import PhantomSpec, write_phantom
    from advnorm.training.loop import fit

    cfg = profile_config(profile)
    smoke = profile == "tiny"
    train = dataclasses.replace(
        cfg.train,
        batch_size=4 if smoke else 16,
        epochs=2 if warmup_steps else 1,
        warmup_epochs=1 if warmup_steps else 0,
        warmup_steps_per_epoch=max(warmup_steps, 1),
        steps_per_epoch=max(steps, 1),
        device="cpu",
    )
    cfg = dataclasses.replace(cfg, method="adversarial", train=train)
    phantom = run_dir.parent / f"{run_dir.name}_phantom"
    if not (phantom / "phantom.json").exists():
        write_phantom(phantom, PhantomSpec(domains=2, subjects=3, seed=0, scale=0.3 if smoke else PHANTOM_SCALE))
    datasets = open_domains(sorted(str(d) for d in phantom.glob("Dataset*")))
    t = time.perf_counter()
    fit(cfg, datasets, run_dir, progress=False, log=lambda m: log(f"inference: training: {m}"))
    return {"steps": steps, "warmup_steps": warmup_steps, "seconds": time.perf_counter() - t}


def trained_run(
    steps: int, warmup_steps: int, *, retrain: bool, shape, root: Path = CACHE, profile: str = "quick"
) -> tuple[Path, dict]:
    from _common import profile_config

    cfg = profile_config(profile).to_dict()  # a change of nets or losses trains a new model
    key = hashlib.sha1(
        json.dumps([steps, warmup_steps, list(shape), 2, cfg["model"], cfg["loss"]]).encode()
    ).hexdigest()[:10]
    run_dir = root / f"inference_run_{key}"
    info_file = run_dir / "bench_training.json"
    if retrain and run_dir.exists():
        shutil.rmtree(run_dir)
    if not info_file.exists():
        log(f"inference: training the model ({warmup_steps} warm-up + {steps} adversarial steps of 16 patches)")
        info = _train_run(run_dir, steps, warmup_steps, profile)
        info_file.write_text(json.dumps(info))
    else:
        log(f"inference: reusing the cached model {run_dir.name}")
    return run_dir, json.loads(info_file.read_text())


def dice_per_class(pred: np.ndarray, truth: np.ndarray) -> list[float]:
    out = []
    for c in (1, 2, 3):
        p, t = pred == c, truth == c
        denom = int(p.sum()) + int(t.sum())
        out.append(2.0 * int((p & t).sum()) / denom if denom else 1.0)
    return out


def _default_window_row(tm, shape, times: dict, labels: dict, subject) -> dict:
    """advnorm's predict at the CLI's default window (the run's training patch size at its default overlap, since
    2026-11-28): its time, Dice, and agreement with the large windows and with MONAI's 32^3 windows."""
    from advnorm.inference import windows_per_pass

    edge, overlap = tm.window.edge, tm.window.overlap
    count, roi = tm.windows_for(shape)
    name = "advnorm_default_window"
    dice = dice_per_class(labels[name], subject.label)
    brain = subject.mask
    return {
        "seconds": times[name],
        "median_seconds": median(times[name]),
        "window": edge,
        "overlap": overlap,
        "windows": count,
        "windows_per_pass": windows_per_pass(roi),
        "blend": "gaussian",
        "dice_csf_gm_wm": dice,
        "mean_dice": float(np.mean(dice)),
        "agreement_with_large_windows": float(np.mean(labels[name][brain] == labels["advnorm"][brain])),
        "agreement_with_reference": float(np.mean(labels[name][brain] == labels["reference"][brain])),
    }


def run(smoke: bool = False, retrain: bool = False) -> dict:
    from monai.inferers import sliding_window_inference

    from advnorm.inference import InferenceWindow, TrainedModel, window_count

    shape = (40, 48, 56) if smoke else VOLUME_SHAPE
    if smoke:  # untrained weights in a temporary folder: the smoke run only exercises the code
        tmp = Path(tempfile.mkdtemp(prefix="advnorm-bench-"))
        run_dir, training = trained_run(0, 0, retrain=True, shape=shape, root=tmp, profile="tiny")
    else:
        run_dir, training = trained_run(TRAIN_STEPS, WARMUP_STEPS, retrain=retrain, shape=shape)
    tm = TrainedModel(run_dir, device="cpu", window=InferenceWindow(LARGE_WINDOW, LARGE_OVERLAP))
    tm_default = TrainedModel(run_dir, nets=tm.nets)  # the CLI's default window (the training patch size), same nets
    subject = phantom_subject(1, 4, shape, synthetic=smoke)  # subject 4: not in the 3-subject training phantom
    nets = tm.nets

    def predictor(inp: torch.Tensor) -> torch.Tensor:
        xi, mi = inp[:, :1], inp[:, 1:]
        x_hat = nets.normalize(xi, mi)
        probs = torch.softmax(nets.segment(x_hat).float(), dim=1)
        return torch.cat([x_hat.float(), probs], dim=1)

    def reference():
        x = torch.from_numpy(tm.network_input(subject))[None, None]
        m = torch.from_numpy(subject.mask.astype(np.float32))[None, None]
        with torch.no_grad():
            out = sliding_window_inference(
                torch.cat([x, m], 1), (REFERENCE_WINDOW,) * 3, 16, predictor, overlap=REFERENCE_OVERLAP
            )
        return out[0, 1:].numpy().argmax(0).astype(np.uint8)

    def same_windows():
        """MONAI's sliding window with advnorm's windows, overlap and blending (no padding to the stride):
        separates what the large windows give from what advnorm adds, and checks the Dice is the same."""
        x = torch.from_numpy(tm.network_input(subject))[None, None]
        m = torch.from_numpy(subject.mask.astype(np.float32))[None, None]
        with torch.no_grad():
            out = sliding_window_inference(
                torch.cat([x, m], 1), (LARGE_WINDOW,) * 3, 1, predictor, overlap=LARGE_OVERLAP, mode="gaussian"
            )
        return out[0, 1:].numpy().argmax(0).astype(np.uint8)

    def ours():
        return tm.predict(subject).labels

    def ours_default():
        return tm_default.predict(subject).labels

    log("inference: advnorm whole-volume predict (warm-up)")
    ours()
    fns = {
        "advnorm": ours,
        "reference": reference,
        "monai_same_windows": same_windows,
        "advnorm_default_window": ours_default,
    }
    times: dict[str, list[float]] = {name: [] for name in fns}
    labels = {}
    order = [
        "advnorm",
        "advnorm_default_window",
        "monai_same_windows",
        "reference",
        "monai_same_windows",
        "advnorm_default_window",
        "advnorm",
    ]
    for name in order:
        log(f"inference: {name}")
        t = time.perf_counter()
        labels[name] = fns[name]()
        times[name].append(time.perf_counter() - t)
    d_ours = dice_per_class(labels["advnorm"], subject.label)
    d_ref = dice_per_class(labels["reference"], subject.label)
    d_same, brain = dice_per_class(labels["monai_same_windows"], subject.label), subject.mask
    n_windows = window_count(shape, (REFERENCE_WINDOW,) * 3, REFERENCE_OVERLAP)  # MONAI's count
    res = {
        "volume_shape": list(shape),
        "brain_voxels": int(subject.mask.sum()),
        "advnorm": {
            "seconds": times["advnorm"],
            "median_seconds": median(times["advnorm"]),
            "window": LARGE_WINDOW,
            "overlap": LARGE_OVERLAP,
            "blend": "gaussian",
            "dice_csf_gm_wm": d_ours,
            "mean_dice": float(np.mean(d_ours)),
        },
        "reference": {
            "seconds": times["reference"],
            "median_seconds": median(times["reference"]),
            "window": REFERENCE_WINDOW,
            "overlap": REFERENCE_OVERLAP,
            "sw_batch_size": 16,
            "blend": "constant",
            "windows": n_windows,
            "dice_csf_gm_wm": d_ref,
            "mean_dice": float(np.mean(d_ref)),
        },
        "monai_same_windows": {
            "seconds": times["monai_same_windows"],
            "median_seconds": median(times["monai_same_windows"]),
            "window": LARGE_WINDOW,
            "overlap": LARGE_OVERLAP,
            "blend": "gaussian",
            "dice_csf_gm_wm": d_same,
            "mean_dice": float(np.mean(d_same)),
            "label_agreement": float(np.mean(labels["advnorm"][brain] == labels["monai_same_windows"][brain])),
        },
        "advnorm_default_window": _default_window_row(tm_default, shape, times, labels, subject),
        "training": training,
    }
    res["speedup_vs_reference"] = res["reference"]["median_seconds"] / res["advnorm"]["median_seconds"]
    res["mean_dice_difference"] = res["advnorm"]["mean_dice"] - res["reference"]["mean_dice"]
    res["label_agreement"] = float(np.mean(labels["advnorm"][subject.mask] == labels["reference"][subject.mask]))
    if smoke:
        shutil.rmtree(run_dir.parent, ignore_errors=True)
    log(
        f"inference: advnorm {res['advnorm']['median_seconds']:.1f} s "
        f"vs reference {res['reference']['median_seconds']:.1f} s (x{res['speedup_vs_reference']:.1f}); "
        f"mean Dice {res['advnorm']['mean_dice']:.4f} vs {res['reference']['mean_dice']:.4f}"
    )
    return res
