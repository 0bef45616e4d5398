"""From opened datasets to what the training loop consumes: split, per-image input transforms, patch indices.

Training holds no transformed copy of any volume. The subjects' raw working-grid images are memory-mapped from
the working-grid cache (:mod:`advnorm.data.cache`); each image's input transform is fitted once (a few numbers)
and applied to each patch as it is gathered, which gives the same bits as transforming the whole image first
because every transform is voxel-wise. What needs whole images (the transform's parameters, the per-domain input
histograms, the statistics a transfer G is conditioned on) is computed one subject at a time and kept beside the
subject's cache entry, so a second ``prepare`` over the same data (the next cell of a ``reproduce``, another
torchrun process) reads a few numbers per subject.
"""

from __future__ import annotations

import functools
import hashlib
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from advnorm.config import Config
from advnorm.data.cache import derived, release
from advnorm.data.intensity import (
    NYUL_PERCENTILES,
    VALUE_RANGE,
    ImageTransform,
    fit_transform,
    image_landmarks,
    input_histogram,
    nyul_standard,
    raw_input_problem,
)
from advnorm.data.layouts import Dataset, read_alike
from advnorm.data.patches import PatchIndex, gather
from advnorm.data.splits import domain_split, stratified_patch_split
from advnorm.data.subject import Subject
from advnorm.data.tissue_shares import share_ranges, tissue_shares
from advnorm.errors import AdvnormError
from advnorm.labels import CLASS_NAMES
from advnorm.methods import MethodSpec
from advnorm.models.transfer import N_STATS, PROFILE_POINTS, SCALE_RANGE, image_stats, intensity_profile

MAPPED_BUDGET = 64 * 2**20
"""Bytes of memory-mapped volume pages a process may hold mapped before :meth:`TrainingData.batch` unmaps them
(:func:`advnorm.data.cache.release`); they stay in the page cache, so this bounds the resident size, not speed.
The count is of the pages patches lie on; the kernel maps a few times more around each fault (fault-around, 64 KiB
by default): 256 MiB here measured 0.8 GiB of mapped pages per process (benchmarks/scale_cache.py)."""
PAGE = 4096
T = TypeVar("T")


