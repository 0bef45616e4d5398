"""The working-grid cache at scale, by simulation: memory per process, processes sharing it, a second cell's start,
epoch time against patches (issue 14, item 5).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scale_cache.py --docs         # 5, 60 and 1,020 subjects (~30 GB)
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scale_cache.py --sizes 5,60   # without the 1,020 (~2 GB of cache)
    .venv/bin/python benchmarks/scale_cache.py --smoke                          # tiny volumes, every code path

Subjects are phantom-like working-grid volumes made in memory (nested ellipsoids for CSF / GM / WM with noise and
a contrast per domain, 160 x 190 x 155 voxels = 28 MB per subject with label and mask, as ABIDE's ~1,000 scans
are ~28 GB on the 1 mm grid) rather than 1,020 NIfTI files read and resampled: what is measured is what the cache
holds and serves, and writing and resampling 1,020 files would take an hour of this machine's two shared cores.
Each subject still goes through the cache's own path (``cached_subject``: content key of a tiny per-subject stub
NIfTI, atomic write, memory-mapped read-back) and through ``training.data.prepare`` unchanged: the synthetic
dataset only replaces ``Dataset.load_case``'s builder.

Every measure runs in fresh worker processes (their peak memory is their own), ``OMP_NUM_THREADS=1``:
* ``prepare``: ``prepare()`` over a cold cache (builds every subject, first pass over every volume), then in a new
  process over the warm cache twice (a fresh run, then a second ``prepare`` in the same process: the next cell of
  a ``reproduce``), then batches of 16 patches of 32^3. Peak RSS (``VmHWM``) and, sampled after ``prepare`` and
  every 10 batches, RSS / PSS / USS from ``/proc/self/smaps_rollup`` (anonymous and file-backed).
* ``two processes``: two workers at once (torchrun-like: each prepares everything, draws its rank's half of every
  global batch) against one alone; their PSS read by this process while both hold their data.
* ``epochs``: the quick profile's training step on batches from the cache, epochs of 32 to 128 patches; and the
  data path alone, epochs of 512 to 4,096 patches.

Results go to ``benchmarks/results_cache.json``; ``--docs`` rewrites the "Working-grid cache" section of
``docs/performance.md`` from them (``benchmarks/report.py`` keeps that section when it regenerates the rest).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from scale_cache_report import render, write_docs

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHAPE = (160, 190, 155)
SMOKE_SHAPE = (48, 56, 44)
# (domains, subjects per domain, method): 5, 60 and 17 x 60 = 1,020 subjects
SIZES = {5: (1, 5, "single"), 60: (3, 20, "adversarial"), 1020: (17, 60, "adversarial")}
FRACTIONS = (0.8, 0.1, 0.1)
"""Each domain's subjects for training, validation and test, in every measure (recorded in the results)."""


# ------------------------------------------------------------------------------------------------ synthetic data


def _synthetic_subject(domain: int, index: int, shape: tuple[int, int, int], stub: Path, name: str):
    """A working-grid subject: brain-shaped nested ellipsoids, a contrast per domain, noise; about 50 % brain."""
    from advnorm.data.subject import SourceGrid, Subject

    rng = np.random.default_rng([domain, index])
    axes = [
        ((np.arange(n, dtype=np.float32) - n / 2 - rng.uniform(-3, 3)) / (0.46 * n * rng.uniform(0.93, 1.0)))
        for n in shape
    ]
    r = axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2
    label = np.zeros(shape, np.uint8)
    label[r < 1.0] = 1
    label[r < 0.75] = 2
    label[r < 0.4] = 3
    del r
    contrasts = [(0.3, 0.6, 0.9), (0.9, 0.55, 0.35), (0.5, 0.62, 0.66), (0.2, 0.45, 0.6)]
    lut = np.array((0.0, *contrasts[domain % len(contrasts)]), np.float32) * (300.0 + 40.0 * domain)
    image = lut[label]
    image += rng.standard_normal(shape, dtype=np.float32) * (12.0 + domain) * (label > 0)
    np.maximum(image, 0.0, out=image)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    return Subject(
        case_id=name,
        domain=f"D{domain:02d}",
        layout="synthetic",
        image=image,
        label=label,
        mask=label > 0,
        affine=affine,
        source=SourceGrid(path=str(stub), shape=shape, affine=affine, spacing=(1.0, 1.0, 1.0)),
    )


