"""Shared helpers: machine facts, a noise-robust timer, the matmul peak probe, peak-memory probes.

The machine is shared (2 cores, other people's jobs come and go), so no absolute
number is trusted on its own: every measure is a *ratio* against a reference run in
the same process, with the two sides interleaved round by round, and the reported
ratio is the median of the per-round ratios.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
LARGE_WINDOW, LARGE_OVERLAP = 160, 0.25
"""advnorm's large inference windows (``--window 160 --overlap 0.25``), the default until 2026-11-28, when the
default became the training patch size at overlap 0.5: what the inference and time-to-Dice benchmarks segment
with, so their recorded results stay reproducible."""


def machine() -> dict:
    import monai

    from advnorm.run_folder import cpuinfo

    info = cpuinfo()
    model = info.get("model name", "unknown")
    flags = set(info.get("flags", "").split())

    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_model": model,
        "avx512": any(f.startswith("avx512") for f in flags),
        "avx512_bf16": "avx512_bf16" in flags,
        "amx": any(f.startswith("amx") for f in flags),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "monai": monai.__version__,
        "python": platform.python_version(),
        "load_average_at_start": list(os.getloadavg()),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset: libgomp default)"),
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS", "(unset)"),
    }


def load_average() -> float:
    return os.getloadavg()[0]


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def interleaved(
    variants: dict[str, Callable[[], object]],
    rounds: int,
    *,
    before_round: Callable[[], None] | None = None,
    deadline: float | None = None,
) -> dict[str, list[float]]:
    """Run every variant once per round, in rotating order; returns seconds per call per variant.

    ``deadline`` (a ``time.perf_counter()`` value) stops after the round in progress (at least one round).
    """
    names = list(variants)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        if before_round is not None:
            before_round()
        order = names[r % len(names) :] + names[: r % len(names)]
        for n in order:
            times[n].append(timed(variants[n]))
        if deadline is not None and time.perf_counter() > deadline:
            break
    return times


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def least_squares_line(xs: list[float], ys: list[float]) -> dict[str, float]:
    """``slope`` and ``intercept`` of the least-squares line through (xs, ys), and its ``r2``."""
    import numpy as np

    slope, intercept = np.polyfit(xs, ys, 1)
    residual = np.asarray(ys) - np.polyval([slope, intercept], xs)
    ss_tot = float(np.sum((np.asarray(ys) - np.mean(ys)) ** 2)) or 1.0
    return {"slope": float(slope), "intercept": float(intercept), "r2": 1.0 - float(np.sum(residual**2)) / ss_tot}


def ratio_of_medians_per_round(num: list[float], den: list[float]) -> float:
    """Median over rounds of num[r] / den[r] (e.g. reference time / our time = speed-up)."""
    return float(statistics.median([a / b for a, b in zip(num, den, strict=True)]))


def matmul_peak(n: int = 2048, reps: int = 3) -> float:
    """float32 matrix-multiply FLOP/s, best of ``reps`` (one probe, about 0.5 s)."""
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    c = torch.empty(n, n)
    torch.mm(a, b, out=c)
    best = min(timed(lambda: torch.mm(a, b, out=c)) for _ in range(reps))
    return 2.0 * n**3 / best


def rss_bytes() -> int:
    """Current resident set size of this process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` 5); False where that is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def run_worker(module: str, args: dict, timeout: float = 900, *, live: bool = False) -> dict:
    """Run ``python benchmarks/<module>.py --worker '<json>'`` in a fresh process (clean peak-memory
    accounting) and return the JSON it prints on its last line. ``live``: the worker's stderr (its log)
    goes straight to ours, for workers that run for minutes."""
    cmd = [sys.executable, str(BENCH_DIR / f"{module}.py"), "--worker", json.dumps(args)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(BENCH_DIR), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        cmd,
        stdout=subprocess.PIPE,
        stderr=None if live else subprocess.PIPE,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        detail = "its log is above" if live else proc.stderr[-3000:]
        raise RuntimeError(f"worker {module} failed (exit code {proc.returncode}):\n{detail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


class MissingReferenceError(RuntimeError):
    """A reference a benchmark measures against is not installed: the section cannot run (never substituted)."""


BENCH_EXTRA = 'pip install -e ".[bench]"'


def require(section: str, modules: dict[str, str]) -> None:
    """Raise :class:`MissingReferenceError` (one line naming the extra) unless every module imports.

    ``modules`` maps an importable name to what the section uses it for. A benchmark that quietly
    measured against something else when its reference is missing reported x1.1 where the docs
    said x60.5 (issue 14): a missing reference stops the run instead.
    """
    import importlib

    for name, what in modules.items():
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise MissingReferenceError(
                f"section {section!r} needs {what} ({name}: {exc}); install the benchmark extra: {BENCH_EXTRA}"
            ) from None


def uptime() -> dict:
    """The machine's load right now: ``uptime``'s line and the 1/5/15-minute load averages."""
    try:
        line = subprocess.run(["uptime"], capture_output=True, text=True, check=False, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        line = ""
    return {"uptime": line, "load_average": list(os.getloadavg())}


def log(msg: str, *, err: bool = False) -> None:
    """A timestamped line on stdout (``err``: stderr, for workers whose stdout carries their JSON result)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True, file=sys.stderr if err else sys.stdout)


def profile_config(name: str):
    """``quick`` / ``paper`` profiles, or ``tiny`` (widths 4-8, 16^3 patches) for smoke runs."""
    from dataclasses import replace

    from advnorm.config import paper_profile, quick_profile

    if name == "paper":
        return paper_profile()
    cfg = quick_profile()
    if name == "tiny":
        model = replace(cfg.model, generator_widths=(4, 8), segmenter_widths=(4, 8), discriminator_widths=(4, 4, 8, 8))
        cfg = replace(cfg, model=model, train=replace(cfg.train, patch_size=16))  # still "quick" to advnorm.config
    return cfg
