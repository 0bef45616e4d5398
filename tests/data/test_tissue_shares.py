"""Tissue shares (``advnorm.data.tissue_shares``): hand-computed cases, and the plausibility rule's edges."""

from __future__ import annotations

import numpy as np
import pytest

from advnorm.data.tissue_shares import PLAUSIBLE_FACTOR, implausible_shares, share_ranges, tissue_shares

CLASSES = ("background", "CSF", "GM", "WM")
RANGES = {"CSF": [0.10, 0.20], "GM": [0.40, 0.50], "WM": [0.30, 0.40]}


@pytest.mark.parametrize(
    ("voxels", "expected"),
    [
        ([0, 0, 1, 2, 2, 3], [0.25, 0.50, 0.25]),  # background does not count
        ([1, 1, 1, 1], [1.0, 0.0, 0.0]),
        ([0, 0, 0], [0.0, 0.0, 0.0]),  # no tissue at all: zero shares, not a division by zero
        ([3, 2, 3, 1, 3, 2, 0, 0], [1 / 6, 2 / 6, 3 / 6]),
    ],
)
def test_tissue_shares_hand_computed(voxels, expected):
    label = np.asarray(voxels, dtype=np.uint8).reshape(-1, 1, 1)
    np.testing.assert_allclose(tissue_shares(label, len(CLASSES)), expected)


def test_share_ranges_are_per_class_extremes_over_subjects():
    shares = [np.array([0.1, 0.5, 0.4]), np.array([0.2, 0.45, 0.35]), np.array([0.15, 0.55, 0.3])]
    assert share_ranges(shares, CLASSES) == {"CSF": [0.1, 0.2], "GM": [0.45, 0.55], "WM": [0.3, 0.4]}
    assert share_ranges([], CLASSES) == {}


@pytest.mark.parametrize(
    ("shares", "flagged"),
    [
        ([0.15, 0.45, 0.40], ()),  # inside every range
        ([0.10 / PLAUSIBLE_FACTOR, 0.50, 0.45], ()),  # exactly at the widened edge: still plausible
        ([0.20 * PLAUSIBLE_FACTOR, 0.30, 0.30], ()),
        ([0.049, 0.50, 0.451], ("CSF",)),  # the infant T2 given to a T1 model lost most of its CSF
        ([0.0, 0.60, 0.40], ("CSF",)),
        ([0.45, 0.35, 0.20], ("CSF",)),  # more than twice the most CSF of any training subject
        ([0.0, 1.0, 0.0], ("CSF", "WM")),
    ],
)
def test_implausible_shares_flags_classes_outside_the_widened_range(shares, flagged):
    said = implausible_shares(np.asarray(shares), RANGES, CLASSES)
    if not flagged:
        assert said is None
        return
    assert said is not None and said.startswith("the segmentation is implausible")
    for name in CLASSES[1:]:
        assert (f"{name} is " in said) == (name in flagged), said


def test_a_class_absent_from_training_or_from_the_ranges_is_not_judged():
    assert implausible_shares(np.array([0.0, 0.6, 0.4]), {"CSF": [0.0, 0.0], "GM": [0.4, 0.5]}, CLASSES) is None
