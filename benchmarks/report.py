"""Render ``docs/performance.md`` from ``benchmarks/results.json``: every number in it comes from that file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

TARGETS = {
    "step_speedup": 1.5,
    "step_peak_fraction": 0.5,
    "inference_speedup": 8.0,
    "inference_dice": 0.005,
    "data_speedup": 10.0,
    "data_memory": 1.5,
    "data_wait": 0.05,
}


def _f(x, nd=2) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float) and abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{nd}f}"


def _pct(x, nd=0) -> str:
    return "n/a" if x is None else f"{100 * x:.{nd}f} %"


def target_limits(step: dict, inf: dict | None) -> list[str]:
    """One sentence per missed target, built from the same results: the best ratio measured and its limit."""
    out = []
    prof = {k: v for k, v in step.items() if isinstance(v, dict) and "variants" in v}
    for name, p in prof.items():
        ours, ref = p["variants"]["advnorm"], p["variants"]["reference"]
        if ours["fraction_of_matmul_peak"] < TARGETS["step_peak_fraction"]:
            other = {k: q["variants"]["advnorm"]["fraction_of_matmul_peak"] for k, q in prof.items() if k != name}
            out.append(
                f"**{name} widths, share of the matmul peak ({_pct(ours['fraction_of_matmul_peak'])})**: "
                "the layer shapes set it, not the step's overhead. "
                f"Convolutions of 1 to {max(p['widths']['S'])} channels do too little "
                "arithmetic per byte moved to keep the cores' vector units busy. The straightforward reference reaches "
                f"{_pct(ref['fraction_of_matmul_peak'])} on the same networks"
                + (
                    ", and advnorm's step reaches " + ", ".join(f"{_pct(v)} at {k} widths" for k, v in other.items())
                    if other
                    else ""
                )
                + "."
            )
        if ours["speedup_vs_reference"] < TARGETS["step_speedup"]:
            need = TARGETS["step_speedup"] * ref["fraction_of_matmul_peak"]
            out.append(
                f"**{name} widths, speed vs the reference "
                f"(x{_f(ours['speedup_vs_reference'])}, {p['rounds']} round(s))**: "
                f"the reference already runs at {_pct(ref['fraction_of_matmul_peak'])} of the matmul peak, so "
                f"x{TARGETS['step_speedup']} would need advnorm at {_pct(need)} of it"
                + (" (more than the peak)" if need > 1 else "")
                + f"; it reaches "
                f"{_pct(ours['fraction_of_matmul_peak'])}. At these widths the convolutions themselves dominate both "
                f"steps, and what advnorm removes (per-parameter optimizer loops, D's second pass, the weight-gradient "
                f"reduction stalls) is a small share of a {_f(p['model_gflop_per_patch'], 0)} GFLOP/patch step."
            )
    if inf and abs(inf["mean_dice_difference"]) > TARGETS["inference_dice"]:
        same = inf.get("monai_same_windows")
        out.append(
            f"**inference Dice ({inf['mean_dice_difference']:+.4f} against the 32^3 windows)**: the gap is the 32^3 "
            "windows' border error, each seeing little context and zero padding on every side. advnorm is the higher"
            if inf["mean_dice_difference"] > 0
            else f"**inference Dice ({inf['mean_dice_difference']:+.4f} against the 32^3 windows)**: "
            "advnorm is the lower"
        )
        if same:
            out[-1] += (
                f"; MONAI's own sliding window at advnorm's windows agrees with advnorm on "
                f"{_pct(same['label_agreement'], 2)} of the brain voxels (mean Dice difference "
                f"{inf['advnorm']['mean_dice'] - same['mean_dice']:+.4f})."
            )
        else:
            out[-1] += "."
    return out


def _ok(flag: bool | None) -> str:
    return "n/a" if flag is None else ("**met**" if flag else "not met")


def _mib(b) -> str:
    return f"{b / 2**20:,.0f} MiB"


def render(results: dict) -> str:
    machine = results.get("machine", {})
    sec = results.get("sections", {})
    step = sec.get("step", {})
    lines = _header(machine, sec, smoke=bool(results.get("smoke")))
    lines += _targets(sec)
    if step:
        lines += _step_section(step)
    if sec.get("inference"):
        lines += _inference_section(sec["inference"])
    if sec.get("data"):
        lines += _data_section(sec["data"])
    if sec.get("scaling"):
        lines += _scaling_section(sec["scaling"])
    lines += _probes_section(sec.get("probes"), sec.get("compile"), machine)
    lines += _speed_sources(step)
    if "time_to_dice" in sec:
        lines += render_time_to_dice(sec["time_to_dice"])
    return "\n".join(lines) + "\n"


def _profiles(step: dict) -> list[str]:
    """The step section's profiles (its entries with variants measured)."""
    return [k for k, v in step.items() if isinstance(v, dict) and "variants" in v]