def synthetic_datasets(stubs: Path, n_domains: int, per_domain: int, shape: tuple[int, int, int]) -> list:
    """Datasets of synthetic subjects whose ``load_case`` goes through the working-grid cache (when it exists)."""
    import nibabel as nib

    from advnorm.data.layouts import CaseRef, Dataset

    class SyntheticDomain(Dataset):
        def load_case(self, case: CaseRef, *, with_label: bool = True):
            k, i = (int(v) for v in case.case_id.split("_")[1:])

            def build():
                return _synthetic_subject(k, i, shape, case.image, case.case_id)

            try:
                from advnorm.data.cache import cached_subject
            except ImportError:  # advnorm before the cache (--src): in memory
                return build()
            rules = {"synthetic": list(shape), "generator": 1}
            return cached_subject(
                build, files={"image": case.image}, rules=rules, case_id=case.case_id, domain=self.name
            )

    out = []
    for k in range(n_domains):
        folder = stubs / f"D{k:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        cases = []
        for i in range(per_domain):
            stub = folder / f"case_{k}_{i}.nii"
            if not stub.exists():  # a tiny NIfTI naming the subject: the cache keys on its content
                nib.save(nib.Nifti1Image(np.array([[[k, i]]], np.int16), np.eye(4)), str(stub))
            cases.append(CaseRef(f"case_{k}_{i}", stub, stub))
        out.append(SyntheticDomain(name=f"D{k:02d}", layout="synthetic", root=folder, cases=cases))
    return out


# ------------------------------------------------------------------------------------------------ memory probes


def smaps() -> dict[str, int]:
    """This process's memory now (bytes): RSS, PSS, USS and their anonymous / file-backed parts."""
    fields = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        fields[key] = int(value.split()[0]) * 1024
    return _summary(fields)


def _summary(fields: dict[str, int]) -> dict[str, int]:
    return {
        "rss": fields.get("Rss", 0),
        "pss": fields.get("Pss", 0),
        "uss": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0),
        "pss_anon": fields.get("Pss_Anon", 0),
        "pss_file": fields.get("Pss_File", 0),
        "rss_file_shared": fields.get("Shared_Clean", 0),
    }


