"""Measure the saturating vs non-saturating G adversarial term (docs/method.md).

Trains the adversarial method twice on the same phantom, seed and budget, once with
each form of G's adversarial term, and prints a JSON summary: validation Dice per epoch,
D's accuracy on generated patches (how often G fails to pass as real), and JSD of
the normalized images between domains on the test subjects.

    .venv/bin/python experiments/adv_form.py --out /tmp/adv_form [--epochs 6]
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from advnorm.config import resolve
from advnorm.data.layouts import open_domains
from advnorm.data.phantom.generate import PhantomSpec, write_phantom
from advnorm.evaluation.evaluate import evaluate
from advnorm.inference import TrainedModel
from advnorm.training.loop import fit


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--scale", type=float, default=0.5)
    args = ap.parse_args()
    phantom = args.out / "phantom"
    if not (phantom / "phantom.json").exists():
        write_phantom(phantom, PhantomSpec(domains=2, subjects=4, seed=0, scale=args.scale))
    datasets = open_domains(sorted(str(p) for p in phantom.glob("Dataset*")))
    result = {}
    for form in ("non_saturating", "saturating"):
        run = args.out / form
        cfg = resolve("quick", overrides={"method": "adversarial", "loss.adv_form": form, "train.epochs": args.epochs})
        if not (run / "checkpoint_final.safetensors").exists():
            fit(cfg, datasets, run, progress=False, log=lambda m: None)
        rows = list(csv.DictReader(open(run / "training_log.csv")))
        ev = evaluate(TrainedModel(run), datasets, log=lambda m: None).to_json()["summary"]
        result[form] = {
            "val_dice_mean": [round(float(r["val_dice_mean"]), 3) for r in rows],
            "d_acc_fake": [round(float(r["d_acc_fake"]), 3) for r in rows if r.get("d_acc_fake")],
            "test_dice_mean": round(ev["mean"]["dice"]["mean"]["mean"], 3),
            "jsd_normalized_all": round(ev["jsd"]["normalized"]["all"], 3),
            "jsd_input_all": round(ev["jsd"]["input"]["all"], 3),
        }
    print(json.dumps(result, indent=1))
    (args.out / "adv_form.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
