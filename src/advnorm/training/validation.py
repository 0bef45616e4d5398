"""Per-epoch validation on a fixed, domain-balanced set of validation-subject patches."""

from __future__ import annotations

import numpy as np
import torch

from advnorm.labels import CLASS_NAMES
from advnorm.training.data import TrainingData
from advnorm.training.trainer import Trainer


@torch.no_grad()
def validate(trainer: Trainer, data: TrainingData, rows: np.ndarray, chunk: int = 16) -> dict[str, float]:
    """Validation loss (eq. 2) and hard Dice per domain and class over the validation patches.

    Patch-level: cheap enough for every epoch. Full-volume metrics on test subjects are
    ``advnorm evaluate``'s job. A (domain, class) absent from both prediction and truth is ``nan``.
    """
    trainer.nets.eval()
    n_dom, n_cls = len(data.domains), len(CLASS_NAMES)
    inter = torch.zeros(n_dom, n_cls, dtype=torch.float64)
    total = torch.zeros(n_dom, n_cls, dtype=torch.float64)
    loss_sum, n = 0.0, 0
    for start in range(0, len(rows), chunk):
        x, y, m, z = data.batch(data.val, rows[start : start + chunk])
        loss, pred = trainer.validation_batch(x, y, m, z)
        loss_sum += loss * len(x)
        n += len(x)
        pred = pred.cpu()
        for d in range(n_dom):
            sel = z == d
            if sel.any():
                p, t = pred[sel], y[sel]
                for c in range(1, n_cls):
                    inter[d, c] += ((p == c) & (t == c)).sum()
                    total[d, c] += (p == c).sum() + (t == c).sum()
    trainer.nets.train()
    out = {"val_loss": loss_sum / max(n, 1)}
    dice = torch.where(total > 0, 2 * inter / total.clamp_min(1), torch.full_like(total, float("nan")))
    for d, name in enumerate(data.domains):
        for c in range(1, n_cls):
            out[f"val_dice_{name}_{CLASS_NAMES[c]}"] = float(dice[d, c])
    out["val_dice_mean"] = float(np.nanmean(dice[:, 1:].numpy()))
    return out
