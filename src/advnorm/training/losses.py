"""The paper's losses, as written: weighted Dice (eq. 2) and the (K+1)-class domain losses (eq. 1, 3, 4).

Sign conventions. Eq. (1) is  min_{G,S} max_D  L_seg - lambda * [L_dis(D(x), z) + L_dis(D(G(x)), fake)].
* D maximises it, i.e. minimises  L_dis(D(x), z) + L_dis(D(G(x)), fake)   -> :func:`discriminator_loss`.
* G and S minimise  L_seg - lambda * L_dis(D(G(x)), fake)  (the real-image term does not depend on G).
  ``-L_dis(D(G(x)), fake) = log p_D(fake | G(x))`` is the *saturating* form; its gradient vanishes
  while D confidently rejects G's output. The *non-saturating* form minimises
  ``-log(1 - p_D(fake | G(x)))`` instead: same fixed point, strong gradients early.
  -> :func:`generator_adversarial_loss`.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F


def _class_sums(probs: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class, over the batch and all voxels: sum s*y and sum (s + y). ``target``: labels or one-hot."""
    if target.dim() == probs.dim() - 1:
        target = F.one_hot(target.long(), probs.shape[1]).movedim(-1, 1)
    target = target.to(probs.dtype)
    dims = [0] + list(range(2, probs.dim()))
    return (probs * target).sum(dim=dims), (probs + target).sum(dim=dims)


def weighted_dice_loss(
    probs: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, epsilon: float = 1e-5
) -> torch.Tensor:
    """Eq. (2): ``1 - (eps + 2 sum_c w_c sum_v s_vc y_vc) / (eps + sum_c w_c sum_v (s_vc + y_vc))``.

    ``probs``: softmax output (B, C, ...); ``target``: integer labels (B, ...) or one-hot (B, C, ...);
    ``weights``: (C,). Sums run over every voxel of the batch, as in the paper's single ratio: the
    weights enter numerator and denominator alike (the authors' code weighted only the
    intersection, which floors each class's loss near 0.75).
    """
    intersection, total = _class_sums(probs, target)
    w = weights.to(probs.dtype)
    return 1.0 - (epsilon + 2.0 * (w * intersection).sum()) / (epsilon + (w * total).sum())


def per_class_dice_loss(
    probs: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, epsilon: float = 1e-5
) -> torch.Tensor:
    """``1 - sum_c w_c (eps + 2 sum_v s_vc y_vc) / (eps + sum_v (s_vc + y_vc)) / sum_c w_c``: a Dice ratio per
    class, then their weighted mean (MONAI's ``DiceLoss`` with batch=True, weighted). Not eq. (2).

    Why it exists: in eq. (2)'s single ratio, a class's terms are diluted by every other class's sums, so
    a class S has stopped predicting (CSF, in short trainings on the phantom) costs little and is pulled
    back weakly. Here each class's ratio is normalised by its own size: a dead class costs its full share
    of the loss and its pull back is 2-3 times stronger (tests/test_losses.py), and in training it
    came back where eq. (2) left it dead (docs/method.md has the measurement).
    """
    intersection, total = _class_sums(probs, target)
    ratio = (epsilon + 2.0 * intersection) / (epsilon + total)
    w = weights.to(probs.dtype)
    return 1.0 - (w * ratio).sum() / w.sum()


DiceForm = Literal["per_class", "single_ratio"]


def segmentation_loss(
    probs: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, epsilon: float, form: DiceForm
) -> torch.Tensor:
    """L_seg: eq. (2) as written (``single_ratio``) or its per-class form (``per_class``)."""
    if form == "single_ratio":
        return weighted_dice_loss(probs, target, weights, epsilon)
    if form == "per_class":
        return per_class_dice_loss(probs, target, weights, epsilon)
    raise ValueError(f"unknown Dice form {form!r}")


def default_dice_weights(form: DiceForm, class_counts: torch.Tensor) -> torch.Tensor:
    """w_c when none are configured: inverse class frequency for eq. (2)'s single ratio (so each class pulls
    equally on the one ratio); equal weights for the per-class form (each ratio is already size-normalised,
    and the equal mean is what a per-class Dice table reports)."""
    if form == "per_class":
        return torch.full((len(class_counts),), 1.0 / len(class_counts))
    return inverse_frequency_weights(class_counts)