def _header(m: dict, sec: dict, *, smoke: bool) -> list[str]:
    """Title, how the numbers were made, and the machine."""
    lines: list[str] = []
    add = lines.append
    add("# Performance")
    add("")
    add(
        "<!-- Generated by benchmarks/run.py from benchmarks/results.json. "
        "Do not edit by hand: rerun the benchmarks. -->"
    )
    add("")
    add("All numbers below come from `benchmarks/results.json`, written by one run of")
    add("")
    add("```")
    add(".venv/bin/python benchmarks/run.py            # all sections")
    add(".venv/bin/python benchmarks/run.py --only step,data   # some sections; the others keep their last results")
    add(
        ".venv/bin/python benchmarks/run.py --smoke    "
        "# < 60 s, every code path, tiny sizes (CI); writes results_smoke.json"
    )
    add("```")
    add("")
    secs = {k: v.get("seconds_to_measure") for k, v in sec.items() if isinstance(v, dict)}
    add(
        "Seconds each section took in the run recorded here: "
        + ", ".join(f"{k} {v:,.0f}" for k, v in secs.items() if v is not None)
        + " (load average at the end of each: "
        + ", ".join(f"{k} {_f(v.get('load_average_after', [None])[0])}" for k, v in sec.items() if isinstance(v, dict))
        + ")."
    )
    add("")
    add("Every measure is a **ratio against a reference run in the same process** (or in fresh processes run")
    add("side by side), on the same data and sizes: the machine has 2 cores shared with other jobs, so absolute")
    add("speeds move by 2-5x from minute to minute. The two sides alternate round by round and the reported")
    add("ratio is the median of the per-round ratios; the matmul peak is re-measured before every round of the")
    add("training-step benchmark and each round's FLOP rate is divided by its own peak.")
    add("")
    add("## Machine")
    add("")
    add(
        "| date | nproc | CPU (/proc/cpuinfo) | vector ISA used by torch | AVX-512 | AVX-512 bf16 | AMX | torch "
        "| MONAI | torch threads | OMP_WAIT_POLICY | load average at start (1/5/15 min) |"
    )
    add("|---|---|---|---|---|---|---|---|---|---|---|---|")
    la = m.get("load_average_at_start", [None] * 3)
    add(
        f"| {m.get('date')} | {m.get('nproc')} | {m.get('cpu_model')} | {m.get('torch_cpu_capability')} "
        f"| {m.get('avx512')} | {m.get('avx512_bf16')} | {m.get('amx')} | {m.get('torch')} | {m.get('monai')} "
        f"| {m.get('torch_threads')} | {m.get('omp_wait_policy')} | {' / '.join(_f(x) for x in la)} |"
    )
    add("")
    add("The benchmarks set `OMP_WAIT_POLICY=PASSIVE` (before torch is imported) unless the environment sets it or")
    add("`--omp-default` is given: the launch setting recommended for advnorm on shared machines; the probes section")
    add("compares it with libgomp's default for both advnorm and the reference, in separate processes.")
    add("")
    if smoke:
        add("**These are smoke-run numbers (tiny sizes); they measure nothing.**")
        add("")
    return lines


