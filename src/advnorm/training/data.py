"""From opened datasets to what the training loop consumes: split, transformed volumes, patch indices."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from advnorm.config import Config, TrainConfig
from advnorm.data.intensity import VALUE_RANGE, fit_nyul, input_histogram, raw_input_problem, transform_image
from advnorm.data.layouts import Dataset, read_alike
from advnorm.data.patches import PatchIndex, gather
from advnorm.data.splits import domain_split, stratified_patch_split
from advnorm.data.subject import Subject
from advnorm.errors import AdvnormError
from advnorm.labels import CLASS_NAMES
from advnorm.methods import MethodSpec
from advnorm.models.transfer import N_STATS, PROFILE_POINTS, SCALE_RANGE, image_stats, intensity_profile


@dataclass
class TrainingData:
    domains: list[str]
    subjects: list[Subject]
    inputs: list[np.ndarray]
    labels: list[np.ndarray]
    masks: list[np.ndarray]
    subject_domain: np.ndarray
    train: PatchIndex
    val: PatchIndex
    split: dict[str, dict[str, list[str]]]
    input_state: dict = field(default_factory=dict)
    input_histograms: dict[str, list[float]] = field(default_factory=dict)
    """Per domain, the brain histogram of the transformed training inputs: what inference compares a new input with."""
    classes: tuple[str, ...] = CLASS_NAMES
    """The classes S learns (background first): the label set all training domains are read with."""
    value_range: tuple[float, float] = SCALE_RANGE
    """The range of the input transform (``advnorm.data.intensity.VALUE_RANGE``) the statistics are taken on."""
    subject_stats: torch.Tensor = field(init=False)
    """Per subject, the statistics of its whole (transformed) image: what a transfer-function G is conditioned on."""
    subject_profiles: torch.Tensor = field(init=False)
    """Per subject, :data:`PROFILE_POINTS` equally spaced quantiles of its brain intensities (transformed): the
    whole image's distribution in equal-mass samples, which the ``image`` adversary view puts through G's curve."""

    def __post_init__(self) -> None:
        rows = [
            image_stats(torch.from_numpy(x)[None, None], torch.from_numpy(np.asarray(m))[None, None], self.value_range)
            for x, m in zip(self.inputs, self.masks, strict=True)
        ]
        self.subject_stats = torch.cat(rows) if rows else torch.zeros(0, N_STATS)
        profiles = [
            intensity_profile(torch.from_numpy(x), torch.from_numpy(np.asarray(m)))
            for x, m in zip(self.inputs, self.masks, strict=True)
        ]
        self.subject_profiles = torch.stack(profiles) if profiles else torch.zeros(0, PROFILE_POINTS)

    def batch(
        self, index: PatchIndex, rows: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Gather patches ``rows``: x (B,1,P,P,P) float32, y (B,P,P,P) long, mask like x, z (B,) long."""
        x = torch.from_numpy(gather(self.inputs, index, rows)).unsqueeze(1)
        y = torch.from_numpy(gather(self.labels, index, rows)).long()
        m = torch.from_numpy(gather(self.masks, index, rows)).unsqueeze(1).float()
        z = torch.from_numpy(self.subject_domain[index.subjects[rows]]).long()
        return x, y, m, z

    def stats(self, index: PatchIndex, rows: np.ndarray) -> torch.Tensor:
        """(B, N_STATS): the intensity statistics of the whole image each patch comes from (for a transfer G)."""
        return self.subject_stats[index.subjects[np.asarray(rows, dtype=np.int64)]]

    def profiles(self, index: PatchIndex, rows: np.ndarray) -> torch.Tensor:
        """(B, PROFILE_POINTS): the brain intensity profile of the whole image each patch comes from."""
        return self.subject_profiles[index.subjects[np.asarray(rows, dtype=np.int64)]]

    def row_domains(self, index: PatchIndex) -> np.ndarray:
        return self.subject_domain[index.subjects]

    def class_counts(self, rows: int = 512, seed: int = 0) -> torch.Tensor:
        """Voxel counts of every class over a sample of training patches (for the default Dice weights)."""
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(self.train), size=min(rows, len(self.train)), replace=False)
        y = gather(self.labels, self.train, pick)
        n = len(self.classes)
        return torch.from_numpy(np.bincount(y.ravel(), minlength=n)[:n].astype(np.int64))


def training_domains(datasets: list[Dataset], cfg: Config, spec: MethodSpec) -> list[Dataset]:
    """The domains a method trains on: one for ``single`` (``data.train_domain``, else the first), else all (>= 2),
    or all but ``data.left_out_domain`` (>= 1: a site never seen is tested)."""
    if spec.single_domain:
        wanted = cfg.data.train_domain or datasets[0].name
        chosen = [d for d in datasets if d.name == wanted]
        if not chosen:
            raise AdvnormError(
                f"--train-domain {wanted!r} is none of the domains {', '.join(d.name for d in datasets)}"
            )
        return chosen
    left_out = cfg.data.left_out_domain
    if left_out is not None:
        if left_out not in [d.name for d in datasets]:
            raise AdvnormError(
                f"the left-out domain {left_out!r} is none of the domains {', '.join(d.name for d in datasets)}"
            )
        kept = [d for d in datasets if d.name != left_out]
        if not kept:
            raise AdvnormError(f"leaving {left_out!r} out leaves no domain to train on: give at least two --data")
        return kept
    if len(datasets) < 2:
        raise AdvnormError(f"method {spec.name!r} trains on several domains: give at least two --data")
    return datasets


