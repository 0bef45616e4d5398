"""Real Jensen-Shannon divergences, and the paper's quantity shown not to be one."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon

from advnorm.evaluation.intensity_agreement import (
    generalized_jsd,
    jensen_shannon,
    mean_pairwise_jsd,
    paper_patch_jsd,
    per_class_jsd,
    shared_histograms,
    shared_range,
    tissue_overlap,
)


@pytest.mark.parametrize(
    ("p", "q", "expected"),
    [
        ([0.2, 0.3, 0.5], [0.2, 0.3, 0.5], 0.0),  # identical
        ([1, 0, 0, 0], [0, 0, 1, 1], 1.0),  # disjoint support
        ([1, 0], [0.5, 0.5], 0.8112781244591328 - 0.5),  # H(0.75, 0.25) - (H(p) + H(q)) / 2
        ([10, 0], [5, 5], 0.8112781244591328 - 0.5),  # counts are normalised first
    ],
)
def test_jensen_shannon_hand_cases(p, q, expected) -> None:
    assert jensen_shannon(np.array(p), np.array(q)) == pytest.approx(expected, abs=1e-12)


weights = st.lists(st.floats(0, 100, allow_nan=False), min_size=8, max_size=8).filter(lambda w: sum(w) > 1e-6)


@settings(max_examples=150, deadline=None)
@given(weights, weights)
def test_jensen_shannon_is_symmetric_bounded_and_matches_scipy(p, q) -> None:
    p, q = np.array(p), np.array(q)
    d = jensen_shannon(p, q)
    assert 0.0 <= d <= 1.0
    assert d == pytest.approx(jensen_shannon(q, p), abs=1e-12)
    assert d == pytest.approx(jensenshannon(p, q, base=2) ** 2, abs=1e-9)


@pytest.mark.parametrize(
    ("p", "q"),
    [([1, -1], [1, 1]), ([0, 0], [1, 1]), ([1, 2, 3], [1, 2]), ([1, np.nan], [1, 1])],
)
def test_jensen_shannon_rejects_invalid_histograms(p, q) -> None:
    with pytest.raises(ValueError):
        jensen_shannon(np.array(p, float), np.array(q, float))


def test_shared_histograms_share_bins_and_keep_all_mass() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(100, 10, 5000), rng.normal(300, 50, 3000)
    a[:3] = 1e6  # outliers are clipped into the last bin, not dropped
    hist, edges = shared_histograms([a, b], bins=64)
    assert hist.shape == (2, 64) and edges.shape == (65,)
    assert hist.sum(axis=1) == pytest.approx([1.0, 1.0])
    lo, hi = shared_range([a, b])
    assert (edges[0], edges[-1]) == pytest.approx((lo, hi))
    assert hist[0, -1] >= 3 / a.size

    hist, edges = shared_histograms([a, b], bins=4, value_range=(0.0, 400.0))
    assert edges == pytest.approx([0, 100, 200, 300, 400])


def test_shared_histograms_constant_data_and_errors() -> None:
    hist, _ = shared_histograms([np.full(10, 5.0), np.full(4, 5.0)], bins=3)
    assert hist.sum(axis=1) == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError):
        shared_histograms([np.array([1.0, 2.0]), np.array([np.nan])])
    with pytest.raises(ValueError):
        shared_histograms([np.array([1.0])], value_range=(2.0, 2.0))


def test_mean_pairwise_jsd_three_groups() -> None:
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 1, 4000)
    groups = [a, a.copy(), rng.uniform(10, 11, 4000)]  # two identical, one disjoint
    # pairs: (0,1) -> 0, (0,2) -> 1, (1,2) -> 1
    assert mean_pairwise_jsd(groups, bins=32) == pytest.approx(2 / 3)
    assert mean_pairwise_jsd(groups[:2], bins=32) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        mean_pairwise_jsd([a])


def test_generalized_jsd() -> None:
    p, q = np.array([1.0, 0.0]), np.array([0.5, 0.5])
    assert generalized_jsd(np.stack([p, q])) == pytest.approx(jensen_shannon(p, q))
    assert generalized_jsd(np.eye(4)) == pytest.approx(2.0)  # K disjoint -> log2 K


def test_per_class_jsd() -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, size=(20, 20, 20))  # no WM (label 3)
    img_a = np.where(labels == 1, 100.0, 0.0) + np.where(labels == 2, rng.normal(200, 5, labels.shape), 0.0)
    img_b = np.where(labels == 1, 100.0, 0.0) + np.where(labels == 2, rng.normal(260, 5, labels.shape), 0.0)
    out = per_class_jsd([img_a, img_b], [labels, labels], bins=64)
    assert set(out) == {"CSF", "GM", "WM", "all"}
    assert out["CSF"] == pytest.approx(0.0)  # identical CSF intensities
    assert out["GM"] > 0.9  # GM moved by 12 standard deviations
    assert 0.0 < out["all"] < out["GM"]
    assert math.isnan(out["WM"])
    with pytest.raises(ValueError):
        per_class_jsd([img_a], [labels[:-1]])


def _patches(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(rng.uniform(0, 500), 50, size=(32, 32, 32)).astype(np.float32) for _ in range(n)]


def test_paper_patch_jsd_is_not_a_jensen_shannon_divergence() -> None:
    patches = _patches(16)
    value = paper_patch_jsd(patches)
    assert value > math.log(2)  # no JSD (natural log) can exceed ln 2
    assert value <= math.log(256) + 1e-9  # for B = 16 it is a mean KL(p || uniform) over 256 bins
    same = paper_patch_jsd([patches[0]] * 16)
    assert same > math.log(2)  # identical inputs, still "divergent"


def test_paper_patch_jsd_matches_the_torch_arithmetic() -> None:
    """Re-derive the value the way the authors' helper did it in torch, and compare."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    patches = _patches(8, seed=5)
    p = torch.stack([F.softmax(torch.histc(torch.from_numpy(x).ravel(), bins=256), dim=0) for x in patches])
    log_mix = p.mean(dim=1, keepdim=True).log()  # mean over bins, [B, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kl_div warns about the broadcast it performs
        per_bin = [F.kl_div(log_mix, p[:, k].unsqueeze(0), reduction="sum") for k in range(p.size(1))]
    expected = torch.stack(per_bin).mean().item()
    assert paper_patch_jsd(patches) == pytest.approx(expected, rel=1e-4)