def _targets(sec: dict) -> list[str]:
    """The targets table (issue 5), then what limits the targets not met."""
    lines: list[str] = []
    add = lines.append
    add("## Targets (issue 5)")
    add("")
    add("| measure | target | measured | |")
    add("|---|---|---|---|")

    def row(measure: str, target: str, measured: str, met: bool, note: str = "") -> None:
        add(f"| {measure} | {target} | {measured} | {_ok(met)}{note} |")

    step = sec.get("step", {})
    for prof in _profiles(step):
        p = step[prof]
        v = p["variants"]["advnorm"]
        row(
            f"training step, {prof} widths, batch {p['batch']}: speed vs the straightforward reference",
            ">= 1.5x",
            f"{_f(v['speedup_vs_reference'])}x",
            v["speedup_vs_reference"] >= TARGETS["step_speedup"],
        )
        row(
            f"training step, {prof} widths: model FLOP/s / measured float32 matmul peak",
            ">= 50 %",
            _pct(v["fraction_of_matmul_peak"]),
            v["fraction_of_matmul_peak"] >= TARGETS["step_peak_fraction"],
        )
    inf = sec.get("inference")
    if inf:
        d = inf["mean_dice_difference"]
        row(
            f"full-volume inference {'x'.join(map(str, inf['volume_shape']))}: "
            "speed vs 32^3 sliding window (0.75 overlap)",
            ">= 8x",
            f"{_f(inf['speedup_vs_reference'], 1)}x",
            inf["speedup_vs_reference"] >= TARGETS["inference_speedup"],
        )
        row(
            "full-volume inference: mean Dice (CSF, GM, WM) difference to the sliding window",
            "within 0.005",
            f"{d:+.4f}",
            abs(d) <= TARGETS["inference_dice"],
            " (advnorm's Dice is the higher)" if d > TARGETS["inference_dice"] else "",
        )
    data = sec.get("data")
    if data:
        ref = data["reference"]
        row(
            f"data pipeline: patches/s vs {'TorchIO Queue + LabelSampler' if ref == 'torchio' else 'a per-patch loop'}",
            ">= 10x",
            f"{_f(data['speedup_vs_reference'], 1)}x",
            data["speedup_vs_reference"] >= TARGETS["data_speedup"],
        )
        row(
            "data pipeline: peak memory / the volumes' own size",
            "<= 1.5x",
            f"{_f(data['advnorm']['peak_over_volumes'])}x",
            data["advnorm"]["peak_over_volumes"] <= TARGETS["data_memory"],
        )
    sc = sec.get("scaling")
    if sc:
        row(
            "share of the training step spent waiting for data",
            "< 5 %",
            _pct(sc["data_wait_fraction"], 2),
            sc["data_wait_fraction"] < TARGETS["data_wait"],
        )
        fit = sc["epoch_vs_patches_fit"]
        row(
            "epoch time linear in patches (least-squares line through the epochs)",
            "linear",
            f"R^2 = {fit['r2']:.4f}, {_f(fit['seconds_per_patch'], 3)} s/patch",
            fit["r2"] >= 0.98,
        )
        row(
            f"peak memory flat in the number of patch centres ({sc['memory_vs_patches'][0]['patch_centres']:,} to "
            f"{sc['memory_vs_patches'][-1]['patch_centres']:,})",
            "flat",
            f"spread {_pct(sc['memory_spread'], 1)}",
            sc["memory_spread"] < 0.05,
        )
    add("")
    limits = target_limits(step, inf)
    if limits:
        add("### Targets not met, and what limits them")
        add("")
        for line in limits:
            add(f"* {line}")
        add("")
    return lines


def _step_section(step: dict) -> list[str]:
    """The training step: per profile, every variant against the reference and the matmul peak."""
    lines: list[str] = []
    add = lines.append
    add("## Training step")
    add("")
    add("One full adversarial step (`Trainer.optimize_parameters`: G+S update with D frozen,")
    add("then D on real and generated patches), 32^3 patches, K = 3 domains. **reference**: the same networks")
    add("(same architecture, same initial weights, checked to give the same losses on the first step) built")
    add("from MONAI's `Convolution` blocks, float32, default memory format, stock `nn.Conv3d`, one `torch.optim`")
    add("optimizer per net (default implementation) stepped on its own, D called separately on real and")
    add("generated patches. **monai_class_nets**: MONAI's own `UNet` (num_res_units=2, batch norm) and")
    add("`ResNet` classes at the same widths; they are different, far cheaper networks (see GFLOP/patch), shown")
    add("for their FLOP rate only. FLOPs are counted with `torch.utils.flop_counter` (forward + backward).")
    add("")
    for prof in _profiles(step):
        p = step[prof]
        w = p["widths"]
        add(
            f"### {prof} widths (G {w['G']}, S {w['S']}, D {w['D']} x{w['D_blocks']}), batch {p['batch']}, "
            f"{p['optimizer']}, {p['rounds']} round(s)"
        )
        add("")
        add(
            "| variant | patches/s (median) | speed vs reference (median of rounds) | GFLOP/patch | GFLOP/s "
            "| share of matmul peak |"
        )
        add("|---|---|---|---|---|---|")
        for name, v in p["variants"].items():
            add(
                f"| {name} | {_f(v['patches_per_s'])} | {_f(v['speedup_vs_reference'])}x "
                f"| {_f(v['gflop_per_patch'])} | {_f(v['achieved_gflops'], 1)} | {_pct(v['fraction_of_matmul_peak'])} |"
            )
        add("")
        peaks = p["matmul_peak_gflops_per_round"]
        add(
            "float32 matmul peak (2048^2 `torch.mm`, best of 3 before each round): "
            f"median {_f(p['matmul_peak_gflops'], 1)} GFLOP/s "
            f"(rounds: {', '.join(_f(x, 0) for x in peaks)}). First-step losses, advnorm vs reference: "
            + ", ".join(f"{k} {a:.6f} / {b:.6f}" for k, (a, b) in p["same_losses_first_step"].items())
            + "."
        )
        add("")
    return lines


