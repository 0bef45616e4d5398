"""Shared, cheap, session-scoped fixtures: a tiny phantom, a tiny config and a tiny trained run.

The trained run is built once per session (a few seconds on 2 CPU cores) and must be
treated as READ-ONLY: a test that needs to change a run copies it first
(:func:`copy_run`).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("advnorm", derandomize=True, deadline=None)
settings.load_profile("advnorm")  # the same examples on every run: a property test that fails, fails every time

TINY_CONFIG = {
    "model": {"generator_widths": [4, 8], "segmenter_widths": [4, 8], "discriminator_widths": [4, 8]},
    "train": {
        "epochs": 3,
        "warmup_epochs": 1,
        "steps_per_epoch": 3,
        "warmup_steps_per_epoch": 2,
        "batch_size": 4,
        "patch_size": 16,
        "val_patches": 8,
        "device": "cpu",
    },
}


LEARNING_CONFIG = {
    "model": {"generator_widths": [4, 8], "segmenter_widths": [8, 16], "discriminator_widths": [4, 8]},
    "optim": {"lr_segmenter": 0.01, "lr_generator": 0.003},
    "train": {
        "epochs": 5,
        "warmup_epochs": 1,
        "steps_per_epoch": 8,
        "warmup_steps_per_epoch": 3,
        "batch_size": 4,
        "patch_size": 16,
        "val_patches": 16,
        "channels_last": False,
    },
}
"""Still tiny, but S learns something within seconds: for tests that check that training improves a model."""


def flat(config: dict, prefix: str = "") -> dict:
    """``{"train": {"epochs": 3}}`` -> ``{"train.epochs": 3}`` (the form of ``resolve``'s overrides)."""
    out = {}
    for k, v in config.items():
        out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def tiny_cfg(method: str = "adversarial", **overrides):
    """The resolved tiny config for ``method`` (dotted ``overrides`` on top)."""
    from advnorm.config_file import resolve

    return resolve("quick", overrides={**flat(TINY_CONFIG), "method": method, **overrides})


def make_trainer(cfg, k: int = 2, weights=None, seed: int = 0):
    """Networks and trainer for ``cfg`` with ``k`` domains on the CPU, initialised from ``seed``."""
    import torch

    from advnorm.models.networks import Networks
    from advnorm.training.trainer import Trainer

    torch.manual_seed(seed)
    return Trainer(Networks(cfg, k), torch.full((4,), 0.25) if weights is None else torch.as_tensor(weights))


def write_config(path: Path, config: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(TINY_CONFIG if config is None else config))
    return path


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file with a header line (a training log, a table), as dicts."""
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def copy_run(run: Path, dest: Path) -> Path:
    """A private, writable copy of a (session) run folder."""
    shutil.copytree(run, dest)
    return dest


@pytest.fixture(scope="session", autouse=True)
def working_grid_cache(tmp_path_factory):
    """The session's working-grid cache (``ADVNORM_CACHE``): a fresh folder, never the user's ``~/.cache/advnorm``.
    Every test that loads subjects goes through it, and subprocesses (CLI, torchrun) inherit it."""
    before = os.environ.get("ADVNORM_CACHE")
    os.environ["ADVNORM_CACHE"] = str(tmp_path_factory.mktemp("working_grid_cache"))
    yield Path(os.environ["ADVNORM_CACHE"])
    if before is None:
        os.environ.pop("ADVNORM_CACHE", None)
    else:
        os.environ["ADVNORM_CACHE"] = before


@pytest.fixture(scope="session")
def tiny_phantom(tmp_path_factory) -> list[Path]:
    """Two phantom domains of three subjects each (scale 0.3: volumes of ~40^3 voxels)."""
    from advnorm.data.phantom.generate import PhantomSpec, write_phantom

    out = tmp_path_factory.mktemp("tiny_phantom")
    return write_phantom(out / "phantom", PhantomSpec(domains=2, subjects=3, seed=0, scale=0.3))


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory) -> Path:
    """A JSON --config file: 4/8-wide nets, 3 epochs of 2-3 steps, 16^3 patches."""
    return write_config(tmp_path_factory.mktemp("tiny_config") / "tiny.json")


@pytest.fixture(scope="session")
def tiny_run(tiny_phantom, tiny_config, tmp_path_factory) -> Path:
    """A finished adversarial run on :func:`tiny_phantom` (read-only; copy it with :func:`copy_run`)."""
    from advnorm.workflows import train

    out = tmp_path_factory.mktemp("tiny_run") / "run"
    train(
        [str(p) for p in tiny_phantom],
        out,
        method="adversarial",
        config_file=str(tiny_config),
        progress=False,
        log=lambda _msg: None,
    )
    return out


TINY_VARIANTS: dict[str, tuple[str, dict]] = {
    "harmonized-transfer": ("harmonized", {"model.generator": "transfer"}),  # its G before the U-Net
}
"""Runs of :func:`tiny_method_run` that are a method with other settings: name -> (method, overrides)."""


@pytest.fixture(scope="session")
def tiny_method_run(tiny_phantom, tiny_config, tmp_path_factory):
    """``tiny_method_run(name)`` -> a finished run of a method (e.g. ``harmonized``, ``nyul``) or of a variant of
    :data:`TINY_VARIANTS` on :func:`tiny_phantom` with :func:`tiny_config`, trained on first use, once per session
    (read-only)."""
    from advnorm.workflows import train

    runs: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in runs:
            method, overrides = TINY_VARIANTS.get(name, (name, {}))
            out = tmp_path_factory.mktemp(f"tiny_{name}_run") / "run"
            train(
                [str(p) for p in tiny_phantom],
                out,
                method=method,
                config_file=str(tiny_config),
                overrides=overrides,
                progress=False,
                log=lambda _msg: None,
            )
            runs[name] = out
        return runs[name]

    return get
