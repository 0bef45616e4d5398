"""Seconds to predict one volume with several sliding windows per forward pass, against one at a time.

    .venv/bin/python experiments/window_batch_timing.py RUN --data DOMAIN [--window 32] [--overlap 0.5]
        [--per-pass 1,2,4,8] [--repeats 2]

Loads the run (``TrainedModel``), takes the first labelled case of ``--data`` and times ``predict`` with each
``--per-pass`` value in turn (alternating, ``--repeats`` rounds, so a load that comes and goes hits every value
alike), replacing :func:`advnorm.inference.windows_per_pass` for the measurement. Prints, per value, the
seconds of each round, the ratio of the best round to one window per pass, and the largest difference in any
class probability against one window per pass (what batching may change: floating-point order only). Run it
with ``OMP_NUM_THREADS`` set to the threads you mean to measure; docs/method.md quotes it.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

from advnorm import inference
from advnorm.data.layouts import open_domains


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--data", required=True)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--overlap", type=float, default=0.5)
    ap.add_argument("--per-pass", default="1,2,4,8")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    per_pass = [int(k) for k in args.per_pass.split(",")]
    if 1 not in per_pass:
        per_pass.insert(0, 1)  # the reference
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = inference.TrainedModel(args.run, window=inference.InferenceWindow(args.window, args.overlap))
        ds = open_domains([args.data])[0]
        subject = ds.load_case(ds.labelled()[0])
    chosen = {"k": 1}
    inference.windows_per_pass = lambda roi: chosen["k"]  # type: ignore[assignment]  # the value under test
    seconds: dict[int, list[float]] = {k: [] for k in per_pass}
    probs: dict[int, np.ndarray] = {}
    for _ in range(args.repeats):
        for k in per_pass:
            chosen["k"] = k
            start = time.perf_counter()
            pred = model.predict(subject)
            seconds[k].append(time.perf_counter() - start)
            assert pred.probs is not None
            probs[k] = pred.probs
    print(f"{ds.name}/{ds.labelled()[0].case_id}, window {model.window.edge}, overlap {model.window.overlap:g}")
    print("| windows per pass | seconds per round | best, relative to 1 | max |probability difference| |")
    print("|---|---|---|---|")
    for k in per_pass:
        rounds = " / ".join(f"{t:.1f}" for t in seconds[k])
        ratio = min(seconds[k]) / min(seconds[1])
        diff = float(np.abs(probs[k] - probs[1]).max())
        print(f"| {k} | {rounds} | {ratio:.2f} | {diff:.1e} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