def smaps_of(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        fields[key] = int(value.split()[0]) * 1024
    return _summary(fields)


def peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


# ------------------------------------------------------------------------------------------------ workers


def worker_prepare(args: dict) -> dict:
    """prepare() (twice with ``repeat``), then ``batches`` batches of this rank's share; memory sampled throughout."""
    import torch  # noqa: F401 - what a training process has loaded before its data

    from advnorm.config_file import resolve
    from advnorm.data.sampler import DomainBalancedSampler
    from advnorm.methods import METHOD_SPECS
    from advnorm.training.data import prepare

    shape = tuple(args["shape"])
    datasets = synthetic_datasets(Path(args["stubs"]), args["domains"], args["per_domain"], shape)
    cfg = resolve(
        "quick",
        overrides={"method": args["method"], "data.fractions": list(FRACTIONS), "train.patch_size": args["patch"]},
    )
    spec = METHOD_SPECS[cfg.method]
    base = smaps()
    samples = [base]
    times = []
    for _ in range(2 if args.get("repeat") else 1):
        t = time.perf_counter()
        data = prepare(datasets, cfg, spec, log=lambda m: None)
        times.append(time.perf_counter() - t)
        samples.append(smaps())
    after_prepare = samples[-1]
    sampler = DomainBalancedSampler(
        data.row_domains(data.train), args["batch"], seed=0, rank=args.get("rank", 0), world_size=args.get("world", 1)
    )
    t = time.perf_counter()
    for step, rows in enumerate(sampler.epoch(0, args["batches"])):
        data.batch(data.train, rows)
        if step % 10 == 9:
            samples.append(smaps())
    batch_seconds = time.perf_counter() - t
    samples.append(smaps())
    result = {
        "subjects_loaded": len(data.subjects),
        "patches": len(data.train) + len(data.val),
        "prepare_seconds": times,
        "batches": args["batches"],
        "patches_per_second": args["batches"] * args["batch"] / args.get("world", 1) / batch_seconds,
        "peak_rss": peak_rss(),
        "baseline": base,
        "after_prepare": after_prepare,
        "max": {k: max(s[k] for s in samples) for k in base},
        "volumes_bytes": int(sum(s.image.nbytes + s.mask.nbytes + s.require_label().nbytes for s in data.subjects)),
        "load_average": os.getloadavg()[0],
    }
    if args.get("hold"):  # the parent reads this process's memory while the other one holds its data too
        print(json.dumps({"ready": True, **result}), flush=True)
        sys.stdin.readline()
    return result


def worker_epochs(args: dict) -> dict:
    """Epoch time against patches: the quick profile's training step, and the data path alone."""
    import dataclasses

    import torch

    from advnorm.config_file import resolve
    from advnorm.data.sampler import DomainBalancedSampler
    from advnorm.methods import METHOD_SPECS
    from advnorm.models.networks import Networks
    from advnorm.training.data import prepare
    from advnorm.training.trainer import Trainer

    shape = tuple(args["shape"])
    datasets = synthetic_datasets(Path(args["stubs"]), args["domains"], args["per_domain"], shape)
    cfg = resolve(
        "quick",
        overrides={"method": "adversarial", "data.fractions": list(FRACTIONS), "train.patch_size": args["patch"]},
    )
    data = prepare(datasets, cfg, METHOD_SPECS["adversarial"], log=lambda m: None)
    batch = 16
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=batch))
    torch.manual_seed(0)
    model = Trainer(Networks(cfg, len(data.domains)), torch.tensor([0.1, 0.3, 0.3, 0.3]))
    model.nets.train()
    sampler = DomainBalancedSampler(data.row_domains(data.train), batch, seed=1)

    def epoch(n_patches: int, seed: int, train: bool) -> dict:
        steps = n_patches // batch
        t0 = time.perf_counter()
        t_data = 0.0
        for rows in sampler.epoch(seed, steps):
            t = time.perf_counter()
            x, y, m, z = data.batch(data.train, rows)
            t_data += time.perf_counter() - t
            if train:
                model.set_input(x, y, m, z)
                model.optimize_parameters()
        total = time.perf_counter() - t0
        return {"patches": steps * batch, "seconds": total, "data_seconds": t_data, "load": os.getloadavg()[0]}

    epoch(2 * batch, 99, True)  # warm-up
    train_epochs = [epoch(n, 10 + k, True) for k, n in enumerate(args["train_patches"])]
    data_epochs = [epoch(n, 20 + k, False) for k, n in enumerate(args["data_patches"])]
    return {"train": train_epochs, "data": data_epochs, "peak_rss": peak_rss(), "max": smaps()}


WORKERS = {"prepare": worker_prepare, "epochs": worker_epochs}


# ------------------------------------------------------------------------------------------------ driver


