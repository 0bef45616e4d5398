"""``workflows.py``: train-then-evaluate reuse rules."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from advnorm.config import ingredients
from advnorm.config_file import resolve
from advnorm.data.layouts import open_domains
from advnorm.workflows import reuse_differences, train_and_evaluate
from tests.conftest import copy_run


def _snapshot(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def test_recompute_keeps_the_old_run_when_the_new_one_fails(tiny_run, tiny_phantom, tmp_path, monkeypatch):
    """Regression (issue 15, second round): --recompute deleted a finished run, then failed on the new data."""
    run = copy_run(tiny_run, tmp_path / "run")
    before = _snapshot(run)
    datasets = open_domains([str(p) for p in tiny_phantom])
    cfg = resolve("quick", file=run / "config.json", overrides={"train.epochs": 7})
    assert reuse_differences(run, cfg, datasets)  # another budget: not reusable

    def failing_fit(*args, **kwargs):
        raise RuntimeError("the new data cannot be read")

    monkeypatch.setattr("advnorm.training.loop.fit", failing_fit)
    with pytest.raises(RuntimeError):
        train_and_evaluate(run, cfg, datasets, recompute=True, progress=False, log=lambda m: None)
    assert _snapshot(run) == before
    assert sorted(p.name for p in run.parent.iterdir()) == ["run"]  # nothing set aside is left behind


def test_a_run_of_the_same_config_and_data_is_reused(tiny_run, tiny_phantom):
    datasets = open_domains([str(p) for p in tiny_phantom])
    cfg = resolve("quick", file=tiny_run / "config.json")
    assert reuse_differences(tiny_run, cfg, datasets) == []


@pytest.mark.parametrize(
    "asked, reusable",
    [
        ("patch", True),  # the setting's default: what the run did before the setting existed
        ("image", False),  # another value: the old run did not train that way
    ],
)
def test_a_run_made_before_a_setting_existed_is_reused_only_for_its_default(
    asked, reusable, tiny_run, tiny_phantom, tmp_path
):
    """Regression: adding a config key made every existing run folder "made with other settings"."""
    import json

    run = copy_run(tiny_run, tmp_path / "run")
    stored = json.loads((run / "config.json").read_text())
    del stored["loss"]["adversary_view"]  # as written by an advnorm without it
    (run / "config.json").write_text(json.dumps(stored))
    datasets = open_domains([str(p) for p in tiny_phantom])
    cfg = resolve(
        "quick",
        file=tiny_run / "config.json",
        overrides={"method": "harmonized", "model.generator": "transfer", "loss.adversary_view": asked},
    )
    cfg_same_method = resolve("quick", file=tiny_run / "config.json", overrides={"loss.adversary_view": "patch"})
    diffs = reuse_differences(run, cfg_same_method if reusable else cfg, datasets)
    assert (diffs == []) == reusable, diffs
    if not reusable:
        assert any("adversary_view is 'patch' there, 'image' now" in d for d in diffs), diffs


CHANGED_DEFAULTS = [
    # (setting, the value before its default changed, today's default)
    ("train.augment_noise", 0.08, 0.0),
    ("train.augment_share", 1.0, 0.25),
]


@pytest.mark.parametrize(("dotted", "old", "new"), CHANGED_DEFAULTS)
@pytest.mark.parametrize("asked_old", [True, False])
def test_a_run_made_before_a_default_changed_counts_as_made_with_the_old_one(
    dotted, old, new, asked_old, tiny_run, tiny_phantom, tmp_path
):
    """A config.json without a setting whose default changed means the old value, for reuse and when the run is
    read back (``advnorm.config_history.ABSENT_MEANS``), in the methods it acts in (``augmented`` here)."""
    import json

    from advnorm.run_folder import RunFolder

    section, key = dotted.split(".")
    run = copy_run(tiny_run, tmp_path / "run")
    stored = json.loads((run / "config.json").read_text())
    assert stored[section][key] == new
    del stored[section][key]
    (run / "config.json").write_text(json.dumps({**stored, "method": "augmented"}))
    datasets = open_domains([str(p) for p in tiny_phantom])
    over = {dotted: old if asked_old else new, "method": "augmented"}
    diffs = reuse_differences(run, resolve("quick", file=tiny_run / "config.json", overrides=over), datasets)
    assert (diffs == []) == asked_old, diffs
    assert getattr(getattr(RunFolder(run).read_config()[0], section), key) == old
    # a method it does not act in: the run counts as made with today's default
    (run / "config.json").write_text(json.dumps(stored))
    assert reuse_differences(run, resolve("quick", file=tiny_run / "config.json"), datasets) == []
    assert getattr(getattr(RunFolder(run).read_config()[0], section), key) == new


@pytest.mark.parametrize(("asked", "reusable"), [(0, True), (None, False), (16, False)])
def test_a_run_made_before_precise_batchnorm_counts_as_made_without_it(
    asked, reusable, tiny_run, tiny_phantom, tmp_path
):
    """A config.json without ``train.bn_recalibration_batches`` was written before BatchNorm's statistics were
    recomputed before validation: it means 0, neither today's default (4) nor the old one (16)."""
    import json

    from advnorm.run_folder import RunFolder

    run = copy_run(tiny_run, tmp_path / "run")
    stored = json.loads((run / "config.json").read_text())
    del stored["train"]["bn_recalibration_batches"]
    (run / "config.json").write_text(json.dumps(stored))
    datasets = open_domains([str(p) for p in tiny_phantom])
    cfg = resolve("quick", file=tiny_run / "config.json", overrides={"train.bn_recalibration_batches": asked})
    diffs = reuse_differences(run, cfg, datasets)
    assert (diffs == []) == reusable, diffs
    assert RunFolder(run).read_config()[0].train.bn_recalibration_batches == 0


