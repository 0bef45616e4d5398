"""Bad-input cases of the corpus (tests/test_bad_input_corpus.py): ``inspect`` and ``train``."""

from __future__ import annotations

import numpy as np

from tests.bad_input_kit import (
    Built,
    _garbage,
    _image,
    _inspect,
    _label,
    _rewrite,
    _set_voxel,
    _split_case,
    _train,
    _train_with_config,
    _truncate,
    case,
)
from tests.fixtures import make_iseg2017, make_nnunet

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
    return _train_with_config(env, "'train.epoch'", {"train.epoch": 3})


@case
def train_config_wrong_type(env):
    return _train_with_config(env, "'train.batch_size'", {"train.batch_size": "four"})


@case
def train_config_wrong_list_type(env):
    return _train_with_config(env, "'model.segmenter_widths'", {"model.segmenter_widths": 8})


@case
def train_config_out_of_range(env):
    return _train_with_config(env, "{config}: invalid configuration: train.batch_size", {"train.batch_size": 1})


@case
def train_config_bad_patch_size(env):
    return _train_with_config(env, "{config}: invalid configuration: train.patch_size", {"train.patch_size": 12})


@case
def train_epochs_out_of_range_on_the_command_line(env):
    out = env.tmp / "run"
    return Built(_train(env, env.phantom, out, "--epochs", "0"), "train.epochs", [out])


@case
def train_config_not_json(env):
    return _train_with_config(env, "{config}", text="{'train': {'epochs': 3}}")


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
