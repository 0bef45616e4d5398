"""Where does each method put each tissue, per site? Explains a JSD between sites that rises or falls.

    .venv/bin/python experiments/tissue_positions.py REPRO_OUT --data DOMAIN [--data DOMAIN ...] [--methods a,b]

For every run ``REPRO_OUT/runs/<method>/seed<k>`` of the listed methods (made by ``advnorm reproduce`` on the same
``--data``), predicts the run's test subjects and takes, within the brain, each tissue's median and interquartile
range (IQR) of what the method feeds S (G's output, or the z-scored / Nyul image). Per method and tissue, mean
over seeds:

- ``gap``: the largest difference between the sites' medians of that tissue;
- ``iqr``: the tissue's IQR, mean over sites;
- ``gap/iqr``: how many IQRs apart the sites put the tissue. The per-tissue JSD between sites grows with it: two
  sites' histograms of a tissue overlap little once their medians lie more than about one IQR apart, whether
  the gap grew or the peaks narrowed.

and per method and site, the ``spike``: the largest share of the site's brain voxels in one bin of a 128-bin
histogram on the site's 0.5-99.5th percentile range (the binning of the report's JSD), mean and range over
seeds. A G whose transfer function runs flat over an input range piles that range into one bin; such spikes, at
different values in different sites, raise the JSD while the medians stay put.

The explanation of the content term's JSD in docs/method.md comes from this script.
"""

from __future__ import annotations

import argparse
import warnings
from collections import defaultdict
from pathlib import Path
from statistics import mean

import numpy as np

from advnorm.data.layouts import open_domains
from advnorm.evaluation.evaluate import held_out_cases
from advnorm.evaluation.intensity_agreement import shared_histograms
from advnorm.inference import TrainedModel

SPIKE_BINS = 128


def spike(values: np.ndarray) -> float:
    """The largest share of ``values`` in one of ``SPIKE_BINS`` bins on their 0.5-99.5th percentile range (the
    report's JSD binning, :func:`advnorm.evaluation.intensity_agreement.shared_histograms`)."""
    hist, _ = shared_histograms([values], SPIKE_BINS)
    return float(hist[0].max())


def positions(run: Path, domains) -> tuple[dict[tuple[str, str], tuple[float, float]], dict[str, float]]:
    """(site, tissue) -> (median, IQR) of the normalized test volumes' voxels of that tissue, pooled over the
    run's test subjects; and site -> :func:`spike` of the site's brain voxels."""
    model = TrainedModel(run)
    tissues, spikes = {}, {}
    for ds in domains:
        values: dict[str, list[np.ndarray]] = defaultdict(list)
        for case in held_out_cases(model, ds):
            subject = ds.load_case(case)
            label = subject.require_label()
            normalized = model.predict(subject).normalized
            values["brain"].append(normalized[label > 0])
            for k, tissue in enumerate(model.classes[1:], start=1):
                values[tissue].append(normalized[label == k])
        spikes[ds.name] = spike(np.concatenate(values.pop("brain")))
        for tissue, parts in values.items():
            q25, q50, q75 = np.percentile(np.concatenate(parts), [25, 50, 75])
            tissues[ds.name, tissue] = (float(q50), float(q75 - q25))
    return tissues, spikes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--data", action="append", required=True)
    ap.add_argument("--methods", default="standardized,harmonized")
    a = ap.parse_args()
    domains = open_domains(a.data)
    warnings.simplefilter("ignore")  # the input checks' own warnings are not what is measured here
    measured = {}
    for method in a.methods.split(","):
        per_seed = [positions(run, domains) for run in sorted((a.folder / "runs" / method).glob("seed*"))]
        if not per_seed:
            raise SystemExit(f"{a.folder}/runs/{method}: no seed folders")
        measured[method] = per_seed
    print("| method | tissue | " + " | ".join(f"median {d.name}" for d in domains) + " | gap | iqr | gap/iqr |")
    print("| --- " * (len(domains) + 5) + "|")
    for method, per_seed in measured.items():
        tissues = list(dict.fromkeys(t for _, t in per_seed[0][0]))
        for tissue in tissues:
            medians = [mean(p[0][d.name, tissue][0] for p in per_seed) for d in domains]
            gaps = [
                max(p[0][d.name, tissue][0] for d in domains) - min(p[0][d.name, tissue][0] for d in domains)
                for p in per_seed
            ]
            iqrs = [mean(p[0][d.name, tissue][1] for d in domains) for p in per_seed]
            ratio = mean(g / i for g, i in zip(gaps, iqrs, strict=True))
            cells = " | ".join(f"{m:.2f}" for m in medians)
            print(f"| {method} | {tissue} | {cells} | {mean(gaps):.2f} | {mean(iqrs):.2f} | {ratio:.2f} |")
    print("\n| method | site | spike: mean | min | max |\n| --- | --- | --- | --- | --- |")
    for method, per_seed in measured.items():
        for d in domains:
            spikes = [p[1][d.name] for p in per_seed]
            print(f"| {method} | {d.name} | {mean(spikes):.3f} | {min(spikes):.3f} | {max(spikes):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