def _inference_section(inf: dict) -> list[str]:
    """Whole-volume inference against MONAI's sliding window."""
    lines: list[str] = []
    add = lines.append
    a, r = inf["advnorm"], inf["reference"]
    add("## Full-volume inference")
    add("")
    add(
        f"One {' x '.join(map(str, inf['volume_shape']))} volume ({inf['brain_voxels']:,} brain voxels), "
        "normalized by G and"
    )
    add(
        "segmented by S with the same trained weights "
        "(a quick-profile adversarial run trained by the benchmark on two phantom"
    )
    add(
        f"domains: {inf['training']['warmup_steps']} warm-up + {inf['training']['steps']} adversarial steps of 16 "
        "patches; kept in `benchmarks/model/`), on an unseen subject of the first domain."
    )
    add("")
    add("| | windows | seconds (median) | mean Dice CSF/GM/WM | Dice CSF / GM / WM |")
    add("|---|---|---|---|---|")
    add(
        f"| advnorm `TrainedModel.predict` | {a['window']}^3 at {a['overlap']} overlap, {a['blend']} blending | "
        f"{_f(a['median_seconds'], 1)} | {a['mean_dice']:.4f} | "
        f"{' / '.join(f'{d:.3f}' for d in a['dice_csf_gm_wm'])} |"
    )
    add(
        f"| MONAI `sliding_window_inference` | {r['windows']:,} windows of 32^3 at {r['overlap']} overlap, "
        f"batch {r['sw_batch_size']}, {r['blend']} blending | {_f(r['median_seconds'], 1)} | {r['mean_dice']:.4f} | "
        f"{' / '.join(f'{d:.3f}' for d in r['dice_csf_gm_wm'])} |"
    )
    same = inf.get("monai_same_windows")
    if same:
        add(
            f"| MONAI `sliding_window_inference`, advnorm's windows | {same['window']}^3 at {same['overlap']} overlap, "
            f"{same['blend']} blending | {_f(same['median_seconds'], 1)} | {same['mean_dice']:.4f} | "
            f"{' / '.join(f'{d:.3f}' for d in same['dice_csf_gm_wm'])} |"
        )
    add("")
    add(
        f"Speed-up x{_f(inf['speedup_vs_reference'], 1)}; mean Dice difference {inf['mean_dice_difference']:+.4f}; "
        f"the two label maps agree on {_pct(inf['label_agreement'], 2)} of the brain voxels."
    )
    if same:
        add(
            f"With advnorm's windows, MONAI's sliding window takes {_f(same['median_seconds'], 1)} s: "
            f"the large windows alone give x{_f(r['median_seconds'] / same['median_seconds'], 1)} over the 32^3 "
            f"windows, and advnorm's predict is x{_f(same['median_seconds'] / a['median_seconds'], 2)} as fast as "
            f"MONAI's at the same windows. Those two agree on {_pct(same['label_agreement'], 2)} of the brain voxels "
            f"(mean Dice difference {a['mean_dice'] - same['mean_dice']:+.4f})"
            + (
                ": the Dice difference to the 32^3 windows is theirs (each sees little context and zero padding on "
                "every side), not an approximation in advnorm."
                if same["label_agreement"] >= 0.999
                else "."
            )
        )
    add("")
    return lines


