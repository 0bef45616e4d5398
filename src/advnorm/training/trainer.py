"""One adversarial training step, read as in pix2pix/CycleGAN:
``set_input -> forward -> backward_GS -> backward_D -> optimize_parameters``.

G and S are updated first (L_seg + lambda * adversarial term, D frozen), then D on the
raw patches and on G's output detached (eq. 3-4). During the identity warm-up only G
learns, with MSE to its input. Methods without G or D simply skip those parts, so
every experiment of Table 1 runs through this one class. The networks themselves are a
:class:`~advnorm.models.networks.Networks`, which inference uses without any of this.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from advnorm.models.networks import Networks
from advnorm.training.augment import augment_intensity
from advnorm.training.batchnorm import recompute_batchnorm_statistics
from advnorm.training.contrast import randomise_contrast
from advnorm.training.losses import (
    confusion_loss,
    content_loss,
    discriminator_loss,
    flat_curve_loss,
    generator_adversarial_loss,
    segmentation_loss,
)


def _set_requires_grad(net: nn.Module | None, flag: bool) -> None:
    if net is not None:
        for p in net.parameters():
            p.requires_grad_(flag)


Scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau | torch.optim.lr_scheduler.LRScheduler


def cosine_factor(budget: int, epochs_done: int) -> float:
    """The cosine schedule's fraction of the initial rate after ``epochs_done`` of ``budget`` main epochs: 1 at the
    start, 0 at the budget. A closed form of the epoch count, so a run resumed with another ``train.epochs`` follows
    that budget's curve from where it stands (a warm restart when the budget grew)."""
    return 0.5 * (1.0 + math.cos(math.pi * min(epochs_done, budget) / budget))


def step_schedulers(schedulers: dict[str, Scheduler], val_loss: float) -> None:
    """End of a main epoch: a plateau rule reads the validation loss, a fixed schedule only counts the epoch."""
    for sch in schedulers.values():
        if isinstance(sch, torch.optim.lr_scheduler.ReduceLROnPlateau):
            sch.step(val_loss)
        else:
            sch.step()