@dataclass
class TrainingData:
    domains: list[str]
    subjects: list[Subject]
    inputs: list[np.ndarray]
    """The volumes patches are cut from. With ``transforms``: each subject's raw working-grid image (memory-mapped),
    transformed patch by patch; without (tests, benchmarks): images already transformed."""
    labels: list[np.ndarray]
    masks: list[np.ndarray]
    subject_domain: np.ndarray
    train: PatchIndex
    val: PatchIndex
    split: dict[str, dict[str, list[str]]]
    input_state: dict = field(default_factory=dict)
    input_histograms: dict[str, list[float]] = field(default_factory=dict)
    """Per domain, the brain histogram of the transformed training inputs: what inference compares a new input with."""
    tissue_shares: dict[str, list[float]] = field(default_factory=dict)
    """Per foreground class, the [lowest, highest] share of the labelled tissue over the training subjects: what
    inference judges a segmentation's plausibility by (:mod:`advnorm.data.tissue_shares`)."""
    classes: tuple[str, ...] = CLASS_NAMES
    """The classes S learns (background first): the label set all training domains are read with."""
    value_range: tuple[float, float] = SCALE_RANGE
    """The range of the input transform (``advnorm.data.intensity.VALUE_RANGE``) the statistics are taken on."""
    transforms: list[ImageTransform] | None = None
    """Per subject, its input transform fitted to its whole image, applied to each gathered patch of ``inputs``."""
    precomputed_stats: InitVar[torch.Tensor | None] = None
    subject_stats: torch.Tensor = field(init=False)
    """Per subject, the statistics of its whole (transformed) image: what a transfer-function G is conditioned on."""
    subject_profiles: torch.Tensor = field(init=False)
    """Per subject, :data:`PROFILE_POINTS` equally spaced quantiles of its brain intensities (transformed): the
    whole image's distribution in equal-mass samples, which the ``image`` adversary view puts through G's curve."""
    precomputed_profiles: InitVar[torch.Tensor | None] = None
    _mapped_bytes: int = field(default=0, init=False, repr=False)
    _mapped_subjects: set[int] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self, precomputed_stats: torch.Tensor | None, precomputed_profiles: torch.Tensor | None) -> None:
        if precomputed_stats is not None and precomputed_profiles is not None:
            self.subject_stats, self.subject_profiles = precomputed_stats, precomputed_profiles
            return
        stats, profiles = [], []
        for i in range(len(self.inputs)):
            x = self.input_volume(i)
            stats.append(whole_image_stats(x, self.masks[i], self.value_range))
            profiles.append(whole_image_profile(x, self.masks[i]))
            release(self.inputs[i], self.masks[i])
        self.subject_stats = torch.stack(stats) if stats else torch.zeros(0, N_STATS)
        self.subject_profiles = torch.stack(profiles) if profiles else torch.zeros(0, PROFILE_POINTS)

    def input_volume(self, i: int) -> np.ndarray:
        """Subject ``i``'s whole network input (its transformed image), made on demand: training never holds it."""
        if self.transforms is None:
            return self.inputs[i]
        return self.transforms[i].apply(self.inputs[i], _as_bool(self.masks[i]))

    def batch(
        self, index: PatchIndex, rows: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Gather patches ``rows``: x (B,1,P,P,P) float32, y (B,P,P,P) long, mask like x, z (B,) long."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        x = gather(self.inputs, index, rows)
        mask = gather(self.masks, index, rows)
        sids = index.subjects[rows]
        if self.transforms is not None:
            for k, sid in enumerate(sids.tolist()):
                x[k] = self.transforms[sid].apply(x[k], _as_bool(mask[k]))
        y = gather(self.labels, index, rows)
        self._unmap_beyond_budget(index, sids)
        z = torch.from_numpy(self.subject_domain[sids]).long()
        return (
            torch.from_numpy(x).unsqueeze(1),
            torch.from_numpy(y).long(),
            torch.from_numpy(mask).unsqueeze(1).float(),
            z,
        )

    def _unmap_beyond_budget(self, index: PatchIndex, sids: np.ndarray) -> None:
        """Count the pages a batch mapped; past :data:`MAPPED_BUDGET`, unmap every volume touched since last time."""
        self._mapped_subjects.update(sids.tolist())
        for sid in sids.tolist():
            shape = self.inputs[sid].shape
            self._mapped_bytes += sum(
                mapped_bytes(shape, volumes[sid].itemsize, index.patch_size)
                for volumes in (self.inputs, self.masks, self.labels)
            )
        if self._mapped_bytes > MAPPED_BUDGET:
            for sid in self._mapped_subjects:
                release(self.inputs[sid], self.masks[sid], self.labels[sid])
            self._mapped_subjects.clear()
            self._mapped_bytes = 0

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
        release(*self.labels)
        n = len(self.classes)
        return torch.from_numpy(np.bincount(y.ravel(), minlength=n)[:n].astype(np.int64))


def mapped_bytes(shape: Sequence[int], itemsize: int, size: int) -> int:
    """Bytes of the memory pages a ``size``-cube patch of a C-ordered volume of ``shape`` lies on, at most: in each
    of its ``size`` planes, ``size`` rows ``shape[2]`` items apart."""
    span = ((size - 1) * int(shape[2]) + size) * itemsize
    return size * (span // PAGE + 2) * PAGE


def _as_bool(mask: np.ndarray) -> np.ndarray:
    """A 0/1 uint8 mask as bool without a copy (``image[mask]`` needs bool)."""
    return mask.view(np.bool_) if mask.dtype == np.uint8 else mask.astype(bool)


def whole_image_stats(x: np.ndarray, mask: np.ndarray, value_range: tuple[float, float]) -> torch.Tensor:
    """(N_STATS,): :func:`advnorm.models.transfer.image_stats` of one whole transformed image."""
    m = torch.from_numpy(np.array(mask, dtype=np.uint8))  # a copy: the cache's arrays are read-only
    return image_stats(torch.from_numpy(x)[None, None], m[None, None], value_range)[0]


def whole_image_profile(x: np.ndarray, mask: np.ndarray) -> torch.Tensor:
    """(PROFILE_POINTS,): :func:`advnorm.models.transfer.intensity_profile` of one whole transformed image."""
    return intensity_profile(torch.from_numpy(x), torch.from_numpy(np.array(mask, dtype=np.uint8)))


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
    kind, percentile, value_range = spec.input_transform, cfg.data.scale_percentile, VALUE_RANGE[spec.input_transform]
    for s in subjects:  # refused here, before any training, as inference would refuse it afterwards
        problem = _derived(s, "raw-input-problem", {"kind": kind}, partial(raw_input_problem, kind, s.image, s.mask))
        if problem is not None:
            raise AdvnormError(problem, s.source.path)
    train_ids = {(d, c) for d in split for c in split[d]["train"]}
    input_state: dict = {}
    landmarks: list[list[float] | None] = [None] * len(subjects)
    if kind == "nyul":  # each subject's own landmarks, once: the standard scale is fitted on the training ones
        percentiles = list(NYUL_PERCENTILES)
        landmarks = [_landmarks(s, percentiles) for s in subjects]
        fit_on = [lm for s, lm in zip(subjects, landmarks, strict=True) if (s.domain, s.case_id) in train_ids]
        input_state = nyul_standard([np.asarray(lm, dtype=np.float64) for lm in fit_on], percentiles)
    settings = {"kind": kind, "percentile": percentile, "fitted": input_state, "value_range": list(value_range)}
    profiles = [
        _derived(
            s, "input-profile", settings, partial(_input_profile, s, kind, percentile, input_state, value_range, lm)
        )
        for s, lm in zip(subjects, landmarks, strict=True)
    ]
    histograms = {}
    for k, ds in enumerate(datasets):
        members = [i for i, d in enumerate(subject_domain) if d == k]
        hists = [np.asarray(profiles[i]["histogram"], dtype=np.float64) for i in members]
        histograms[ds.name] = [round(float(v), 6) for v in np.mean(hists, axis=0)]
    labels = [s.require_label() for s in subjects]
    masks = [s.mask.view(np.uint8) for s in subjects]  # the same bytes (0/1), no copy
    index = PatchIndex.build(_foreground(labels), patch_size=cfg.train.patch_size, stride=cfg.train.patch_stride)
    if cfg.data.split == "patch":
        centre = np.zeros(len(index), dtype=np.int64)  # the class at each patch's centre, subject by subject
        bounds = np.searchsorted(index.subjects, np.arange(len(labels) + 1))  # build() keeps subjects in order
        for sid, label in enumerate(labels):
            rows = slice(bounds[sid], bounds[sid + 1])
            centre[rows] = label[tuple(index.entries[rows, 1:].T)]
            release(label)
        tr, va, _ = stratified_patch_split(centre, cfg.data.fractions, cfg.data.split_seed)
        train, val = index.subset(tr), index.subset(va)
    else:
        subject_is_train = np.array([(s.domain, s.case_id) in train_ids for s in subjects], dtype=bool)
        is_train = subject_is_train[index.subjects]  # per patch, without a Python loop over millions of them
        train, val = index.subset(np.flatnonzero(is_train)), index.subset(np.flatnonzero(~is_train))
    if len(train) == 0 or len(val) == 0:
        raise AdvnormError("no labelled foreground patches to train or validate on (empty label maps?)")
    return TrainingData(
        domains=[d.name for d in datasets],
        subjects=subjects,
        inputs=[s.image for s in subjects],
        labels=labels,
        masks=masks,
        subject_domain=np.asarray(subject_domain, dtype=np.int64),
        train=train,
        val=val,
        split=split,
        input_state=input_state,
        input_histograms=histograms,
        tissue_shares=_training_tissue_shares(subjects, train_ids, classes),
        classes=classes,
        value_range=value_range,
        transforms=[ImageTransform(kind, tuple(p["params"]), tuple(p["targets"])) for p in profiles],
        precomputed_stats=(
            torch.tensor([p["stats"] for p in profiles], dtype=torch.float32) if profiles else torch.zeros(0, N_STATS)
        ),
        precomputed_profiles=(
            torch.tensor([p["profile"] for p in profiles], dtype=torch.float32)
            if profiles
            else torch.zeros(0, PROFILE_POINTS)
        ),
    )


def _training_tissue_shares(
    subjects: list[Subject], train_ids: set[tuple[str, str]], classes: tuple[str, ...]
) -> dict[str, list[float]]:
    """Per foreground class, the range of its share of the labelled tissue over the training subjects (each
    subject's shares kept beside its cache entry: a warm cache does not read the label maps again)."""
    shares = [
        np.asarray(
            _derived(s, "tissue-shares", {"classes": list(classes)}, partial(_shares, s, len(classes))), dtype=float
        )
        for s in subjects
        if (s.domain, s.case_id) in train_ids
    ]
    return share_ranges(shares, classes)


def _shares(subject: Subject, n_classes: int) -> list[float]:
    return [float(v) for v in tissue_shares(subject.require_label(), n_classes)]


def _derived(subject: Subject, name: str, params: Mapping[str, Any], compute: Callable[[], T]) -> T:
    """:func:`advnorm.data.cache.derived` with the version of the code computing it; the subject's pages it read
    are unmapped afterwards (one subject at a time: preparing never holds every volume)."""
    try:
        return derived(subject, name, {**params, "code": _code_version()}, compute)
    finally:
        release(subject.image, subject.mask, subject.label)


@functools.cache
def _code_version() -> str:
    """What the derived values depend on besides the arrays and the settings: the code computing them (this module,
    ``data/intensity.py``, ``models/transfer.py``) and the numpy and torch versions. Unlike the working-grid entries
    (``PREPROCESS_VERSION``, bumped by hand), any edit recomputes them: they take seconds per hundred subjects."""
    from advnorm.data import intensity
    from advnorm.models import transfer

    h = hashlib.sha256(f"numpy {np.__version__} torch {torch.__version__}".encode())
    for module in (intensity, transfer, sys.modules[__name__]):
        try:
            h.update(Path(str(module.__file__)).read_bytes())
        except OSError:
            return "unknown"  # the code cannot be read: no stored value is trusted
    return h.hexdigest()[:24]


def _landmarks(subject: Subject, percentiles: list[float]) -> list[float]:
    """The subject's Nyul landmarks, computed once and kept beside its cache entry."""

    def compute() -> list[float]:
        return [float(v) for v in image_landmarks(subject.image, subject.mask, percentiles)]

    return _derived(subject, "landmarks", {"percentiles": percentiles}, compute)


def _input_profile(
    subject: Subject,
    kind: str,
    percentile: float,
    fitted: dict,
    value_range: tuple[float, float],
    landmarks: list[float] | None = None,
) -> dict[str, list[float]]:
    """The input transform fitted to ``subject``'s whole image (``nyul``: from its ``landmarks``), the brain
    histogram of the result and its statistics for a transfer G (JSON: kept beside the subject's cache entry)."""
    transform = fit_transform(
        kind, subject.image, subject.mask, percentile=percentile, fitted=fitted, landmarks=landmarks
    )
    x = transform.apply(subject.image, subject.mask)
    return {
        "params": list(transform.params),
        "targets": list(transform.targets),
        "histogram": [float(v) for v in input_histogram(kind, x, subject.mask)],
        "stats": whole_image_stats(x, subject.mask, value_range).tolist(),
        "profile": whole_image_profile(x, subject.mask).tolist(),
    }


def _foreground(labels: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Each subject's label map in turn, as :meth:`PatchIndex.build`'s mask (non-zero: labelled foreground, what
    ``label > 0`` selects, without a full-volume copy), unmapping the pages it read once used."""
    for label in labels:
        yield label
        release(label)
