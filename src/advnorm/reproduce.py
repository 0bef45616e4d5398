"""``advnorm reproduce`` and ``advnorm demo``: every model of Table 1 (+ baselines), each over several seeds,
Table 2, paired comparisons, figures, report.

Runs live in ``OUT/runs/<model>/seed<k>``; a run with ``evaluation.json`` is finished and skipped, an
interrupted one resumes, so re-running the command continues where it stopped. A run made with other
settings or data is refused (or, with ``recompute``, trained again).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from advnorm.config import DEMO_EPOCHS, Config
from advnorm.config_file import resolve
from advnorm.data.layouts import Dataset, open_domains
from advnorm.errors import AdvnormError
from advnorm.evaluation.results import Cell
from advnorm.methods import METHOD_SPECS, METHODS
from advnorm.paths import refuse_inside_inputs, top_missing
from advnorm.run_folder import RunFolder
from advnorm.workflows import refuse_unless_reusable, train_and_evaluate

DEFAULT_SEEDS = 3
"""Seeds per model: a claim about a method needs at least three."""


@dataclass(frozen=True)
class PlannedRun:
    """One training of a comparison: a model (method, training domain) and a seed."""

    name: str
    method: str
    seed: int
    train_domain: str | None = None
    left_out: str | None = None
    """The domain kept out of training and tested as an unseen site (``--unseen``)."""

    @property
    def folder(self) -> str:
        return f"{self.name}/seed{self.seed}"


def plan(datasets: list[Dataset], methods: list[str], seeds: list[int], *, unseen: bool = False) -> list[PlannedRun]:
    """Every model of the comparison once per seed; with ``unseen``, also each multi-domain method trained
    without each domain in turn (leave-one-domain-out), after the rest."""
    runs = []
    for seed in seeds:
        for m in methods:
            if METHOD_SPECS[m].single_domain:
                runs += [PlannedRun(f"single-{d.name}", m, seed, d.name) for d in datasets]
            else:
                runs.append(PlannedRun(m, m, seed))
    if unseen:
        for seed in seeds:
            for m in methods:
                if not METHOD_SPECS[m].single_domain:
                    runs += [PlannedRun(f"{m}-without-{d.name}", m, seed, left_out=d.name) for d in datasets]
    return runs


def checked_methods(methods: list[str] | tuple[str, ...]) -> list[str]:
    """``methods`` without repeats, in their order; an unknown name is an error that lists the known ones."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise AdvnormError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    return list(dict.fromkeys(methods))


def reproduce(
    data: list[str],
    out: Path,
    *,
    profile: str = "quick",
    config_file: str | None = None,
    overrides: dict | None = None,
    methods: list[str] | None = None,
    seeds: int = DEFAULT_SEEDS,
    unseen: bool = False,
    recompute: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Train and evaluate every planned run (``seeds`` seeds: 0..seeds-1), then write the tables and the report;
    ``unseen`` adds the leave-one-domain-out runs of every multi-domain method (table3.csv)."""

    out = Path(out)
    datasets = open_domains(data)
    refuse_inside_inputs(out, [d.root for d in datasets], "output folder")
    if len(datasets) < 2:
        raise AdvnormError("reproduce compares domains: give at least two --data")
    if seeds < 1:
        raise AdvnormError(f"--seeds must be at least 1, got {seeds}")
    methods = checked_methods(methods or METHODS)
    planned = [
        (run, _config(run, profile, config_file, overrides))
        for run in plan(datasets, methods, list(range(seeds)), unseen=unseen)
    ]
    # the settings every run shares (the report's header), validated with a method the plan holds: a file's
    # method-specific setting (e.g. loss.adversary_view for harmonized) is not refused for the default method
    base = planned[0][1] if planned else resolve(profile, file=config_file, overrides=overrides)
    if not recompute:  # refuse before any work, not after hours of other runs
        for run, cfg in planned:
            refuse_unless_reusable(out / "runs" / run.folder, cfg, datasets)
    created = top_missing(out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _run_all(out, datasets, planned, base, recompute=recompute, progress=progress, log=log)
    except BaseException:
        if created is not None and not any(created.rglob("evaluation.json")):  # nothing finished: leave nothing
            shutil.rmtree(created, ignore_errors=True)
        raise


def _run_all(
    out: Path,
    datasets: list[Dataset],
    planned: list[tuple[PlannedRun, Config]],
    base: Config,
    *,
    recompute: bool,
    progress: bool,
    log: Callable[[str], None],
) -> Path:
    from advnorm.evaluation.report import write_report

    t0 = time.perf_counter()
    cells = []
    for k, (run, cfg) in enumerate(planned, start=1):
        evaluation = train_and_evaluate(
            out / "runs" / run.folder,
            cfg,
            datasets,
            recompute=recompute,
            progress=progress,
            log=_prefixed(log, f"[{k}/{len(planned)} {run.folder}]"),
        )
        summary = json.loads(RunFolder(out / "runs" / run.folder).summary.read_text(encoding="utf-8"))
        cells.append(
            Cell(run.name, run.method, run.seed, evaluation, run.train_domain, held_out=run.left_out, summary=summary)
        )
    report = write_report(out, datasets, cells, base, lambda c: out / "runs" / c.name / f"seed{c.seed}", log=log)
    log(f"reproduce finished in {time.perf_counter() - t0:.0f} s: {report}")
    return report


def _config(run: PlannedRun, profile: str, config_file: str | None, overrides: dict | None) -> Config:
    return resolve(
        profile,
        file=config_file,
        overrides={
            **(overrides or {}),
            "method": run.method,
            "data.train_domain": run.train_domain,
            "data.left_out_domain": run.left_out,
            "train.seed": run.seed,
        },
    )


DEMO_METHODS = ("standardized", "harmonized")
"""What ``advnorm demo`` trains by default, once each: the strongest simple baseline and advnorm's own method, meant
to end within 15 minutes on 2 cores (the measured times, which depend on the machine: README). The paper's
``adversarial`` costs about twice either of them per run, so it comes with ``--methods``; ``--full`` trains every
method over 3 seeds."""


def demo(
    out: Path,
    *,
    full: bool = False,
    methods: list[str] | None = None,
    epochs: int = DEMO_EPOCHS,
    recompute: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """The phantom (3 domains) with the quick profile at ``epochs`` main epochs (default :data:`DEMO_EPOCHS`, below
    the profile's plateau budget): ``methods`` (default :data:`DEMO_METHODS`) once each, or with ``full``
    ``methods`` (default: the whole of Table 1 and every baseline) over :data:`DEFAULT_SEEDS` seeds."""
    from advnorm.data.phantom.generate import PhantomSpec, write_phantom

    chosen = checked_methods(methods) if methods else (None if full else list(DEMO_METHODS))  # before the phantom
    resolve("quick", overrides={"train.epochs": epochs})  # an impossible budget, too
    out = Path(out)
    phantom = out / "phantom"
    marker = phantom / "phantom.json"
    if not marker.exists() or not json.loads(marker.read_text()).get("complete"):
        log(f"building the phantom in {phantom}")
        write_phantom(phantom, PhantomSpec(), progress=progress)
    folders = sorted(str(p) for p in phantom.glob("Dataset*_*") if p.is_dir())
    report = reproduce(
        folders,
        out,
        profile="quick",
        overrides={"train.epochs": epochs},
        methods=chosen,
        seeds=DEFAULT_SEEDS if full else 1,
        recompute=recompute,
        progress=progress,
        log=log,
    )
    log(f"\nreport: {report}")
    return report


def _prefixed(log: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    return lambda message: log(f"{prefix} {message}")
