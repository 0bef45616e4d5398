"""Dice, HD95 and ASD on hand-computed cases, a brute-force reference and MONAI."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from advnorm.evaluation.metrics import (
    case_metrics,
    dice_per_class,
    summarize,
    surface_distances,
)
from advnorm.labels import TISSUES


def _line(start: int, stop: int, label: int = 1, shape=(10, 3, 3)) -> np.ndarray:
    vol = np.zeros(shape, dtype=np.uint8)
    vol[start:stop, 1, 1] = label
    return vol


@pytest.mark.parametrize(
    ("pred", "target", "expected"),
    [
        (_line(0, 4), _line(0, 4), 1.0),
        (_line(0, 4), _line(2, 6), 2 * 2 / (4 + 4)),
        (_line(0, 2), _line(0, 6), 2 * 2 / (2 + 6)),
        (_line(0, 3), _line(5, 8), 0.0),
        (_line(0, 4), np.zeros((10, 3, 3), np.uint8), 0.0),  # one empty
        (np.zeros((10, 3, 3), np.uint8), _line(0, 4), 0.0),
        (np.zeros((10, 3, 3), np.uint8), np.zeros((10, 3, 3), np.uint8), 1.0),  # both empty
    ],
)
def test_dice_hand_cases(pred: np.ndarray, target: np.ndarray, expected: float) -> None:
    assert dice_per_class(pred, target, classes=(1,))["CSF"] == pytest.approx(expected)


def test_dice_per_class_keys_and_independence() -> None:
    pred = _line(0, 4, 1) + _line(6, 10, 3)
    target = _line(0, 4, 1) + _line(8, 10, 3)
    d = dice_per_class(pred, target)
    assert list(d) == list(TISSUES)
    assert d == pytest.approx({"CSF": 1.0, "GM": 1.0, "WM": 2 * 2 / (4 + 2)})


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        dice_per_class(np.zeros((3, 3, 3)), np.zeros((3, 3, 4)))


def _planes(offset: int, shape=(12, 6, 5)) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    a[3], b[3 + offset] = 1, 1
    return a, b


@pytest.mark.parametrize(
    ("spacing", "expected_mm"),
    [((1.0, 1.0, 1.0), 2.0), ((2.0, 1.0, 1.0), 4.0), ((1.0, 3.0, 0.5), 2.0), ((0.5, 1.0, 1.0), 1.0)],
)
def test_parallel_planes_two_voxels_apart(spacing: tuple[float, float, float], expected_mm: float) -> None:
    a, b = _planes(2)
    d = surface_distances(a, b, spacing, classes=(1,))["CSF"]
    assert d["hd95"] == pytest.approx(expected_mm)
    assert d["asd"] == pytest.approx(expected_mm)


def _brute_force(a: np.ndarray, b: np.ndarray, spacing) -> tuple[float, float]:
    """Reference: surface = voxels with a 6-neighbour outside the mask; all-pairs distances."""

    def surface_points(mask: np.ndarray) -> np.ndarray:
        padded = np.pad(mask, 1)
        inner = padded[1:-1, 1:-1, 1:-1].copy()
        for axis in range(3):
            for step in (-1, 1):
                inner &= np.roll(padded, step, axis=axis)[1:-1, 1:-1, 1:-1]
        return np.argwhere(mask & ~inner) * np.asarray(spacing, float)

    pa, pb = surface_points(a.astype(bool)), surface_points(b.astype(bool))
    dist = cdist(pa, pb)
    d_ab, d_ba = dist.min(axis=1), dist.min(axis=0)
    hd95 = max(np.percentile(d_ab, 95), np.percentile(d_ba, 95))
    return float(hd95), float(np.concatenate([d_ab, d_ba]).mean())


def _cube(corner: tuple[int, int, int], size: int = 4, shape=(14, 10, 10)) -> np.ndarray:
    vol = np.zeros(shape, np.uint8)
    x, y, z = corner
    vol[x : x + size, y : y + size, z : z + size] = 1
    return vol


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 1.0, 1.0), (0.958, 0.958, 3.0)])
@pytest.mark.parametrize(
    ("a", "b"),
    [
        (_cube((2, 3, 3)), _cube((4, 3, 3))),  # offset by 2 voxels along axis 0
        (_cube((0, 0, 0)), _cube((9, 5, 6), size=5)),  # touching the volume border, far apart
        (_cube((2, 2, 2), size=6), _cube((4, 4, 4), size=2)),  # nested
    ],
)
def test_cubes_match_brute_force(a: np.ndarray, b: np.ndarray, spacing) -> None:
    d = surface_distances(a, b, spacing, classes=(1,))["CSF"]
    hd95, asd = _brute_force(a, b, spacing)
    assert d["hd95"] == pytest.approx(hd95)
    assert d["asd"] == pytest.approx(asd)


def test_cubes_offset_two_voxels_known_values() -> None:
    # The two 4-voxel-wide cubes overlap by 2 voxels along axis 0. The far x-faces are 2 voxels
    # from the other cube's nearest x-face, so the largest distance is 2 voxels: 2 mm at
    # spacing 1 and 4 mm when axis 0 voxels are 2 mm long.
    a, b = _cube((2, 3, 3)), _cube((4, 3, 3))
    assert surface_distances(a, b, (1, 1, 1), classes=(1,))["CSF"]["hd95"] == pytest.approx(2.0)
    assert surface_distances(a, b, (2, 1, 1), classes=(1,))["CSF"]["hd95"] == pytest.approx(4.0)


def test_identical_masks_have_zero_distance() -> None:
    a = _cube((2, 2, 2), size=5)
    assert surface_distances(a, a, (1.0, 2.0, 3.0), classes=(1,))["CSF"] == {"hd95": 0.0, "asd": 0.0}


@pytest.mark.parametrize(
    ("pred", "target"),
    [(_cube((2, 2, 2)), np.zeros((14, 10, 10), np.uint8)), (np.zeros((14, 10, 10), np.uint8),) * 2],
)
def test_empty_class_gives_nan(pred: np.ndarray, target: np.ndarray) -> None:
    d = surface_distances(pred, target, (1, 1, 1), classes=(1,))["CSF"]
    assert math.isnan(d["hd95"]) and math.isnan(d["asd"])


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.958, 0.958, 3.0)])
def test_agrees_with_monai(spacing) -> None:
    torch = pytest.importorskip("torch")
    monai_metrics = pytest.importorskip("monai.metrics")
    from scipy import ndimage

    rng = np.random.default_rng(3)
    a = ndimage.binary_opening(rng.random((18, 20, 16)) > 0.45).astype(np.uint8)
    b = ndimage.binary_opening(rng.random((18, 20, 16)) > 0.45).astype(np.uint8)

    def onehot(x: np.ndarray):
        return torch.from_numpy(np.stack([x == 0, x == 1]))[None].float()

    hd = monai_metrics.compute_hausdorff_distance(onehot(a), onehot(b), percentile=95, spacing=spacing)
    asd = monai_metrics.compute_average_surface_distance(onehot(a), onehot(b), symmetric=True, spacing=spacing)
    ours = surface_distances(a, b, spacing, classes=(1,))["CSF"]
    assert ours["hd95"] == pytest.approx(hd.item(), rel=1e-5)
    assert ours["asd"] == pytest.approx(asd.item(), rel=1e-5)


def test_case_metrics_and_summarize() -> None:
    target = _cube((2, 2, 2), size=3) + 2 * _cube((7, 2, 2), size=3)
    pred_a = target.copy()
    pred_b = _cube((3, 2, 2), size=3)  # CSF shifted by one voxel, no GM at all
    cases = [case_metrics(pred_a, target, (1, 1, 1)), case_metrics(pred_b, target, (1, 1, 1))]
    cases[0]["case"] = "subject-1"  # non-metric keys are ignored
    assert set(cases[1]) == {"dice", "hd95", "asd"}
    assert cases[1]["dice"]["GM"] == 0.0 and cases[1]["dice"]["WM"] == 1.0  # WM absent in both
    assert math.isnan(cases[1]["hd95"]["GM"]) and math.isnan(cases[1]["hd95"]["WM"])

    s = summarize(cases)
    dice_csf_b = 2 * 18 / 54
    assert s["dice"]["CSF"]["mean"] == pytest.approx((1.0 + dice_csf_b) / 2)
    assert s["dice"]["CSF"]["std"] == pytest.approx(np.std([1.0, dice_csf_b]))
    assert s["dice"]["mean"]["mean"] == pytest.approx((1.0 + (dice_csf_b + 0.0 + 1.0) / 3) / 2)
    assert s["hd95"]["GM"] == {"mean": 0.0, "std": 0.0, "n": 1}  # nan of case b skipped
    assert s["hd95"]["WM"]["n"] == 0 and math.isnan(s["hd95"]["WM"]["mean"])


def test_summarize_needs_cases() -> None:
    with pytest.raises(ValueError):
        summarize([])
