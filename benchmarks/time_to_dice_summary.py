"""What a race's curves say (``bench_time_to_dice``): seconds and patches to each threshold, Dice at the marks,
ratios to the reference."""

from __future__ import annotations

THRESHOLDS = (0.80, 0.85)
"""Mean Dice (CSF, GM, WM) of the held-out subjects the race is to."""
TARGET_RATIO = 3.0
"""Issue 14: advnorm reaches each threshold at least this many times sooner than the reference."""


def seconds_to(curve: list[dict], threshold: float) -> float | None:
    """Training seconds at the first scoring whose mean Dice reaches ``threshold`` (None: never in the run)."""
    return next((p["train_seconds"] for p in curve if p["mean_dice"] >= threshold), None)


def patches_to(curve: list[dict], threshold: float) -> int | None:
    return next((p["patches"] for p in curve if p["mean_dice"] >= threshold), None)


def dice_at(curve: list[dict], mark_s: float) -> float | None:
    """Mean Dice of the last scoring at or before ``mark_s`` seconds of training (None: none that early)."""
    before = [p["mean_dice"] for p in curve if p["train_seconds"] <= mark_s]
    return before[-1] if before else None


def compare(ours: dict, ref: dict, thresholds=THRESHOLDS) -> dict:
    """Per threshold: each side's seconds and patches, and ``ratio`` = reference seconds / advnorm seconds.

    A side that never reached the threshold ran for its whole run: the ratio is then a bound (``bound``:
    ``lower`` when only the reference missed it, ``upper`` when only advnorm did) computed with that run's
    last training second; with both missing it is None.
    """
    out = {}
    for thr in thresholds:
        a, r = seconds_to(ours["curve"], thr), seconds_to(ref["curve"], thr)
        row: dict = {
            "advnorm_seconds": a,
            "reference_seconds": r,
            "ratio": None,
            "bound": None,
            "advnorm_patches": patches_to(ours["curve"], thr),
            "reference_patches": patches_to(ref["curve"], thr),
        }
        if a is not None and r is not None:
            row["ratio"] = r / a
        elif a is not None:
            row["ratio"], row["bound"] = ref["train_seconds"] / a, "lower"
        elif r is not None:
            row["ratio"], row["bound"] = r / ours["train_seconds"], "upper"
        ratio, bound = row["ratio"], row["bound"]
        row["target_met"] = (
            None
            if ratio is None or (bound == "lower" and ratio < TARGET_RATIO)
            else (ratio >= TARGET_RATIO and bound != "upper")
        )
        out[f"{thr:.2f}"] = row
    return out


def summarize(runs: dict[str, dict[str, dict]], marks: tuple[float, ...], variants: tuple[str, ...]) -> dict:
    """Per method: advnorm against the reference (``thresholds``), each of the advnorm ``variants`` that ran against
    the same reference run, in that order (``variants``), every system's Dice at the marks, and the runs."""
    methods = {}
    for method, sides in runs.items():
        ref = sides["reference"]
        methods[method] = {
            "thresholds": compare(sides["advnorm"], ref),
            "variants": {v: {"thresholds": compare(sides[v], ref)} for v in variants if v in sides},
            "dice_at": {f"{m:.0f}": {name: dice_at(side["curve"], m) for name, side in sides.items()} for m in marks},
            "runs": sides,
        }
    return methods
