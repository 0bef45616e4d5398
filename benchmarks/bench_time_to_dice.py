"""Time to accuracy: training wall time until a held-out subject is segmented well, advnorm vs a MONAI loop.

A user comparing tools asks how long until the model is good, not how fast one step is. Both systems
train on the same phantom data (``advnorm.data.phantom``, 3 domains x 5 subjects, the default spec),
on the same training subjects (advnorm's own subject split, ``advnorm.data.splits.domain_split``),
with the same thread count, one after the other in fresh processes, and are scored on the same
held-out test subjects by the same code: full-volume labels on the 1 mm working grid,
``advnorm.evaluation.metrics.case_metrics``, mean Dice over CSF, GM and WM.

* **advnorm**: ``TrainingRun`` driven step by step exactly as ``advnorm train`` runs it (quick profile:
  set-up, the untrained validation, then per epoch its steps, ``validate()`` with its BatchNorm
  recalibration, ``end_epoch()`` with the log and checkpoints); all of it counts as training time.
  It is scored with the current weights through ``TrainedModel.predict`` (eval-mode BatchNorm, the path
  ``advnorm predict`` runs), at epoch ends: its BatchNorm statistics are recomputed there.
  Methods: ``single`` on the first domain, and ``harmonized`` (advnorm's own multi-domain method)
  on all three. Each also runs as a variant (:data:`VARIANTS`, e.g. ``advnorm-strided``: S with its
  strided stem), the same loop with model settings changed, raced against the same reference run.
* **reference**: :class:`reference.MonaiTutorialSegmentation`, the loop a MONAI user writes from the
  tutorials (``UNet`` 8-16-32-64 with batch norm, ``DiceCELoss``, ``CacheDataset`` +
  ``RandCropByLabelClassesd`` + ``DataLoader``, 16 patches of 32^3 per step, Adam 1e-3), on the same
  working-grid volumes z-scored inside the brain, trained on the same domains' training subjects,
  scored after any step with ``sliding_window_inference`` over the whole volume.

The clock counts everything from reading the data to the current step (set-up included, reported apart)
and stops while the test volumes are scored. Both sides are scored on the same schedule: at the first
boundary (an epoch for advnorm, a step for the reference) after every ``SCORE_EVERY_S`` seconds of
training time, so advnorm's times are rounded up to its epoch ends and the reference's only to its
steps: the resolution favours the reference. A run stops at the first boundary after ``BUDGET_S``.
Each run records the machine's load (``uptime``) before it starts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from _common import log, require, run_worker, uptime
from time_to_dice_race import Race
from time_to_dice_summary import TARGET_RATIO, THRESHOLDS, seconds_to, summarize

BUDGET_S = 600.0
"""Training time per run: the Dice after 2, 5 and 10 minutes is reported."""
MARK_FRACTIONS = (0.2, 0.5, 1.0)
"""The marks (fractions of the budget: 120, 300 and 600 s) at which the Dice reached is reported."""
SCORE_EVERY_S = 20.0
METHODS = ("single", "harmonized")
VARIANTS: dict[str, dict[str, dict[str, object]]] = {
    "advnorm-strided": {"model": {"segmenter_stem": "strided"}},
    "advnorm-lean-validation": {"train": {"bn_recalibration_batches": 4, "val_patches": 48}},
    "advnorm-full-validation": {"train": {"bn_recalibration_batches": 16, "val_patches": 96}},
}
"""advnorm with settings changed from the profile (nested like a ``--config`` file), each raced against the same
reference (issue 14, item 4): ``advnorm-strided``, S with its strided stem (the full-resolution double convolutions
are most of the step); ``advnorm-lean-validation``, a quarter of the BatchNorm recalibration batches and half the
validation patches after every epoch (validation and recalibration were a quarter of the training time); it is
the quick profile's own validation since 2026-11-27, and ``advnorm-full-validation`` the one before."""
RACED_BY_DEFAULT = ("advnorm-strided", "advnorm-full-validation")
"""The variants a race runs unless told: those that differ from the profile. ``advnorm-lean-validation`` stays
nameable (``--variants``) so that the races recorded before 2026-11-27 can be run again as they were."""