class Trainer:
    """The optimizers of G, S, D and the training step; ``optimize_parameters`` performs one step."""

    def __init__(self, nets: Networks, dice_weights: torch.Tensor) -> None:
        self.nets, self.cfg = nets, nets.cfg
        self.dice_weights = dice_weights.float().to(nets.device)
        o = self.cfg.optim
        self.opt_GS = self._optimizer(
            [(nets.S, o.lr_segmenter)] + ([(nets.G, o.lr_generator)] if nets.G is not None else [])
        )
        self.opt_G_warmup = self._optimizer([(nets.G, o.lr_generator)]) if nets.G is not None else None
        self.opt_D = self._optimizer([(nets.D, o.lr_discriminator)]) if nets.D is not None else None
        self.aug_gen = torch.Generator().manual_seed(self.cfg.train.seed + 17)
        self.contrast_gen = torch.Generator().manual_seed(self.cfg.train.seed + 29)
        self.adv_weight = self.cfg.loss.adv_lambda
        """lambda of eq. (1) in force (the training loop ramps it when ``loss.adv_ramp_epochs`` asks)."""

    def _optimizer(self, groups: Sequence[tuple[nn.Module, float]]) -> torch.optim.Optimizer:
        o = self.cfg.optim
        params = [{"params": list(net.parameters()), "lr": lr} for net, lr in groups]
        if o.optimizer == "sgd":
            return torch.optim.SGD(params, momentum=o.momentum, weight_decay=o.weight_decay, foreach=True)
        return torch.optim.Adam(params, weight_decay=o.weight_decay, foreach=True)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        named = {"GS": self.opt_GS, "G_warmup": self.opt_G_warmup, "D": self.opt_D}
        return {k: v for k, v in named.items() if v is not None}

    def schedulers(self) -> dict[str, Scheduler]:
        """The main phase's learning-rate rule for each optimizer but G's warm-up one. ``optim.schedule``
        ``plateau``: ``optim.plateau_factor`` after ``optim.plateau_patience`` epochs without a lower validation
        loss, never below ``optim.plateau_floor`` times a parameter group's initial rate; ``cosine``: half a cosine
        from the initial rate to 0 over ``train.epochs`` main epochs. Step them with :func:`step_schedulers`."""
        o = self.cfg.optim
        main = {k: opt for k, opt in self.optimizers().items() if k != "G_warmup"}
        if o.schedule == "cosine":
            budget = self.cfg.train.epochs
            return {
                k: torch.optim.lr_scheduler.LambdaLR(opt, partial(cosine_factor, budget)) for k, opt in main.items()
            }
        return {
            k: torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt,
                patience=o.plateau_patience,
                factor=o.plateau_factor,
                min_lr=[group["lr"] * o.plateau_floor for group in opt.param_groups],
            )
            for k, opt in main.items()
        }

    # -- the step -----------------------------------------------------------------------------
    def set_input(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        mask: torch.Tensor,
        z: torch.Tensor,
        stats: torch.Tensor | None = None,
        profile: torch.Tensor | None = None,
    ) -> None:
        """Patches ``x`` (B,1,P,P,P) float, labels ``y`` (B,P,P,P) long, brain ``mask`` like ``x``,
        domains ``z`` (B,), the statistics of each patch's whole image (``stats``, for a transfer G) and its
        intensity profile (``profile`` (B, N), for the ``image`` adversary view)."""
        device, fmt = self.nets.device, self.nets.memory_format
        self.profile = None if profile is None else profile.to(device, non_blocking=True)
        self.x = x.to(device, non_blocking=True).contiguous(memory_format=fmt)
        self.mask = mask.to(device, non_blocking=True).contiguous(memory_format=fmt)
        self.y = y.to(device, non_blocking=True)
        self.z = z.to(device, non_blocking=True)
        self.stats = None if stats is None else stats.to(device, non_blocking=True)
        if self.nets.spec.augment and self.nets.training:
            t = self.cfg.train
            self.x = augment_intensity(
                self.x, self.mask, self.aug_gen, t.augment_bias, t.augment_noise, t.augment_share
            )
        share = self.cfg.train.contrast_randomisation
        if share > 0 and self.nets.training:
            if self.profile is None or self.stats is None:
                raise ValueError("train.contrast_randomisation needs each patch's image profile and statistics")
            randomised = randomise_contrast(
                self.x, self.mask, self.profile, self.stats, self.nets.value_range, share, self.contrast_gen
            )
            self.x, self.profile, self.stats = randomised.x, randomised.profile, randomised.stats

    def forward(self) -> None:
        with self.nets.autocast():
            self.x_hat = self.nets.normalize(self.x, self.mask, self.stats)
            self.logits = self.nets.segment(self.x_hat)

    def adversary_input(self, x_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What D judges, and its mask: G's output patches ``x_hat``, or with ``loss.adversary_view = "image"``
        the whole image of each patch, as its intensity profile put through G's curve ((B, 1, N, 1, 1), no mask).
        Differentiable in G either way."""
        if self.cfg.loss.adversary_view == "patch":
            return x_hat, self.mask
        if self.profile is None:
            raise ValueError("loss.adversary_view 'image' needs each patch's intensity profile (set_input's profile)")
        values = self.profile[:, None, :, None, None]
        ones = torch.ones_like(values)
        return self.nets.normalize(values, ones, self.stats), ones

    def recalibrate_batchnorm(self, batches: Iterable[Callable[[], tuple]]) -> int:
        """Recompute BatchNorm's running statistics of G and S over ``batches`` (each returns set_input's
        arguments) with the current weights; no augmentation, no gradient. Returns the batches used."""
        self.nets.eval()  # set_input augments only in training mode; the BatchNorm layers are switched on below

        def one(batch: Callable[[], tuple]) -> Callable[[], None]:
            def run() -> None:
                self.set_input(*batch())
                self.forward()

            return run

        try:
            return recompute_batchnorm_statistics(self.nets, [one(b) for b in batches])
        finally:
            self.nets.train()

    def segmentation_loss(self, probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """L_seg (eq. 2, or its per-class form) of S's softmax output against the labels."""
        return segmentation_loss(probs, y, self.dice_weights, self.cfg.loss.dice_epsilon, self.cfg.loss.dice_form)

    def backward_warmup(self) -> dict[str, torch.Tensor]:
        """Identity warm-up (paper: epochs 1-3): G learns to reproduce its input."""
        with self.nets.autocast():
            x_hat = self.nets.normalize(self.x, self.mask, self.stats)
            loss = F.mse_loss(x_hat.float(), self.x.float())
        loss.backward()
        return {"loss_mse": loss.detach()}

    def backward_GS(self) -> dict[str, torch.Tensor]:
        """L_seg (eq. 2) + lambda * G's adversarial term (eq. 1, or the confusion term), with D frozen."""
        loss_seg = self.segmentation_loss(torch.softmax(self.logits.float(), dim=1), self.y)
        out = {"loss_seg": loss_seg.detach()}
        loss = loss_seg
        if self.nets.G is not None and self.nets.ingredients.content_weight > 0:
            loss_content = content_loss(self.x_hat, self.x, self.mask)
            loss = loss + self.nets.ingredients.content_weight * loss_content
            out["loss_content"] = loss_content.detach()
        if self.nets.ingredients.slope_floor > 0:
            slopes = self.nets.curve_slopes(self.x, self.mask, self.stats)
            loss_slope = flat_curve_loss(slopes, self.mask, self.nets.ingredients.slope_floor)
            loss = loss + loss_slope
            out["loss_slope"] = loss_slope.detach()
        if self.nets.D is not None:
            with self.nets.autocast():  # D frozen: call the plain module, so DDP sees one D pass per step
                logits_fake = self.nets.plain.get("D", self.nets.D)(*self.adversary_input(self.x_hat))
            if self.nets.ingredients.adversary == "confusion":
                loss_adv = confusion_loss(logits_fake, self.cfg.loss.confusion_form)
            else:
                loss_adv = generator_adversarial_loss(logits_fake, self.cfg.loss.adv_form)
            loss = loss + self.adv_weight * loss_adv
            out["loss_adv"] = loss_adv.detach()
        loss.backward()
        return out

    def backward_D(self, x_hat: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """D's step. The paper's (eq. 3-4): raw patches to their domain, G's output (detached) to "generated".
        The confusion adversary: G's output (detached) to the domain it came from."""
        assert self.nets.D is not None
        generated = (self.x_hat if x_hat is None else x_hat).detach()
        if self.nets.ingredients.adversary == "confusion":
            with torch.no_grad():
                seen, seen_mask = self.adversary_input(generated)
            with self.nets.autocast():
                logits = self.nets.D(seen.detach(), seen_mask)
            loss = F.cross_entropy(logits.float(), self.z)
            loss.backward()
            return {"loss_dis": loss.detach(), "d_acc_generated": (logits.argmax(1) == self.z).float().mean().detach()}
        with self.nets.autocast():  # one pass over real and generated patches: D's GroupNorm is per sample
            logits = self.nets.D(torch.cat([self.x, generated]), torch.cat([self.mask, self.mask]))
        logits_real, logits_fake = logits[: len(self.x)], logits[len(self.x) :]
        loss = discriminator_loss(logits_real.float(), self.z, logits_fake.float())
        loss.backward()
        fake = logits.shape[1] - 1  # the "generated" class is the last
        return {
            "loss_dis": loss.detach(),
            "d_acc_real": (logits_real.argmax(1) == self.z).float().mean().detach(),
            "d_acc_fake": (logits_fake.argmax(1) == fake).float().mean().detach(),
        }

    def step_D(self, x_hat: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``train.d_steps`` updates of D on this batch (n_critic)."""
        assert self.opt_D is not None
        _set_requires_grad(self.nets.D, True)
        out: dict[str, torch.Tensor] = {}
        for _ in range(self.cfg.train.d_steps):
            self.opt_D.zero_grad(set_to_none=True)
            out = self.backward_D(x_hat)
            self.opt_D.step()
        return out

    def optimize_parameters(self, phase: str = "main") -> dict[str, torch.Tensor]:
        """One step; returns detached loss tensors (no host synchronisation here)."""
        if phase == "warmup":
            assert self.opt_G_warmup is not None
            self.opt_G_warmup.zero_grad(set_to_none=True)
            out = self.backward_warmup()
            self.opt_G_warmup.step()
            if self.opt_D is not None and self.cfg.train.d_during_warmup:  # D learns the domains before it is used
                with torch.no_grad(), self.nets.autocast():
                    x_hat = self.nets.normalize(self.x, self.mask, self.stats)
                out.update(self.step_D(x_hat))
            return out
        _set_requires_grad(self.nets.D, False)
        self.opt_GS.zero_grad(set_to_none=True)
        self.forward()
        out = self.backward_GS()
        self.opt_GS.step()
        if self.opt_D is not None:
            out.update(self.step_D())
        return out

    @torch.no_grad()
    def validation_batch(self, *inputs: Any) -> ValidationBatch:
        """L_seg of one batch of validation patches (``inputs``: :meth:`set_input`'s arguments), S's labels for
        them and, with a D, D's logits for G's output (and, for the paper's D, for the real patches); networks in
        eval mode."""
        self.set_input(*inputs)
        self.forward()
        probs = torch.softmax(self.logits.float(), dim=1)
        out = ValidationBatch(float(self.segmentation_loss(probs, self.y)), probs.argmax(1))
        d = self.nets.plain.get("D", self.nets.D)
        if d is None:
            return out
        with self.nets.autocast():
            if self.nets.ingredients.adversary == "confusion":
                out.d_generated = d(*self.adversary_input(self.x_hat)).float().cpu()
            else:
                logits = d(torch.cat([self.x, self.x_hat]), torch.cat([self.mask, self.mask]))
                out.d_real, out.d_generated = logits[: len(self.x)].float().cpu(), logits[len(self.x) :].float().cpu()
        return out


@dataclass
class ValidationBatch:
    loss: float
    pred: torch.Tensor
    d_real: torch.Tensor | None = None
    """D's logits (K + 1 classes) for the real patches."""
    d_generated: torch.Tensor | None = None
    """D's logits for G's output of the same patches."""
