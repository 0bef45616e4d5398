"""`advnorm reproduce` on a tiny phantom: both tables, the report and its figures, and resumability."""

import csv

from advnorm.cli import main
from advnorm.evaluation.tables import TABLE1_COLUMNS, TABLE2_COLUMNS


def test_reproduce_writes_tables_report_and_figures(tiny_phantom, tiny_config, tmp_path, capsys):
    out = tmp_path / "repro"
    argv = ["reproduce", "--out", str(out), "--config", str(tiny_config), "--no-progress"]
    for d in tiny_phantom:
        argv += ["--data", str(d)]
    assert main(argv) == 0
    rows = list(csv.DictReader(open(out / "table1.csv")))
    assert list(rows[0]) == TABLE1_COLUMNS
    # two domains: the paper's numbering 1-7 plus the two extra baselines, one row per model and test domain
    assert sorted({r["experiment"] for r in rows}) == [str(i) for i in range(1, 10)]
    assert len(rows) == 2 * 2 + 5 * 2  # 2 single models x 2 test domains + 5 multi-domain models x 2
    for r in rows:
        assert 0.0 <= float(r["mean"]) <= 1.0
    t2 = list(csv.DictReader(open(out / "table2.csv")))
    assert list(t2[0]) == TABLE2_COLUMNS
    assert {r["method"] for r in t2} >= {"adversarial", "unconstrained", "standardized", "nyul"}
    report = (out / "report.md").read_text()
    for fig in ("fig3.png", "fig4.png", "curves_adversarial.png"):
        assert f"({fig})" in report and (out / fig).stat().st_size > 1000
    assert "The paper's Table 1" in report and "3.509" in report
    for run in ("single-InfantT1", "single-AdultT1Thick", "standardized", "unconstrained", "adversarial", "nyul", "augmented"):
        assert (out / "runs" / run / "evaluation.json").exists()
    # re-running skips every finished run
    capsys.readouterr()
    assert main(argv) == 0
    assert capsys.readouterr().out.count("finished earlier, skipped") == 7