def race_order(methods: tuple[str, ...], variants: tuple[str, ...]) -> list[tuple[str, str]]:
    """(method, system) in the order they run: per method the reference, advnorm and the variants, every other
    method in reverse (ABBA), so a slow drift in the machine's load falls on every system alike."""
    systems = ("reference", "advnorm", *variants)
    return [(m, s) for i, m in enumerate(methods) for s in (systems if i % 2 == 0 else systems[::-1])]


ADVNORM_SYSTEMS = ("advnorm", *VARIANTS)
REQUIRES = {
    "monai.networks.nets": "MONAI's UNet",
    "monai.losses": "MONAI's DiceCELoss",
    "monai.data": "MONAI's CacheDataset and DataLoader",
    "monai.transforms": "MONAI's RandCropByLabelClassesd",
    "monai.inferers": "MONAI's sliding_window_inference",
}
"""The reference's pieces; ``run.py`` checks them before any section runs."""

SMOKE = {
    "budget_s": 2.0,
    "score_every_s": 1.0,
    "phantom": {"domains": 2, "subjects": 3, "seed": 0, "scale": 0.3},
    "advnorm": {"batch_size": 4, "steps_per_epoch": 2, "val_patches": 8, "bn_recalibration_batches": 1},
    "reference": {"channels": [4, 8], "patch": 16, "volumes_per_batch": 2, "patches_per_volume": 2},
}
"""Tiny sizes for ``run.py --smoke``: every code path in seconds, nothing measured."""


# -- the two systems ------------------------------------------------------------------------------------------------
def _config(args: dict):
    """advnorm's config of a run: the profile as ``advnorm train`` resolves it, with no epoch limit (the clock
    stops the run) and, in smoke runs, tiny sizes."""
    from _common import profile_config

    cfg = profile_config(args["profile"])
    settings = VARIANTS.get(args.get("system", "advnorm"), {})
    train_settings = {**settings.get("train", {}), **args.get("advnorm", {})}  # smoke sizes win
    train = dataclasses.replace(cfg.train, epochs=100_000, device="cpu", **train_settings)
    model = dataclasses.replace(cfg.model, **settings.get("model", {}))
    return dataclasses.replace(cfg, method=args["method"], train=train, model=model)


def _datasets(args: dict, cfg) -> tuple[list, list, dict[str, dict[str, list[str]]]]:
    """The opened phantom domains, the training domains of the method (advnorm's own choice), and their split."""
    from advnorm.data.layouts import open_domains, read_alike
    from advnorm.data.splits import domain_split
    from advnorm.methods import METHOD_SPECS
    from advnorm.training.data import training_domains

    datasets = open_domains(args["datasets"])
    chosen = read_alike(training_domains(datasets, cfg, METHOD_SPECS[cfg.method]))
    split = {ds.name: domain_split([c.case_id for c in ds.labelled()], cfg.data, where=ds.root) for ds in chosen}
    return datasets, chosen, split


def _load(chosen: list, split: dict, part: str) -> list:
    return [ds.load_case(c) for ds in chosen for c in ds.labelled() if c.case_id in split[ds.name][part]]


def _advnorm(args: dict, race: Race, datasets: list, split: dict) -> dict:
    from _common import LARGE_OVERLAP, LARGE_WINDOW
    from advnorm.inference import InferenceWindow, TrainedModel
    from advnorm.training.loop import TrainingRun

    cfg = _config(args)
    run_dir = Path(tempfile.mkdtemp(prefix="advnorm-ttd-")) / "run"
    run = TrainingRun(cfg, datasets, run_dir, progress=False, log=lambda m: None)
    epochs = iter(range(10**9))
    live: list[TrainedModel] = []  # the run's current networks behind the path `advnorm predict` runs

    def set_up() -> None:
        run.set_up()
        run.record_untrained()

    def advance(r: Race) -> None:
        epoch = next(epochs)
        row = r.timed("steps", lambda: run.train_one_epoch(epoch))
        row.update(r.timed("validation_and_batchnorm", run.validate))
        r.timed("log_and_checkpoints", lambda: run.end_epoch(row))
        r.patches += int(row["steps"]) * cfg.train.batch_size
        r.state = training_state(run.rows[-1])

    def segment(subject) -> np.ndarray:
        if not live:
            live.append(TrainedModel(run.files.root, InferenceWindow(LARGE_WINDOW, LARGE_OVERLAP), nets=run.nets))
        run.nets.eval()
        try:
            return live[0].predict(subject).labels
        finally:
            run.nets.train()

    try:
        out = race.run(set_up, advance, segment)
        if run.data.split != split:
            raise RuntimeError(f"advnorm's split {run.data.split} is not the benchmark's {split}")
        out["epochs"] = len(run.rows) - 1
        out["batch"] = cfg.train.batch_size
        out["steps_per_epoch"] = cfg.train.steps_per_epoch
    finally:
        shutil.rmtree(run_dir.parent, ignore_errors=True)
    return out


