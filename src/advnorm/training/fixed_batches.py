"""The fixed patches validation and BatchNorm recalibration use every epoch: the same on every rank and resume."""

from __future__ import annotations

import numpy as np

from advnorm.config import TrainConfig
from advnorm.data.patches import PatchIndex
from advnorm.training.data import TrainingData


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
