"""How much of the segmented tissue each class is: a check that a segmentation is plausible at all.

A model given an image it was not trained for (a T2 scan to a T1 model, a mislabelled file) still writes a
label map, and nothing in the map says it is wrong: on realistic-layout iSEG data, subject 9's infant T2 given to
a T1 model (`harmonized`) was segmented at Dice 0.00 / 0.48 / 0.10 (CSF / GM / WM), its histogram close enough
to the training domains' to pass the intensity check. What gives it away is the share of each tissue in the
segmented tissue: CSF was 5.9 % of it, where the training subjects had 14.9-17.2 %. Between brains these shares
vary by a few times at most (an infant against an atrophied adult), so training records each class's share in
every training subject, and inference warns when a prediction's share of a class lies more than
:data:`PLAUSIBLE_FACTOR` times outside the range the training subjects spanned. On the legitimate test subjects
of the 18 multi-domain runs of Table 1 (`docs/method.md`; `experiments/tissue_shares_check.py`) it flagged none of
54 predictions on realistic-layout data and 1 of 54 on the phantom, one that was poor in fact (`nyul`, seed 1,
T2Like: WM 13.0 % of the tissue against 30.1-31.2 %, WM Dice 0.57).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

PLAUSIBLE_FACTOR = 2.0
"""A class's predicted share is implausible below ``min / PLAUSIBLE_FACTOR`` or above ``max * PLAUSIBLE_FACTOR`` of
the training subjects' shares."""


def tissue_shares(label: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes - 1,): each foreground class's share of all foreground voxels of ``label`` (0 is background)."""
    counts = np.bincount(np.asarray(label).ravel(), minlength=n_classes)[1:n_classes].astype(np.float64)
    total = counts.sum()
    return counts / total if total > 0 else counts


def share_ranges(shares: Sequence[np.ndarray], classes: Sequence[str]) -> dict[str, list[float]]:
    """Per foreground class (``classes[1:]``), the [lowest, highest] share over the subjects' ``shares`` (empty
    without subjects)."""
    if len(shares) == 0:
        return {}
    table = np.asarray(shares, dtype=np.float64).reshape(len(shares), len(classes) - 1)
    return {
        name: [round(float(table[:, i].min()), 6), round(float(table[:, i].max()), 6)]
        for i, name in enumerate(classes[1:])
    }


def implausible_shares(shares: np.ndarray, ranges: Mapping[str, Sequence[float]], classes: Sequence[str]) -> str | None:
    """What is implausible about a segmentation whose foreground classes have ``shares``, against the training
    subjects' ``ranges`` (:func:`share_ranges`); None when every class lies within the range widened by
    :data:`PLAUSIBLE_FACTOR` either way. A class the training subjects lacked entirely is not judged."""
    said = []
    for name, share in zip(classes[1:], shares, strict=True):
        if name not in ranges:
            continue
        low, high = (float(v) for v in ranges[name])
        if high <= 0:
            continue
        if share < low / PLAUSIBLE_FACTOR or share > high * PLAUSIBLE_FACTOR:
            said.append(f"{name} is {100 * share:.1f} % ({100 * low:.1f}-{100 * high:.1f} % in the training subjects)")
    if not said:
        return None
    return (
        "the segmentation is implausible, as shares of the segmented tissue: "
        + "; ".join(said)
        + ". Check that the image is the modality the model was trained on (e.g. T1, not T2); if it is, the model "
        "segments this image poorly"
    )