def prepare(datasets: list[Dataset], cfg: Config, spec: MethodSpec, *, log=print) -> TrainingData:
    """Load the training and validation subjects of every training domain and index their patches."""
    datasets = read_alike(training_domains(datasets, cfg, spec))
    classes = datasets[0].classes
    if cfg.loss.dice_weights is not None and len(cfg.loss.dice_weights) != len(classes):
        raise AdvnormError(
            f"invalid configuration: loss.dice_weights has {len(cfg.loss.dice_weights)} weights for the "
            f"{len(classes)} classes of the data ({', '.join(classes)})"
        )
    subjects, split, subject_domain = [], {}, []
    for k, ds in enumerate(datasets):
        split[ds.name] = domain_split([c.case_id for c in ds.labelled()], cfg.data, where=ds.root)
        wanted_ids = set(split[ds.name]["train"]) | set(split[ds.name]["val"])
        cases = [c for c in ds.labelled() if c.case_id in wanted_ids]
        log(f"loading {len(cases)} subjects of {ds.name} ({ds.layout})")
        for case in cases:
            subjects.append(ds.load_case(case))
            subject_domain.append(k)
    for s in subjects:  # refused here, before any training, as inference would refuse it afterwards
        if (problem := raw_input_problem(spec.input_transform, s.image, s.mask)) is not None:
            raise AdvnormError(problem, s.source.path)
    input_state: dict = {}
    if spec.input_transform == "nyul":
        train_ids = {(d, c) for d in split for c in split[d]["train"]}
        fit_on = [s for s in subjects if (s.domain, s.case_id) in train_ids]
        input_state = fit_nyul([s.image for s in fit_on], [s.mask for s in fit_on])
    inputs = [
        transform_image(spec.input_transform, s.image, s.mask, percentile=cfg.data.scale_percentile, fitted=input_state)
        for s in subjects
    ]
    histograms = {}
    for k, ds in enumerate(datasets):
        members = [i for i, d in enumerate(subject_domain) if d == k]
        hists = [input_histogram(spec.input_transform, inputs[i], subjects[i].mask) for i in members]
        histograms[ds.name] = [round(float(v), 6) for v in np.mean(hists, axis=0)]
    labels = [s.require_label() for s in subjects]
    masks = [s.mask.astype(np.uint8) for s in subjects]
    index = PatchIndex.build(
        [lab > 0 for lab in labels], patch_size=cfg.train.patch_size, stride=cfg.train.patch_stride
    )
    if cfg.data.split == "patch":
        centre = np.array([labels[s][x, y, z] for s, x, y, z in index.entries], dtype=np.int64)
        tr, va, _ = stratified_patch_split(centre, cfg.data.fractions, cfg.data.split_seed)
        train, val = index.subset(tr), index.subset(va)
    else:
        role = {(s.domain, s.case_id): ("train" if s.case_id in split[s.domain]["train"] else "val") for s in subjects}
        is_train = np.array([role[(subjects[i].domain, subjects[i].case_id)] == "train" for i in index.subjects])
        train, val = index.subset(np.flatnonzero(is_train)), index.subset(np.flatnonzero(~is_train))
    if len(train) == 0 or len(val) == 0:
        raise AdvnormError("no labelled foreground patches to train or validate on (empty label maps?)")
    return TrainingData(
        domains=[d.name for d in datasets],
        subjects=subjects,
        inputs=inputs,
        labels=labels,
        masks=masks,
        subject_domain=np.asarray(subject_domain, dtype=np.int64),
        train=train,
        val=val,
        split=split,
        input_state=input_state,
        input_histograms=histograms,
        classes=classes,
        value_range=VALUE_RANGE[spec.input_transform],
    )


def validation_rows(data: TrainingData, n: int, seed: int, index: PatchIndex | None = None) -> np.ndarray:
    """A fixed, domain-balanced sample of ``n`` patches of ``index`` (default: the validation patches)."""
    rng = np.random.default_rng(seed + 1)
    doms = data.row_domains(data.val if index is None else index)
    per = max(1, n // len(np.unique(doms)))
    rows = [
        rng.choice(np.flatnonzero(doms == d), size=min(per, int(np.sum(doms == d))), replace=False)
        for d in np.unique(doms)
    ]
    return np.sort(np.concatenate(rows))


def batchnorm_batches(data: TrainingData, t: TrainConfig) -> list[np.ndarray]:
    """The fixed training batches BatchNorm statistics are recomputed on: ``t.bn_recalibration_batches`` batches
    of ``t.batch_size`` patches, domain-balanced overall and shuffled so every batch mixes domains as in training.
    The same on every rank, so the statistics agree under torchrun."""
    n = t.bn_recalibration_batches * t.batch_size
    if n == 0:
        return []
    rows = validation_rows(data, n, t.seed + 7919, data.train)
    rows = np.random.default_rng(t.seed + 7919).permutation(rows)
    return [rows[i : i + t.batch_size] for i in range(0, len(rows), t.batch_size)]