def _data_section(data: dict) -> list[str]:
    """The data pipeline against TorchIO's (or a per-patch loop)."""
    lines: list[str] = []
    add = lines.append
    ref = data["reference"]
    a, r = data["advnorm"], data[ref]
    add("## Data pipeline")
    add("")
    add(
        f"{a['voxels']:,} voxels in memory: 10 volumes of 144 x 192 x 256 (iSEG-2017) "
        "and 5 of 230 x 230 x 144 (MRBrainS13"
    )
    add(
        f"resampled to 1 mm), {a['patch_centres']:,} patch centres on the stride-8 grid over the labels. "
        "Batches of 16 patches of"
    )
    add("32^3, one process each (fresh, so that peak memory is its own), run twice alternately; memory is the peak")
    add("resident set above the process's size before the volumes were built.")
    add("")
    add("| pipeline | holds | patches/s (runs) | volumes' own size | peak memory | peak / volumes |")
    add("|---|---|---|---|---|---|")
    name_ref = (
        "TorchIO " + r.get("torchio", "") + " `Queue` (max_length 300, samples_per_volume 10) + `LabelSampler`"
        if ref == "torchio"
        else "per-patch loop"
    )
    for label, v in (("advnorm `DomainBalancedSampler` + `TrainingData.batch`", a), (name_ref, r)):
        add(
            f"| {label} | {v['holds']} | {_f(v['patches_per_s'], 0)} "
            f"({', '.join(_f(x, 0) for x in v['patches_per_s_runs'])}) | "
            f"{_mib(v['volumes_bytes'])} | {_mib(v['peak_above_baseline'])} | {_f(v['peak_over_volumes'])}x |"
        )
    add("")
    add(
        f"advnorm delivers x{_f(data['speedup_vs_reference'], 1)} the patches per second; its patch index is "
        f"{a['index_bytes'] / 2**10:,.0f} KiB (16 bytes per patch)."
    )
    add("")
    return lines


def _scaling_section(sc: dict) -> list[str]:
    """Epoch time against patches, against domains and subjects; memory against patch centres."""
    lines: list[str] = []
    add = lines.append
    add("## Scaling")
    add("")
    add(f"Quick profile, batch {sc['batch']}, the training loop's calls; an epoch is one pass over its patches.")
    add("")
    add("| patches | K | steps | epoch seconds | seconds per patch | share waiting for data |")
    add("|---|---|---|---|---|---|")
    for rw in sc["epoch_vs_patches"]:
        add(
            f"| {rw['patches']} | 3 | {rw['steps']} | {_f(rw['seconds'], 1)} | {_f(rw['seconds_per_patch'], 3)} "
            f"| {_pct(rw['data_fraction'], 2)} |"
        )
    fit = sc["epoch_vs_patches_fit"]
    add("")
    add(
        f"Least-squares line: {_f(fit['seconds_per_patch'], 3)} s per patch + {_f(fit['intercept_seconds'], 2)} s, "
        f"R^2 = {fit['r2']:.4f}."
    )
    add("")
    ds = sc.get("domains_and_subjects")
    if ds:
        lines += _domains_and_subjects(ds)
    add("| patch grid stride | patch centres | index size | volumes' own size | peak memory | peak / volumes |")
    add("|---|---|---|---|---|---|")
    for mm in sc["memory_vs_patches"]:
        add(
            f"| {mm['stride']} | {mm['patch_centres']:,} | {mm['index_bytes'] / 2**10:,.0f} KiB "
            f"| {_mib(mm['volumes_bytes'])} | {_mib(mm['peak_above_baseline'])} | {_f(mm['peak_over_volumes'])}x |"
        )
    add("")
    return lines


def _domains_and_subjects(ds: dict) -> list[str]:
    """Epoch time, set-up time and memory against K domains of n subjects, with the power laws fitted to them."""
    lines: list[str] = []
    add = lines.append
    shape = " x ".join(map(str, ds["volume_shape"]))
    add(
        f"Against domains and subjects (issue 14): K domains of n subjects of {shape} voxels each, every point a "
        "fresh process; its epoch is the quick profile's (25 steps, then the BatchNorm recalibration and the "
        "validation), timed as a few steps (median) plus one recalibration and validation."
    )
    add("")
    add(
        "| K | subjects each | volumes | patch centres | set-up | seconds per step | epoch seconds "
        "| volumes' own size | peak memory | peak / volumes |"
    )
    add("|---|---|---|---|---|---|---|---|---|---|")
    for rw in ds["rows"]:
        add(
            f"| {rw['n_domains']} | {rw['subjects_per_domain']} | {rw['volumes']} | {rw['patch_centres']:,} | "
            f"{_f(rw['set_up_seconds'], 2)} s | {_f(rw['seconds_per_step'], 3)} | {_f(rw['epoch_seconds'], 1)} | "
            f"{_mib(rw['volumes_bytes'])} | {_mib(rw['peak_above_baseline'])} "
            f"| {_f(rw['peak_over_volumes'], 1)}x |"
        )
    lim = ds["linear_exponent"]
    verdict = [
        f"{name} ~ volumes^{_f(ds[key], 2)} ({'linear or better' if ds[key] <= lim else 'worse than linear'})"
        for name, key in (
            ("epoch time", "epoch_exponent"),
            ("set-up time", "set_up_exponent"),
            ("peak memory", "memory_exponent"),
        )
    ]
    mf = ds["memory_fit"]
    add("")
    add(
        "Power laws fitted through the points (b <= "
        f"{lim} counts as linear or better): {'; '.join(verdict)}. Peak memory is "
        f"{_mib(mf['intercept_bytes'])} plus {_f(mf['bytes_per_volume_byte'], 2)} bytes per byte of volumes "
        f"(R^2 {mf['r2']:.4f}): the epoch's cost does not grow with the data held, the memory grows with the "
        "volumes themselves and nothing else."
    )
    add("")
    return lines


