"""The training run as named steps (``training/loop.py``): each step alone, equal budgets, and ``--epochs 1``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from advnorm.cli import main
from advnorm.data.layouts import open_domains
from advnorm.methods import METHODS
from advnorm.run_folder import RunFolder
from advnorm.training.log import read_log
from advnorm.training.loop import TrainingRun
from tests.conftest import tiny_cfg

pytestmark = pytest.mark.slow  # trains networks


def test_the_steps_one_by_one(tiny_phantom, tmp_path):
    run = TrainingRun(tiny_cfg(), open_domains([str(p) for p in tiny_phantom]), tmp_path / "run", progress=False,
                      log=lambda m: None)
    run.set_up()
    assert (tmp_path / "run" / "config.json").exists() and run.rows == []
    run.record_untrained()
    assert [r["phase"] for r in read_log(run.files.log)] == ["init"]
    assert list(run.epochs()) == [0, 1, 2, 3] and run.is_warmup(0) and not run.is_warmup(1)
    row = run.train_one_epoch(0)
    assert row["phase"] == "warmup" and set(row) >= {"loss_mse", "steps"}
    row.update(run.validate())
    run.end_epoch(row)
    assert run.files.state.exists() and not run.files.best.exists()  # the warm-up never makes "best"
    for epoch in (1, 2, 3):
        row = run.train_one_epoch(epoch)
        row.update(run.validate())
        run.end_epoch(row)
    summary = run.finish()
    assert summary["budget"] == {"batch_size": 4, "s_updates": 9, "main_epochs": 3, "warmup_steps": 2, "warmup_epochs": 1}
    assert run.files.final.exists() and run.files.best.exists()


def test_every_method_gets_the_same_s_updates_and_the_warm_up_comes_on_top(tiny_phantom, tiny_config, tmp_path):
    budgets = {}
    for method in ("single", "unconstrained", "adversarial"):
        out = tmp_path / method
        argv = ["train", "--method", method, "--out", str(out), "--config", str(tiny_config), "--no-progress"]
        assert main(argv + [a for d in tiny_phantom for a in ("--data", str(d))]) == 0
        budgets[method] = json.loads(RunFolder(out).summary.read_text())["budget"]
        rows = read_log(RunFolder(out).log)
        assert sum(r["phase"] == "main" for r in rows) == 3  # checkpoint_best is picked among as many epochs
    assert {b["s_updates"] for b in budgets.values()} == {9}
    assert budgets["single"]["warmup_steps"] == 0 and budgets["adversarial"]["warmup_steps"] == 2


@pytest.mark.parametrize("method", METHODS)
def test_one_epoch_smoke_test_works_for_every_method(method, tiny_phantom, tiny_config, tmp_path, capsys):
    """Regression (issue 10): `--epochs 1` was refused for G methods ("warmup_epochs must be smaller than epochs")."""
    out = tmp_path / "run"
    argv = ["train", "--method", method, "--epochs", "1", "--out", str(out), "--config", str(tiny_config), "--no-progress"]
    assert main(argv + [a for d in tiny_phantom for a in ("--data", str(d))]) == 0, capsys.readouterr().err
    phases = [r["phase"] for r in read_log(RunFolder(out).log)]
    uses_g = method in ("unconstrained", "adversarial")
    assert phases == ["init"] + ["warmup"] * uses_g + ["main"]


def test_tensorboard_events_have_the_logs_scalars_and_gs_images(tiny_phantom, tiny_config, tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra (pip install -e '.[tensorboard]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    argv = ["train", "--method", "adversarial", "--out", str(out), "--config", str(tiny_config), "--no-progress"]
    assert main(argv + [a for d in tiny_phantom for a in ("--data", str(d))]) == 0
    events = EventAccumulator(str(out), size_guidance={"images": 0, "scalars": 0}).Reload()
    rows = read_log(RunFolder(out).log)
    numeric = {k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and k != "epoch"}
    assert numeric <= set(events.Tags()["scalars"]) and "val_dice_mean" in numeric
    assert [e.step for e in events.Scalars("val_dice_mean")] == [int(r["epoch"]) for r in rows]
    assert events.Tags()["images"] == ["G/input_and_output"] and len(events.Images("G/input_and_output")) == len(rows)


def test_without_tensorboard_nothing_changes(tiny_phantom, tiny_config, tmp_path, monkeypatch):
    from advnorm.training import tensorboard

    monkeypatch.setattr(tensorboard, "available", lambda: False)
    out = tmp_path / "run"
    argv = ["train", "--method", "single", "--out", str(out), "--config", str(tiny_config), "--no-progress"]
    assert main(argv + [a for d in tiny_phantom for a in ("--data", str(d))]) == 0
    assert not list(out.glob("events.out.tfevents*"))


@pytest.mark.parametrize("method", ["unconstrained", "augmented"])
def test_precise_batchnorm_changes_only_the_running_statistics(method, tiny_phantom, tmp_path):
    """Recomputing BatchNorm's statistics before validation must not move training: the same weights with it
    or without it, other running statistics, and those equal to a recomputation over the same batches."""
    from advnorm.models.weights import tensors_of

    runs = {}
    for n in (0, 3):
        run = TrainingRun(tiny_cfg(method, **{"train.bn_recalibration_batches": n}),
                          open_domains([str(p) for p in tiny_phantom]), tmp_path / f"bn{n}", progress=False,
                          log=lambda m: None)
        run.set_up()
        run.record_untrained()
        for epoch in run.epochs():
            row = run.train_one_epoch(epoch)
            row.update(run.validate())
            run.end_epoch(row)
        run.finish()
        runs[n] = (run, tensors_of(run.files.final))
    (_, plain), (run, precise) = runs[0], runs[3]
    running = [k for k in plain if "running_" in k]
    assert running and all(torch.equal(plain[k], precise[k]) for k in plain if k not in running and "num_batches" not in k)
    assert any(not torch.allclose(plain[k], precise[k]) for k in running)
    run.trainer.recalibrate_batchnorm(run.training_batch(rows) for rows in run.bn_batches)
    again = {f"{name}.{k}": v for name, net in run.nets.unwrapped().items() for k, v in net.state_dict().items()}
    assert all(torch.allclose(again[k], precise[k]) for k in running)


def test_harmonized_trains_with_the_whole_image_adversary_view(tiny_phantom, tiny_config, tmp_path, capsys):
    """``loss.adversary_view = "image"``: the loop hands every batch its images' intensity profiles, and D's
    validation accuracy is measured on the same view."""
    config = json.loads(Path(tiny_config).read_text())
    config.setdefault("loss", {})["adversary_view"] = "image"
    (path := tmp_path / "image_view.json").write_text(json.dumps(config))
    out = tmp_path / "run"
    argv = ["train", "--method", "harmonized", "--out", str(out), "--config", str(path), "--no-progress"]
    assert main(argv + [a for d in tiny_phantom for a in ("--data", str(d))]) == 0, capsys.readouterr().err
    last = read_log(RunFolder(out).log)[-1]
    assert 0.0 <= float(last["d_domain_acc_generated"]) <= 1.0 and float(last["loss_dis"]) > 0
