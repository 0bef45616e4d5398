"""How often does the implausible-segmentation warning of ``advnorm predict`` fire on legitimate inputs?

    .venv/bin/python experiments/tissue_shares_check.py REPRO_OUT --data DOMAIN [--data DOMAIN ...]

For every multi-domain run of ``REPRO_OUT/runs/<cell>/seed<k>`` (made by ``advnorm reproduce`` on the same
``--data``), predicts each of the run's own test subjects and judges the segmentation as ``predict`` does
(:mod:`advnorm.data.tissue_shares`), against the tissue-share ranges of the run's training subjects, computed
here from their labels as training records them now (so runs made before the check existed are judged too).
Prints one line per prediction and how many were flagged; the figures in the module's docstring come from it.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from advnorm.data.layouts import open_domains
from advnorm.data.tissue_shares import implausible_shares, share_ranges, tissue_shares
from advnorm.evaluation.evaluate import held_out_cases
from advnorm.inference import TrainedModel


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--data", action="append", required=True)
    a = ap.parse_args()
    domains = open_domains(a.data)
    warnings.simplefilter("ignore")  # the input checks' own warnings are not what is counted here
    flagged = total = 0
    for run in sorted(a.folder.glob("runs/*/seed*")):
        model = TrainedModel(run)
        if model.cfg.method == "single":
            continue
        split = model.run["split"]
        train = [
            tissue_shares(ds.load_case(case).require_label(), len(ds.classes))
            for ds in domains
            if ds.name in split
            for case in ds.labelled()
            if case.case_id in split[ds.name]["train"]
        ]
        ranges = share_ranges(train, domains[0].classes)
        for ds in domains:
            for case in held_out_cases(model, ds) if ds.name in split else []:
                pred = model.predict(ds.load_case(case, with_label=False))
                shares = tissue_shares(pred.labels, len(ds.classes))
                said = implausible_shares(shares, ranges, ds.classes)
                total += 1
                flagged += said is not None
                where = f"{run.relative_to(a.folder)} {ds.name}/{case.case_id}"
                print(where, " ".join(f"{v:.3f}" for v in shares), f"FLAGGED: {said}" if said else "ok", flush=True)
    print(f"{flagged} of {total} test predictions flagged")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