def _probes_section(pr: dict | None, cp: dict | None, m: dict) -> list[str]:
    """The probes behind the defaults: bf16 autocast, runtime settings, torch.compile (``m``: the machine)."""
    lines: list[str] = []
    add = lines.append
    if pr or cp:
        add("## Probes behind the defaults")
        add("")
    if pr:
        b = pr["bf16"]
        add(
            "* **bf16 autocast** (`train.amp`): the quick-profile step runs at "
            f"x{_f(b['bf16_speed_over_float32'], 3)} the float32 speed "
            f"(batch {b['batch']}; AVX-512 bf16: {m.get('avx512_bf16')}, AMX: {m.get('amx')}). "
            + (
                "This CPU computes bf16 natively, so `--amp` pays here; the default stays off because on CPUs "
                "without it (the AVX2 machine of 2026-11-25 ran the step at x0.054) oneDNN falls back to slow "
                "reference kernels, and because bf16's effect on Dice was not measured."
                if b["bf16_speed_over_float32"] > 1
                else "This CPU has no native bf16 arithmetic, so oneDNN falls back to slow reference kernels: keep "
                "`amp` off on such CPUs."
            )
        )
        lines += _runtime_settings(pr["threads"])
    if cp:
        be = cp.get("break_even_steps")
        add(
            f"* **torch.compile** of G, S, D (quick, batch {cp['batch']}): first step with compilation "
            f"{_f(cp['first_step_seconds_with_compilation'], 0)} s; "
            f"compiled step x{_f(cp['compiled_speed_over_eager'])} the eager one"
            + (f", paying back after about {be:,.0f} steps." if be else ".")
        )
    if pr or cp:
        add("")
    return lines


def _runtime_settings(t: dict) -> list[str]:
    """The threads probe: advnorm and the reference under each runtime setting, in fresh processes."""
    lines: list[str] = []
    add = lines.append
    names = {
        "default_2_threads": "advnorm, libgomp defaults (2 threads, spinning wait)",
        "omp_wait_passive": "advnorm, `OMP_WAIT_POLICY=PASSIVE`",
        "one_thread": "advnorm, 1 thread",
        "reference_default_2_threads": "reference, libgomp defaults",
        "reference_omp_wait_passive": "reference, `OMP_WAIT_POLICY=PASSIVE`",
    }
    add(
        f"* **runtime settings** (quick step, batch {t['batch']}, {t['steps_per_process']} timed steps in each of a "
        "series of fresh processes, relative to advnorm with libgomp's defaults):"
    )
    add("")
    add("  | process | patches/s | relative |")
    add("  |---|---|---|")
    for k, label in names.items():
        if k in t:
            add(f"  | {label} | {_f(t[k]['patches_per_s'])} | x{_f(t[k]['speed_over_default'])} |")
    add("")
    if "advnorm_passive_over_reference_default" in t:
        add(
            "  advnorm with `OMP_WAIT_POLICY=PASSIVE` against the reference left at libgomp's defaults "
            f"(separate processes): x{_f(t['advnorm_passive_over_reference_default'])}."
        )
    return lines


