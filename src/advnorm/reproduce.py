"""``advnorm reproduce`` and ``advnorm demo``: every experiment of Table 1 (+ baselines), Table 2, figures, report.

Runs live in ``OUT/runs/<name>``; a run with ``evaluation.json`` is finished and skipped,
an interrupted one resumes, so re-running the command continues where it stopped.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from advnorm.config import METHODS, Config, differences, resolve
from advnorm.data.layouts import Dataset, open_domains
from advnorm.errors import AdvnormError
from advnorm.io_atomic import atomic_write_json
from advnorm.run_folder import RunFolder
from advnorm.training.methods import METHOD_SPECS


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


def run_one(run: PlannedRun, datasets: list[Dataset], cfg: Config, root: Path, *, progress: bool,
            recompute: bool = False, log=print) -> dict:
    """Train (or resume) and evaluate one run; returns its evaluation JSON.

    A run folder left by an earlier ``reproduce`` is reused (finished: skipped; interrupted:
    resumed) only when it was made with this config and these data; otherwise the command is
    refused, or with ``recompute`` the old run is deleted and trained again.
    """
    from advnorm.evaluation.evaluate import evaluate
    from advnorm.inference import TrainedModel
    from advnorm.training.loop import fit

    files = RunFolder(root / "runs" / run.name)
    done = files.root / "evaluation.json"
    if recompute and (diffs := _reuse_differences(files, cfg, datasets)):
        log(f"[{run.name}] made with other settings or data ({diffs[0]}): training it again")
        shutil.rmtree(files.root)
    _refuse_unless_reusable(files.root, cfg, datasets)
    if done.exists():
        log(f"[{run.name}] finished earlier, skipped")
        return json.loads(done.read_text())
    if not files.final.exists():
        resume = files.state.exists()
        log(f"[{run.name}] {'resuming' if resume else 'training'} ({cfg.method})")
        fit(cfg, datasets, files.root, resume=resume, progress=progress, log=lambda m: log(f"[{run.name}] {m}"))
    model = TrainedModel(files.root)
    log(f"[{run.name}] evaluating on the test subjects of {', '.join(d.name for d in datasets)}")
    result = evaluate(model, datasets, log=lambda m: log(f"[{run.name}] {m}"))
    payload = result.to_json()
    atomic_write_json(done, payload)
    return payload


MAY_DIFFER = ("train.device",)
"""Config keys a run may be reused under with another value: where it runs, not what it computes."""


def _refuse_unless_reusable(run_dir: Path, cfg: Config, datasets: list[Dataset]) -> None:
    diffs = _reuse_differences(RunFolder(run_dir), cfg, datasets)
    if diffs:
        raise AdvnormError(f"this run was made with other settings or data ({'; '.join(diffs[:3])}); use another "
                           "--out, or --recompute to train it again", run_dir)


def _reuse_differences(files, cfg: Config, datasets: list[Dataset]) -> list[str]:
    """Why an existing run folder cannot be reused for ``cfg`` on ``datasets`` (empty: it can, or there is none)."""
    from advnorm.data.fingerprint import dataset_fingerprint, fingerprint_differences

    if not files.root.is_dir() or not any(files.root.iterdir()):
        return []
    try:
        stored = json.loads(files.config.read_text(encoding="utf-8"))
        stored_data = stored["run"]["data"]
    except (OSError, ValueError, KeyError, TypeError):
        return ["its config.json with the record of its data is missing or unreadable"]
    stored.pop("run", None)
    stored.pop("versions", None)
    wanted = cfg.to_dict()
    for dotted in MAY_DIFFER:
        head, key = dotted.split(".")
        for d in (stored, wanted):
            d.get(head, {}).pop(key, None)
    return (differences(stored, wanted, there="there", here="now")
            + fingerprint_differences(stored_data, [dataset_fingerprint(d) for d in datasets]))


def reproduce(data: list[str], out: Path, *, profile: str = "quick", config_file: str | None = None,
              overrides: dict | None = None, methods: list[str] | None = None, recompute: bool = False,
              progress: bool = True, log=print) -> Path:
    from advnorm.evaluation.report import write_report
    from advnorm.workflows import refuse_inside_inputs

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
    planned = [(run, resolve(profile, file=config_file, overrides={**(overrides or {}), "method": run.method,
                                                                  "data.train_domain": run.train_domain}))
               for run in plan(datasets, methods)]
    if not recompute:  # refuse before any work, not after hours of other runs
        for run, cfg in planned:
            _refuse_unless_reusable(out / "runs" / run.name, cfg, datasets)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results = {}
    for run, cfg in planned:
        results[run.name] = (run, run_one(run, datasets, cfg, out, progress=progress, recompute=recompute, log=log))
    report = write_report(out, datasets, results, base, log=log)
    log(f"reproduce finished in {time.perf_counter() - t0:.0f} s: {report}")
    return report


def demo(out: Path, *, progress: bool = True, log=print) -> Path:
    """The phantom (3 domains) and the whole of Table 1 on it with the quick profile."""
    from advnorm.data.phantom.generate import PhantomSpec, write_phantom

    out = Path(out)
    phantom = out / "phantom"
    if not (phantom / "phantom.json").exists() or not json.loads((phantom / "phantom.json").read_text()).get("complete"):
        log(f"building the phantom in {phantom}")
        write_phantom(phantom, PhantomSpec(), progress=progress)
    folders = sorted(str(p) for p in phantom.glob("Dataset*_*") if p.is_dir())
    report = reproduce(folders, out, profile="quick", progress=progress, log=log)
    log(f"\nreport: {report}")
    return report
