"""Any label set (issue 13): the classes come from the data; Dice weights, metrics, tables and outputs follow.

A phantom whose GM is split into two labels by hemisphere (five classes) trains, evaluates and predicts
with those five classes; the paper's Table-1 path keeps CSF/GM/WM.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from advnorm.cli import main
from advnorm.data.layouts import open_domains
from tests.conftest import TINY_CONFIG, write_config

pytestmark = pytest.mark.slow  # trains networks

FIVE = {"background": 0, "CSF": 1, "GM": 2, "WM": 3, "GM_left": 4}


def _five_labels(src: Path, dest: Path) -> Path:
    """A copy of a phantom domain whose left-hemisphere GM is a label of its own."""
    shutil.copytree(src, dest)
    for lab in sorted((dest / "labelsTr").glob("*.nii.gz")):
        img = nib.load(lab)
        a = np.asarray(img.dataobj).copy()
        left = np.zeros(a.shape, bool)
        left[: a.shape[0] // 2] = True
        a[(a == 2) & left] = 4
        nib.save(nib.Nifti1Image(a.astype(np.uint8), img.affine), lab)
    meta = json.loads((dest / "dataset.json").read_text())
    (dest / "dataset.json").write_text(json.dumps({**meta, "labels": FIVE}))
    return dest


@pytest.fixture(scope="module")
def five(tiny_phantom, tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("five")
    return [_five_labels(Path(p), root / Path(p).name) for p in tiny_phantom]


def test_a_five_label_dataset_trains_evaluates_and_predicts_with_its_own_classes(five, tmp_path):
    assert [d.classes for d in open_domains([str(p) for p in five])] == [tuple(FIVE)] * 2
    config = write_config(tmp_path / "c.json", {**TINY_CONFIG, "train": {**TINY_CONFIG["train"], "epochs": 2}})
    out = tmp_path / "repro"
    argv = [
        "reproduce",
        "--out",
        str(out),
        "--config",
        str(config),
        "--no-progress",
        "--seeds",
        "1",
        "--methods",
        "standardized,adversarial",
    ]
    assert main(argv + [a for p in five for a in ("--data", str(p))]) == 0
    run = json.loads((out / "runs" / "adversarial" / "seed0" / "config.json").read_text())
    assert run["run"]["classes"] == list(FIVE) and len(run["run"]["dice_weights"]) == 5
    with open(out / "table1.csv") as fh:
        header = next(csv.reader(fh))
    assert header[5:10] == ["CSF", "GM", "WM", "GM_left", "mean"] and "GM_left_sd" in header
    evaluation = json.loads((out / "runs" / "adversarial" / "seed0" / "evaluation.json").read_text())
    assert set(evaluation["cases"][0]["dice"]) == {"CSF", "GM", "WM", "GM_left"}
    assert "GM_left" in (out / "report.md").read_text()
    pred = tmp_path / "pred"
    image = sorted((five[0] / "imagesTr").glob("*.nii.gz"))[0]
    assert (
        main(
            [
                "predict",
                "--model",
                str(out / "runs" / "adversarial" / "seed0"),
                "-i",
                str(image),
                "-o",
                str(pred),
                "--no-progress",
            ]
        )
        == 0
    )
    seg = np.asarray(nib.load(next(pred.glob("*_seg.nii.gz"))).dataobj)
    assert set(np.unique(seg)) <= {0, 1, 2, 3, 4}


def test_a_five_label_domain_beside_a_tissue_domain_is_read_as_tissues(five, tiny_phantom):
    from advnorm.data.layouts import read_alike

    both = read_alike(open_domains([str(five[0]), str(tiny_phantom[1])]))
    assert [d.classes for d in both] == [("background", "CSF", "GM", "WM")] * 2
    s = both[0].load_case(both[0].labelled()[0])
    assert set(np.unique(s.label)) <= {0, 1, 2, 3}  # GM_left read as background in the tissue reading
