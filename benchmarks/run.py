"""advnorm's benchmarks: one command, results to ``benchmarks/results.json`` and the tables of ``docs/performance.md``.

    .venv/bin/python benchmarks/run.py                      # the default sections (about 25 min on 2 idle cores)
    .venv/bin/python benchmarks/run.py --only step,data     # some sections (others keep their last results)
    .venv/bin/python benchmarks/run.py --only time_to_dice  # time to accuracy vs a MONAI loop (about 95 min)
    .venv/bin/python benchmarks/run.py --smoke              # seconds-long run of every code path (CI)

The references need the benchmark extra, ``pip install -e ".[bench]"`` (TorchIO for ``data``): a section
whose reference is missing stops the run with one line before any section runs, never measures against
a stand-in.

Sections: ``step`` (training step vs the straightforward reference and vs the matmul
peak), ``inference`` (whole volume vs 32^3 sliding windows), ``data`` (pipeline vs
TorchIO), ``scaling`` (epoch time vs patches, K = 2-6 domains and 5-45 subjects per domain;
memory vs patch centres, domains and subjects), ``probes`` (bf16 autocast and threading
settings), and, only when asked for (``--only``), ``compile`` (torch.compile; minutes of
compilation) and ``time_to_dice`` (training wall time until a held-out subject's mean Dice
reaches 0.80 and 0.85, advnorm's ``single`` and ``harmonized``, as profiled, with S's
strided stem and with lean validation, against the loop a MONAI user writes; eight runs of 10 minutes
of training each plus their scoring, about 95 minutes: too long for the default run). Every measure is a ratio
against a reference run in the same process (or in fresh processes side by side), interleaved
round by round.

The benchmarks run with ``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets it already
or ``--omp-default`` is given; the value used is recorded in the results.

``--smoke`` runs every section, the optional ``time_to_dice`` included (``compile`` only with
``--only``), writes ``benchmarks/results_smoke.json`` and leaves ``docs/performance.md`` alone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

# OpenMP threads that finish early sleep at barriers instead of spinning: on a machine whose cores
# other jobs share, spinning takes the core the late thread needs (the probes section measures it).
# libgomp reads this when torch is imported, so it is set before any import of torch.
if "--omp-default" not in sys.argv:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from _common import MissingReferenceError, log, machine, require  # noqa: E402

SECTIONS = ("step", "inference", "data", "scaling", "probes")
OPTIONAL = ("compile", "time_to_dice")
SMOKE_ALSO = ("time_to_dice",)
"""Optional sections the smoke run covers too (seconds at smoke sizes)."""
MODULES = {
    "step": "bench_step",
    "inference": "bench_inference",
    "data": "bench_data",
    "scaling": "bench_scaling",
    "probes": "bench_probes",
    "compile": "bench_probes",
    "time_to_dice": "bench_time_to_dice",
}


def check_references(sections: list[str]) -> None:
    """Raise :class:`MissingReferenceError` before any work if a requested section's reference is not installed
    (the ``REQUIRES`` of a section whose reference is not a dependency of advnorm)."""
    import importlib

    for name in sections:
        module = importlib.import_module(MODULES[name])
        if hasattr(module, "REQUIRES"):
            require(name, module.REQUIRES)


def run_section(name: str, *, smoke: bool, retrain: bool) -> dict:
    """One section's measurements."""
    import importlib

    module = importlib.import_module(MODULES[name])
    if name == "inference":
        return module.run(smoke=smoke, retrain=retrain)
    if name == "compile":
        return module.run_compile(smoke=smoke)
    return module.run(smoke=smoke)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks every code path in well under a minute")
    ap.add_argument("--only", default=None, help=f"comma-separated sections of {', '.join(SECTIONS + OPTIONAL)}")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results file (default benchmarks/results.json; smoke: results_smoke.json)",
    )
    ap.add_argument(
        "--docs", type=Path, default=None, help="markdown to regenerate (default docs/performance.md; not in smoke)"
    )
    ap.add_argument(
        "--retrain", action="store_true", help="retrain the inference benchmark's model instead of reusing it"
    )
    ap.add_argument(
        "--omp-default",
        action="store_true",
        help="leave OMP_WAIT_POLICY unset (default: PASSIVE, unless already set in the environment)",
    )
    return ap


def _previous_results(out: Path) -> dict:
    """What ``out`` holds, or nothing: sections not measured in this run keep their last results (each says when and
    where)."""
    if out.exists():
        try:
            return json.loads(out.read_text())
        except json.JSONDecodeError:
            return {}
    return {}


def main(argv: list[str] | None = None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)

    default = list(SECTIONS) + (list(SMOKE_ALSO) if args.smoke else [])
    sections = default if args.only is None else [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS + OPTIONAL]
    if unknown:
        ap.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS + OPTIONAL)}")
    try:
        check_references(sections)
    except MissingReferenceError as exc:
        print(f"benchmarks/run.py: error: {exc}", file=sys.stderr)
        return 2
    out = args.out or HERE / ("results_smoke.json" if args.smoke else "results.json")
    out.parent.mkdir(parents=True, exist_ok=True)  # before the sections run, not after their minutes of work
    docs = args.docs if args.docs is not None else (None if args.smoke else HERE.parent / "docs" / "performance.md")

    if args.smoke:
        import torch

        torch.set_num_threads(1)  # tiny ops: thread hand-offs would be all there is to measure on a busy machine
    results = _previous_results(out)
    results.setdefault("sections", {})
    results["machine"] = machine()
    results["smoke"] = args.smoke
    results["command"] = "benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    t_all = time.perf_counter()
    for name in sections:
        log(f"== {name}")
        t = time.perf_counter()
        res = run_section(name, smoke=args.smoke, retrain=args.retrain)
        res["seconds_to_measure"] = time.perf_counter() - t
        res["measured_at"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        res["load_average_after"] = list(os.getloadavg())
        res["machine"] = results["machine"]
        results["sections"][name] = res
        out.write_text(json.dumps(results, indent=1, default=float))
    results["seconds_total_last_run"] = time.perf_counter() - t_all
    out.write_text(json.dumps(results, indent=1, default=float))
    log(f"wrote {out}")
    import report

    if docs is not None:
        report.write(results, docs)
        log(f"wrote {docs}")
    else:
        report.render(results)  # the smoke run checks that its results render, without touching the docs
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
