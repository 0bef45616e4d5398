"""``advnorm train``: the run as a short sequence of named steps (nnU-Net's ``run_training`` shape).

    run = TrainingRun(cfg, datasets, run_dir)
    run.set_up()                       # folder, data, networks, optimizers; or the state of a killed run
    run.record_untrained()             # epoch 0 of the log: validation (and D's view) before any step
    for epoch in run.epochs():         # up to train.epochs, or until train.stop_patience is spent
        if run.patience_spent():
            break
        row = run.train_one_epoch(epoch)
        row.update(run.validate())
        run.end_epoch(row)             # schedulers, best checkpoint, log, training state
    summary = run.finish()             # final weights, summary.json

Each step can be called alone (the tests do). Only rank 0 of a ``torchrun`` job writes files.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from advnorm.config import Config, ingredients
from advnorm.data.layouts import Dataset
from advnorm.data.sampler import DomainBalancedSampler
from advnorm.errors import AdvnormError
from advnorm.methods import METHOD_SPECS
from advnorm.models.networks import Networks
from advnorm.models.weights import save_weights
from advnorm.run_folder import RunFolder, machine, pick_device
from advnorm.training import distributed, tensorboard
from advnorm.training.checkpoint import load_train_state, save_train_state
from advnorm.training.data import prepare
from advnorm.training.divergence import check_finite
from advnorm.training.fixed_batches import batchnorm_batches, validation_rows
from advnorm.training.log import Row, epoch_line, plot_learning_curves, read_log, write_log
from advnorm.training.losses import default_dice_weights, ramp
from advnorm.training.resume import check_data, prepare_run_folder, restore_state
from advnorm.training.trainer import Trainer, step_schedulers
from advnorm.training.validation import validate

CHECK_EVERY = 10
"""Steps between checks that the losses are finite (each check waits for the device)."""


def fit(
    cfg: Config,
    datasets: list[Dataset],
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train ``cfg.method`` on ``datasets`` into ``run_dir``; returns the summary (also in summary.json)."""
    run = TrainingRun(cfg, datasets, run_dir, resume=resume, progress=progress, log=log)
    run.set_up()
    run.record_untrained()
    for epoch in run.epochs():
        if run.patience_spent():
            break
        row = run.train_one_epoch(epoch)
        row.update(run.validate())
        run.end_epoch(row)
    return run.finish()


