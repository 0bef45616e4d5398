"""``advnorm reproduce`` and ``advnorm demo``: every experiment of Table 1 (+ baselines), Table 2, figures, report.

Runs live in ``OUT/runs/<name>``; a run with ``evaluation.json`` is finished and skipped,
an interrupted one resumes, so re-running the command continues where it stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from advnorm.config import resolve
from advnorm.data.layouts import Dataset, open_domains
from advnorm.errors import AdvnormError
from advnorm.methods import METHOD_SPECS, METHODS
from advnorm.paths import refuse_inside_inputs
from advnorm.workflows import refuse_unless_reusable, train_and_evaluate


@dataclass(frozen=True)
class PlannedRun:
    name: str
    method: str
    train_domain: str | None = None


def plan(datasets: list[Dataset], methods: list[str]) -> list[PlannedRun]:
    runs = []
    for m in methods:
        if METHOD_SPECS[m].single_domain:
            runs += [PlannedRun(f"single-{d.name}", m, d.name) for d in datasets]
        else:
            runs.append(PlannedRun(m, m))
    return runs


def reproduce(
    data: list[str],
    out: Path,
    *,
    profile: str = "quick",
    config_file: str | None = None,
    overrides: dict | None = None,
    methods: list[str] | None = None,
    recompute: bool = False,
    progress: bool = True,
    log=print,
) -> Path:
    from advnorm.evaluation.report import write_report

    out = Path(out)
    datasets = open_domains(data)
    refuse_inside_inputs(out, [d.root for d in datasets], "output folder")
    if len(datasets) < 2:
        raise AdvnormError("reproduce compares domains: give at least two --data")
    methods = methods or list(METHODS)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise AdvnormError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    base = resolve(profile, file=config_file, overrides=overrides)
    planned = [
        (
            run,
            resolve(
                profile,
                file=config_file,
                overrides={**(overrides or {}), "method": run.method, "data.train_domain": run.train_domain},
            ),
        )
        for run in plan(datasets, methods)
    ]
    if not recompute:  # refuse before any work, not after hours of other runs
        for run, cfg in planned:
            refuse_unless_reusable(out / "runs" / run.name, cfg, datasets)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results = {}
    for run, cfg in planned:
        results[run.name] = (
            run,
            train_and_evaluate(
                out / "runs" / run.name,
                cfg,
                datasets,
                recompute=recompute,
                progress=progress,
                log=_prefixed(log, run.name),
            ),
        )
    report = write_report(out, datasets, results, base, log=log)
    log(f"reproduce finished in {time.perf_counter() - t0:.0f} s: {report}")
    return report


def demo(out: Path, *, progress: bool = True, log=print) -> Path:
    """The phantom (3 domains) and the whole of Table 1 on it with the quick profile."""
    from advnorm.data.phantom.generate import PhantomSpec, write_phantom

    out = Path(out)
    phantom = out / "phantom"
    if not (phantom / "phantom.json").exists() or not json.loads((phantom / "phantom.json").read_text()).get(
        "complete"
    ):
        log(f"building the phantom in {phantom}")
        write_phantom(phantom, PhantomSpec(), progress=progress)
    folders = sorted(str(p) for p in phantom.glob("Dataset*_*") if p.is_dir())
    report = reproduce(folders, out, profile="quick", progress=progress, log=log)
    log(f"\nreport: {report}")
    return report


def _prefixed(log: Callable[[str], None], name: str) -> Callable[[str], None]:
    return lambda message: log(f"[{name}] {message}")
