"""The epoch loop of ``advnorm train``: warm-up, adversarial epochs, validation, logs, checkpoints, resume."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from advnorm.config import Config, differences
from advnorm.data.fingerprint import dataset_fingerprint, fingerprint_differences, refuse_duplicate_content
from advnorm.data.layouts import Dataset
from advnorm.data.sampler import DomainBalancedSampler
from advnorm.errors import AdvnormError
from advnorm.io_atomic import atomic_write_text
from advnorm.run_folder import RunFolder, pick_device
from advnorm.losses import default_dice_weights
from advnorm.training.checkpoint import architecture, load_train_state, save_train_state, save_weights
from advnorm.training.data import prepare, validation_rows
from advnorm.training.distributed import context_from_env, init as dist_init, shutdown as dist_shutdown, wrap as wrap_ddp
from advnorm.training.methods import METHOD_SPECS
from advnorm.training.step import AdversarialNormalization
from advnorm.training.validation import validate

DIVERGENCE_LIMIT = 50.0
"""A discriminator loss above this (chance level is ~2 ln(K+1)) means D has diverged."""


def fit(cfg: Config, datasets: list[Dataset], run_dir: str | Path, *, resume: bool = False,
        progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Train ``cfg.method`` on ``datasets`` into ``run_dir``; returns the summary (also in summary.json)."""
    files = RunFolder(Path(run_dir))
    spec = METHOD_SPECS[cfg.method]
    ctx = context_from_env()
    if cfg.train.batch_size % ctx.world_size:
        raise AdvnormError(f"train.batch_size {cfg.train.batch_size} is not divisible by the {ctx.world_size} processes")
    if not ctx.is_main:
        log, progress = (lambda message: None), False
    device = pick_device(cfg.train.device)  # a device that does not exist is refused before any folder is made
    created = _check_run_dir(files, resume) if ctx.is_main else None
    ctx_device = dist_init(ctx, device)
    ctx.barrier()
    try:  # everything that can fail before training: on failure, leave no run folder behind
        fingerprints = [dataset_fingerprint(d) for d in datasets]
        refuse_duplicate_content(datasets, fingerprints)
        if resume:
            _refuse_other_data(files, fingerprints)
        state = load_train_state(files.state) if resume else None
        torch.manual_seed(cfg.train.seed)
        device = ctx_device
        data = prepare(datasets, cfg, spec, log=log)
        _check_foreground(data, datasets)
        weights = (torch.tensor(cfg.loss.dice_weights) if cfg.loss.dice_weights is not None
                   else default_dice_weights(cfg.loss.dice_form, data.class_counts(seed=cfg.train.seed)))
        model = AdversarialNormalization(cfg, spec, len(data.domains), weights, device)
        arch = architecture(cfg.to_dict(), len(data.domains))
        schedulers = {k: torch.optim.lr_scheduler.ReduceLROnPlateau(o, patience=cfg.optim.plateau_patience,
                                                                    factor=cfg.optim.plateau_factor)
                      for k, o in model.optimizers().items() if k != "G_warmup"}
        start_epoch, best, rows = 0, math.inf, []
        if state is not None:
            _restore(state, files.state, model, schedulers, arch, data.domains)
            start_epoch, best = int(state["epoch"]) + 1, float(state["best"])
            rows = _read_log(files.log)[:start_epoch]
        run_info = {"domains": data.domains, "datasets": [{"name": d.name, "layout": d.layout, "root": str(d.root)} for d in datasets],
                    "data": fingerprints,
                    "split": data.split, "split_kind": cfg.data.split, "input_state": data.input_state,
                    "input_histograms": data.input_histograms,
                    "dice_weights": [float(w) for w in weights], "patches": {"train": len(data.train), "val": len(data.val)},
                    "device": str(device), "world_size": ctx.world_size}
        if ctx.is_main:
            files.write_config(cfg, run_info)
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    if state is not None:
        log(f"resuming {files.root} after epoch {start_epoch}")
    wrap_ddp(model, ctx)

    sampler = DomainBalancedSampler(data.row_domains(data.train), cfg.train.batch_size, seed=cfg.train.seed,
                                    rank=ctx.rank, world_size=ctx.world_size)
    val_rows = validation_rows(data, cfg.train.val_patches, cfg.train.seed)
    t0 = time.perf_counter() - (float(rows[-1].get("seconds", 0) or 0) if rows else 0.0)
    for epoch in range(start_epoch, cfg.train.epochs):
        warm = spec.uses_generator and epoch < cfg.train.warmup_epochs
        phase = "warmup" if warm else "main"
        steps = (cfg.train.warmup_steps_per_epoch if warm else cfg.train.steps_per_epoch) or sampler.full_pass_steps()
        row = {"epoch": epoch + 1, "phase": phase}
        row.update(ctx.mean(_train_epoch(model, data, sampler, epoch, steps, phase, progress, cfg.train.epochs,
                                         files.best.exists())))
        row.update(validate(model, data, val_rows))
        row.update({f"lr_{k}": o.param_groups[0]["lr"] for k, o in model.optimizers().items()})
        row["seconds"] = round(time.perf_counter() - t0, 2)
        if not warm:
            for sch in schedulers.values():
                sch.step(row["val_loss"])
        rows.append(row)
        improved = not warm and row["val_loss"] < best
        best = row["val_loss"] if improved else best
        if not ctx.is_main:  # only rank 0 writes
            continue
        if improved:
            save_weights(files.best, model.networks(), arch)
        _write_log(files.log, rows)
        save_train_state(files.state, {
            "epoch": epoch, "best": best, "architecture": json.dumps(arch, sort_keys=True), "domains": list(data.domains),
            "networks": {k: n.state_dict() for k, n in model.networks().items()},
            "torch_rng": torch.get_rng_state(), "aug_rng": model.aug_gen.get_state(),
            "optimizers": {k: o.state_dict() for k, o in model.optimizers().items()},
            "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
        })
        _plot(files)
        log(_epoch_line(row))
    summary = {"method": cfg.method, "domains": data.domains, "epochs": cfg.train.epochs, "best_val_loss": best,
               "final": {k: v for k, v in rows[-1].items() if k.startswith("val_")}, "seconds": rows[-1]["seconds"]}
    if ctx.is_main:
        save_weights(files.final, model.networks(), arch)
        if not files.best.exists():
            save_weights(files.best, model.networks(), arch)
        files.write_summary(summary)
    ctx.barrier()
    dist_shutdown(ctx)
    return summary