def _speed_sources(step: dict) -> list[str]:
    """Where the speed comes from, with the step's ablations where they were measured."""
    lines: list[str] = []
    add = lines.append
    add("## Where the speed comes from")
    add("")
    q = step.get("quick", {}).get("variants", {}) if step else {}
    add(
        "* **Convolution weight gradients split over the batch** (`advnorm.models.conv3d.Conv3d`, "
        "used by G, S and D; new"
    )
    add(
        "  with this benchmark suite). On the AVX2 CPU it was found on, "
        "oneDNN computes a 3-D convolution's weight gradient with an"
    )
    add("  im2col + GEMM kernel whose two-thread reduction stalls whenever the other core is busy for a moment; it")
    add(
        "  dominated the profile of the plain step. "
        "Each thread now computes the gradient of its share of the batch with"
    )
    add("  a single-threaded oneDNN call and the shares are added (same kernel, same sum, another float32 summation")
    add(
        "  order; checked in `tests/test_performance_equivalence.py`); 1x1x1 kernels use one matrix product."
        + (
            " In this run the step without it runs at "
            f"x{_f(q['advnorm_without_fast_weight_grad']['speedup_vs_reference'])} the "
            f"reference's speed, with it at x{_f(q['advnorm']['speedup_vs_reference'])}."
            if "advnorm_without_fast_weight_grad" in q
            else ""
        )
    )
    add(
        "* **Channels-last 3-D memory format** for activations and weights (`train.channels_last`, the default):"
        + (
            " without it the step runs at "
            f"x{_f(q['advnorm_without_channels_last']['speedup_vs_reference'])} the reference's speed."
            if "advnorm_without_channels_last" in q
            else ""
        )
    )
    add("* **D scores real and generated patches in one pass** (its GroupNorm is per sample: the same computation) and")
    add("  each update has one foreach optimizer, where the reference steps one per-parameter-loop optimizer per net.")
    add(
        "* **Whole-volume inference** in a few large windows "
        "(BatchNorm's eval-mode output does not depend on the window)"
    )
    add("  instead of thousands of overlapping 32^3 windows: the compute saved is the windows' overlap.")
    add(
        "* **Patches are sliced out of the in-memory volumes on demand** "
        "(vectorized corner computation per batch), never"
    )
    add("  stored: memory is the volumes plus 16 bytes per patch centre.")
    add("* Not adopted: bf16 autocast and torch.compile (see the probes above); the runtime settings in the probes are")
    add("  process-wide and left to whoever launches training.")
    add("")
    return lines


def _s(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:,.0f} s"


def _raced(res: dict) -> list[tuple[str, dict]]:
    """(system, its thresholds against the reference) for advnorm and every variant that ran."""
    return [("advnorm", res["thresholds"])] + [(v, r["thresholds"]) for v, r in res.get("variants", {}).items()]


def _systems(res: dict) -> list[str]:
    return [name for name, _ in _raced(res)] + ["reference"]


def _threshold_row(method: str, system: str, thr: str, row: dict) -> str:
    """One line of the threshold table: each side's seconds, the ratio (a bound where one side never got there)."""
    ratio, met = row["ratio"], row["target_met"]
    bound = {"lower": " or more", "upper": " or less"}.get(row["bound"] or "", "")
    shown = "-" if ratio is None else f"x{ratio:.2f}{bound}"
    verdict = "not decided" if met is None else ("met" if met else "missed")
    return (
        f"| {method} | {system} | {thr} | {_s(row['advnorm_seconds'])} | {_s(row['reference_seconds'])} | "
        f"{shown} | {verdict} |"
    )


def _dotted(settings: dict) -> dict:
    """A variant's settings as dotted keys; results from before variants could change more than the model hold
    ``model`` keys alone, undotted."""
    return {
        f"{head}.{k}" if isinstance(inner, dict) else f"model.{head}": v
        for head, inner in settings.items()
        for k, v in (inner.items() if isinstance(inner, dict) else [(head, inner)])
    }


def _variants_said(ttd: dict) -> str:
    """The variants' settings in words (older results have none)."""
    said = [
        f"`{name}` is advnorm with " + ", ".join(f"`{k} = {v}`" for k, v in _dotted(settings).items())
        for name, settings in ttd.get("variants", {}).items()
    ]
    return (" " + "; ".join(said) + ", raced against the same reference run.") if said else ""


