"""Every figure writes a PNG; tables have exactly their documented columns."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from advnorm.evaluation import figures
from advnorm.evaluation.tables import (
    PAPER_COLUMNS,
    PAPER_TABLE1,
    PAPER_TABLE2,
    TABLE1_COLUMNS,
    TABLE2_COLUMNS,
    markdown_table,
    with_mean,
    write_csv,
)
from advnorm.training.log import plot_learning_curves
from tests.conftest import read_csv_rows

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _phantom(shape=(40, 48, 36), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).astype(float)
    centre = (np.array(shape, float) - 1)[:, None, None, None] / 2
    r = np.sqrt(((grid - centre) ** 2).sum(axis=0))
    labels = np.zeros(shape, np.uint8)
    labels[r < 16], labels[r < 12], labels[r < 7] = 1, 2, 3
    image = np.choose(labels, [0.0, 300.0, 600.0, 800.0]) + rng.normal(0, 20, shape) * (labels > 0)
    return image, labels


def _assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_fig3(tmp_path: Path) -> None:
    img_a, _ = _phantom(seed=1)
    img_b, _ = _phantom(seed=2)
    rows = [("iSEG", img_a, img_a / 800.0), ("MRBrainS", 3 * img_b, np.sqrt(img_b))]
    _assert_png(figures.fig3_normalization(rows, tmp_path / "fig3.png"))


def test_fig4(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    before = {
        d: {t: rng.normal(mu * s, 30 * s, 2000) for t, mu in zip(("CSF", "GM", "WM"), (300, 600, 800), strict=True)}
        for d, s in (("iSEG", 1.0), ("MRBrainS", 4.0))
    }
    after = {d: {t: v / v.max() for t, v in tissues.items()} for d, tissues in before.items()}
    del after["MRBrainS"]["CSF"]  # a missing tissue in one domain is fine
    _assert_png(figures.fig4_histograms(before, after, tmp_path / "sub" / "fig4.png"))


def test_segmentation_overlay(tmp_path: Path) -> None:
    image, labels = _phantom()
    pred = np.roll(labels, 2, axis=0)
    _assert_png(figures.segmentation_overlay(image, labels, pred, tmp_path / "overlay.png", "case 1"))


@pytest.mark.parametrize(
    "log_text",
    [
        "epoch,loss_seg,loss_dis,loss_adv,loss_mse,lr_G,val_dice_mean,d_acc_real,d_acc_fake\n"
        "0,0.9,1.1,0.7,0.05,1e-5,0.2,0.5,0.5\n1,0.7,1.0,0.8,,1e-5,0.4,0.6,0.4\n2,0.5,0.9,0.9,,1e-6,,0.7,0.3\n",
        "epoch,loss_seg,val_dice_mean,note\n0,0.9,,start\n1,0.8,0.3,\n",  # no d_acc, a text column
        "epoch\n0\n1\n",  # nothing to plot
    ],
)
def test_learning_curves(tmp_path: Path, log_text: str) -> None:
    log = tmp_path / "log.csv"
    log.write_text(log_text)
    _assert_png(plot_learning_curves(log, tmp_path / "curves" / "progress.png"))


def test_write_csv_writes_exactly_the_columns(tmp_path: Path) -> None:
    rows = [
        {
            "experiment": "7",
            "method": "Adversarially normalized",
            "method_id": "adversarial",
            "train": "A + B",
            "test": "A",
            "CSF": 0.9,
            "GM": 0.8,
            "WM": np.float64(0.7),
            "mean": 0.8,
            "CSF_sd": math.nan,
            "extra": "x",
        },
    ]
    out = write_csv(rows, TABLE1_COLUMNS, tmp_path / "table1.csv")
    header = out.read_text().splitlines()[0].split(",")
    assert header == TABLE1_COLUMNS
    assert header[:3] == ["experiment", "method", "method_id"] and "mean_sd" in header
    got = read_csv_rows(out)
    assert float(got[0]["WM"]) == pytest.approx(0.7) and got[0]["CSF_sd"] == "" and "extra" not in got[0]
    assert TABLE2_COLUMNS[:4] == ["method", "tissue", "jsd_input", "jsd_normalized"]


def test_markdown_table_three_decimals() -> None:
    md = markdown_table([{"a": "x|y", "b": 0.12345, "c": np.float32(2.0)}, {"a": "z", "b": math.nan}], ["a", "b", "c"])
    lines = md.strip().splitlines()
    assert lines[0] == "| a | b | c |"
    assert lines[1] == "| --- | --- | --- |"
    assert lines[2] == "| x\\|y | 0.123 | 2.000 |"
    assert lines[3] == "| z | nan |  |"


def test_paper_constants() -> None:
    assert [r["experiment"] for r in PAPER_TABLE1] == list(range(1, 8))
    assert PAPER_TABLE1[6] | {} == {
        "experiment": 7,
        "method": "Adversarially normalized (ours)",
        "train": "iSEG + MRBrainS",
        "test": "iSEG + MRBrainS",
        "CSF": 0.919,
        "GM": 0.902,
        "WM": 0.905,
    }
    assert PAPER_TABLE1[3]["GM"] == 0.082
    assert PAPER_TABLE2 == {"input": 3.509, "normalized": 3.504}
    assert with_mean(PAPER_TABLE1[0])["mean"] == pytest.approx((0.906 + 0.868 + 0.863) / 3)
    md = markdown_table([with_mean(r) for r in PAPER_TABLE1], PAPER_COLUMNS)
    assert "| 7 | Adversarially normalized (ours) |" in md and "0.909" in md


@pytest.mark.parametrize(
    "before, after, words",
    [
        (0.20, 0.10, "reduces it by 50%"),
        (0.20, 0.21, "leaves it essentially unchanged (+5%)"),
        (0.20, 0.30, "increases it by 50%"),
    ],
)
def test_intensity_verdict_says_what_g_did(before: float, after: float, words: str) -> None:
    from advnorm.evaluation.report import intensity_verdict

    rows = [
        {"method": "adversarial", "tissue": "all", "jsd_input": before, "jsd_normalized": after},
        {"method": "adversarial", "tissue": "CSF", "jsd_input": 0.5, "jsd_normalized": 0.0},
        {"method": "nyul", "tissue": "all", "jsd_input": before, "jsd_normalized": 0.0},
    ]
    text = intensity_verdict(rows)
    assert words in text and text.startswith("Adversarially normalized") and "Nyul" not in text
    assert intensity_verdict([]) == ""


def _row(method_id: str, train: str, test: str, mean: float) -> dict:
    return {"method_id": method_id, "train": train, "test": test, "mean": mean}


@pytest.mark.parametrize(
    "rows, present, absent",
    [
        # every part there: the focus, cross-testing and the best other multi-domain method
        (
            [
                _row("harmonized", "A + B", "A", 0.8),
                _row("single", "A", "B", 0.3),
                _row("standardized", "A + B", "A", 0.9),
            ],
            ["harmonized (advnorm) 0.800", "another domain 0.300", "(standardized) 0.900", "by +0.500", "it is -0.100"],
            ["nan"],
        ),
        # no single runs (reproduce --methods without single): no cross-testing clause, never "nan"
        (
            [_row("harmonized", "A + B", "A", 0.8), _row("standardized", "A + B", "A", 0.9)],
            ["(standardized) 0.900", "it is -0.100"],
            ["nan", "another domain", "cross-domain"],
        ),
        # the focus alone: its mean and nothing to compare
        ([_row("harmonized", "A + B", "A", 0.8)], ["harmonized (advnorm) 0.800."], ["nan", "best other"]),
    ],
)
def test_verdict_names_only_what_was_run(rows: list[dict], present: list[str], absent: list[str]) -> None:
    from advnorm.evaluation.report import verdict

    text = verdict(rows, "harmonized")
    assert all(p in text for p in present), text
    assert not any(a in text for a in absent), text


def test_verdict_is_empty_without_the_method() -> None:
    from advnorm.evaluation.report import verdict

    assert verdict([_row("standardized", "A + B", "A", 0.9)], "harmonized") == ""


def test_paired_comparisons_list_each_pair_once():
    """Two focus methods (adversarial, harmonized): their pair once, each against every other method once."""
    from advnorm.evaluation.report import _comparisons
    from advnorm.evaluation.results import Cell

    def cell(method: str, seed: int, dice: float) -> Cell:
        case = {"domain": "A", "case": "s1", "dice": {"CSF": dice, "GM": dice, "WM": dice}}
        return Cell(method, method, seed, {"cases": [case]})

    cells = [
        cell(m, s, v + 0.01 * s) for m, v in (("adversarial", 0.6), ("harmonized", 0.8), ("nyul", 0.7)) for s in (0, 1)
    ]
    lines = [line for line in _comparisons(cells, ("adversarial", "harmonized")) if line.startswith("- ")]
    assert len(lines) == 3, lines  # adversarial-harmonized, adversarial-nyul, harmonized-nyul
    assert sum("harmonized" in line and "adversarial" in line for line in lines) == 1
    assert "- harmonized scores 0.100 higher than nyul" in "\n".join(lines)