def _train_epoch(model, data, sampler, epoch, steps, phase, progress, n_epochs, has_checkpoint) -> dict[str, float]:
    from tqdm import tqdm

    sums: dict[str, torch.Tensor] = {}
    history: list[torch.Tensor] = []
    names: list[str] = []
    bar = tqdm(sampler.epoch(epoch, steps), total=steps, disable=not progress, leave=False,
               desc=f"epoch {epoch + 1}/{n_epochs} {phase}", unit="batch")
    model.train()
    for step, rows in enumerate(bar):
        model.set_input(*data.batch(data.train, rows))
        out = model.optimize_parameters(phase)
        names = list(out)
        history.append(torch.stack([v.float() for v in out.values()]))
        if (step + 1) % 10 == 0 or step + 1 == steps:
            _check_finite(history, names, epoch, step + 1 - len(history), has_checkpoint)
            for v in history:
                for k, val in zip(names, v):
                    sums[k] = sums.get(k, 0.0) + val
            history = []
            bar.set_postfix({k: f"{float(sums[k]) / (step + 1):.3f}" for k in names if k.startswith("loss")})
    return {k: float(v) / steps for k, v in sums.items()}


def _check_finite(history: list[torch.Tensor], names: list[str], epoch: int, first_step: int, has_checkpoint: bool) -> None:
    block = torch.stack(history)
    bad = ~torch.isfinite(block)
    if "loss_dis" in names:
        bad[:, names.index("loss_dis")] |= block[:, names.index("loss_dis")] > DIVERGENCE_LIMIT
    if bool(bad.any()):
        i, j = (int(t) for t in torch.nonzero(bad)[0])
        what = "diverged" if torch.isfinite(block[i, j]) else "became NaN/Inf"
        raise AdvnormError(f"training stopped: {names[j]} {what} ({float(block[i, j]):.4g}) at epoch {epoch + 1}, "
                           f"step {first_step + i + 1}; " + ("checkpoint_best.safetensors of an earlier epoch is kept" if has_checkpoint else
                                                               "no checkpoint was written before it"))