def training_state(row: dict) -> dict[str, float]:
    """The learning rates (``lr_*``) and validation loss of an advnorm training-log row, as the race records them."""
    return {k: float(v) for k, v in row.items() if (k.startswith("lr_") or k == "val_loss") and v not in (None, "")}


def _reference(args: dict, race: Race, chosen: list, split: dict) -> dict:
    from reference import MonaiTutorialSegmentation

    sizes = args.get("reference", {})
    loop: list[MonaiTutorialSegmentation] = []

    def set_up() -> None:
        volumes = [(s.image, s.require_label()) for s in _load(chosen, split, "train")]
        kwargs = {k: tuple(v) if k == "channels" else v for k, v in sizes.items()}
        loop.append(MonaiTutorialSegmentation(volumes, **kwargs))

    def advance(r: Race) -> None:
        r.patches += r.timed("steps", loop[0].step)
        r.state = {"lr": float(loop[0].optimizer.param_groups[0]["lr"])}

    out = race.run(set_up, advance, lambda s: loop[0].segment(s.image))
    out["batch"] = loop[0].batch_patches
    return out


def worker(args: dict) -> dict:
    """One run (one system, one method) in this process; returns its Dice curve and where its time went."""
    import torch

    from advnorm.methods import METHOD_SPECS

    torch.set_num_threads(int(args["threads"]))
    cfg = _config(args)
    datasets, chosen, split = _datasets(args, cfg)
    tests = _load(chosen, split, "test")  # before the clock: scoring data, not training data
    race = Race(tests, chosen[0].classes, float(args["budget_s"]), float(args["score_every_s"]))
    log(f"time_to_dice: {args['system']} {args['method']} on {', '.join(split)}", err=True)
    if args["system"] in ADVNORM_SYSTEMS:
        out = _advnorm(args, race, datasets, split)
    else:
        out = _reference(args, race, chosen, split)
    out.update(
        {
            "system": args["system"],
            "method": args["method"],
            "method_title": METHOD_SPECS[args["method"]].title,
            "threads": torch.get_num_threads(),
            "train_domains": list(split),
            "split": {d: {k: v for k, v in s.items() if k in ("train", "test")} for d, s in split.items()},
            "test_subjects": [f"{s.domain}/{s.case_id}" for s in tests],
        }
    )
    return out


# -- the section ----------------------------------------------------------------------------------------------------
def _phantom(spec: dict) -> tuple[Path, list[str]]:
    from advnorm.data.phantom.generate import PhantomSpec, write_phantom

    root = Path(tempfile.mkdtemp(prefix="advnorm-ttd-phantom-"))
    folders = write_phantom(root / "phantom", PhantomSpec(**spec))
    return root, [str(f) for f in folders]


