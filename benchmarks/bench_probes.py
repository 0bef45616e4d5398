"""Probes behind the defaults: bf16 autocast, threading settings, and (on request) torch.compile.

* bf16: the quick-profile step with ``train.amp`` on and off (batch 2: with no native
  bf16 on the CPU the autocast step is very slow), interleaved in this process.
* runtime settings: the quick-profile step (batch 16) in fresh processes with PyTorch's
  default two OpenMP threads and libgomp's default wait policy, with
  ``OMP_WAIT_POLICY=PASSIVE`` (threads sleep at barriers instead of spinning, which
  matters when other jobs share the cores), and with one thread; the reference step
  of ``reference.py`` under the first two; the processes alternate.
* compile: ``torch.compile`` of G, S and D: compilation time and the compiled step
  against the eager one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import torch

from _common import BENCH_DIR, ROOT, interleaved, log, median, profile_config, ratio_of_medians_per_round
from bench_step import build_ours, make_batch, ours_step


def bf16_probe(profile: str, batch: int, rounds: int) -> dict:
    cfg = profile_config(profile)
    fp32 = build_ours(cfg, batch)
    bf16 = build_ours(cfg, batch, amp=True)
    data = make_batch(batch, cfg.train.patch_size)
    steps = {"float32": ours_step(fp32), "bf16_autocast": ours_step(bf16)}
    for fn in steps.values():
        fn(data)
    times = interleaved({k: (lambda fn=fn: fn(data)) for k, fn in steps.items()}, rounds)
    return {
        "batch": batch,
        "rounds": rounds,
        "seconds": times,
        "bf16_speed_over_float32": ratio_of_medians_per_round(times["float32"], times["bf16_autocast"]),
    }


# name: (environment, torch threads, which step); environment None = unset OMP_WAIT_POLICY
THREAD_CONFIGS = {
    "default_2_threads": ({"OMP_WAIT_POLICY": None}, None, "advnorm"),
    "omp_wait_passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, None, "advnorm"),
    "one_thread": ({"OMP_WAIT_POLICY": None}, 1, "advnorm"),
    "reference_default_2_threads": ({"OMP_WAIT_POLICY": None}, None, "reference"),
    "reference_omp_wait_passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, None, "reference"),
}


def _thread_worker(args: dict) -> dict:
    if args.get("threads"):
        torch.set_num_threads(int(args["threads"]))
    cfg = profile_config(args["profile"])
    model = build_ours(cfg, args["batch"])
    data = make_batch(args["batch"], cfg.train.patch_size)
    if args.get("step", "advnorm") == "reference":
        from bench_step import DICE_WEIGHTS, N_DOMAINS
        from reference import ReferenceGAN

        ref = ReferenceGAN(cfg, N_DOMAINS, DICE_WEIGHTS)
        ref.load_from(model.nets.G, model.nets.S, model.nets.D)
        del model

        def run(b) -> None:
            ref.step(*b)
    else:
        run = ours_step(model)
    run(data)
    ts = []
    for _ in range(args["steps"]):
        t = time.perf_counter()
        run(data)
        ts.append(time.perf_counter() - t)
    return {"seconds": ts, "threads": torch.get_num_threads()}


def threads_probe(profile: str, batch: int, steps: int, rounds: int, configs=tuple(THREAD_CONFIGS)) -> dict:
    res: dict = {k: [] for k in configs}
    for _ in range(rounds):
        for name in configs:
            env, threads, which = THREAD_CONFIGS[name]
            e = dict(os.environ)
            for k, v in env.items():
                if v is None:
                    e.pop(k, None)
                else:
                    e[k] = v
            e["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(BENCH_DIR), e.get("PYTHONPATH", "")])
            cmd = [
                sys.executable,
                str(BENCH_DIR / "bench_probes.py"),
                "--worker",
                json.dumps({"profile": profile, "batch": batch, "steps": steps, "threads": threads, "step": which}),
            ]
            # check=False: a failed worker is raised below with its stderr
            p = subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=900, check=False)
            if p.returncode != 0:
                raise RuntimeError(p.stderr[-2000:])
            res[name] += json.loads(p.stdout.strip().splitlines()[-1])["seconds"]
    out: dict = {"profile": profile, "batch": batch, "steps_per_process": steps, "rounds": rounds}
    for name, ts in res.items():
        out[name] = {"seconds": ts, "patches_per_s": batch / median(ts)}
    base = out["default_2_threads" if "default_2_threads" in out else configs[0]]["patches_per_s"]
    for name in configs:
        out[name]["speed_over_default"] = out[name]["patches_per_s"] / base
    if "reference_default_2_threads" in out:
        out["advnorm_passive_over_reference_default"] = (
            out["omp_wait_passive"]["patches_per_s"] / out["reference_default_2_threads"]["patches_per_s"]
        )
    return out


def run(smoke: bool = False) -> dict:
    log("probes: bf16 autocast vs float32")
    out = {"bf16": bf16_probe("tiny" if smoke else "quick", 2, 1)}
    log(f"probes: bf16 autocast runs at x{out['bf16']['bf16_speed_over_float32']:.2f} the float32 speed")
    log("probes: threading settings")
    if smoke:
        out["threads"] = threads_probe("tiny", 4, 1, 1, configs=("one_thread",))
    else:
        out["threads"] = threads_probe("quick", 16, 2, 1)
    log(
        "probes: "
        + ", ".join(f"{k} {v['patches_per_s']:.2f} patches/s" for k, v in out["threads"].items() if isinstance(v, dict))
    )
    return out


def run_compile(smoke: bool = False) -> dict:
    batch = 4 if smoke else 16
    cfg = profile_config("tiny" if smoke else "quick")
    eager = build_ours(cfg, batch)
    compiled = build_ours(cfg, batch)
    data = make_batch(batch, cfg.train.patch_size)
    e_run, c_run = ours_step(eager), ours_step(compiled)
    e_run(data)
    compiled.G, compiled.S, compiled.D = (
        torch.compile(compiled.G),
        torch.compile(compiled.S),
        torch.compile(compiled.D),
    )
    log("compile: compiling G, S, D (first step)")
    t = time.perf_counter()
    c_run(data)
    compile_s = time.perf_counter() - t
    times = interleaved({"eager": lambda: e_run(data), "compiled": lambda: c_run(data)}, 1 if smoke else 4)
    speed = ratio_of_medians_per_round(times["eager"], times["compiled"])
    log(f"compile: {compile_s:.0f} s to compile; compiled step x{speed:.2f} the eager one")
    return {
        "batch": batch,
        "first_step_seconds_with_compilation": compile_s,
        "seconds": times,
        "compiled_speed_over_eager": speed,
        "break_even_steps": compile_s / max(median(times["eager"]) - median(times["compiled"]), 1e-9)
        if speed > 1
        else None,
    }


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        print(json.dumps(_thread_worker(json.loads(sys.argv[2]))))
