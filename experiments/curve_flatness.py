"""Where do trained transfer-function G's run flat? The slope floor's reach, measured on test subjects.

    .venv/bin/python experiments/curve_flatness.py REPRO_OUT --data DOMAIN [--data DOMAIN ...] [--floor 0.25]

For every run of ``REPRO_OUT/runs/<method>/seed<k>`` whose G is a transfer function (``harmonized``), puts each of
the run's own test subjects through the run's input transform and takes the slope of G's curve at every brain
voxel, relative to the identity's (:meth:`advnorm.models.networks.Networks.curve_slopes`). Prints, per
subject, the share of brain voxels on an exactly flat stretch (both knots clamped to one end of G's range: the
floor term gives them no gradient), the share on stretches flatter than ``--floor`` (what the floor term charges
for during training), and the smallest |slope|; docs/method.md quotes it.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import torch

from advnorm.data.layouts import open_domains
from advnorm.evaluation.evaluate import held_out_cases
from advnorm.inference import TrainedModel


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--data", action="append", required=True)
    ap.add_argument("--floor", type=float, default=0.25)
    a = ap.parse_args()
    domains = open_domains(a.data)
    warnings.simplefilter("ignore")  # the input checks' warnings are not what is measured here
    for run in sorted(a.folder.glob("runs/*/seed*")):
        model = TrainedModel(run)
        if model.nets.ingredients.generator != "transfer":
            continue
        for ds in domains:
            for case in held_out_cases(model, ds) if ds.name in model.run["split"] else []:
                subject = ds.load_case(case, with_label=False)
                x = torch.from_numpy(model.network_input(subject).astype(np.float32))[None, None]
                m = torch.from_numpy(subject.mask.astype(np.float32))[None, None]
                with torch.no_grad():
                    s = model.nets.curve_slopes(x, m)[m > 0].abs()
                print(
                    f"{run.relative_to(a.folder)} {ds.name}/{case.case_id}",
                    f"exactly flat {float((s == 0).float().mean()):.4f}",
                    f"flatter than {a.floor:g} {float((s < a.floor).float().mean()):.4f}",
                    f"min |slope| {float(s.min()):.3f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
