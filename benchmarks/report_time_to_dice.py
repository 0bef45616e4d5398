"""The time-to-accuracy section of ``docs/performance.md`` (issue 14), rendered from ``results.json``'s
``time_to_dice`` entry (written by ``benchmarks/bench_time_to_dice.py``)."""

from __future__ import annotations


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


def _generators_said(ttd: dict) -> str:
    """Which G each method raced with. Results written before they recorded it are from before 2026-11-27, when
    ``harmonized``'s G was the transfer curve."""
    given = ttd.get("generators")
    if given is None:
        return (
            " `harmonized` raced with its transfer-curve G (`model.generator = transfer`), its default when these "
            "results were measured; its U-Net G, the default since 2026-11-27, is not in this run (raced on its own "
            "against the reference since: docs/method.md, `harmonized` with the U-Net G)."
        )
    said = [f"`{m}`: {g}" for m, g in given.items() if g is not None]
    return (" G: " + ", ".join(said) + ".") if said else ""


def _validation_said(ttd: dict) -> str:
    """How `advnorm` validated. Results written before they recorded it are from before 2026-11-27, when the quick
    profile validated on 96 patches after 16 BatchNorm recalibration batches."""
    given = ttd.get("validation")
    if given is None:
        return (
            " `advnorm` validated as the quick profile did then (96 patches, after 16 BatchNorm recalibration "
            "batches); `advnorm-lean-validation`'s 48 and 4 are its default since 2026-11-27."
        )
    return (
        f" `advnorm` validated on {given['val_patches']} patches after {given['bn_recalibration_batches']} "
        "BatchNorm recalibration batches."
    )


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
        + _variants_said(ttd)
        + _generators_said(ttd)
        + _validation_said(ttd),
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
