"""What a training run checks before its first step, and what ``--resume`` restores.

A new run gets a folder that holds no other run; a resumed run must find its own state, the same data (by
content) and the same settings except :data:`RESUME_MAY_CHANGE`, and its networks, optimizers, schedulers and
random streams come back as the kill left them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from advnorm.config import Config
from advnorm.config_file import differences
from advnorm.data.fingerprint import dataset_fingerprint, fingerprint_differences, refuse_duplicate_content
from advnorm.data.layouts import Dataset
from advnorm.errors import AdvnormError, one_line
from advnorm.models.networks import Networks
from advnorm.paths import probe_writable, top_missing
from advnorm.run_folder import RunFolder, config_differences
from advnorm.training.trainer import Trainer

RESUME_MAY_CHANGE = ("train.epochs", "train.stop_patience", "train.device")
"""What ``--resume`` may change: train longer (or stop by another patience), or on another device. Anything else
would be another run."""


def prepare_run_folder(files: RunFolder, *, resume: bool) -> Path | None:
    """Check (and create) the run folder before any work; returns the top-most folder created here, if any."""
    root = files.root
    if root.exists() and not root.is_dir():
        raise AdvnormError("run folder is a file, not a folder", root)
    if resume:
        if not files.state.exists():
            raise AdvnormError("nothing to resume: no train_state.pt in the run folder", root)
        probe_writable(root)
        for stale in root.glob(".*.part*"):  # temporary files of writes a kill interrupted
            stale.unlink(missing_ok=True)
        return None
    if files.final.exists() or files.state.exists():
        raise AdvnormError("run folder already holds a training run; use --resume or another --out", root)
    for folder in root.parents:
        if folder.exists() and not folder.is_dir():
            raise AdvnormError("cannot create the run folder: this is a file, not a folder", folder)
    created = top_missing(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AdvnormError(f"cannot create the run folder: {exc.strerror or exc}", root) from None
    try:
        probe_writable(root)
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    return created


def check_data(datasets: list[Dataset], files: RunFolder, cfg: Config, *, resume: bool) -> list[dict[str, Any]]:
    """Fingerprint the data; one dataset twice is refused, and so is ``--resume`` on other data or settings."""
    fingerprints = [dataset_fingerprint(d) for d in datasets]
    refuse_duplicate_content(datasets, fingerprints)
    if not resume:
        return fingerprints
    try:
        raw = json.loads(files.config.read_text(encoding="utf-8"))
        stored = raw["run"]["data"]
    except (OSError, ValueError, KeyError, TypeError):
        raise AdvnormError(
            "run config has no record of its training data; cannot check that --resume gets the same data "
            "(start a new run)",
            files.config,
        ) from None
    diffs = fingerprint_differences(stored, fingerprints)
    if diffs:
        raise AdvnormError(
            "--resume needs the data the run was started on; the --data folders differ: " + "; ".join(diffs[:3]),
            files.root,
        )
    changed = config_differences(raw, cfg, RESUME_MAY_CHANGE)
    if changed:
        raise AdvnormError(
            "--resume continues the run with its own settings; these differ: "
            + "; ".join(changed[:3])
            + f" (only {', '.join(RESUME_MAY_CHANGE)} may change; start a new run instead)",
            files.root,
        )
    return fingerprints


def restore_state(
    state: dict[str, Any],
    path: Path,
    nets: Networks,
    trainer: Trainer,
    schedulers: dict[str, Any],
    domains: list[str],
) -> tuple[int, float]:
    """Load a killed run's ``state`` (read from ``path``) into the fresh nets, optimizers and schedulers; refuse one
    made for another run. Returns the epoch to start at and the best validation loss so far."""
    stored_arch = state.get("architecture")
    if isinstance(stored_arch, str):
        diffs = differences(json.loads(stored_arch), nets.architecture())
        if diffs:
            raise AdvnormError(
                "training state does not match this run's config and data: " + "; ".join(diffs[:4]), path
            )
    stored_domains = state.get("domains")
    if stored_domains is not None and list(stored_domains) != list(domains):
        raise AdvnormError(
            f"training state was made for the domains {', '.join(stored_domains)}, "
            f"the --data folders give {', '.join(domains)}",
            path,
        )
    try:
        for name, net in nets.unwrapped().items():
            net.load_state_dict(state["networks"][name])
        for k, opt in trainer.optimizers().items():
            opt.load_state_dict(state["optimizers"][k])
        for k, sch in schedulers.items():
            sch.load_state_dict(state["schedulers"][k])
        trainer.aug_gen.set_state(state["aug_rng"])
        if "contrast_rng" in state:  # states written before contrast randomisation existed lack it
            trainer.contrast_gen.set_state(state["contrast_rng"])
        torch.set_rng_state(state["torch_rng"])
        return int(state["epoch"]) + 1, float(state["best"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise AdvnormError(
            f"training state does not fit this run's networks ({type(exc).__name__}: {one_line(exc)})", path
        ) from None
