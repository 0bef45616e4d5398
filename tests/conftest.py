"""Shared, cheap, session-scoped fixtures: a tiny phantom, a tiny config and a tiny trained run.

The trained run is built once per session (a few seconds on 2 CPU cores) and must be
treated as READ-ONLY: a test that needs to change a run copies it first
(:func:`copy_run`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

TINY_CONFIG = {
    "model": {"generator_widths": [4, 8], "segmenter_widths": [4, 8], "discriminator_widths": [4, 8]},
    "train": {"epochs": 3, "warmup_epochs": 1, "steps_per_epoch": 3, "warmup_steps_per_epoch": 2,
              "batch_size": 4, "patch_size": 16, "val_patches": 8, "device": "cpu"},
}


def write_config(path: Path, config: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(TINY_CONFIG if config is None else config))
    return path


def copy_run(run: Path, dest: Path) -> Path:
    """A private, writable copy of a (session) run folder."""
    shutil.copytree(run, dest)
    return dest


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
    train([str(p) for p in tiny_phantom], out, method="adversarial", config_file=str(tiny_config),
          progress=False, log=lambda _msg: None)
    return out
