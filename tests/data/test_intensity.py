"""Per-image input transforms (``advnorm.data.intensity``): laws each must obey, on synthetic images.

As intensity-normalization's tests/test_laws.py: properties over many random images (hypothesis),
not a few hand-picked values: Nyul maps each image's landmarks onto the standard ones, keeps the
intensity order, and does not care about the scanner's gain and offset; z-score and the rescale are
invariant to what they should be invariant to.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advnorm.config import SCALE_TOP
from advnorm.data.intensity import (
    NYUL_PERCENTILES,
    NYUL_RANGE,
    fit_nyul,
    input_histogram,
    nyul_image,
    raw_input_problem,
    scale_image,
    transform_image,
    zscore_image,
)

SHAPE = (16, 18, 14)


def _image(seed: int, gain: float = 1.0, offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = np.zeros(SHAPE, bool)
    mask[2:-2, 2:-2, 1:-1] = True
    tissue = rng.integers(0, 3, SHAPE)
    means = np.array([30.0, 70.0, 100.0]) * rng.uniform(0.7, 1.3, 3)
    img = means[tissue] + rng.normal(0, 10, SHAPE)  # overlapping tissues, as in MR: no empty gaps between them
    return np.where(mask, gain * img + offset, 0.0).astype(np.float32), mask


seeds = st.integers(0, 10_000)
gains = st.floats(0.05, 50.0)
offsets = st.floats(0.0, 500.0)


@settings(max_examples=30, deadline=None)
@given(st.lists(seeds, min_size=1, max_size=4, unique=True))
def test_nyul_standard_landmarks_are_increasing_and_span_the_range(ids):
    pairs = [_image(s) for s in ids]
    fitted = fit_nyul([p[0] for p in pairs], [p[1] for p in pairs])
    std = np.asarray(fitted["standard_landmarks"])
    assert fitted["percentiles"] == list(NYUL_PERCENTILES)
    assert np.all(np.diff(std) > 0)
    assert std[0] == pytest.approx(NYUL_RANGE[0]) and std[-1] == pytest.approx(NYUL_RANGE[1])


@settings(max_examples=30, deadline=None)
@given(seeds, seeds)
def test_nyul_maps_an_images_landmarks_onto_the_standard_ones(fit_seed, seed):
    fitted = fit_nyul(*[[a] for a in _image(fit_seed)])
    img, mask = _image(seed)
    out = nyul_image(img, mask, fitted)
    np.testing.assert_allclose(np.percentile(out[mask], NYUL_PERCENTILES), fitted["standard_landmarks"], atol=0.02)


@settings(max_examples=30, deadline=None)
@given(seeds, seeds, gains, offsets)
def test_nyul_ignores_the_scanners_gain_and_offset(fit_seed, seed, gain, offset):
    fitted = fit_nyul(*[[a] for a in _image(fit_seed)])
    a = nyul_image(*_image(seed), fitted)
    b = nyul_image(*_image(seed, gain, offset), fitted)
    np.testing.assert_allclose(a, b, atol=2e-3)


@settings(max_examples=30, deadline=None)
@given(seeds, seeds)
def test_nyul_keeps_the_intensity_order(fit_seed, seed):
    fitted = fit_nyul(*[[a] for a in _image(fit_seed)])
    img, mask = _image(seed)
    out = nyul_image(img, mask, fitted)
    order = np.argsort(img[mask], kind="stable")
    assert np.all(np.diff(out[mask][order]) >= -1e-6)
    assert np.all(out[~mask] == 0)


@settings(max_examples=30, deadline=None)
@given(seeds, gains)
def test_rescale_ignores_the_gain_and_stays_in_its_range(seed, gain):
    a = scale_image(*_image(seed))
    img, mask = _image(seed, gain)
    b = scale_image(img, mask)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert b.min() >= 0 and b.max() <= SCALE_TOP and np.all(b[~mask] == 0)
    assert np.percentile(b[mask], 99.5) == pytest.approx(1.0, abs=0.01)


@settings(max_examples=30, deadline=None)
@given(seeds, gains, offsets)
def test_zscore_is_zero_mean_unit_sd_and_ignores_gain_and_offset(seed, gain, offset):
    img, mask = _image(seed, gain, offset)
    z = zscore_image(img, mask)
    assert float(z[mask].mean()) == pytest.approx(0.0, abs=1e-4) and float(z[mask].std()) == pytest.approx(
        1.0, abs=1e-4
    )
    np.testing.assert_allclose(z, zscore_image(*_image(seed)), atol=1e-3)


@pytest.mark.parametrize("kind", ["scale", "zscore", "nyul"])
def test_histograms_are_distributions_on_the_transforms_range(kind):
    img, mask = _image(1)
    fitted = fit_nyul([img], [mask]) if kind == "nyul" else None
    x = transform_image(kind, img, mask, fitted=fitted)
    h = input_histogram(kind, x, mask)
    assert h.shape == (64,) and h.sum() == pytest.approx(1.0) and np.all(h >= 0)


@pytest.mark.parametrize(
    "kind,shift,refused",
    [
        ("scale", 0.0, False),
        ("scale", -80.0, True),
        ("zscore", -80.0, False),
        ("nyul", -80.0, False),
    ],
)
def test_only_the_rescale_refuses_negative_images(kind, shift, refused):
    img, mask = _image(2)
    problem = raw_input_problem(kind, np.where(mask, img + shift, 0), mask)
    assert (problem is not None) == refused


def test_nyul_needs_its_fitted_landmarks():
    img, mask = _image(3)
    with pytest.raises(ValueError, match="fitted"):
        transform_image("nyul", img, mask)


def test_nyul_agrees_with_torchio_histogram_standardization(tmp_path):
    """Same landmarks (deciles + 1st/99th percentile), same standard scale: the two implementations agree."""
    tio = pytest.importorskip("torchio", reason="TorchIO is a benchmark extra (pip install -e '.[bench]')")
    import nibabel as nib
    import torch

    pairs = [_image(s) for s in (11, 12, 13)]
    paths, masks = [], []
    for k, (img, mask) in enumerate(pairs):
        paths.append(tmp_path / f"i{k}.nii.gz")
        masks.append(tmp_path / f"m{k}.nii.gz")
        nib.save(nib.Nifti1Image(img, np.eye(4)), paths[-1])
        nib.save(nib.Nifti1Image(mask.astype(np.uint8), np.eye(4)), masks[-1])
    landmarks = tio.HistogramStandardization.train(paths, mask_path=masks, cutoff=(0.01, 0.99), output_path=None)
    ours = fit_nyul([p[0] for p in pairs], [p[1] for p in pairs])
    img, mask = _image(14)
    subject = tio.Subject(
        t1=tio.ScalarImage(tensor=torch.from_numpy(img)[None]),
        brain=tio.LabelMap(tensor=torch.from_numpy(mask.astype(np.uint8))[None]),
    )
    theirs = tio.HistogramStandardization({"t1": landmarks}, masking_method="brain")(subject)["t1"].data[0].numpy()
    mine = nyul_image(img, mask, ours)
    a, b = theirs[mask], mine[mask]
    corr = np.corrcoef(a, b)[0, 1]
    assert corr > 0.999