def render_time_to_dice(ttd: dict) -> list[str]:
    """The time-to-accuracy section (issue 14): per method and threshold, each side's training seconds and the
    ratio, the Dice at the marks, and the target said met or missed."""
    marks = ttd["marks_seconds"]
    lines = [
        "## Time to a good model (issue 14)",
        "",
        "```",
        ".venv/bin/python benchmarks/run.py --only time_to_dice",
        "```",
        "",
        f"Phantom {ttd['phantom']}, {ttd['threads']} threads, the `{ttd['profile']}` profile; one run per method and "
        f"system (single measurements, no interval); each system trains for "
        f"{ttd['budget_seconds']:.0f} s in a fresh process, "
        f"in the order {', '.join('/'.join(o) for o in ttd['order'])} "
        f"(ABBA), and is scored every {ttd['score_every_seconds']:.0f} s of training on the held-out test subjects' "
        "full volumes by the same metric code (mean Dice over CSF, GM, WM); the clock stops while it is scored. "
        "advnorm's times are rounded up to its epoch ends, the reference's only to its steps. The reference is the "
        "loop a MONAI user writes from the tutorials (`benchmarks/reference.py`, `MonaiTutorialSegmentation`)."
        + _variants_said(ttd),
        "",
        f"Measured {ttd.get('measured_at', '(date not recorded)')}"
        + (
            f" on {ttd['machine'].get('cpu_model')} ({ttd['machine'].get('torch_cpu_capability')}), load average "
            f"{ttd['machine'].get('load_average_at_start', ['?'])[0]} at the start."
            if "machine" in ttd
            else "."
        ),
        "",
        f"| method | system | threshold | system's time | reference | reference / system | "
        f"target (>= x{ttd['target_ratio']:.0f}) |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, res in ttd["methods"].items():
        for system, thresholds in _raced(res):
            lines += [_threshold_row(method, system, thr, row) for thr, row in thresholds.items()]
    lines += [
        "",
        "| method | system | "
        + " | ".join(f"mean Dice after {m:.0f} s" for m in marks)
        + " | set-up | final | learning rate of S at the end |",
        "|---|---|" + "---|" * len(marks) + "---|---|---|",
    ]
    for method, res in ttd["methods"].items():
        for system in _systems(res):
            run = res["runs"][system]
            at = [res["dice_at"][f"{m:.0f}"][system] for m in marks]
            lines.append(
                f"| {method} | {system} | "
                + " | ".join("-" if v is None else f"{v:.3f}" for v in at)
                + f" | {run['phases'].get('set_up', 0.0):.0f} s | {run['curve'][-1]['mean_dice']:.3f} | "
                + f"{learning_rate_said(run['curve'])} |"
            )
    lines += [
        "",
        "Where the time goes: training patches per second of training time (set-up excluded) and the patches each side "
        "had seen when it first reached a threshold. A side that needs fewer patches but runs slower per patch "
        "spends its time in the step and in its per-epoch work (advnorm: validation and BatchNorm recalibration "
        "after every epoch of 25 steps), not in learning.",
        "",
        "| method | system | patches / s | "
        + " | ".join(f"patches to {t}" for t in ttd["methods"][next(iter(ttd["methods"]))]["thresholds"])
        + " | training time spent in |",
        "|---|---|---|" + "---|" * len(next(iter(ttd["methods"].values()))["thresholds"]) + "---|",
    ]
    for method, res in ttd["methods"].items():
        for system in _systems(res):
            run = res["runs"][system]
            if system == "reference":  # the reference's patches are in every comparison with it
                seen = [row["reference_patches"] for row in res["thresholds"].values()]
            else:
                seen = [row["advnorm_patches"] for row in dict(_raced(res))[system].values()]
            phases = {k: v for k, v in run["phases"].items() if k != "set_up"}
            total = sum(phases.values()) or 1.0
            shares = ", ".join(f"{k.replace('_', ' ')} {v / total:.0%}" for k, v in phases.items())
            lines.append(
                f"| {method} | {system} | {run['patches_per_training_second']:.1f} | "
                + " | ".join("never" if v is None else f"{v:,}" for v in seen)
                + f" | {shares} |"
            )
    lines.append("")
    return lines


def learning_rate_said(curve: list[dict]) -> str:
    """S's learning rate at the last scoring and when the plateau rule first cut it (``lr_GS`` for advnorm,
    ``lr`` for the reference); races from before it was recorded say so."""
    key = next((k for k in ("lr_GS", "lr") if k in curve[-1]), None)
    if key is None:
        return "not recorded"
    first = next((p for p in curve if key in p), curve[-1])[key]
    cut = next((p for p in curve if key in p and p[key] < first), None)
    said = f"{curve[-1][key]:.0e}"
    return said + (f" (from {first:.0e}; first cut by {cut['train_seconds']:.0f} s)" if cut else " (never cut)")


KEPT = ("<!-- benchmarks/scale_cache.py: begin -->", "<!-- benchmarks/scale_cache.py: end -->")
"""A section another script writes (``benchmarks/scale_cache.py --docs``): kept as it is when the rest is rewritten."""


def write(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render(results)
    old = path.read_text() if path.exists() else ""
    begin, end = KEPT
    if begin in old and end in old:
        text += "\n" + old[old.index(begin) : old.index(end) + len(end)] + "\n"
    path.write_text(text)


if __name__ == "__main__":
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "results.json"
    dst = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parent.parent / "docs" / "performance.md"
    write(json.loads(src.read_text()), dst)