@pytest.mark.parametrize(
    ("key", "now", "method", "reusable"),
    [
        ("content_weight", 3.0, "adversarial", True),
        ("content_weight", 3.0, "standardized", True),
        ("content_weight", 3.0, "harmonized", False),
        ("slope_floor", 0.35, "adversarial", True),
        ("slope_floor", 0.35, "harmonized", False),
    ],
)
def test_a_run_made_before_a_harmonized_term_counts_as_made_without_it(
    key, now, method, reusable, tiny_run, tiny_phantom, tmp_path
):
    """``loss.content_weight`` and ``loss.slope_floor`` came with a non-zero default for ``harmonized``: a config.json
    without one means 0, so an older ``harmonized`` run is trained again and every other method's stays reusable."""
    import json

    from advnorm.run_folder import RunFolder

    run = copy_run(tiny_run, tmp_path / "run")
    stored = json.loads((run / "config.json").read_text())
    del stored["loss"][key]
    del stored["ingredients"]  # nor did runs record their ingredients then
    (run / "config.json").write_text(json.dumps({**stored, "method": method}))
    settings = tmp_path / "settings.json"  # the run's settings as a --config file, the term left to the method
    settings.write_text(json.dumps({k: v for k, v in stored.items() if k not in ("method", "run", "versions")}))
    datasets = open_domains([str(p) for p in tiny_phantom])
    over = {"method": method, "model.generator": "transfer" if method == "harmonized" else None}  # its G of then
    diffs = reuse_differences(run, resolve("quick", file=settings, overrides=over), datasets)
    assert (diffs == []) == reusable, diffs
    if not reusable:
        assert any(f"{key} is 0.0 there, {now} now" in d for d in diffs), diffs
    assert getattr(RunFolder(run).read_config()[0].loss, key) == 0.0


