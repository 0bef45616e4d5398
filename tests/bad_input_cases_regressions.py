"""Bad-input cases of the corpus (tests/test_bad_input_corpus.py): the regressions of issue 15."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.bad_input_kit import (
    Built,
    _edit_run_config,
    _evaluate,
    _image,
    _inspect,
    _predict,
    _reproduce,
    _rewrite,
    _set_voxel,
    _split_case,
    _train,
    _train_with_config,
    _zscored,
    case,
)
from tests.fixtures import make_mrbrains13, make_nnunet

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
    return _train_with_config(
        env,
        "{config}: invalid configuration: loss.adv_lambda",
        text=env.config.read_text()[:-1] + ', "loss": {"adv_lambda": NaN}}',
    )


@case
def train_fractions_without_validation_and_test(env):
    return _train_with_config(env, "data.fractions", {"data.fractions": [1, 0, 0]})


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
    return _train_with_config(env, "profile must be one of", {"profile": "bogus"})


@case
def train_negative_seed(env):
    return Built(_train(env, env.phantom, env.tmp / "run", "--seed", "-1"), "seeds must be integers", [env.tmp / "run"])


@case
def train_huge_patches(env):
    return _train_with_config(env, "train.patch_size", {"train.patch_size": 512})


@case
def train_discriminator_without_blocks(env):
    return _train_with_config(env, "model.discriminator_blocks", {"model.discriminator_blocks": 0})


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
