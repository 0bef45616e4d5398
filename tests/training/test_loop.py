"""The training run as named steps (``training/loop.py``): each step alone, equal budgets, and ``--epochs 1``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from advnorm.cli import main
from advnorm.data.layouts import open_domains
from advnorm.methods import METHODS
from advnorm.run_folder import RunFolder
from advnorm.training.log import read_log
from advnorm.training.loop import TrainingRun, epochs_since_best, fit
from tests.conftest import tiny_cfg

pytestmark = pytest.mark.slow  # trains networks


def test_the_steps_one_by_one(tiny_phantom, tmp_path):
    run = TrainingRun(
        tiny_cfg(), open_domains([str(p) for p in tiny_phantom]), tmp_path / "run", progress=False, log=lambda m: None
    )
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
    assert summary["budget"] == {
        "batch_size": 4,
        "s_updates": 9,
        "main_epochs": 3,
        "max_main_epochs": 3,
        "stop_patience": 0,
        "warmup_steps": 2,
        "warmup_epochs": 1,
    }
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
    argv = [
        "train",
        "--method",
        method,
        "--epochs",
        "1",
        "--out",
        str(out),
        "--config",
        str(tiny_config),
        "--no-progress",
    ]
    assert main(argv + [a for d in tiny_phantom for a in ("--data", str(d))]) == 0, capsys.readouterr().err
    phases = [r["phase"] for r in read_log(RunFolder(out).log)]
    uses_g = method in ("unconstrained", "adversarial", "harmonized")  # a U-Net G's identity warm-up
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
        run = TrainingRun(
            tiny_cfg(method, **{"train.bn_recalibration_batches": n}),
            open_domains([str(p) for p in tiny_phantom]),
            tmp_path / f"bn{n}",
            progress=False,
            log=lambda m: None,
        )
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
    assert running and all(
        torch.equal(plain[k], precise[k]) for k in plain if k not in running and "num_batches" not in k
    )
    assert any(not torch.allclose(plain[k], precise[k]) for k in running)
    run.trainer.recalibrate_batchnorm(run.training_batch(rows) for rows in run.bn_batches)
    again = {f"{name}.{k}": v for name, net in run.nets.unwrapped().items() for k, v in net.state_dict().items()}
    assert all(torch.allclose(again[k], precise[k]) for k in running)


def test_harmonized_trains_with_the_whole_image_adversary_view(tiny_phantom, tiny_config, tmp_path, capsys):
    """``loss.adversary_view = "image"``: the loop hands every batch its images' intensity profiles, and D's
    validation accuracy is measured on the same view."""
    config = json.loads(Path(tiny_config).read_text())
    config.setdefault("loss", {})["adversary_view"] = "image"
    config.setdefault("model", {})["generator"] = "transfer"  # the view puts the image's profile through a curve
    (path := tmp_path / "image_view.json").write_text(json.dumps(config))
    out = tmp_path / "run"
    argv = ["train", "--method", "harmonized", "--out", str(out), "--config", str(path), "--no-progress"]
    assert main(argv + [a for d in tiny_phantom for a in ("--data", str(d))]) == 0, capsys.readouterr().err
    last = read_log(RunFolder(out).log)[-1]
    assert 0.0 <= float(last["d_domain_acc_generated"]) <= 1.0 and float(last["loss_dis"]) > 0


# validation losses of the main epochs -> main epochs since the lowest (the first of equals)
SINCE_BEST = [
    ([], 0),
    ([0.5], 0),
    ([0.5, 0.4, 0.45], 1),
    ([0.5, 0.5, 0.5], 2),  # equal is not lower: the first one stays best
    ([0.3, 0.4, 0.5, 0.6], 3),
    ([float("nan"), 0.4], 0),
    ([float("nan"), float("nan")], 2),
]


@pytest.mark.parametrize("losses,expected", SINCE_BEST)
def test_epochs_since_best(losses, expected):
    rows = [{"epoch": 0, "phase": "init", "val_loss": 0.0}, {"epoch": 1, "phase": "warmup", "val_loss": 0.0}]
    rows += [{"epoch": i + 2, "phase": "main", "val_loss": v} for i, v in enumerate(losses)]
    assert epochs_since_best(rows) == expected


def test_stop_patience_ends_the_main_phase_and_a_resumed_run_stays_stopped(tiny_phantom, tmp_path, monkeypatch):
    """Scripted validation losses: lowest at main epoch 2, patience 2 -> main epochs 3 and 4 run, then it stops
    (train.epochs = 6 is only the cap); checkpoint_best is epoch 2's weights and the summary says what ran."""
    scripted = iter([1.0, 0.9, 0.5, 0.6, 0.7, 0.2, 0.1])  # the first: the untrained row
    real = TrainingRun.validate

    def validate(self):
        row = real(self)
        row["val_loss"] = next(scripted)
        return row

    monkeypatch.setattr(TrainingRun, "validate", validate)
    datasets = open_domains([str(p) for p in tiny_phantom])
    cfg = tiny_cfg("single", **{"train.epochs": 6, "train.stop_patience": 2})
    summary = fit(cfg, datasets, tmp_path / "run", progress=False, log=lambda m: None)
    rows = read_log(RunFolder(tmp_path / "run").log)
    assert [r["val_loss"] for r in rows if r["phase"] == "main"] == [0.9, 0.5, 0.6, 0.7]
    budget = summary["budget"]
    assert (budget["main_epochs"], budget["max_main_epochs"], budget["stop_patience"]) == (4, 6, 2)
    assert budget["s_updates"] == 4 * cfg.train.steps_per_epoch and summary["best_val_loss"] == 0.5
    again = fit(cfg, datasets, tmp_path / "run", resume=True, progress=False, log=lambda m: None)
    assert again["budget"]["main_epochs"] == 4 and next(scripted) == 0.2  # nothing more was trained or validated


