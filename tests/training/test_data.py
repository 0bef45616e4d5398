"""From opened datasets to what training consumes (``training/data.py``): split, inputs, patches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advnorm.data.layouts import open_domains
from advnorm.errors import AdvnormError
from advnorm.methods import METHOD_SPECS
from advnorm.models.transfer import PROFILE_POINTS
from advnorm.training.data import prepare
from advnorm.training.fixed_batches import validation_rows
from tests.conftest import tiny_cfg


@pytest.fixture(scope="module")
def datasets(tiny_phantom):
    return open_domains([str(p) for p in tiny_phantom])


def _prepare(datasets, method="adversarial", **over):
    cfg = tiny_cfg(method, **over)
    return prepare(datasets, cfg, METHOD_SPECS[method], log=lambda m: None)


def test_only_training_and_validation_subjects_are_loaded_and_test_subjects_never(datasets):
    data = _prepare(datasets)
    for ds in datasets:
        split = data.split[ds.name]
        loaded = {s.case_id for s in data.subjects if s.domain == ds.name}
        assert loaded == set(split["train"]) | set(split["val"]) and not loaded & set(split["test"])
    train_subjects = {data.subjects[i].case_id for i in np.unique(data.train.subjects)}
    val_subjects = {data.subjects[i].case_id for i in np.unique(data.val.subjects)}
    assert not train_subjects & val_subjects


@pytest.mark.parametrize("method,low,high", [("adversarial", 0.0, 1.5), ("standardized", -10, 10), ("nyul", -2, 3)])
def test_inputs_are_the_methods_transform(datasets, method, low, high):
    data = _prepare(datasets, method)
    for i, s in enumerate(data.subjects):
        x = data.input_volume(i)  # made on demand: training holds the raw image and the transform's parameters
        assert x.dtype == np.float32 and low <= x.min() and x.max() <= high and np.all(x[~s.mask] == 0)
    assert bool(data.input_state) == (method == "nyul")
    assert set(data.input_histograms) == {d.name for d in datasets}


def test_a_batch_has_the_shapes_and_types_the_trainer_expects(datasets):
    data = _prepare(datasets)
    rows = np.arange(4)
    x, y, m, z = data.batch(data.train, rows)
    p = data.train.patch_size
    assert tuple(x.shape) == (4, 1, p, p, p) and tuple(y.shape) == (4, p, p, p) and m.shape == x.shape
    assert str(y.dtype) == "torch.int64" and str(z.dtype) == "torch.int64" and set(z.tolist()) <= {0, 1}


def test_validation_rows_are_fixed_and_balanced_over_domains(datasets):
    data = _prepare(datasets)
    a, b = validation_rows(data, 8, seed=0), validation_rows(data, 8, seed=0)
    assert np.array_equal(a, b)
    doms = data.row_domains(data.val)[a]
    assert np.bincount(doms).tolist() == [4, 4]


def test_single_takes_one_domain_and_the_others_need_two(datasets):
    assert _prepare(datasets, "single").domains == [datasets[0].name]
    assert _prepare(datasets, "single", **{"data.train_domain": datasets[1].name}).domains == [datasets[1].name]
    with pytest.raises(AdvnormError, match="none of the domains"):
        _prepare(datasets, "single", **{"data.train_domain": "Elsewhere"})
    with pytest.raises(AdvnormError, match="at least two --data"):
        _prepare(datasets[:1], "adversarial")


@pytest.mark.parametrize("method", ["adversarial", "harmonized", "standardized"])
def test_a_left_out_domain_is_not_trained_on(datasets, method):
    kept = _prepare(datasets, method, **{"data.left_out_domain": datasets[0].name})
    assert kept.domains == [datasets[1].name]
    with pytest.raises(AdvnormError, match="left-out domain 'Elsewhere' is none of the domains"):
        _prepare(datasets, method, **{"data.left_out_domain": "Elsewhere"})
    with pytest.raises(AdvnormError, match="leaves no domain to train on"):
        _prepare(datasets[:1], method, **{"data.left_out_domain": datasets[0].name})


def test_every_patch_carries_its_images_intensity_profile(datasets):
    data = _prepare(datasets, "harmonized")
    assert data.subject_profiles.shape == (len(data.subjects), PROFILE_POINTS)
    assert bool((data.subject_profiles.diff(dim=1) >= 0).all())  # quantiles: non-decreasing
    rows = np.arange(min(6, len(data.train)))
    expected = data.subject_profiles[data.train.subjects[rows]]
    assert torch.equal(data.profiles(data.train, rows), expected)


def test_the_papers_patch_split_stratifies_by_the_class_at_each_centre(datasets):
    """``data.split = "patch"``: train and validation patches of the same subjects, each set holding every class at
    its centre in about the proportion of the whole index (the paper's stratified split)."""
    with pytest.warns(Warning):
        data = _prepare(datasets, **{"data.split": "patch"})

    def centre_classes(index):
        return np.array([data.labels[s][x, y, z] for s, x, y, z in index.entries])

    train, val = centre_classes(data.train), centre_classes(data.val)
    assert set(np.unique(data.train.subjects)) == set(np.unique(data.val.subjects))
    for c in (1, 2, 3):
        share_train, share_val = np.mean(train == c), np.mean(val == c)
        assert share_val > 0 and abs(share_train - share_val) < 0.05


def test_nyul_computes_each_subjects_landmarks_once_on_a_cold_cache(datasets, tmp_path, monkeypatch):
    """Fitting the standard scale and fitting each image's transform share one landmark computation per subject."""
    from advnorm.data import intensity
    from advnorm.training import data as training_data

    monkeypatch.setenv("ADVNORM_CACHE", str(tmp_path / "cold"))
    calls = []
    real = intensity.image_landmarks

    def counted(image, mask, percentiles):
        calls.append(image.shape)
        return real(image, mask, percentiles)

    monkeypatch.setattr(intensity, "image_landmarks", counted)
    monkeypatch.setattr(training_data, "image_landmarks", counted)
    data = _prepare(datasets, "nyul")
    assert len(calls) == len(data.subjects)
    calls.clear()
    _prepare(datasets, "nyul")  # warm: none
    assert calls == []