def discriminator_loss(logits_real: torch.Tensor, domains: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Eq. (3) + (4): ``-log p_D(z | x)`` on raw patches plus ``-log p_D(fake | G(x))`` on generated ones.

    Each term is averaged over its batch; the fake class is the last index (K).
    """
    fake = torch.full((logits_fake.shape[0],), logits_fake.shape[1] - 1, dtype=torch.long, device=logits_fake.device)
    return F.cross_entropy(logits_real, domains.long()) + F.cross_entropy(logits_fake, fake)


def generator_adversarial_loss(
    logits_fake: torch.Tensor, form: Literal["non_saturating", "saturating"] = "non_saturating"
) -> torch.Tensor:
    """G's adversarial term of eq. (1), to be *added* (times lambda) to L_seg.

    saturating:      ``log p_D(fake | G(x))``          (= -L_dis(D(G(x)), fake), eq. 1 as written)
    non_saturating:  ``-log(1 - p_D(fake | G(x)))``  = ``-log sum_{k<=K} p_D(k | G(x))``
    Both are computed from log-softmax, so they are finite for any logits.
    """
    log_p = F.log_softmax(logits_fake.float(), dim=1)
    log_p_fake = log_p[:, -1]
    if form == "saturating":
        return log_p_fake.mean()
    if form == "non_saturating":
        return -torch.logsumexp(log_p[:, :-1], dim=1).mean()
    raise ValueError(f"unknown adversarial form {form!r}")


def confusion_loss(logits: torch.Tensor, form: str = "cross_entropy") -> torch.Tensor:
    """G's term against a domain classifier: make D's domain posterior for G's output uniform.

    ``cross_entropy`` (Dinsdale et al., NeuroImage 2021): ``-mean_k log p_D(k | G(x))``, least (log K) only when D
    cannot tell the source domain at all: unlike eq. (1), the identity G is no fixed point while the domains
    differ. It has no upper bound: a domain D rules out (p -> 0) costs without limit, so a confident D pushes G
    hard whatever lambda is. ``entropy``: ``KL(p_D || uniform) = log K - H(p_D)``, the same minimum (0 here) and
    fixed points, bounded by log K, with a gradient that vanishes as D grows certain instead of growing."""
    logp = F.log_softmax(logits.float(), dim=1)
    if form == "entropy":
        return (logp.exp() * logp).sum(dim=1).mean() + math.log(logits.shape[1])
    return -logp.mean(dim=1).mean()


def content_loss(x_hat: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between G's output and its input over the brain voxels of the batch
    (``loss.content_weight``); 0 for a batch without brain."""
    m = mask.float()
    return ((x_hat.float() - x.float()) ** 2 * m).sum() / m.sum().clamp_min(1.0)


def flat_curve_loss(slopes: torch.Tensor, mask: torch.Tensor, floor: float) -> torch.Tensor:
    """Mean over the batch's brain voxels of ``max(0, floor - |slope|)``: what a transfer G pays for running its
    curve flatter than ``floor`` (relative to the identity) where tissue lies (``loss.slope_floor``). A flat
    stretch maps a whole tissue onto one value, a spike in the output's histogram at a place of each site's own
    (docs/method.md); inversions are free, as long as they are steep. 0 for a batch without brain. A stretch
    exactly flat (both its knots clamped to the same end of G's range) gets no push: |s| has no gradient at 0."""
    m = mask.float()
    return (torch.relu(floor - slopes.float().abs()) * m).sum() / m.sum().clamp_min(1.0)


def ramp(progress: float) -> float:
    """DANN's weight schedule, from 0 at ``progress`` 0 to ~1 at 1: ``2 / (1 + exp(-10 p)) - 1``."""
    return 2.0 / (1.0 + math.exp(-10.0 * min(max(progress, 0.0), 1.0))) - 1.0


def inverse_frequency_weights(class_counts: torch.Tensor) -> torch.Tensor:
    """Default w_c: proportional to 1 / frequency, normalised to sum to 1 (absent classes get 0)."""
    counts = class_counts.double()
    w = torch.where(counts > 0, 1.0 / counts.clamp_min(1), torch.zeros_like(counts))
    return (w / w.sum()).float()