def _tissues(*values_per_class):
    """An image and label map with the given voxel values for classes 1, 2, 3."""
    img = np.concatenate([np.asarray(v, float) for v in values_per_class])
    lab = np.concatenate([np.full(len(v), c) for c, v in enumerate(values_per_class, start=1)])
    return img, lab


@pytest.mark.parametrize(
    "values, expected",
    [
        # disjoint intensities: separable
        (([0.0] * 10, [5.0] * 10, [10.0] * 10), {"CSF-GM": 0.0, "CSF-WM": 0.0, "GM-WM": 0.0}),
        # GM and WM the same values: indistinguishable
        (([0.0] * 10, [5.0] * 10, [5.0] * 10), {"CSF-GM": 0.0, "CSF-WM": 0.0, "GM-WM": 1.0}),
        # half of WM shares GM's bin: overlap min(1, 0.5) = 0.5
        (([0.0] * 10, [5.0] * 10, [5.0] * 5 + [10.0] * 5), {"CSF-GM": 0.0, "CSF-WM": 0.0, "GM-WM": 0.5}),
    ],
)
def test_tissue_overlap_hand_cases(values, expected) -> None:
    img, lab = _tissues(*values)
    got = tissue_overlap(img, lab)
    assert got == pytest.approx(expected)


def test_tissue_overlap_is_blind_to_an_affine_rescaling_and_nan_for_an_absent_tissue() -> None:
    rng = np.random.default_rng(0)
    img, lab = _tissues(rng.normal(0, 1, 500), rng.normal(1.5, 1, 500), rng.normal(4, 1, 500))
    a = tissue_overlap(img, lab)
    b = tissue_overlap(3 * img + 7, lab)  # the same separation on another scale
    assert a == pytest.approx(b)
    assert 0 < a["CSF-GM"] < 1 and a["CSF-WM"] < a["CSF-GM"]
    missing = tissue_overlap(img[lab != 3], lab[lab != 3])
    assert math.isnan(missing["GM-WM"]) and missing["CSF-GM"] == pytest.approx(a["CSF-GM"], abs=0.1)
