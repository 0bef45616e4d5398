"""Bad-input cases of the corpus (tests/test_bad_input_corpus.py): ``predict`` and ``evaluate``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from tests.bad_input_kit import (
    Built,
    _evaluate,
    _garbage,
    _image,
    _predict,
    _rewrite,
    _set_voxel,
    _split_case,
    _truncate,
    case,
)

# -- predict


def _other_k_run(env) -> Path:
    run = env.run_copy()
    cfg = json.loads((run / "config.json").read_text())
    cfg["run"]["domains"].append("ThirdSite")
    (run / "config.json").write_text(json.dumps(cfg))
    return run


@case
def predict_model_of_another_k(env):
    run, out = _other_k_run(env), env.tmp / "pred"
    return Built(_predict(run, [_image(Path(env.phantom[0]))], out), str(run / "checkpoint_best.safetensors"), [out])


@case
def predict_model_of_another_architecture(env):
    run, out = env.run_copy(), env.tmp / "pred"
    cfg = json.loads((run / "config.json").read_text())
    cfg["model"]["segmenter_widths"] = [4, 8, 16]
    (run / "config.json").write_text(json.dumps(cfg))
    return Built(_predict(run, [_image(Path(env.phantom[0]))], out), str(run / "checkpoint_best.safetensors"), [out])


@case
def predict_existing_outputs_without_overwrite(env):
    out = env.tmp / "pred"
    image = _image(Path(env.phantom[0]))
    stem = image.name[: -len(".nii.gz")]
    out.mkdir()
    (out / f"{stem}_seg.nii.gz").write_bytes(b"an earlier result")
    return Built(_predict(env.run, [image], out), str(out / f"{stem}_seg.nii.gz"), [out])


@case
def predict_output_equals_input_folder(env):
    d = env.domain(0)
    return Built(_predict(env.run, [d], d), str(d), [d])


@case
def predict_model_not_a_run(env):
    notrun, out = env.tmp / "not_a_run", env.tmp / "pred"
    notrun.mkdir()
    (notrun / "weights.bin").write_bytes(b"x")
    return Built(_predict(notrun, [_image(Path(env.phantom[0]))], out), str(notrun), [out])


@case
def predict_corrupt_input_file(env):
    bad, out = _garbage(env.tmp / "scan.nii.gz"), env.tmp / "pred"
    return Built(_predict(env.run, [bad], out), str(bad), [out])


@case
def predict_missing_input(env):
    out = env.tmp / "pred"
    return Built(_predict(env.run, [env.tmp / "ghost.nii.gz"], out), str(env.tmp / "ghost.nii.gz"), [out])


@case
def predict_2d_input(env):
    img = _rewrite(
        Path(shutil.copy(_image(Path(env.phantom[0])), env.tmp / "slice.nii.gz")), lambda a, aff: (a[:, :, 5], aff)
    )
    out = env.tmp / "pred"
    return Built(_predict(env.run, [img], out), str(img), [out])


@case
def predict_last_case_of_a_folder_is_bad(env):
    d, out = env.domain(1), env.tmp / "new" / "pred"
    return Built(_predict(env.run, [d], out), str(_truncate(_image(d, 3))), [env.tmp / "new"])


@case
def predict_bad_case_into_an_existing_folder(env):
    d, out = env.domain(0), env.tmp / "pred"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    return Built(
        _predict(env.run, [_image(Path(env.phantom[1])), d], out),
        str(_rewrite(_image(d, 2), _set_voxel(np.inf))),
        [out],
    )


@case
def predict_truncated_checkpoint(env):
    run, out = env.run_copy(), env.tmp / "pred"
    _truncate(run / "checkpoint_best.safetensors", 0.6)
    return Built(_predict(run, [_image(Path(env.phantom[0]))], out), str(run / "checkpoint_best.safetensors"), [out])


@case
def predict_output_is_a_file(env):
    out = env.tmp / "pred.nii.gz"
    out.write_bytes(b"x")
    return Built(_predict(env.run, [_image(Path(env.phantom[0]))], out), str(out), [out])


# -- evaluate


@case
def evaluate_model_not_a_run(env):
    out = env.tmp / "metrics.json"
    return Built(_evaluate(Path(env.phantom[0]), env.phantom, out), str(env.phantom[0]), [out])


@case
def evaluate_missing_data_folder(env):
    out = env.tmp / "metrics.json"
    return Built(_evaluate(env.run, [env.phantom[0], env.tmp / "gone"], out), str(env.tmp / "gone"), [out])


@case
def evaluate_test_label_outside_map(env):
    d, out = env.domain(1), env.tmp / "metrics.json"
    label = d / "labelsTr" / f"{_split_case(env, 1, 'test')}.nii.gz"
    _rewrite(label, lambda a, aff: (np.where(a == 3, 9, a).astype(np.uint8), aff))
    return Built(_evaluate(env.run, [env.phantom[0], d], out), str(label), [out])


@case
def evaluate_output_is_a_folder(env):
    out = env.tmp / "metrics"
    out.mkdir()
    return Built(_evaluate(env.run, env.phantom, out), str(out), [out])


@case
def evaluate_output_below_a_file(env):
    blocker = env.tmp / "a_file"
    blocker.write_text("x")
    return Built(_evaluate(env.run, env.phantom, blocker / "metrics.json"), str(blocker), [blocker])


@case
def evaluate_model_of_another_k(env):
    run, out = _other_k_run(env), env.tmp / "metrics.json"
    return Built(_evaluate(run, env.phantom, out), str(run / "checkpoint_best.safetensors"), [out])


def _reproduce_shaped(env) -> Path:
    """A ``reproduce`` output holding one run, where a user looks for it: ``repro/runs/harmonized/seed0``."""
    seed0 = env.tmp / "repro" / "runs" / "harmonized" / "seed0"
    seed0.parent.mkdir(parents=True)
    shutil.copytree(env.run, seed0)
    return seed0


@case
def predict_model_is_a_folder_of_seeds(env):
    seed0, out = _reproduce_shaped(env), env.tmp / "pred"
    return Built(_predict(seed0.parent, [_image(Path(env.phantom[0]))], out), f"pass one: {seed0}", [out])


@case
def evaluate_model_is_a_reproduce_folder(env):
    seed0, out = _reproduce_shaped(env), env.tmp / "metrics.json"
    return Built(_evaluate(env.tmp / "repro", env.phantom, out), f"pass one: {seed0}", [out])
