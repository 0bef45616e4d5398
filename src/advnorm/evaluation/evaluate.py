"""``advnorm evaluate``: a trained run on the full volumes of each domain's test subjects.

Dice, HD95 and ASD per class on the 1 mm working grid (the grid the paper worked on),
and intensity agreement (true JSD, base 2) between domains, of the raw inputs (linearly
rescaled) and of what the method feeds S (G's output; the z-scored or Nyúl-standardized
image for those baselines), whole brain and per tissue.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from advnorm.data.fingerprint import case_digest
from advnorm.data.intensity import transform_image
from advnorm.data.layouts import CaseRef, Dataset, read_alike
from advnorm.data.splits import domain_split
from advnorm.data.subject import Subject
from advnorm.errors import AdvnormError, AdvnormWarning
from advnorm.evaluation.intensity_agreement import per_class_jsd, tissue_overlap
from advnorm.evaluation.metrics import case_metrics, summarize
from advnorm.inference import TrainedModel
from advnorm.labels import CLASS_NAMES

MAX_JSD_VOXELS = 400_000
"""Brain voxels sampled per domain for the histograms (plenty for 128 bins)."""


@dataclass
class CaseResult:
    domain: str
    case_id: str
    metrics: dict


@dataclass
class Evaluation:
    cases: list[CaseResult] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    inference: dict = field(default_factory=dict)
    """The sliding window the volumes were segmented with (``edge``, ``overlap``)."""

    def to_json(self) -> dict:
        return {
            "inference": self.inference,
            "summary": self.summary,
            "cases": [{"domain": c.domain, "case": c.case_id, **c.metrics} for c in self.cases],
        }


def held_out_cases(model: TrainedModel, ds: Dataset) -> list[CaseRef]:
    """The domain's test subjects under the run's split (recomputed identically for unseen domains)."""
    if not ds.labelled():
        return []
    split = model.run.get("split", {}).get(ds.name) or domain_split(
        [c.case_id for c in ds.labelled()], model.cfg.data, where=ds.root
    )
    wanted = set(split["test"])
    cases = [c for c in ds.labelled() if c.case_id in wanted]
    if ds.name in model.run.get("split", {}):
        missing = sorted(wanted - {c.case_id for c in cases})
        if missing and not cases:
            raise AdvnormError(
                f"holds none of the run's test subjects of {ds.name} ({', '.join(missing[:4])}); give the "
                "folder the run was trained on, or rename the domain to evaluate it as a new one",
                ds.root,
            )
        if missing:
            warnings.warn(
                AdvnormWarning(
                    f"test subject(s) {', '.join(missing[:4])} of {ds.name} are missing: scored on "
                    f"the {len(cases)} present",
                    ds.root,
                ),
                stacklevel=2,
            )
    _warn_if_other_files(model, ds, cases)
    return cases


def _warn_if_other_files(model: TrainedModel, ds: Dataset, cases: list) -> None:
    """The run's split is by case id; if a training domain's test cases are not the files the run was
    trained beside, this is another copy or another dataset and "held out" is not guaranteed: say so."""
    recorded = {d["name"]: d for d in model.run.get("data", [])}.get(ds.name)
    if recorded is None:
        return
    known = {c["case"]: c for c in recorded.get("cases", [])}
    changed = [c.case_id for c in cases if c.case_id in known and case_digest(c) != known[c.case_id]]
    if changed:
        warnings.warn(
            AdvnormWarning(
                f"the files of test case(s) {', '.join(changed[:3])} differ from those in the data the run was trained "
                f"beside, although the domain is called {ds.name} like one of its training domains; the split by case "
                "id may not hold these subjects out",
                ds.root,
            ),
            stacklevel=2,
        )


def evaluate(
    model: TrainedModel, datasets: list[Dataset], *, log: Callable[[str], None] = print, progress: bool = False
) -> Evaluation:
    """Every held-out case of ``datasets``: metrics per case and summaries per domain, and the JSD between domains.
    ``progress``: a bar over the volumes on a terminal (each volume's line is printed as it is scored either way)."""
    from tqdm import tqdm

    result = Evaluation(inference={"window": model.window.edge, "overlap": model.window.overlap})
    datasets = read_alike(datasets, model.classes)
    planned = [(ds, case) for ds in datasets for case in held_out_cases(model, ds)]
    if not planned:
        given = ", ".join(f"{d.name} ({len(d.labelled())} labelled)" for d in datasets)
        raise AdvnormError(
            f"no labelled test subject of this run in the --data folders ({given}); evaluate needs the "
            "domains the run was trained on, or labelled subjects of a new domain",
            datasets[0].root,
        )
    inputs: dict[str, list] = {}
    outputs: dict[str, list] = {}
    labels: dict[str, list] = {}
    for ds, case in tqdm(planned, disable=None if progress else True, unit="volume", leave=False):
        subject = ds.load_case(case)
        label = subject.require_label()
        model.warn_if_many_windows(subject)
        pred = model.predict(subject)
        metrics = case_metrics(pred.labels, label, subject.spacing, names=model.classes)
        log(f"  {ds.name}/{case.case_id}: Dice " + " ".join(f"{k}={v:.3f}" for k, v in metrics["dice"].items()))
        result.cases.append(CaseResult(ds.name, case.case_id, metrics))
        brain = label > 0
        inputs.setdefault(ds.name, []).append(raw_input(model, subject)[brain])
        outputs.setdefault(ds.name, []).append(pred.normalized[brain])
        labels.setdefault(ds.name, []).append(label[brain])
    by_domain = {}
    for name in dict.fromkeys(c.domain for c in result.cases):
        by_domain[name] = summarize([c.metrics for c in result.cases if c.domain == name])
    result.summary = {
        "per_domain": by_domain,
        "mean": summarize([c.metrics for c in result.cases]) if result.cases else {},
    }
    if len(inputs) >= 2:
        result.summary["jsd"] = jsd_between_domains(inputs, outputs, labels, classes=model.classes)
    ids = tuple(range(1, len(model.classes)))
    result.summary["tissue_overlap"] = {
        kind: {
            name: tissue_overlap(np.concatenate(values[name]), np.concatenate(labels[name]), ids, names=model.classes)
            for name in values
        }
        for kind, values in (("input", inputs), ("normalized", outputs))
    }
    return result


def raw_input(model: TrainedModel, subject: Subject) -> np.ndarray:
    """The un-normalized image as G sees it: linearly rescaled, each domain's contrast intact."""
    return transform_image("scale", subject.image, subject.mask, percentile=model.cfg.data.scale_percentile)


def jsd_between_domains(
    inputs: dict, outputs: dict, labels: dict, seed: int = 0, classes: tuple[str, ...] = CLASS_NAMES
) -> dict:
    """Mean pairwise JSD across domains, of G's inputs and of its normalized outputs, per tissue and 'all'."""
    rng = np.random.default_rng(seed)
    x_in, x_out, labs = [], [], []
    for name, raw in inputs.items():
        a, b, lab = (np.concatenate(v) for v in (raw, outputs[name], labels[name]))
        if a.size > MAX_JSD_VOXELS:
            pick = rng.choice(a.size, MAX_JSD_VOXELS, replace=False)
            a, b, lab = a[pick], b[pick], lab[pick]
        x_in.append(a)
        x_out.append(b)
        labs.append(lab)
    ids = tuple(range(1, len(classes)))
    return {
        "input": per_class_jsd(x_in, labs, ids, names=classes),
        "normalized": per_class_jsd(x_out, labs, ids, names=classes),
    }
