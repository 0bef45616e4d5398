"""torchrun with 2 CPU processes (gloo) vs one process with the same global batch."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from advnorm.data.phantom.generate import PhantomSpec, write_phantom
from tests.conftest import LEARNING_CONFIG, read_csv_rows

pytestmark = pytest.mark.slow  # trains networks

CONFIG = {
    **LEARNING_CONFIG,
    "train": {
        **LEARNING_CONFIG["train"],
        "epochs": 3,
        "steps_per_epoch": 6,
        "warmup_steps_per_epoch": 2,
        "batch_size": 8,
    },
}


def _train(argv_prefix, out: Path, data: list[str], config: Path, method: str) -> list[dict]:
    argv = argv_prefix + [
        "train",
        "--method",
        method,
        "--out",
        str(out),
        "--config",
        str(config),
        "--no-progress",
    ]
    for d in data:
        argv += ["--data", d]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=400, env=env, check=False)  # asserted next
    assert proc.returncode == 0, proc.stderr[-2000:]
    return read_csv_rows(out / "training_log.csv")


needs_torchrun = pytest.mark.skipif(
    shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="torchrun missing"
)


def _single_and_two_processes(
    tmp_path: Path, method: str, model: dict | None = None
) -> tuple[list[str], list[dict], list[dict]]:
    """The phantom's folders and the training logs of one process and of torchrun with 2, same config (``model``:
    model settings added to it)."""
    write_phantom(tmp_path / "ph", PhantomSpec(domains=2, subjects=3, seed=0, scale=0.3))
    data = sorted(str(p) for p in (tmp_path / "ph").glob("Dataset*"))
    config = tmp_path / "c.json"
    config.write_text(json.dumps({**CONFIG, "model": {**CONFIG.get("model", {}), **(model or {})}}))
    single = _train([sys.executable, "-m", "advnorm"], tmp_path / "single", data, config, method)
    torchrun = [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc_per_node=2", "-m", "advnorm"]
    multi = _train(torchrun, tmp_path / "ddp", data, config, method)
    return data, single, multi


@needs_torchrun
def test_two_process_run_matches_single_process(tmp_path):
    data, single, multi = _single_and_two_processes(tmp_path, "adversarial")
    # epoch 0 (untrained), the warm-up of G, then the epochs that update S
    assert len(single) == len(multi) == 1 + CONFIG["train"]["warmup_epochs"] + CONFIG["train"]["epochs"]
    cfg = json.loads((tmp_path / "ddp" / "config.json").read_text())
    assert cfg["run"]["world_size"] == 2
    # same global batch, gradients averaged: the trajectories agree within tolerance (BatchNorm statistics
    # are per process on CPUs and the Dice ratio is per local batch, so not bit-identical)
    for a, b in zip(single, multi, strict=True):
        assert abs(float(a["val_dice_mean"]) - float(b["val_dice_mean"])) < 0.1, (
            a["val_dice_mean"],
            b["val_dice_mean"],
        )
    assert abs(float(single[1]["loss_mse"]) - float(multi[1]["loss_mse"])) < 0.02
    # only rank 0 wrote: one log, complete checkpoints, resumable
    assert (tmp_path / "ddp" / "checkpoint_final.safetensors").exists()
    # resumable at another world size: one process continues the two-process run for one more epoch
    argv = [
        sys.executable,
        "-m",
        "advnorm",
        "train",
        "--method",
        "adversarial",
        "--out",
        str(tmp_path / "ddp"),
        "--resume",
        "--epochs",
        str(CONFIG["train"]["epochs"] + 1),
        "--no-progress",
    ]
    for d in data:
        argv += ["--data", d]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)  # asserted next
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = read_csv_rows(tmp_path / "ddp" / "training_log.csv")
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3, 4, 5]


@needs_torchrun
@pytest.mark.parametrize(
    ("generator", "warmup", "terms"),
    [
        ("unet", CONFIG["train"]["warmup_epochs"], ("loss_content", "loss_adv")),  # the default: x + U-Net(x)
        ("transfer", 0, ("loss_content", "loss_slope", "loss_adv")),  # the slope term goes through the plain G
    ],
)
def test_default_method_under_torchrun_matches_single_process(tmp_path, generator, warmup, terms):
    """``harmonized`` (its G, histogram D, confusion term, content term; with the transfer G also the slope
    floor) trains under torchrun and follows the single process."""
    _, single, multi = _single_and_two_processes(tmp_path, "harmonized", {"generator": generator})
    assert len(single) == len(multi) == 1 + warmup + CONFIG["train"]["epochs"]  # a transfer G has no warm-up
    for a, b in zip(single[1 + warmup :], multi[1 + warmup :], strict=True):
        assert abs(float(a["val_dice_mean"]) - float(b["val_dice_mean"])) < 0.1, (a, b)
        for term in terms:
            assert abs(float(a[term]) - float(b[term])) < 0.05, (term, a[term], b[term])
    assert json.loads((tmp_path / "ddp" / "config.json").read_text())["run"]["world_size"] == 2
