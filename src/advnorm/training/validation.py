"""Per-epoch validation on a fixed, domain-balanced set of validation-subject patches."""

from __future__ import annotations

import numpy as np
import torch

from advnorm import CLASS_NAMES
from advnorm.losses import segmentation_loss
from advnorm.training.data import TrainingData
from advnorm.training.step import AdversarialNormalization


@torch.no_grad()
def validate(model: AdversarialNormalization, data: TrainingData, rows: np.ndarray, chunk: int = 16) -> dict[str, float]:
    """Validation loss (eq. 2) and hard Dice per domain and class over the validation patches.

    Patch-level: cheap enough for every epoch. Full-volume metrics on test subjects are
    ``advnorm evaluate``'s job.
    """
    model.eval()
    n_dom = len(data.domains)
    inter = torch.zeros(n_dom, 4, dtype=torch.float64)
    total = torch.zeros(n_dom, 4, dtype=torch.float64)
    loss_sum, n = 0.0, 0
    for start in range(0, len(rows), chunk):
        x, y, m, z = data.batch(data.val, rows[start:start + chunk])
        model.set_input(x, y, m, z)
        model.forward()
        probs = torch.softmax(model.logits.float(), dim=1)
        loss_sum += float(segmentation_loss(probs, model.y, model.dice_weights, model.cfg.loss.dice_epsilon,
                                              model.cfg.loss.dice_form)) * len(x)
        n += len(x)
        pred = probs.argmax(1).cpu()
        y = y.cpu()
        for d in range(n_dom):
            sel = z == d
            if sel.any():
                p, t = pred[sel], y[sel]
                for c in range(1, 4):
                    inter[d, c] += ((p == c) & (t == c)).sum()
                    total[d, c] += (p == c).sum() + (t == c).sum()
    model.train()
    out = {"val_loss": loss_sum / max(n, 1)}
    dice = torch.where(total > 0, 2 * inter / total.clamp_min(1), torch.full_like(total, float("nan")))
    for d, name in enumerate(data.domains):
        for c in range(1, 4):
            out[f"val_dice_{name}_{CLASS_NAMES[c]}"] = float(dice[d, c])
    out["val_dice_mean"] = float(np.nanmean(dice[:, 1:].numpy()))
    return out
