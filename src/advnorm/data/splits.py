"""Train / validation / test splits: by subject (default) or the paper's patch-level stratified split."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from advnorm.config import DataConfig
from advnorm.errors import AdvnormError

PATCH_SPLIT_WARNING = (
    "patch-level split (the paper's protocol): overlapping neighbouring patches of the same subject "
    "land in both training and test, so test scores are optimistic"
)


@dataclass(frozen=True)
class SubjectSplit:
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]


def split_subjects(
    case_ids: Sequence[str], fractions: tuple[float, float, float], seed: int, *, domain: str
) -> SubjectSplit:
    """Shuffle a domain's labelled subjects (seeded) and cut them into train / val / test.

    Every set gets at least one subject, so a domain needs three; with MRBrainS's five
    this gives 3 / 1 / 1 and with iSEG's ten 6 / 2 / 2.
    """
    n = len(case_ids)
    if n < 3:
        raise AdvnormError(
            f"a split by subject needs at least 3 labelled subjects per domain (train, validation, test); found {n}",
            domain,
        )
    order = sorted(case_ids)
    rng = np.random.default_rng(seed)
    rng.shuffle(order)
    n_val = max(1, int(round(fractions[1] * n)))
    n_test = max(1, int(round(fractions[2] * n)))
    n_train = n - n_val - n_test
    if n_train < 1:
        n_train, n_val, n_test = 1, 1, n - 2
    return SubjectSplit(
        tuple(order[:n_train]), tuple(order[n_train : n_train + n_val]), tuple(order[n_train + n_val :])
    )


def stratified_patch_split(
    centre_classes: np.ndarray, fractions: tuple[float, float, float], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The paper's split: patches (not subjects) shuffled and cut 60/20/20 within each centre-voxel class."""
    warnings.warn(PATCH_SPLIT_WARNING, stacklevel=2)
    rng = np.random.default_rng(seed)
    parts: tuple[list, list, list] = ([], [], [])
    for c in np.unique(centre_classes):
        rows = np.flatnonzero(centre_classes == c)
        rng.shuffle(rows)
        n_train = int(round(fractions[0] * len(rows)))
        n_val = int(round(fractions[1] * len(rows)))
        chunks = (rows[:n_train], rows[n_train : n_train + n_val], rows[n_train + n_val :])
        for part, chunk in zip(parts, chunks, strict=True):
            part.append(chunk)
    train, val, test = (np.sort(np.concatenate(p)) if p else np.zeros(0, int) for p in parts)
    return train, val, test


def domain_split(case_ids: Sequence[str], data_cfg: DataConfig, *, where: str | Path) -> dict[str, list[str]]:
    """A domain's subject split: a pure function of its labelled case ids, the seed and the fractions,
    so every run and ``evaluate`` agree on which subjects are test subjects. The paper's patch split
    puts every subject in every set (the patches are split later)."""
    ids = list(case_ids)
    if data_cfg.split == "patch":
        if not ids:
            raise AdvnormError("no labelled subjects to train on", where)
        return {"train": ids, "val": ids, "test": ids}
    s = split_subjects(ids, data_cfg.fractions, data_cfg.split_seed, domain=str(where))
    return {"train": list(s.train), "val": list(s.val), "test": list(s.test)}