@pytest.mark.parametrize(
    ("stored", "recorded", "asked", "reusable", "read_as"),
    [
        ("auto", None, None, False, "transfer"),  # stored before ingredients were recorded: the transfer G of then
        ("auto", None, "transfer", True, "transfer"),
        ("auto", "unet", None, True, "unet"),  # stored as runs are now, ``auto`` and what it resolved to
        ("auto", "transfer", None, False, "transfer"),  # if harmonized's G changes again, this run stays what it was
        ("unet", None, None, True, "unet"),  # chosen in a config file: the same G as today's ``auto``
        ("transfer", None, None, False, "transfer"),
    ],
)
def test_a_stored_auto_generator_means_what_it_meant_when_the_run_was_made(
    stored, recorded, asked, reusable, read_as, tiny_run, tiny_phantom, tmp_path
):
    """``harmonized``'s G was the transfer function while runs stored ``model.generator`` ``auto`` and nothing
    else: such a run is read back, and reused, as the transfer-G run it is (``advnorm.config_history.AUTO_MEANT``),
    never as a run of today's U-Net G; runs now also record what ``auto`` resolved to (``ingredients``)."""
    import json

    from advnorm.run_folder import RunFolder

    run = copy_run(tiny_run, tmp_path / "run")
    old = json.loads((run / "config.json").read_text())
    unet = read_as == "unet"
    old["model"].update(generator=stored, generator_output="auto" if stored == "auto" and unet else "sigmoid")
    if stored == "unet":
        old["model"]["generator_output"] = "additive"
    old["loss"].update(content_weight=3.0, slope_floor=0.0 if unet else 0.35)
    old.pop("ingredients", None)
    if recorded is not None:
        old["ingredients"] = {"generator": recorded, "generator_output": "additive" if unet else "sigmoid"}
    (run / "config.json").write_text(json.dumps({**old, "method": "harmonized"}))
    settings = {k: v for k, v in old.items() if k not in ("method", "run", "versions", "ingredients")}
    settings["model"] = {**settings["model"], "generator": "auto", "generator_output": "auto"}
    settings["loss"] = {k: v for k, v in settings["loss"].items() if k != "slope_floor"}
    (tmp_path / "settings.json").write_text(json.dumps(settings))  # the run's settings, G left to the method
    over = {"method": "harmonized", "model.generator": asked}
    cfg = resolve("quick", file=tmp_path / "settings.json", overrides=over)
    diffs = reuse_differences(run, cfg, open_domains([str(p) for p in tiny_phantom]))
    assert (diffs == []) == reusable, diffs
    if not reusable:
        assert any("generator is 'transfer' there, 'unet' now" in d for d in diffs), diffs
    assert ingredients(RunFolder(run).read_config()[0]).generator == read_as


def test_train_resume_continues_an_old_harmonized_run_with_the_transfer_g_it_had(
    tiny_method_run, tiny_phantom, tmp_path
):
    """``advnorm train --resume`` reads the run's own config.json as made: a ``harmonized`` run stored with
    ``model.generator`` ``auto`` and no ``ingredients`` goes on with its transfer G, not today's U-Net."""
    import json

    from advnorm.cli import main
    from advnorm.run_folder import RunFolder

    run = copy_run(tiny_method_run("harmonized-transfer"), tmp_path / "run")
    old = json.loads((run / "config.json").read_text())
    old["model"]["generator"] = "auto"  # as an advnorm before 2026-11-27 stored it
    old.pop("ingredients")
    (run / "config.json").write_text(json.dumps(old))
    more = str(old["train"]["epochs"] + 1)
    argv = ["train", "--out", str(run), "--resume", "--epochs", more, "--no-progress"]
    assert main(argv + [a for d in tiny_phantom for a in ("--data", str(d))]) == 0
    cfg = RunFolder(run).read_config()[0]
    assert ingredients(cfg).generator == "transfer" and cfg.train.epochs == int(more)
    assert json.loads((run / "config.json").read_text())["ingredients"]["generator"] == "transfer"


@pytest.mark.parametrize("stored_version", [None, 1])
def test_an_evaluation_of_another_version_is_recomputed_without_training(
    stored_version, tiny_run, tiny_phantom, tmp_path, monkeypatch
):
    import json

    from advnorm.workflows import EVALUATION_VERSION

    run = copy_run(tiny_run, tmp_path / "run")
    datasets = open_domains([str(p) for p in tiny_phantom])
    cfg = resolve("quick", file=run / "config.json")
    old = {"summary": {"per_domain": {}}, "cases": []}
    if stored_version is not None:
        old["version"] = stored_version
    (run / "evaluation.json").write_text(json.dumps(old))
    weights = _snapshot(run)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run must not be trained again")

    monkeypatch.setattr("advnorm.training.loop.fit", no_training)
    messages = []
    payload = train_and_evaluate(run, cfg, datasets, progress=False, log=messages.append)
    assert payload["version"] == EVALUATION_VERSION and "tissue_overlap" in payload["summary"]
    assert any("evaluating it again" in m for m in messages)
    assert json.loads((run / "evaluation.json").read_text())["version"] == EVALUATION_VERSION
    assert {k: v for k, v in _snapshot(run).items() if k != "evaluation.json"} == {
        k: v for k, v in weights.items() if k != "evaluation.json"
    }
    # and now it is current: skipped
    messages.clear()
    train_and_evaluate(run, cfg, datasets, progress=False, log=messages.append)
    assert messages == ["finished earlier, skipped"]