def _check_run_dir(files: RunFolder, resume: bool) -> Path | None:
    """Check (and create) the run folder before any work; returns the top-most folder created here, if any."""
    root = files.root
    if root.exists() and not root.is_dir():
        raise AdvnormError("run folder is a file, not a folder", root)
    if resume:
        if not files.state.exists():
            raise AdvnormError("nothing to resume: no train_state.pt in the run folder", root)
        _probe_writable(root)
        for stale in root.glob(".*.part*"):  # temporary files of writes a kill interrupted
            stale.unlink(missing_ok=True)
        return None
    if files.final.exists() or files.state.exists():
        raise AdvnormError("run folder already holds a training run; use --resume or another --out", root)
    created = None
    for folder in (root, *root.parents):
        if folder.exists():
            if not folder.is_dir():
                raise AdvnormError("cannot create the run folder: this is a file, not a folder", folder)
            break
        created = folder
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AdvnormError(f"cannot create the run folder: {exc.strerror or exc}", root) from None
    try:
        _probe_writable(root)
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    return created


def _probe_writable(root: Path) -> None:
    probe = root / ".write_test"
    try:
        probe.write_bytes(b"x" * 1024)
        probe.unlink()
    except OSError as exc:
        raise AdvnormError(f"run folder is not writable: {exc.strerror or exc}", root) from None


def _refuse_other_data(files: RunFolder, fingerprints: list[dict]) -> None:
    """``--resume`` continues the same run: the --data folders must hold the data it was started on."""
    try:
        stored = json.loads(files.config.read_text(encoding="utf-8"))["run"]["data"]
    except (OSError, ValueError, KeyError, TypeError):
        raise AdvnormError("run config has no record of its training data; cannot check that --resume gets the "
                           "same data (start a new run)", files.config) from None
    diffs = fingerprint_differences(stored, fingerprints)
    if diffs:
        raise AdvnormError("--resume needs the data the run was started on; the --data folders differ: "
                           + "; ".join(diffs[:3]), files.root)


def _check_foreground(data, datasets: list[Dataset]) -> None:
    """Every training domain needs foreground (CSF/GM/WM) labels in its training subjects."""
    roots = {d.name: d.root for d in datasets}
    have = set(int(k) for k in np.unique(data.row_domains(data.train)))
    for k, name in enumerate(data.domains):
        if k not in have:
            raise AdvnormError(f"domain {name!r} has no foreground labels (CSF/GM/WM) in its training subjects: "
                               "their label maps hold only background; training needs labelled tissue in every domain",
                               roots.get(name, name))


def _restore(state: dict, path: Path, model, schedulers: dict, arch: dict, domains: list[str]) -> None:
    """Load a training state into the freshly built nets, optimizers and schedulers; refuse one made for another run."""
    stored_arch = state.get("architecture")
    if isinstance(stored_arch, str):
        diffs = differences(json.loads(stored_arch), arch)
        if diffs:
            raise AdvnormError("training state does not match this run's config and data: " + "; ".join(diffs[:4]), path)
    stored_domains = state.get("domains")
    if stored_domains is not None and list(stored_domains) != list(domains):
        raise AdvnormError(f"training state was made for the domains {', '.join(stored_domains)}, "
                           f"the --data folders give {', '.join(domains)}", path)
    try:
        for name, net in model.networks().items():
            net.load_state_dict(state["networks"][name])
        for k, opt in model.optimizers().items():
            opt.load_state_dict(state["optimizers"][k])
        for k, sch in schedulers.items():
            sch.load_state_dict(state["schedulers"][k])
        model.aug_gen.set_state(state["aug_rng"])
        torch.set_rng_state(state["torch_rng"])
        int(state["epoch"]), float(state["best"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise AdvnormError(f"training state does not fit this run's networks ({type(exc).__name__}: {reason})", path) from None


LOG_FIXED = ("epoch", "phase")


def _write_log(path: Path, rows: list[dict]) -> None:
    cols = list(LOG_FIXED)
    for r in rows:
        cols += [k for k in r if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, restval="")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    atomic_write_text(path, buf.getvalue())


def _read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return [{k: _num(v) for k, v in r.items()} for r in csv.DictReader(fh)]


def _num(v: str):
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return v


def _plot(files: RunFolder) -> None:
    try:
        from advnorm.evaluation.figures import learning_curves
    except ImportError:  # figures land separately
        return
    learning_curves(files.log, files.progress)


def _epoch_line(row: dict) -> str:
    losses = " ".join(f"{k}={row[k]:.3f}" for k in row if k.startswith("loss"))
    return f"epoch {row['epoch']} [{row['phase']}] {losses} val_loss={row['val_loss']:.3f} val_dice={row['val_dice_mean']:.3f} ({row['seconds']:.0f}s)"