def _env(cache: Path | str, src: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(src), str(HERE)])
    env["ADVNORM_CACHE"] = str(cache)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run(kind: str, args: dict, env: dict[str, str]) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, json.dumps(args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {kind} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_together(args: list[dict], env: dict[str, str]) -> dict:
    """Workers started together; once all hold their data, their memory is read here at the same moment."""
    procs = [
        subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", "prepare", json.dumps({**a, "hold": True})],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for a in args
    ]
    reports = []
    for p in procs:
        assert p.stdout is not None
        line = p.stdout.readline()
        if not line:
            raise RuntimeError("a worker died before holding its data")
        reports.append(json.loads(line))
    memory = [smaps_of(p.pid) for p in procs]
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("\n")
        p.stdin.flush()
        p.wait(60)
    return {"workers": reports, "memory": memory, "total": {k: sum(m[k] for m in memory) for k in memory[0]}}


def measure(sizes: list[int], shape: tuple[int, int, int], work: Path, cache: Path, src: Path, smoke: bool) -> dict:
    import _common  # here, not at the top: it imports torch, which the parent process does not otherwise need

    env = _env(cache, src)
    stubs = work / "stubs"
    patch = 16 if smoke else 32
    batches = 20 if smoke else 200
    results: dict = {
        "command": " ".join(sys.argv),
        "shape": list(shape),
        "nproc": os.cpu_count(),
        "mem_total": _meminfo("MemTotal"),
        "load_average_at_start": list(os.getloadavg()),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "fractions": list(FRACTIONS),
        "sizes": {},
    }
    for n in sizes:
        domains, per_domain, method = SIZES[n] if not smoke else (max(1, n // 5), 5, SIZES[n][2])
        job = {
            "stubs": str(stubs),
            "domains": domains,
            "per_domain": per_domain,
            "method": method,
            "shape": list(shape),
            "patch": patch,
            "batch": 16,
            "batches": batches,
        }
        print(f"[{time.strftime('%H:%M:%S')}] {n} subjects: cold cache", flush=True)
        cold = run("prepare", job, env)
        print(f"[{time.strftime('%H:%M:%S')}] {n} subjects: warm cache", flush=True)
        warm = run("prepare", {**job, "repeat": True}, env)
        row = {"domains": domains, "per_domain": per_domain, "method": method, "cold": cold, "warm": warm}
        if n != min(sizes) or len(sizes) == 1:
            print(f"[{time.strftime('%H:%M:%S')}] {n} subjects: one process, then two", flush=True)
            one = run_together([job], env)
            two = run_together([{**job, "rank": r, "world": 2} for r in range(2)], env)
            row["one_process"], row["two_processes"] = one, two
        results["sizes"][str(n)] = row
    biggest = max(sizes)
    domains, per_domain, _ = SIZES[biggest] if not smoke else (max(1, biggest // 5), 5, "")
    print(f"[{time.strftime('%H:%M:%S')}] epochs over {biggest} subjects", flush=True)
    epochs = run(
        "epochs",
        {
            "stubs": str(stubs),
            "domains": max(domains, 2),
            "per_domain": per_domain,
            "shape": list(shape),
            "patch": patch,
            "train_patches": [32, 64, 128] if not smoke else [16, 32],
            "data_patches": [512, 1024, 2048, 4096] if not smoke else [64, 128],
        },
        env,
    )
    for part in ("train", "data"):
        rows = epochs[part]
        line = _common.least_squares_line([r["patches"] for r in rows], [r["seconds"] for r in rows])
        epochs[f"{part}_fit"] = {"per_patch": line["slope"], "intercept": line["intercept"], "r2": line["r2"]}
    results["epochs"] = epochs
    results["cache_bytes"] = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
    results["load_average_at_end"] = list(os.getloadavg())
    return results


def _meminfo(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        print(json.dumps(WORKERS[sys.argv[2]](json.loads(sys.argv[3]))), flush=True)
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="5,60,1020", help="numbers of subjects among 5, 60, 1020")
    ap.add_argument("--smoke", action="store_true", help="tiny volumes, every code path (< 1 min)")
    ap.add_argument("--work", type=Path, help="folder for the cache and stubs (default: a temporary one, removed)")
    ap.add_argument("--src", type=Path, default=ROOT / "src", help="the advnorm sources the workers import")
    ap.add_argument("--out", type=Path, help="results JSON (default benchmarks/results_cache.json; smoke: none)")
    ap.add_argument("--docs", action="store_true", help="rewrite the section of docs/performance.md")
    ap.add_argument("--render", action="store_true", help="only rewrite the docs section from the results JSON")
    args = ap.parse_args()
    out = args.out or (None if args.smoke else HERE / "results_cache.json")
    if args.render:
        write_docs(json.loads((out or HERE / "results_cache.json").read_text()), ROOT / "docs" / "performance.md")
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    work = args.work or Path(tempfile.mkdtemp(prefix="advnorm-scale-cache-"))
    try:
        results = measure(sizes, SMOKE_SHAPE if args.smoke else SHAPE, work, work / "cache", args.src, args.smoke)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    if out is not None:
        out.write_text(json.dumps(results, indent=1) + "\n")
    if args.docs and not args.smoke:
        write_docs(results, ROOT / "docs" / "performance.md")
    print(render(results))


if __name__ == "__main__":
    main()