def test_stop_patience_off_runs_every_epoch(tiny_phantom, tmp_path):
    cfg = tiny_cfg("single", **{"train.epochs": 2})
    assert cfg.train.stop_patience == 0
    summary = fit(
        cfg, open_domains([str(p) for p in tiny_phantom]), tmp_path / "run", progress=False, log=lambda m: None
    )
    assert summary["budget"]["main_epochs"] == 2


def test_cosine_schedule_logs_annealed_rates_and_a_longer_resume_follows_the_new_budget(tiny_phantom, tmp_path):
    """Each main epoch's row holds the rate in force after it: lr0 (1 + cos(pi k / E)) / 2 after main epoch k of
    E, 0 after the last; the validation loss moves nothing. ``--resume`` with a larger E goes on along E's curve
    from the epoch it stands at (a warm restart), as a fresh run of E epochs would be there."""
    datasets = open_domains([str(p) for p in tiny_phantom])
    cfg = tiny_cfg("single", **{"train.epochs": 3, "optim.schedule": "cosine"})
    fit(cfg, datasets, tmp_path / "run", progress=False, log=lambda m: None)
    lr0 = cfg.optim.lr_segmenter

    def main_rates() -> list[float]:
        return [r["lr_GS"] for r in read_log(RunFolder(tmp_path / "run").log) if r["phase"] == "main"]

    assert main_rates() == pytest.approx(
        [lr0 * (1 + math.cos(math.pi * k / 3)) / 2 for k in (1, 2, 3)], rel=1e-5, abs=1e-12
    )
    assert main_rates()[-1] == pytest.approx(0.0, abs=1e-12)
    longer = tiny_cfg("single", **{"train.epochs": 5, "optim.schedule": "cosine"})
    fit(longer, datasets, tmp_path / "run", resume=True, progress=False, log=lambda m: None)
    assert main_rates()[3:] == pytest.approx(
        [lr0 * (1 + math.cos(math.pi * k / 5)) / 2 for k in (4, 5)], rel=1e-5, abs=1e-12
    )
