"""A corpus of bad inputs for every verb, through ``advnorm.cli.main`` in-process.

For each case: a non-zero exit, exactly one stderr line ``advnorm: error: ...`` naming the
offending file, folder or config key (warnings, one line each, may come before it), no traceback, and no partial
output (every output path is absent afterwards, or byte-for-byte unchanged if it existed before).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from advnorm.cli import main
from tests.conftest import TINY_CONFIG, copy_run, write_config
from tests.fixtures import make_iseg2017, make_mrbrains13, make_nnunet, save_nifti


@dataclass
class Env:
    tmp: Path
    phantom: list[Path]
    run: Path
    config: Path

    def domain(self, k: int = 0, name: str | None = None) -> Path:
        """A private copy of phantom domain ``k``."""
        src = Path(self.phantom[k])
        return Path(shutil.copytree(src, self.tmp / "data" / (name or src.name)))

    def run_copy(self) -> Path:
        return copy_run(self.run, self.tmp / "run_copy")

    def config_file(self, changes: dict | None = None, text: str | None = None) -> Path:
        path = self.tmp / "config.json"
        if text is not None:
            path.write_text(text)
            return path
        cfg = json.loads(json.dumps(TINY_CONFIG))
        for dotted, value in (changes or {}).items():
            node = cfg
            *heads, tail = dotted.split(".")
            for h in heads:
                node = node.setdefault(h, {})
            node[tail] = value
        return write_config(path, cfg)


@dataclass
class Built:
    argv: list[str]
    named: str  # must appear in the error line
    outputs: list[Path]  # absent afterwards, or unchanged if they existed


# ---------------------------------------------------------------- corrupting files


def _image(folder: Path, case: int = 1) -> Path:
    return sorted((folder / "imagesTr").iterdir())[case - 1]


def _label(folder: Path, case: int = 1) -> Path:
    return sorted((folder / "labelsTr").iterdir())[case - 1]


def _rewrite(path: Path, fn: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]) -> Path:
    img = nib.load(str(path))
    data, affine = fn(np.array(np.asanyarray(img.dataobj)), img.affine.copy())
    save_nifti(path, data, affine)
    return path


def _garbage(path: Path) -> Path:
    path.write_bytes(b"this is not an image \x00\xff" * 50)
    return path


def _truncate(path: Path, keep: float = 0.5) -> Path:
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    return path


def _set_voxel(value: float):
    def fn(data, affine):
        data = data.astype(np.float32)
        c = tuple(s // 2 for s in data.shape)
        data[c] = value
        return data, affine

    return fn


def _train(env: Env, data: list, out: Path, *extra: str, config: Path | None = None) -> list[str]:
    argv = ["train", "--out", str(out), "--config", str(config or env.config), "--no-progress", *extra]
    return argv + [a for d in data for a in ("--data", str(d))]


def _predict(model: Path, inputs: list, out: Path, *extra: str) -> list[str]:
    return ["predict", "--model", str(model), "-o", str(out), *extra] + [a for i in inputs for a in ("-i", str(i))]


def _evaluate(model: Path, data: list, out: Path) -> list[str]:
    return ["evaluate", "--model", str(model), "-o", str(out)] + [a for d in data for a in ("--data", str(d))]


def _inspect(*data) -> list[str]:
    return ["inspect"] + [a for d in data for a in ("--data", str(d))]


def _reproduce(env: Env, data: list, out: Path, *extra: str) -> list[str]:
    argv = ["reproduce", "--out", str(out), "--config", str(env.config), "--no-progress", *extra]
    return argv + [a for d in data for a in ("--data", str(d))]


def _zscored(path: Path, dest: Path) -> Path:
    img = nib.load(str(path))
    data = np.asarray(img.dataobj, dtype=np.float32)
    brain = data != 0
    z = np.where(brain, (data - data[brain].mean()) / data[brain].std(), 0.0).astype(np.float32)
    return save_nifti(dest, z, img.affine)


def _edit_run_config(env: Env, change: Callable[[dict], None]) -> Path:
    run = env.run_copy()
    cfg = json.loads((run / "config.json").read_text())
    change(cfg)
    (run / "config.json").write_text(json.dumps(cfg))
    return run


# ---------------------------------------------------------------- the cases

CASES: dict[str, Callable[[Env], Built]] = {}


def case(fn: Callable[[Env], Built]) -> Callable[[Env], Built]:
    CASES[fn.__name__.replace("_", "-")] = fn
    return fn


# -- inspect


@case
def inspect_missing_folder(env):
    return Built(_inspect(env.tmp / "no_such_dataset"), str(env.tmp / "no_such_dataset"), [])


@case
def inspect_empty_folder(env):
    (env.tmp / "empty").mkdir()
    return Built(_inspect(env.tmp / "empty"), str(env.tmp / "empty"), [])


@case
def inspect_unknown_layout(env):
    d = env.domain()
    return Built(_inspect(f"bogus:{d}"), str(d), [])


@case
def inspect_corrupt_nifti(env):
    d = env.domain()
    return Built(_inspect(d), str(_garbage(_image(d, 2))), [])


@case
def inspect_truncated_nifti_gz(env):
    d = env.domain()
    return Built(_inspect(d), str(_truncate(_image(d, 1))), [])


@case
def inspect_truncated_nii(env):
    d = make_nnunet(env.tmp, "Dataset003_Raw", n=1, file_ending=".nii")
    return Built(_inspect(d), str(_truncate(_image(d), 0.8)), [])


@case
def inspect_corrupt_analyze_header(env):
    d = make_iseg2017(env.tmp / "iseg", n_labelled=1, n_unlabelled=0)
    return Built(_inspect(d), str(_garbage(d / "subject-1-T1.hdr")), [])


@case
def inspect_truncated_analyze_image(env):
    d = make_iseg2017(env.tmp / "iseg", n_labelled=1, n_unlabelled=0)
    _truncate(d / "subject-1-T1.img", 0.3)
    return Built(_inspect(d), str(d / "subject-1-T1"), [])


@case
def inspect_analyze_image_file_missing(env):
    d = make_iseg2017(env.tmp / "iseg", n_labelled=1, n_unlabelled=0)
    (d / "subject-1-label.img").unlink()
    return Built(_inspect(d), str(d / "subject-1-label"), [])


@case
def inspect_2d_image(env):
    d = env.domain()
    return Built(_inspect(d), str(_rewrite(_image(d), lambda a, aff: (a[:, :, a.shape[2] // 2], aff))), [])


@case
def inspect_4d_image(env):
    d = env.domain()
    return Built(_inspect(d), str(_rewrite(_image(d), lambda a, aff: (np.stack([a, a], axis=-1), aff))), [])


@case
def inspect_label_grid_mismatch(env):
    d = env.domain()
    return Built(_inspect(d), str(_rewrite(_label(d), lambda a, aff: (a[1:], aff))), [])


@case
def inspect_label_affine_mismatch(env):
    d = env.domain()

    def shift(a, aff):
        aff[:3, 3] += 7.0
        return a, aff

    return Built(_inspect(d), str(_rewrite(_label(d), shift)), [])


@case
def inspect_label_value_outside_map(env):
    d = env.domain()

    def seven(a, aff):
        a = a.copy()
        a[np.nonzero(a)[0][0], np.nonzero(a)[1][0], np.nonzero(a)[2][0]] = 7
        return a, aff

    return Built(_inspect(d), str(_rewrite(_label(d), seven)), [])


@case
def inspect_nan_image(env):
    d = env.domain()
    return Built(_inspect(d), str(_rewrite(_image(d), _set_voxel(np.nan))), [])


@case
def inspect_inf_image(env):
    d = env.domain()
    return Built(_inspect(d), str(_rewrite(_image(d), _set_voxel(np.inf))), [])


@case
def inspect_all_zero_image(env):
    d = env.domain()
    return Built(_inspect(d), str(_rewrite(_image(d), lambda a, aff: (np.zeros_like(a), aff))), [])


@case
def inspect_broken_dataset_json(env):
    d = env.domain()
    (d / "dataset.json").write_text('{"labels": {"background": 0, "CSF": 1,')
    return Built(_inspect(d), str(d / "dataset.json"), [])


# -- train


@case
def train_missing_data_folder(env):
    out = env.tmp / "run"
    return Built(_train(env, [env.phantom[0], env.tmp / "missing"], out), str(env.tmp / "missing"), [out])


@case
def train_corrupt_nifti(env):
    d, out = env.domain(1), env.tmp / "run"
    image = _garbage(d / "imagesTr" / f"{_split_case(env, 1, 'val')}_0000.nii.gz")
    return Built(_train(env, [env.phantom[0], d], out), str(image), [out])


def _split_case(env, k: int, role: str) -> str:
    """A case id of ``role`` ("train", "val", "test") in phantom domain ``k``.

    The split is a function of the ids and the seed.
    """
    run = json.loads((env.run / "config.json").read_text())["run"]
    return run["split"][run["domains"][k]][role][0]


@case
def train_truncated_label(env):
    d, out = env.domain(0), env.tmp / "runs" / "deep" / "run"
    label = _truncate(d / "labelsTr" / f"{_split_case(env, 0, 'train')}.nii.gz")
    return Built(_train(env, [d, env.phantom[1]], out), str(label), [env.tmp / "runs"])


@case
def train_label_grid_mismatch(env):
    d, out = env.domain(1), env.tmp / "run"
    label = _rewrite(d / "labelsTr" / f"{_split_case(env, 1, 'train')}.nii.gz", lambda a, aff: (a[:, 1:], aff))
    return Built(_train(env, [env.phantom[0], d], out), str(label), [out])


@case
def train_nan_image(env):
    d, out = env.domain(0), env.tmp / "run"
    image = _rewrite(d / "imagesTr" / f"{_split_case(env, 0, 'val')}_0000.nii.gz", _set_voxel(np.nan))
    return Built(_train(env, [d, env.phantom[1]], out), str(image), [out])


@case
def train_background_only_domain(env):
    d, out = env.domain(1), env.tmp / "run"
    for lab in (d / "labelsTr").iterdir():
        _rewrite(lab, lambda a, aff: (np.zeros_like(a), aff))
    return Built(_train(env, [env.phantom[0], d], out), str(d), [out])


@case
def train_domain_with_one_subject(env):
    d, out = env.domain(1), env.tmp / "run"
    for _ in range(2):  # cases 2 and 3: the second case, then the one that has become the second
        _image(d, 2).unlink()
        _label(d, 2).unlink()
    return Built(_train(env, [env.phantom[0], d], out), str(d), [out])


@case
def train_unknown_config_key(env):
    cfg, out = env.config_file({"train.epoch": 3}), env.tmp / "run"
    return Built(_train(env, env.phantom, out, config=cfg), "'train.epoch'", [out])


@case
def train_config_wrong_type(env):
    cfg, out = env.config_file({"train.batch_size": "four"}), env.tmp / "run"
    return Built(_train(env, env.phantom, out, config=cfg), "'train.batch_size'", [out])


@case
def train_config_wrong_list_type(env):
    cfg, out = env.config_file({"model.segmenter_widths": 8}), env.tmp / "run"
    return Built(_train(env, env.phantom, out, config=cfg), "'model.segmenter_widths'", [out])


@case
def train_config_out_of_range(env):
    cfg, out = env.config_file({"train.batch_size": 1}), env.tmp / "run"
    return Built(_train(env, env.phantom, out, config=cfg), f"{cfg}: invalid configuration: train.batch_size", [out])


@case
def train_config_bad_patch_size(env):
    cfg, out = env.config_file({"train.patch_size": 12}), env.tmp / "run"
    return Built(_train(env, env.phantom, out, config=cfg), f"{cfg}: invalid configuration: train.patch_size", [out])


@case
def train_epochs_out_of_range_on_the_command_line(env):
    out = env.tmp / "run"
    return Built(_train(env, env.phantom, out, "--epochs", "0"), "train.epochs", [out])


@case
def train_config_not_json(env):
    cfg, out = env.config_file(text="{'train': {'epochs': 3}}"), env.tmp / "run"
    return Built(_train(env, env.phantom, out, config=cfg), str(cfg), [out])


@case
def train_config_missing(env):
    out = env.tmp / "run"
    return Built(_train(env, env.phantom, out, config=env.tmp / "nope.json"), str(env.tmp / "nope.json"), [out])


@case
def train_out_equals_input(env):
    d = env.domain(1)
    return Built(_train(env, [env.phantom[0], d], d), str(d), [d])


@case
def train_out_inside_input(env):
    d = env.domain(1)
    return Built(_train(env, [env.phantom[0], d], d / "runs" / "x"), str(d / "runs" / "x"), [d])


@case
def train_resume_nothing_to_resume(env):
    out = env.tmp / "never_trained"
    return Built(_train(env, env.phantom, out, "--resume"), str(out), [out])


@case
def train_resume_empty_folder(env):
    out = env.tmp / "empty_run"
    out.mkdir()
    return Built(_train(env, env.phantom, out, "--resume"), str(out), [out])


@case
def train_existing_run_without_resume(env):
    run = env.run_copy()
    return Built(_train(env, env.phantom, run), str(run), [run])


@case
def train_out_below_a_file(env):
    blocker = env.tmp / "a_file"
    blocker.write_text("x")
    return Built(_train(env, env.phantom, blocker / "run"), str(blocker), [blocker])


@case
def train_resume_model_of_another_k(env):
    run = env.run_copy()
    third = make_nnunet(env.tmp, "Dataset031_Third")
    return Built(_train(env, [*env.phantom, third], run, "--resume"), "--resume needs the data", [run])


@case
def train_single_domain_for_adversarial(env):
    out = env.tmp / "run"
    return Built(_train(env, env.phantom[:1], out), "--data", [out])


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


# -- regressions of issue 15: each of these once gave a wrong result, a traceback or a misleading line


@case
def train_the_same_folder_twice(env):
    out = env.tmp / "run"
    return Built(_train(env, [env.phantom[0], env.phantom[0]], out), str(env.phantom[0]), [out])


@case
def train_a_folder_and_a_symlink_to_it(env):
    link, out = env.tmp / "link", env.tmp / "run"
    link.symlink_to(env.phantom[0], target_is_directory=True)
    return Built(_train(env, [env.phantom[0], link], out), "given twice", [out])


@case
def train_two_copies_of_one_dataset(env):
    a, b, out = env.domain(0, "Dataset011_SiteA"), env.domain(0, "Dataset012_SiteB"), env.tmp / "run"
    return Built(_train(env, [a, b], out), str(b), [out])


@case
def train_resume_on_other_data_with_the_same_domain_names(env):
    run, other = env.run_copy(), env.domain(1)
    _rewrite(other / "imagesTr" / f"{_split_case(env, 1, 'train')}_0000.nii.gz", _set_voxel(12345.0))
    return Built(_train(env, [env.phantom[0], other], run, "--resume"), "--resume needs the data", [run])


@case
def train_nnunet_case_with_another_file_ending(env):
    d, out = env.domain(1), env.tmp / "run"
    image = _image(d, 2)
    renamed = image.with_name(image.name.replace(".nii.gz", ".nii"))
    nib.save(nib.load(str(image)), str(renamed))
    image.unlink()
    return Built(_train(env, [env.phantom[0], d], out), str(renamed), [out])


@case
def train_device_that_is_not_one(env):
    out = env.tmp / "run"
    return Built(_train(env, env.phantom, out, "--device", "banana"), "'banana'", [out])


@case
def train_cuda_on_a_cpu_only_build(env):
    if __import__("torch").cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    out = env.tmp / "run"
    return Built(_train(env, env.phantom, out, "--device", "cuda"), "--device cuda", [out])


@case
def train_infinite_learning_rate_in_the_config(env):
    cfg, out = (
        env.config_file(text=json.dumps({**json.loads(env.config.read_text()), "optim": {"lr_segmenter": 1e999}})),
        env.tmp / "run",
    )
    assert "Infinity" in cfg.read_text()
    return Built(_train(env, env.phantom, out, config=cfg), f"{cfg}: invalid configuration: optim.lr_segmenter", [out])


@case
def train_nan_adversarial_weight_in_the_config(env):
    cfg, out = env.config_file(text=env.config.read_text()[:-1] + ', "loss": {"adv_lambda": NaN}}'), env.tmp / "run"
    return Built(_train(env, env.phantom, out, config=cfg), f"{cfg}: invalid configuration: loss.adv_lambda", [out])


@case
def train_fractions_without_validation_and_test(env):
    cfg, out = env.config_file({"data.fractions": [1, 0, 0]}), env.tmp / "run"
    return Built(_train(env, env.phantom, out, config=cfg), "data.fractions", [out])


@case
def train_mrbrains_label_map_all_background(env):
    """Once reported as "T1.nii: brain mask is empty": the label file is at fault, and is named."""
    mrb, out = make_mrbrains13(env.tmp / "mrb", n=3), env.tmp / "run"
    for k in (1, 2, 3):
        _rewrite(mrb / "TrainingData" / str(k) / "LabelsForTesting.nii", lambda a, aff: (np.zeros_like(a), aff))
    return Built(
        _train(env, [env.phantom[0], mrb], out), "LabelsForTesting.nii: label map holds only background", [out]
    )


@case
def train_non_integer_seed(env):
    return Built(_train(env, env.phantom, env.tmp / "run", "--seed", "1.5"), "--seed", [env.tmp / "run"])


@case
def train_missing_out(env):
    return Built(["train", "--data", str(env.phantom[0])], "--out", [])


@case
def inspect_no_verb_arguments(env):
    return Built(["inspect"], "--data", [])


@case
def predict_z_scored_image_to_a_rescaling_run(env):
    image, out = _zscored(_image(Path(env.phantom[0])), env.tmp / "zscored.nii.gz"), env.tmp / "pred"
    return Built(_predict(env.run, [image], out), str(image), [out])


@case
def predict_missing_output(env):
    return Built(["predict", "--model", str(env.run), "-i", str(_image(Path(env.phantom[0])))], "-o/--output", [])


@case
def predict_device_that_is_not_one(env):
    out = env.tmp / "pred"
    return Built(_predict(env.run, [_image(Path(env.phantom[0]))], out, "--device", "banana"), "'banana'", [out])


@case
def predict_run_config_with_a_list_for_profile(env):
    run, out = _edit_run_config(env, lambda c: c.update(profile=["quick"])), env.tmp / "pred"
    return Built(_predict(run, [_image(Path(env.phantom[0]))], out), str(run / "config.json"), [out])


@case
def predict_run_config_without_its_domains(env):
    run, out = _edit_run_config(env, lambda c: c["run"].pop("domains")), env.tmp / "pred"
    return Built(_predict(run, [_image(Path(env.phantom[0]))], out), str(run / "config.json"), [out])


@case
def evaluate_folder_without_labelled_subjects(env):
    d, out = make_nnunet(env.tmp, "Dataset021_Unlabelled", n=0, n_test=2), env.tmp / "metrics.json"
    return Built(_evaluate(env.run, [d], out), "no labelled test subject", [out])


@case
def evaluate_folder_without_the_runs_test_subjects(env):
    d, out = env.domain(0), env.tmp / "metrics.json"
    test = _split_case(env, 0, "test")
    (d / "imagesTr" / f"{test}_0000.nii.gz").unlink()
    (d / "labelsTr" / f"{test}.nii.gz").unlink()
    return Built(_evaluate(env.run, [d], out), "holds none of the run's test subjects", [out])


@case
def reproduce_out_inside_an_input_folder(env):
    d = env.domain(0)
    return Built(_reproduce(env, [d, env.phantom[1]], d / "repro"), str(d / "repro"), [d])


@case
def reproduce_the_same_folder_twice(env):
    out = env.tmp / "repro"
    return Built(_reproduce(env, [env.phantom[0], env.phantom[0]], out), str(env.phantom[0]), [out])


# -- regressions of the second hostile round (issue 15): each once gave a wrong result or an unclean exit


@case
def evaluate_output_inside_an_input_dataset(env):
    d = env.domain(1)
    target = d / "dataset.json"
    return Built(_evaluate(env.run, [env.phantom[0], d], target), str(target), [d])


@case
def evaluate_output_over_the_runs_own_config(env):
    run = env.run_copy()
    return Built(_evaluate(run, env.phantom, run / "config.json"), str(run / "config.json"), [run])


@case
def predict_single_file_into_its_own_dataset_folder(env):
    d = env.domain(0)
    return Built(_predict(env.run, [_image(d, 1)], d / "imagesTr"), str(d / "imagesTr"), [d])


@case
def train_resume_with_another_seed(env):
    run = env.run_copy()
    return Built(_train(env, env.phantom, run, "--resume", "--seed", "1"), "train.seed is 0 there, 1 now", [run])


@case
def train_resume_after_dataset_json_relabelled(env):
    run, d = env.run_copy(), env.domain(1)
    meta = json.loads((d / "dataset.json").read_text())
    meta["labels"] = {"background": 0, "CSF": 1, "GM": 3, "WM": 2}
    (d / "dataset.json").write_text(json.dumps(meta))
    return Built(_train(env, [env.phantom[0], d], run, "--resume"), "label map", [run])


@case
def train_z_scored_images_for_a_rescaling_method(env):
    d, out = env.domain(1), env.tmp / "run"
    image = d / "imagesTr" / f"{_split_case(env, 1, 'train')}_0000.nii.gz"
    _zscored(image, image)
    return Built(_train(env, [env.phantom[0], d], out), str(image), [out])


@case
def train_a_decompressed_copy_as_a_second_domain(env):
    import gzip

    d, out = env.domain(0, "Dataset013_Unzipped"), env.tmp / "run"
    for f in sorted(d.glob("*Tr/*.nii.gz")):
        f.with_name(f.name[:-3]).write_bytes(gzip.decompress(f.read_bytes()))
        f.unlink()
    meta = json.loads((d / "dataset.json").read_text())
    (d / "dataset.json").write_text(json.dumps({**meta, "file_ending": ".nii"}))
    return Built(_train(env, [env.phantom[0], d], out), "holds the same images", [out])


@case
def train_profile_that_does_not_exist_in_the_config(env):
    cfg, out = env.config_file({"profile": "bogus"}), env.tmp / "run"
    return Built(_train(env, env.phantom, out, config=cfg), "profile must be one of", [out])


@case
def train_negative_seed(env):
    return Built(_train(env, env.phantom, env.tmp / "run", "--seed", "-1"), "seeds must be integers", [env.tmp / "run"])


@case
def train_huge_patches(env):
    cfg, out = env.config_file({"train.patch_size": 512}), env.tmp / "run"
    return Built(_train(env, env.phantom, out, config=cfg), "train.patch_size", [out])


@case
def train_discriminator_without_blocks(env):
    cfg, out = env.config_file({"model.discriminator_blocks": 0}), env.tmp / "run"
    return Built(_train(env, env.phantom, out, config=cfg), "model.discriminator_blocks", [out])


@case
def predict_run_config_with_a_broken_histogram(env):
    run, out = _edit_run_config(env, lambda c: c["run"].update(input_histograms={"InfantT1": [1]})), env.tmp / "pred"
    return Built(_predict(run, [_image(Path(env.phantom[0]))], out), str(run / "config.json"), [out])


@case
def reproduce_two_copies_of_one_dataset(env):
    a, b, out = env.domain(0, "Dataset014_SiteA"), env.domain(0, "Dataset015_SiteB"), env.tmp / "repro"
    return Built(_reproduce(env, [a, b], out, "--methods", "standardized", "--seeds", "1"), str(b), [out])


@case
def inspect_nnunet_with_an_ignore_label(env):
    d = make_nnunet(env.tmp, "Dataset016_Ignore", labels={"background": 0, "CSF": 1, "GM": 2, "WM": 3, "ignore": 4})
    return Built(_inspect(d), '"ignore" label', [])


@case
def predict_output_on_a_file_system_that_takes_no_files(env):
    """Once named a hidden staging path, and only after all the work."""
    target = Path("/sys/advnorm-test-output")
    if not Path("/sys/kernel").is_dir():
        pytest.skip("no sysfs here")
    return Built(_predict(env.run, [_image(Path(env.phantom[0]))], target), str(target), [target])


@case
def evaluate_output_on_a_file_system_that_takes_no_files(env):
    target = Path("/sys/advnorm-test-metrics.json")
    if not Path("/sys/kernel").is_dir():
        pytest.skip("no sysfs here")
    return Built(_evaluate(env.run, env.phantom, target), str(target), [target])


# ---------------------------------------------------------------- the test


def _state(path: Path):
    """Everything at ``path`` (files and folders, hidden ones too), or None if absent."""
    if not path.exists():
        return None
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return {
        str(p.relative_to(path)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>")
        for p in sorted(path.rglob("*"))
    }


def test_the_corpus_is_large_and_covers_every_verb():
    assert len(CASES) >= 25
    assert {name.split("-")[0] for name in CASES} == {"inspect", "train", "predict", "evaluate", "reproduce"}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_clean_error_line(name, tiny_phantom, tiny_run, tiny_config, tmp_path, capsys):
    built = CASES[name](Env(tmp_path, tiny_phantom, tiny_run, tiny_config))
    before = {p: _state(p) for p in built.outputs}
    capsys.readouterr()
    code = main(built.argv)
    err = capsys.readouterr().err
    assert code != 0
    assert code != 1, f"internal error instead of a clean one: {err}"
    lines = [
        line for line in err.strip("\n").splitlines() if not line.startswith("advnorm: warning: ")
    ]  # one line each
    assert len(lines) == 1, err
    assert lines[0].startswith("advnorm: error: "), err
    assert "Traceback" not in err
    assert built.named in lines[0], f"{built.named!r} not named in: {lines[0]}"
    for p, state in before.items():
        assert _state(p) == state, f"partial output: {p} changed"
