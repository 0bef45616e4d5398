"""Model files never run code, and weights made for another K or architecture are refused with what differs."""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import json
import pickle
from pathlib import Path

import pytest
import torch

from advnorm.cli import main
from advnorm.config_file import resolve
from advnorm.errors import AdvnormError
from advnorm.models.networks import Networks
from advnorm.models.weights import load_weights
from advnorm.training.checkpoint import load_train_state
from tests.conftest import copy_run


class _Payload:
    """Unpickling this creates ``marker``: proof that the file's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


def _raw_pickle(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps({"epoch": 0, "networks": _Payload(marker)}, protocol=2))


def _torch_zip_pickle(path: Path, marker: Path) -> None:
    torch.save({"epoch": 0, "best": 1.0, "networks": _Payload(marker)}, str(path))
    assert not marker.exists()  # saving does not run the payload


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("advnorm: error: ") and "Traceback" not in err, err
    return lines[0]


def _data_args(folders) -> list[str]:
    return [a for d in folders for a in ("--data", str(d))]


@pytest.mark.parametrize("craft", [_raw_pickle, _torch_zip_pickle], ids=["raw-pickle", "torch-zip-pickle"])
def test_pickled_train_state_is_refused_by_resume_and_never_runs(tiny_run, tiny_phantom, tmp_path, capsys, craft):
    run = copy_run(tiny_run, tmp_path / "run")
    marker = tmp_path / "PWNED"
    craft(run / "train_state.pt", marker)
    before = _snapshot(run)
    code = main(["train", "--out", str(run), "--resume", "--no-progress", *_data_args(tiny_phantom)])
    line = _one_error_line(capsys.readouterr().err)
    assert code == 2
    assert str(run / "train_state.pt") in line and "refusing to load training state" in line, line
    assert not marker.exists(), "the pickle payload ran"
    assert _snapshot(run) == before  # config.json, logs and checkpoints untouched


@pytest.mark.parametrize("craft", [_raw_pickle, _torch_zip_pickle], ids=["raw-pickle", "torch-zip-pickle"])
@pytest.mark.parametrize("verb", ["predict", "evaluate"])
def test_pickled_weights_file_is_refused_and_never_runs(tiny_run, tiny_phantom, tmp_path, capsys, craft, verb):
    run = copy_run(tiny_run, tmp_path / "run")
    marker = tmp_path / "PWNED"
    craft(run / "checkpoint_best.safetensors", marker)
    out = tmp_path / "out"
    if verb == "predict":
        image = next((Path(tiny_phantom[0]) / "imagesTr").iterdir())
        argv = ["predict", "--model", str(run), "-i", str(image), "-o", str(out)]
    else:
        argv = ["evaluate", "--model", str(run), *_data_args(tiny_phantom), "-o", str(out / "metrics.json")]
    code = main(argv)
    line = _one_error_line(capsys.readouterr().err)
    assert code == 2
    assert str(run / "checkpoint_best.safetensors") in line and "not a valid safetensors weights file" in line, line
    assert not marker.exists(), "the pickle payload ran"
    assert not out.exists()


def test_load_train_state_refuses_pickles_directly(tmp_path):
    marker = tmp_path / "PWNED"
    for craft in (_raw_pickle, _torch_zip_pickle):
        path = tmp_path / f"{craft.__name__}.pt"
        craft(path, marker)
        with pytest.raises(AdvnormError, match="refusing to load training state"):
            load_train_state(path)
    assert not marker.exists()


# ------------------------------------------------------------------ another K / another architecture


def _networks(cfg_dict: dict, k: int):
    cfg = resolve(
        "quick",
        overrides={
            "model.generator_widths": cfg_dict["model"]["generator_widths"],
            "model.segmenter_widths": cfg_dict["model"]["segmenter_widths"],
            "model.discriminator_widths": cfg_dict["model"]["discriminator_widths"],
        },
    )
    return cfg, Networks(cfg, k)


def test_load_weights_refuses_another_k_and_another_architecture(tiny_run):
    stored = json.loads((tiny_run / "config.json").read_text())
    weights = tiny_run / "checkpoint_final.safetensors"
    cfg, nets = _networks(stored, 2)
    load_weights(weights, nets)  # the right K and widths load

    cfg, nets = _networks(stored, 3)
    with pytest.raises(AdvnormError) as info:
        load_weights(weights, nets)
    assert "n_domains is 2 in the file, 3 in the config" in str(info.value)

    wider = {**stored, "model": {**stored["model"], "segmenter_widths": [4, 16]}}
    cfg, nets = _networks(wider, 2)
    with pytest.raises(AdvnormError) as info:
        load_weights(weights, nets)
    assert "model.segmenter_widths is [4, 8] in the file, [4, 16] in the config" in str(info.value)

    # metadata that lies about the architecture still cannot load mismatched tensors
    nets.architecture = lambda: json.loads(_metadata(weights)["architecture"])  # type: ignore[method-assign]
    with pytest.raises(AdvnormError, match="weights of S do not fit the network"):
        load_weights(weights, nets)


@pytest.mark.parametrize(("stem", "loads"), [("full", True), ("strided", False)])
def test_weights_written_before_a_model_setting_existed_load_under_its_default(stem, loads, tiny_run, tmp_path):
    """Regression: adding ``model.segmenter_stem`` made every earlier checkpoint "not match the run's config"."""
    from safetensors.torch import load_file, save_file

    src = tiny_run / "checkpoint_final.safetensors"
    meta = _metadata(src)
    arch = json.loads(meta["architecture"])
    del arch["model"]["segmenter_stem"]  # as written by an advnorm without it
    old = tmp_path / "old.safetensors"
    save_file(load_file(str(src)), str(old), metadata={**meta, "architecture": json.dumps(arch)})
    stored = json.loads((tiny_run / "config.json").read_text())
    cfg, _ = _networks(stored, 2)
    nets = Networks(dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, segmenter_stem=stem)), 2)
    if loads:
        load_weights(old, nets)
    else:
        with pytest.raises(AdvnormError, match="segmenter_stem is 'full' in the file, 'strided' in the config"):
            load_weights(old, nets)


def _metadata(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return fh.metadata()


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda c: c["run"]["domains"].append("ThirdSite"), "n_domains is 2 in the file, 3 in the config"),
        (
            lambda c: c["model"].update(discriminator_widths=[4, 8, 16]),
            "model.discriminator_widths is [4, 8] in the file, [4, 8, 16] in the config",
        ),
    ],
    ids=["another-K", "another-architecture"],
)
def test_predict_refuses_weights_of_another_k_or_architecture(
    tiny_run, tiny_phantom, tmp_path, capsys, change, expected
):
    run = copy_run(tiny_run, tmp_path / "run")
    cfg = json.loads((run / "config.json").read_text())
    change(cfg)
    (run / "config.json").write_text(json.dumps(cfg))
    out = tmp_path / "out"
    image = next((Path(tiny_phantom[1]) / "imagesTr").iterdir())
    assert main(["predict", "--model", str(run), "-i", str(image), "-o", str(out)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(run / "checkpoint_best.safetensors") in line and expected in line, line
    assert not out.exists()


def test_resume_refuses_another_number_of_domains(tiny_run, tiny_phantom, tmp_path, capsys):
    from tests.fixtures import make_nnunet

    run = copy_run(tiny_run, tmp_path / "run")
    before = _snapshot(run)
    three = [*tiny_phantom, make_nnunet(tmp_path, "Dataset009_Third")]
    assert main(["train", "--out", str(run), "--resume", "--no-progress", *_data_args(three)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(run) in line and "--resume needs the data the run was started on" in line and "Third" in line, line
    assert _snapshot(run) == before


def test_training_state_of_another_k_is_refused(tiny_run, tiny_phantom):
    """Defence in depth below the data check: a training state made for K domains does not load into K + 1."""
    from advnorm.training.resume import restore_state

    cfg = resolve("quick", file=tiny_run / "config.json")
    nets = Networks(cfg, 3)
    state = tiny_run / "train_state.pt"
    with pytest.raises(AdvnormError, match="n_domains is 2 in the file, 3 in the config"):
        restore_state(
            load_train_state(state), state, nets, None, {}, ["a", "b", "c"]
        )  # fails before the trainer is needed


def test_resume_refuses_a_training_state_of_another_architecture(tiny_run, tiny_phantom, tmp_path, capsys):
    run = copy_run(tiny_run, tmp_path / "run")
    before = _snapshot(run)
    cfg = json.loads((run / "config.json").read_text())
    other = tmp_path / "wider.json"
    other.write_text(json.dumps({"model": {**cfg["model"], "generator_widths": [8, 8]}, "train": cfg["train"]}))
    assert (
        main(
            ["train", "--out", str(run), "--resume", "--config", str(other), "--no-progress", *_data_args(tiny_phantom)]
        )
        == 2
    )
    line = _one_error_line(capsys.readouterr().err)
    assert (
        "--resume continues the run with its own settings" in line
        and "model.generator_widths is [4, 8] there, [8, 8] now" in line
    ), line
    assert _snapshot(run) == before
