"""`advnorm reproduce` on a tiny phantom: both tables, the report and its figures, and resumability."""

import json
import shutil
from pathlib import Path

import pytest

from advnorm.cli import main
from advnorm.evaluation.tables import PER_SEED_COLUMNS, TABLE1_COLUMNS, TABLE2_COLUMNS
from advnorm.methods import METHODS
from tests.conftest import read_csv_rows

pytestmark = pytest.mark.slow  # trains networks


def test_reproduce_writes_tables_report_and_figures(tiny_phantom, tiny_config, tmp_path, capsys):
    out = tmp_path / "repro"
    argv = ["reproduce", "--out", str(out), "--config", str(tiny_config), "--no-progress", "--seeds", "2"]
    for d in tiny_phantom:
        argv += ["--data", str(d)]
    assert main(argv) == 0
    rows = read_csv_rows(out / "table1.csv")
    assert list(rows[0]) == TABLE1_COLUMNS
    # two domains: the paper's numbering 1-7, the two extra baselines and harmonized; one row per model and test domain
    assert sorted({r["experiment"] for r in rows}, key=int) == [str(i) for i in range(1, 11)]
    assert len(rows) == 2 * 2 + 6 * 2  # 2 single models x 2 test domains + 6 multi-domain models x 2
    assert {r["method_id"] for r in rows} == set(METHODS) and {r["seeds"] for r in rows} == {"2"}
    per_seed = read_csv_rows(out / "table1_per_seed.csv")
    assert list(per_seed[0]) == PER_SEED_COLUMNS and len(per_seed) == 2 * len(rows)
    for r in rows:  # the table is the mean of the per-seed rows, and sd their spread
        mine = [
            float(q["mean"])
            for q in per_seed
            if (q["method_id"], q["train"], q["test"]) == (r["method_id"], r["train"], r["test"])
        ]
        assert float(r["mean"]) == pytest.approx(sum(mine) / 2) and float(r["mean_sd"]) == pytest.approx(
            abs(mine[0] - mine[1]) / 2**0.5
        )
        assert 0.0 <= float(r["mean"]) <= 1.0
    t2 = read_csv_rows(out / "table2.csv")
    assert list(t2[0]) == TABLE2_COLUMNS
    assert {r["method"] for r in t2} >= {"adversarial", "unconstrained", "standardized", "nyul", "harmonized"}
    report = (out / "report.md").read_text()
    for fig in ("fig3.png", "fig4.png", "curves_adversarial.png", "tissue_overlap.png", "fig4_harmonized.png"):
        assert f"({fig})" in report and (out / fig).stat().st_size > 1000
    assert "The paper's Table 1" in report and "3.509" in report and " ± " in report
    shown = [line for line in report.splitlines() if line.startswith("![")]
    assert len(shown) == len(set(shown)), "a figure is listed twice"  # regression: adversarial's were
    assert "Paired comparisons" in report and "adversarial scores" in report and "95% CI" in report
    assert "every model got 9 updates of S" in report and "## The discriminator" in report
    assert "### Tissue overlap within each domain" in report and "| input |" in report
    for run in (
        "single-InfantT1",
        "single-AdultT1Thick",
        "standardized",
        "unconstrained",
        "adversarial",
        "nyul",
        "augmented",
        "harmonized",
    ):
        for seed in (0, 1):
            assert (out / "runs" / run / f"seed{seed}" / "evaluation.json").exists()
    # re-running skips every finished run; fewer seeds reuse the first ones
    capsys.readouterr()
    assert main(argv) == 0
    assert capsys.readouterr().out.count("finished earlier, skipped") == 16
    assert main(argv[:-2] + ["--seeds", "1", "--data", argv[-1]]) == 0
    assert capsys.readouterr().out.count("finished earlier, skipped") == 8
    assert main(argv) == 0  # back to the full report
    # Regression (issue 15.2): a re-run with other settings or data once skipped every run and wrote a report
    # naming the new settings over the old tables. Now it is refused before any work, and nothing changes.
    capsys.readouterr()
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main(argv + ["--epochs", "4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train.epochs is 3 there, 4 now" in err[0] and str(out / "runs") in err[0], err
    assert "--recompute" in err[0]
    other = shutil.copytree(tiny_phantom[1], tmp_path / "other" / Path(tiny_phantom[1]).name)
    victim = sorted((other / "labelsTr").iterdir())[0]
    victim.write_bytes(victim.read_bytes())  # same bytes: the same data, reused
    assert main([*argv[:-2], "--data", str(other), "--methods", "standardized"]) == 0
    (other / "imagesTr" / victim.name.replace(".nii.gz", "_0000.nii.gz")).write_bytes(
        (sorted((other / "imagesTr").iterdir())[1]).read_bytes()
    )  # another image under the same case id
    assert main([*argv[:-2], "--data", str(other), "--methods", "standardized"]) == 2
    assert "files of case(s)" in capsys.readouterr().err
    outputs = ("report.md", "report.html", "table1.csv", "table1_per_seed.csv", "table2.csv")
    assert {
        p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name not in outputs and p.suffix != ".png"
    } == {p: b for p, b in before.items() if p.name not in outputs and p.suffix != ".png"}
    # --recompute trains a stale run again, under the new settings
    assert main(argv + ["--methods", "standardized", "--epochs", "2", "--recompute"]) == 0
    assert json.loads((out / "runs" / "standardized" / "seed0" / "config.json").read_text())["train"]["epochs"] == 2


def test_unseen_adds_leave_one_domain_out_runs_and_table3(tiny_phantom, tiny_config, tmp_path):
    out = tmp_path / "unseen"
    argv = [
        "reproduce",
        "--out",
        str(out),
        "--config",
        str(tiny_config),
        "--no-progress",
        "--seeds",
        "2",
        "--methods",
        "standardized,harmonized",
        "--unseen",
    ]
    for d in tiny_phantom:
        argv += ["--data", str(d)]
    assert main(argv) == 0
    domains = [json.loads((out / "runs" / "standardized" / "seed0" / "config.json").read_text())["run"]["domains"]]
    assert len(domains[0]) == 2
    for method in ("standardized", "harmonized"):
        for d in domains[0]:
            run = out / "runs" / f"{method}-without-{d}" / "seed1"
            cfg = json.loads((run / "config.json").read_text())
            assert cfg["data"]["left_out_domain"] == d and cfg["run"]["domains"] == [x for x in domains[0] if x != d]
    rows = read_csv_rows(out / "table3.csv")
    assert list(rows[0]) == TABLE1_COLUMNS
    # one row per method and left-out domain, tested on that domain, trained on the other
    assert sorted((r["method_id"], r["test"]) for r in rows) == sorted(
        (m, d) for m in ("standardized", "harmonized") for d in domains[0]
    )
    assert all(r["train"] != r["test"] and r["seeds"] == "2" for r in rows)
    per_seed = read_csv_rows(out / "table3_per_seed.csv")
    assert len(per_seed) == 2 * len(rows)
    # table 1 keeps only the models trained on every domain
    t1 = read_csv_rows(out / "table1.csv")
    assert {r["train"] for r in t1} == {" + ".join(domains[0])}
    report = (out / "report.md").read_text()
    assert "## Table 3: a site never seen" in report and "harmonized unseen scores" in report
    assert "harmonized in-domain" in report and "target is" in report
    assert "no second domain to align it with" in report  # K = 2: the adversary has nothing to do


@pytest.mark.parametrize(
    "argv, methods, seeds",
    [
        (["demo"], ["standardized", "harmonized"], 1),  # within 15 minutes on 2 cores
        (["demo", "--full"], None, 3),  # every method, the protocol's seeds
        (["demo", "--methods", "standardized,adversarial"], ["standardized", "adversarial"], 1),
        (["demo", "--methods", "harmonized,harmonized"], ["harmonized"], 1),  # a repeat trains once
        (["demo", "--full", "--methods", "nyul,harmonized"], ["nyul", "harmonized"], 3),
        (["demo", "--methods", "standardized, harmonized,"], ["standardized", "harmonized"], 1),  # as typed
        (["demo", "--recompute"], ["standardized", "harmonized"], 1),
    ],
)
@pytest.mark.parametrize(("epochs", "budget"), [([], 16), (["--epochs", "48"], 48)])
def test_demo_plans_its_methods_and_seeds(argv, methods, seeds, epochs, budget, tmp_path, monkeypatch):
    import advnorm.reproduce as rep

    seen = {}

    def fake_reproduce(folders, out, **kw):
        seen.update(kw, folders=folders)
        return out / "report.md"

    monkeypatch.setattr(rep, "reproduce", fake_reproduce)
    monkeypatch.setattr("advnorm.data.phantom.generate.write_phantom", lambda out, spec, progress=False: None)
    (tmp_path / "phantom").mkdir()
    (tmp_path / "phantom" / "phantom.json").write_text('{"complete": true}')
    for k in (1, 2, 3):
        (tmp_path / "phantom" / f"Dataset00{k}_X{k}").mkdir()
    assert main([*argv, *epochs, "--out", str(tmp_path), "--no-progress"]) == 0
    assert seen["methods"] == methods and seen["seeds"] == seeds and len(seen["folders"]) == 3
    assert seen["overrides"] == {"train.epochs": budget}  # below the quick profile's plateau unless asked
    assert seen["recompute"] is ("--recompute" in argv)  # an earlier demo's runs of other settings: trained again


@pytest.mark.parametrize(
    "argv, named",
    [
        (["--methods", "standardized,zscore"], ["'zscore'", "standardized"]),  # the unknown name, and the known ones
        (["--methods", ","], ["names no method"]),
        (["--methods", ""], ["names no method"]),
        (["--epochs", "0"], ["train.epochs must be >= 1"]),
    ],
)
def test_demo_refuses_bad_input_before_building_anything(argv, named, tmp_path, monkeypatch, capsys):
    def no_phantom(*args, **kwargs):
        raise AssertionError("the phantom was built for a demo that cannot run")

    monkeypatch.setattr("advnorm.data.phantom.generate.write_phantom", no_phantom)
    out = tmp_path / "demo"
    assert main(["demo", *argv, "--out", str(out), "--no-progress"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(word in err[0] for word in named)
    assert not out.exists()


@pytest.mark.parametrize(
    "methods, ok",
    [
        ("harmonized", True),  # regression: the file was validated with the default method (adversarial) and refused
        ("standardized,harmonized", False),  # a method the setting cannot apply to: refused before any training
    ],
)
def test_a_method_specific_config_file_is_checked_against_the_planned_methods(
    methods, ok, tiny_phantom, tiny_config, tmp_path, monkeypatch, capsys
):
    import advnorm.reproduce as rep

    planned = []
    monkeypatch.setattr(rep, "_run_all", lambda out, datasets, runs, base, **kw: planned.extend(runs) or out)
    config = json.loads(Path(tiny_config).read_text())
    config.setdefault("loss", {})["adversary_view"] = "image"
    config.setdefault("model", {})["generator"] = "transfer"  # the view needs harmonized's curve G
    (path := tmp_path / "view.json").write_text(json.dumps(config))
    argv = ["reproduce", "--out", str(tmp_path / "out"), "--methods", methods, "--seeds", "1", "--config", str(path)]
    code = main(argv + [a for d in tiny_phantom for a in ("--data", str(d))])
    if ok:
        assert code == 0 and [cfg.loss.adversary_view for _, cfg in planned] == ["image"]
    else:
        err = capsys.readouterr().err
        assert code == 2 and not planned and "view.json" in err and "adversary_view" in err and err.count("\n") == 1
