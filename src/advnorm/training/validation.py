"""Per-epoch validation on a fixed, domain-balanced set of validation-subject patches.

Besides S's loss and Dice per domain and class, the discriminator's view, so anyone can tell
whether D learns at all (the paper's ``d_acc`` over all K + 1 classes cannot: half of D's inputs
are generated, and a D that tells the domains apart perfectly among its K domain logits can still
put "generated" first for every real patch):

* ``d_domain_acc``: K-way accuracy on the real patches, the argmax over the K domain logits only;
* ``d_generated_auc``: how well p(generated) ranks G's output above the real patches (0.5: not at all).
"""

from __future__ import annotations

import numpy as np
import torch

from advnorm.training.data import TrainingData
from advnorm.training.trainer import Trainer


@torch.no_grad()
def validate(trainer: Trainer, data: TrainingData, rows: np.ndarray, chunk: int = 16) -> dict[str, float]:
    """Validation loss (eq. 2), hard Dice per domain and class, and D's view of the validation patches.

    Patch-level: cheap enough for every epoch. Full-volume metrics on test subjects are
    ``advnorm evaluate``'s job. A (domain, class) absent from both prediction and truth is ``nan``.
    """
    trainer.nets.eval()
    n_dom, n_cls = len(data.domains), len(data.classes)
    inter = torch.zeros(n_dom, n_cls, dtype=torch.float64)
    total = torch.zeros(n_dom, n_cls, dtype=torch.float64)
    loss_sum, n = 0.0, 0
    d_real, d_generated, domains = [], [], []
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        x, y, m, z = data.batch(data.val, part)
        out = trainer.validation_batch(x, y, m, z, data.stats(data.val, part), data.profiles(data.val, part))
        loss_sum += out.loss * len(x)
        n += len(x)
        pred = out.pred.cpu()
        for d in range(n_dom):
            sel = z == d
            if sel.any():
                p, t = pred[sel], y[sel]
                for c in range(1, n_cls):
                    inter[d, c] += ((p == c) & (t == c)).sum()
                    total[d, c] += (p == c).sum() + (t == c).sum()
        if out.d_generated is not None:
            if out.d_real is not None:
                d_real.append(out.d_real)
            d_generated.append(out.d_generated)
            domains.append(z)
    trainer.nets.train()
    result = {"val_loss": loss_sum / max(n, 1)}
    dice = torch.where(total > 0, 2 * inter / total.clamp_min(1), torch.full_like(total, float("nan")))
    for d, name in enumerate(data.domains):
        for c in range(1, n_cls):
            result[f"val_dice_{name}_{data.classes[c]}"] = float(dice[d, c])
    result["val_dice_mean"] = float(np.nanmean(dice[:, 1:].numpy()))
    if d_real:
        result.update(discriminator_view(torch.cat(d_real), torch.cat(d_generated), torch.cat(domains)))
    elif d_generated:  # a domain classifier on G's output: how well it still tells the sites apart (1/K: not at all)
        result["d_domain_acc_generated"] = float(
            (torch.cat(d_generated).argmax(1) == torch.cat(domains)).float().mean()
        )
    return result


def discriminator_view(real: torch.Tensor, generated: torch.Tensor, domains: torch.Tensor) -> dict[str, float]:
    """``d_domain_acc`` and ``d_generated_auc`` from D's (K + 1)-class logits; the last class is "generated"."""
    k = real.shape[1] - 1
    p_real = torch.softmax(real, dim=1)[:, k]
    p_generated = torch.softmax(generated, dim=1)[:, k]
    return {
        "d_domain_acc": float((real[:, :k].argmax(1) == domains).float().mean()),
        "d_generated_auc": auc(p_generated.numpy(), p_real.numpy()),
    }


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a positive scores above a negative (ties count half)."""
    scores = np.concatenate([positive, negative])
    order = scores.argsort(kind="stable")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks of ties (Mann-Whitney U)
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    mid = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(mid, counts)
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