def run(
    smoke: bool = False,
    *,
    budget_s: float | None = None,
    every_s: float | None = None,
    methods: tuple[str, ...] = METHODS,
    variants: tuple[str, ...] = RACED_BY_DEFAULT,
) -> dict:
    require("time_to_dice", REQUIRES)
    threads = int(os.environ.get("OMP_NUM_THREADS") or 2) if not smoke else 1
    budget = budget_s or (SMOKE["budget_s"] if smoke else BUDGET_S)
    every = every_s or (SMOKE["score_every_s"] if smoke else SCORE_EVERY_S)
    marks = tuple(round(budget * f, 1) for f in MARK_FRACTIONS)
    phantom_spec = SMOKE["phantom"] if smoke else {"domains": 3, "subjects": 5, "seed": 0, "scale": 0.7}
    log(f"time_to_dice: phantom {phantom_spec}")
    root, folders = _phantom(phantom_spec)
    base = {
        "datasets": folders,
        "profile": "tiny" if smoke else "quick",
        "threads": threads,
        "budget_s": budget,
        "score_every_s": every,
        **({k: SMOKE[k] for k in ("advnorm", "reference")} if smoke else {}),
    }
    runs: dict[str, dict[str, dict]] = {m: {} for m in methods}
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    order = race_order(methods, variants)
    try:
        for method, system in order:
            load = uptime()
            log(f"time_to_dice: {system} {method} ({budget:.0f} s of training; load {load['load_average'][0]:.2f})")
            args = {**base, "method": method, "system": system}
            # a fresh process per run (no state carried over, its own memory); smoke runs stay in this one
            if smoke:
                res = worker(args)
            else:
                res = run_worker("bench_time_to_dice", args, timeout=4 * budget + 1800, live=True)
            res["load_before"], res["load_after"] = load, uptime()
            runs[method][system] = res
            reached = {f"{t:.2f}": seconds_to(res["curve"], t) for t in THRESHOLDS}
            log(
                f"time_to_dice: {system} {method}: final mean Dice {res['curve'][-1]['mean_dice']:.3f}, "
                f"seconds to " + ", ".join(f"{k}: {'-' if v is None else f'{v:.0f}'}" for k, v in reached.items())
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "thresholds": list(THRESHOLDS),
        "marks_seconds": list(marks),
        "budget_seconds": budget,
        "score_every_seconds": every,
        "target_ratio": TARGET_RATIO,
        "threads": threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset: libgomp default)"),
        "phantom": phantom_spec,
        "profile": base["profile"],
        "order": [list(o) for o in order],
        "variants": {v: VARIANTS[v] for v in VARIANTS if any(system == v for _, system in order)},
        "methods": summarize(runs, marks, tuple(VARIANTS)),
        "generators": {m: _generator_said(_config({**base, "method": m})) for m in methods},
        "validation": _validation_raced(_config({**base, "method": methods[0]})),
    }


def _generator_said(cfg) -> str | None:
    """G's kind and form as the run resolved them (``None``: no G), so the results say which G was raced."""
    from advnorm.config import ingredients

    parts = ingredients(cfg)
    if parts.generator is None:
        return None
    return f"{parts.generator} ({parts.generator_output})" if parts.generator == "unet" else parts.generator


def _validation_raced(cfg) -> dict[str, int]:
    """advnorm's validation as raced (the profile's, or the smoke sizes): patches, and recalibration batches."""
    return {"val_patches": cfg.train.val_patches, "bn_recalibration_batches": cfg.train.bn_recalibration_batches}


def main(argv: list[str] | None = None) -> int:
    """A shorter race on its own (a sanity check; nothing written): ``--budget 60 --methods single``."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--budget", type=float, default=BUDGET_S, help="training seconds per run")
    ap.add_argument("--every", type=float, default=SCORE_EVERY_S, help="training seconds between scorings")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument(
        "--variants",
        default=",".join(RACED_BY_DEFAULT),
        help=f"advnorm variants to race too, of {list(VARIANTS)} ('' for none)",
    )
    ap.add_argument("--out", type=Path, default=None, help="write the section's JSON here")
    a = ap.parse_args(argv)
    res = run(
        budget_s=a.budget,
        every_s=a.every,
        methods=tuple(a.methods.split(",")),
        variants=tuple(v for v in a.variants.split(",") if v),
    )
    for method, m in res["methods"].items():
        for thr, row in m["thresholds"].items():
            log(
                f"{method} {thr}: advnorm {row['advnorm_seconds']} s, reference {row['reference_seconds']} s, "
                f"ratio {row['ratio']} ({row['bound'] or 'measured'})"
            )
        log(f"{method} Dice at marks: {m['dice_at']}")
    if a.out:
        a.out.write_text(json.dumps(res, indent=1, default=float))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        print(json.dumps(worker(json.loads(sys.argv[2])), default=float))
    else:
        raise SystemExit(main())