class TrainingRun:
    """One training run; see the module docstring for the order of the steps."""

    def __init__(
        self,
        cfg: Config,
        datasets: list[Dataset],
        run_dir: str | Path,
        *,
        resume: bool = False,
        progress: bool = True,
        log: Callable[[str], None] = print,
    ) -> None:
        self.cfg, self.datasets, self.resume = cfg, datasets, resume
        self.files = RunFolder(Path(run_dir))
        self.spec = METHOD_SPECS[cfg.method]
        self.ctx = distributed.context_from_env()
        self.log = log if self.ctx.is_main else (lambda message: None)
        self.progress = progress and self.ctx.is_main
        self.rows: list[Row] = []
        self.best = math.inf
        self.start_epoch = 0
        self.warmup_epochs = cfg.train.warmup_epochs if ingredients(cfg).generator == "unet" else 0
        """G's identity warm-up, on top of the ``train.epochs`` that update S (the same for every method). A U-Net G
        needs it; a transfer-function G starts as the identity; methods without G have none."""

    # -- set up ------------------------------------------------------------------------------------
    def set_up(self) -> None:
        """Everything before the first step. On any failure, a run folder created here is removed again."""
        cfg, ctx = self.cfg, self.ctx
        if cfg.train.batch_size % ctx.world_size:
            raise AdvnormError(
                f"train.batch_size {cfg.train.batch_size} is not divisible by the {ctx.world_size} processes"
            )
        device = pick_device(cfg.train.device)  # a device that does not exist is refused before any folder is made
        created = prepare_run_folder(self.files, resume=self.resume) if ctx.is_main else None
        device = distributed.init(ctx, device)
        ctx.barrier()
        try:
            fingerprints = check_data(self.datasets, self.files, cfg, resume=self.resume)
            state = load_train_state(self.files.state) if self.resume else None
            torch.manual_seed(cfg.train.seed)
            self.data = prepare(self.datasets, cfg, self.spec, log=self.log)
            self._check_foreground()
            weights = (
                torch.tensor(cfg.loss.dice_weights)
                if cfg.loss.dice_weights is not None
                else default_dice_weights(cfg.loss.dice_form, self.data.class_counts(seed=cfg.train.seed))
            )
            self.nets = Networks(cfg, len(self.data.domains), device, classes=self.data.classes)
            self.trainer = Trainer(self.nets, weights)
            self.schedulers = self.trainer.schedulers()
            if state is not None:
                self.start_epoch, self.best = restore_state(
                    state, self.files.state, self.nets, self.trainer, self.schedulers, self.data.domains
                )
                self.rows = read_log(self.files.log)[: self.start_epoch + 1]  # row 0 is the untrained state
            if ctx.is_main:
                self.files.write_config(cfg, self._run_info(fingerprints, weights, device))
        except BaseException:
            if created is not None:
                shutil.rmtree(created, ignore_errors=True)
            raise
        if state is not None:
            self.log(f"resuming {self.files.root} after epoch {self.start_epoch}")
        distributed.wrap(self.nets, ctx)
        self.sampler = DomainBalancedSampler(
            self.data.row_domains(self.data.train),
            cfg.train.batch_size,
            seed=cfg.train.seed,
            rank=ctx.rank,
            world_size=ctx.world_size,
        )
        self.val_rows = validation_rows(self.data, cfg.train.val_patches, cfg.train.seed)
        self.bn_batches = batchnorm_batches(self.data, cfg.train)
        self.tensorboard = tensorboard.open_log(self.files.root) if ctx.is_main else None
        self.t0 = time.perf_counter() - (float(self.rows[-1].get("seconds", 0) or 0) if self.rows else 0.0)

    def _check_foreground(self) -> None:
        """Every training domain needs foreground (CSF/GM/WM) labels in its training subjects."""
        roots = {d.name: d.root for d in self.datasets}
        have = {int(k) for k in np.unique(self.data.row_domains(self.data.train))}
        for k, name in enumerate(self.data.domains):
            if k not in have:
                raise AdvnormError(
                    f"domain {name!r} has no foreground labels ({', '.join(self.data.classes[1:])}) in its training "
                    "subjects: their label maps hold only background; training needs labelled tissue in every domain",
                    roots.get(name, name),
                )

    def _run_info(
        self, fingerprints: list[dict[str, Any]], weights: torch.Tensor, device: torch.device
    ) -> dict[str, Any]:
        """The ``run`` section of config.json: what inference and evaluation need to know about the training data."""
        data = self.data
        return {
            "domains": data.domains,
            "classes": list(data.classes),
            "datasets": [{"name": d.name, "layout": d.layout, "root": str(d.root)} for d in self.datasets],
            "data": fingerprints,
            "split": data.split,
            "split_kind": self.cfg.data.split,
            "input_state": data.input_state,
            "input_histograms": data.input_histograms,
            "tissue_shares": data.tissue_shares,
            "dice_weights": [float(w) for w in weights],
            "patches": {"train": len(data.train), "val": len(data.val)},
            "device": str(device),
            "world_size": self.ctx.world_size,
        }

    def record_untrained(self) -> None:
        """Epoch 0 of the log: the validation metrics before any step, so every curve starts at the beginning."""
        if self.rows:  # resumed: it is in the log already
            return
        row: Row = {"epoch": 0, "phase": "init", "steps": 0}
        row.update(self.validate())
        self._finish_row(row)
        if self.ctx.is_main:
            write_log(self.files.log, self.rows)
            self._to_tensorboard(row)
            self.log(epoch_line(row))

    # -- the epochs --------------------------------------------------------------------------------
    def epochs(self) -> range:
        return range(self.start_epoch, self.warmup_epochs + self.cfg.train.epochs)

    def patience_spent(self) -> bool:
        """``train.stop_patience`` main epochs have passed without a lower validation loss. Read from the log, so a
        resumed run that had stopped stays stopped."""
        return epochs_since_best(self.rows) >= self.cfg.train.stop_patience > 0

    def is_warmup(self, epoch: int) -> bool:
        return epoch < self.warmup_epochs

    def train_one_epoch(self, epoch: int) -> Row:
        """The steps of one epoch; returns the epoch's row with its mean losses."""
        t = self.cfg.train
        phase = "warmup" if self.is_warmup(epoch) else "main"
        steps = (t.warmup_steps_per_epoch if phase == "warmup" else t.steps_per_epoch) or self.sampler.full_pass_steps()
        if phase == "main" and self.cfg.loss.adv_ramp_epochs:  # DANN's ramp of lambda
            progress = (epoch - self.warmup_epochs) / self.cfg.loss.adv_ramp_epochs
            self.trainer.adv_weight = self.cfg.loss.adv_lambda * ramp(progress)
        has_checkpoint = self.files.best.exists()
        sums: dict[str, torch.Tensor] = {}
        pending: list[torch.Tensor] = []
        names: list[str] = []
        bar = tqdm(
            self.sampler.epoch(epoch, steps),
            total=steps,
            disable=not self.progress,
            leave=False,
            desc=f"epoch {epoch + 1}/{self.warmup_epochs + t.epochs} {phase}",
            unit="batch",
        )
        self.nets.train()
        for step, rows in enumerate(bar):
            self.trainer.set_input(*self.training_batch(rows)())
            out = self.trainer.optimize_parameters(phase)
            names = list(out)
            pending.append(torch.stack([v.float() for v in out.values()]))
            if (step + 1) % CHECK_EVERY == 0 or step + 1 == steps:
                check_finite(pending, names, epoch, step + 1 - len(pending), has_checkpoint)
                for v in pending:
                    for k, val in zip(names, v, strict=True):
                        sums[k] = sums.get(k, 0.0) + val
                pending = []
                bar.set_postfix({k: f"{float(sums[k]) / (step + 1):.3f}" for k in names if k.startswith("loss")})
        row: Row = {"epoch": epoch + 1, "phase": phase, "steps": steps}
        row.update(self.ctx.mean({k: float(v) / steps for k, v in sums.items()}))
        return row

    def validate(self) -> Row:
        """Precise BatchNorm statistics for the current weights, then the validation metrics."""
        self.trainer.recalibrate_batchnorm(self.training_batch(rows) for rows in self.bn_batches)
        return dict(validate(self.trainer, self.data, self.val_rows))

    def training_batch(self, rows: np.ndarray) -> Callable[[], tuple]:
        """The trainer's input for training patches ``rows``, gathered when called."""
        train = self.data.train
        return lambda: (*self.data.batch(train, rows), self.data.stats(train, rows), self.data.profiles(train, rows))

    def end_epoch(self, row: Row) -> None:
        """Learning rates, learning-rate schedules, the best checkpoint, the log and the training state."""
        epoch = int(row["epoch"]) - 1
        warm = row["phase"] == "warmup"
        if not warm:
            step_schedulers(self.schedulers, float(row["val_loss"]))
        self._finish_row(row)
        improved = not warm and float(row["val_loss"]) < self.best
        self.best = float(row["val_loss"]) if improved else self.best
        if not self.ctx.is_main:  # only rank 0 writes
            return
        if improved:
            save_weights(self.files.best, self.nets)
        write_log(self.files.log, self.rows)
        self._to_tensorboard(row)
        save_train_state(self.files.state, self._state(epoch))
        plot_learning_curves(self.files.log, self.files.progress)
        self.log(epoch_line(row))

    def _finish_row(self, row: Row) -> None:
        """Learning rates in force after this epoch and the wall time so far; the row joins the log."""
        row.update({f"lr_{k}": o.param_groups[0]["lr"] for k, o in self.trainer.optimizers().items()})
        row["seconds"] = round(time.perf_counter() - self.t0, 2)
        self.rows.append(row)

    def _to_tensorboard(self, row: Row) -> None:
        """The row's scalars and, with a G, the first validation patch before and after G."""
        if self.tensorboard is None:
            return
        self.tensorboard.row(row)
        if self.nets.G is not None:
            x, _, m, _ = self.data.batch(self.data.val, self.val_rows[:1])
            self.nets.eval()
            with torch.no_grad():
                x_hat = self.nets.normalize(x.to(self.nets.device), m.to(self.nets.device))
            self.nets.train()
            self.tensorboard.normalization(x[0, 0].numpy(), x_hat[0, 0].float().cpu().numpy(), int(row["epoch"]))

    def _state(self, epoch: int) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "best": self.best,
            "architecture": json.dumps(self.nets.architecture(), sort_keys=True),
            "domains": list(self.data.domains),
            "networks": {k: n.state_dict() for k, n in self.nets.unwrapped().items()},
            "torch_rng": torch.get_rng_state(),
            "aug_rng": self.trainer.aug_gen.get_state(),
            "contrast_rng": self.trainer.contrast_gen.get_state(),
            "optimizers": {k: o.state_dict() for k, o in self.trainer.optimizers().items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
        }

    def budget(self) -> dict[str, int]:
        """What the run spent: S updates (equal for every method) and, on top, G's warm-up steps."""
        return {
            "batch_size": self.cfg.train.batch_size,
            "s_updates": _steps(self.rows, "main"),
            "main_epochs": sum(1 for r in self.rows if r.get("phase") == "main"),
            "max_main_epochs": self.cfg.train.epochs,
            "stop_patience": self.cfg.train.stop_patience,
            "warmup_steps": _steps(self.rows, "warmup"),
            "warmup_epochs": self.warmup_epochs,
        }

    # -- finish ------------------------------------------------------------------------------------
    def finish(self) -> dict[str, Any]:
        """Final weights (and best, if no epoch after the warm-up improved), summary.json; the process group ends."""
        last = self.rows[-1]
        summary = {
            "method": self.cfg.method,
            "domains": self.data.domains,
            "classes": list(self.data.classes),
            "epochs": self.cfg.train.epochs,
            "budget": self.budget(),
            "best_val_loss": self.best,
            "final": {k: v for k, v in last.items() if k.startswith(("val_", "d_"))},
            "seconds": last["seconds"],
            "machine": machine(self.nets.device),
        }
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.ctx.is_main:
            save_weights(self.files.final, self.nets)
            if not self.files.best.exists():
                save_weights(self.files.best, self.nets)
            self.files.write_summary(summary)
        self.ctx.barrier()
        distributed.shutdown(self.ctx)
        return summary


def epochs_since_best(rows: list[Row]) -> int:
    """Main epochs logged after the one with the lowest validation loss (the first of equals, as ``end_epoch``
    keeps it); all of them when none has a finite loss."""
    losses = [float(r["val_loss"]) for r in rows if r.get("phase") == "main"]
    finite = [i for i, v in enumerate(losses) if np.isfinite(v)]
    if not finite:
        return len(losses)
    best = min(finite, key=lambda i: (losses[i], i))
    return len(losses) - 1 - best


def _steps(rows: list[Row], phase: str) -> int:
    return sum(int(r.get("steps", 0) or 0) for r in rows if r.get("phase") == phase)
