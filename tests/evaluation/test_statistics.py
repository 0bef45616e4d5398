"""Paired differences and averages over seeds (``evaluation/statistics.py``, ``evaluation/results.py``)."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from advnorm.evaluation.results import Cell, averaged_rows, case_scores, dead_pairs, per_seed_rows
from advnorm.evaluation.statistics import mean_sd, paired_difference


@pytest.mark.parametrize(
    "a,b,mean,half",
    [
        # differences 1, 2, 3: mean 2, sd 1, t(0.975, 2) / sqrt(3)
        ({1: 2.0, 2: 3.0, 3: 4.0}, {1: 1.0, 2: 1.0, 3: 1.0}, 2.0, stats.t.ppf(0.975, 2) / math.sqrt(3)),
        # only the shared, finite keys count
        ({1: 1.0, 2: 1.0, 9: 5.0, 4: math.nan}, {1: 0.0, 2: 0.0, 3: 7.0, 4: 0.0}, 1.0, 0.0),
    ],
)
def test_paired_difference_hand_computed(a, b, mean, half):
    d = paired_difference(a, b)
    assert (
        d.mean == pytest.approx(mean)
        and d.high - d.mean == pytest.approx(half)
        and d.mean - d.low == pytest.approx(half)
    )


@pytest.mark.parametrize(
    "diffs,significant",
    [([0.1, 0.12, 0.09, 0.11], True), ([0.1, -0.1, 0.05, -0.04], False), ([-0.2, -0.25, -0.22], True)],
)
def test_significant_only_when_the_interval_excludes_zero(diffs, significant):
    a = {k: 0.5 + v for k, v in enumerate(diffs)}
    b = {k: 0.5 for k in range(len(diffs))}
    d = paired_difference(a, b)
    assert d.significant == significant
    assert ("not significant" in d.words("x", "y")) != significant


def test_one_pair_has_no_interval_and_no_pair_is_said_so():
    assert not paired_difference({1: 1.0}, {1: 0.0}).significant
    assert "no CI" in paired_difference({1: 1.0}, {1: 0.0}).words("a", "b")
    assert "share no test subject" in paired_difference({1: 1.0}, {2: 0.0}).words("a", "b")


@pytest.mark.parametrize(
    "values,mean,sd",
    [
        ([1.0, 3.0], 2.0, math.sqrt(2)),
        ([2.0], 2.0, math.nan),
        ([1.0, math.nan, 3.0], 2.0, math.sqrt(2)),
        ([], math.nan, math.nan),
    ],
)
def test_mean_sd(values, mean, sd):
    m, s = mean_sd(values)
    assert m == pytest.approx(mean) or (math.isnan(m) and math.isnan(mean))
    assert s == pytest.approx(sd) or (math.isnan(s) and math.isnan(sd))


def _evaluation(dice_a: float, dice_b: float) -> dict:
    per = {
        "A": {"dice": {t: {"mean": dice_a} for t in ("CSF", "GM", "WM")}},
        "B": {"dice": {t: {"mean": dice_b} for t in ("CSF", "GM", "WM")}},
    }
    cases = [
        {"domain": "A", "case": "a1", "dice": {"CSF": dice_a, "GM": dice_a, "WM": dice_a}},
        {"domain": "B", "case": "b1", "dice": {"CSF": dice_b, "GM": dice_b, "WM": dice_b}},
    ]
    return {"summary": {"per_domain": per}, "cases": cases}


def test_rows_average_over_seeds_and_keep_the_per_seed_values():
    cells = [Cell("adversarial", "adversarial", s, _evaluation(0.6 + 0.1 * s, 0.4)) for s in (0, 1)]
    cells += [Cell("single-A", "single", s, _evaluation(0.9, 0.2), train_domain="A") for s in (0, 1)]
    seed_rows = per_seed_rows(cells, ["A", "B"])
    assert len(seed_rows) == 8
    rows = {(r["method_id"], r["train"], r["test"]): r for r in averaged_rows(seed_rows)}
    adv = rows[("adversarial", "A + B", "A")]
    assert adv["mean"] == pytest.approx(0.65) and adv["mean_sd"] == pytest.approx(0.1 / math.sqrt(2))
    assert adv["experiment"] == "7" and adv["seeds"] == 2
    assert rows[("single", "A", "B")]["experiment"] == "3" and rows[("single", "A", "A")]["experiment"] == "1"
    assert case_scores(cells, "adversarial")[(1, "A", "a1")] == pytest.approx(0.7)
    assert case_scores(cells, "single") == {}  # single-domain models are not paired with multi-domain ones
    assert dead_pairs(seed_rows, 0.5) == [
        f"adversarial seed {s} B {t} 0.400" for s in (0, 1) for t in ("CSF", "GM", "WM")
    ]
