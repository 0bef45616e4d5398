"""``advnorm inspect``'s report: per domain and per case, JSON-serialisable, rendered as tables."""

from __future__ import annotations

import json

import numpy as np
import pytest

from advnorm.data.inspect import STAT_NAMES, describe, format_text
from advnorm.data.layouts import open_domains
from advnorm.errors import AdvnormError
from tests.fixtures import make_iseg2017, make_mrbrains13, make_nnunet


@pytest.fixture(scope="module")
def report_and_datasets(tmp_path_factory):
    base = tmp_path_factory.mktemp("inspect")
    specs = [
        str(make_iseg2017(base / "iseg", n_labelled=2, n_unlabelled=1)),
        str(make_mrbrains13(base / "m13", n=1, n_test=1)),
        str(make_nnunet(base, n=2)),
    ]
    datasets = open_domains(specs)
    return describe(datasets), datasets


def test_report_is_json_serialisable(report_and_datasets):
    report, _ = report_and_datasets
    assert json.loads(json.dumps(report)) == report
    assert report["n_errors"] == 0


# domain, layout, labelled, unlabelled, source shape, source spacing
DOMAINS = [
    ("iseg2017", "iseg2017", 2, 1, [24, 28, 32], [1.0, 1.0, 1.0]),
    ("mrbrains13", "mrbrains13", 1, 1, [36, 36, 10], [0.958, 0.958, 3.0]),
    ("Test", "nnunet", 2, 0, [26, 30, 28], [1.0, 1.0, 1.0]),
]


@pytest.mark.parametrize(
    "index,name,layout,n_lab,n_unlab,shape,spacing",
    [(i, *d) for i, d in enumerate(DOMAINS)],
    ids=[d[0] for d in DOMAINS],
)
def test_domain_entries(report_and_datasets, index, name, layout, n_lab, n_unlab, shape, spacing):
    report, datasets = report_and_datasets
    dom = report["domains"][index]
    assert (dom["name"], dom["layout"], dom["n_labelled"], dom["n_unlabelled"]) == (name, layout, n_lab, n_unlab)
    assert dom["root"] == str(datasets[index].root)
    assert [c["case_id"] for c in dom["cases"]] == [c.case_id for c in datasets[index].cases]
    for case, ref in zip(dom["cases"], datasets[index].cases, strict=True):
        assert case["source_shape"] == shape
        assert np.allclose(case["source_spacing"], spacing, atol=1e-3)
        assert case["working_spacing"] == [1.0, 1.0, 1.0] and len(case["working_shape"]) == 3
        values = [case["intensity"][k] for k in STAT_NAMES]
        assert values == sorted(values) and values[0] > 0  # inside the brain only: no background zeros
        assert case["labelled"] == (ref.label is not None)
        if ref.label is None:
            assert case["class_voxels"] is None
        else:
            counts = case["class_voxels"]
            assert list(counts) == ["background", "CSF", "GM", "WM"]
            assert sum(counts.values()) == case["brain_voxels"]
            assert min(counts["CSF"], counts["GM"], counts["WM"]) > 0


def test_class_counts_match_loaded_subject(report_and_datasets):
    report, datasets = report_and_datasets
    subject = datasets[0].load_case(datasets[0].cases[0])
    counts = report["domains"][0]["cases"][0]["class_voxels"]
    assert [counts[k] for k in ("background", "CSF", "GM", "WM")] == np.bincount(
        subject.label[subject.mask], minlength=4
    ).tolist()
    assert report["domains"][0]["cases"][0]["intensity"]["max"] == pytest.approx(
        float(subject.image[subject.mask].max()), abs=1e-3
    )


def test_format_text_renders_a_table_per_domain(report_and_datasets):
    report, datasets = report_and_datasets
    text = format_text(report)
    for ds in datasets:
        assert ds.name in text and str(ds.root) in text
        for case in ds.cases:
            assert case.case_id in text
    for column in ("case", "source shape", "working", "median", "p99", "CSF", "GM", "WM"):
        assert column in text
    assert "36x36x10" in text and "0.958x0.958x3" in text
    assert "2 labelled, 1 unlabelled" in text


def test_unreadable_case_is_reported_not_fatal(tmp_path):
    root = make_iseg2017(tmp_path / "iseg", n_labelled=2, n_unlabelled=0)
    raw = (root / "subject-2-T1.img").read_bytes()
    (root / "subject-2-T1.img").write_bytes(raw[: len(raw) // 3])
    datasets = open_domains([str(root)])
    report = describe(datasets)
    assert report["n_errors"] == 1
    bad = report["domains"][0]["cases"][1]
    assert "subject-2-T1" in bad["error"]
    text = format_text(report)
    assert "subject-2-T1" in text and "1 case(s) could not be read" in text
    with pytest.raises(AdvnormError):
        describe(datasets, keep_going=False)
