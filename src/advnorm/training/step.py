"""One adversarial training step, read as in pix2pix/CycleGAN:
``set_input -> forward -> backward_GS -> backward_D -> optimize_parameters``.

G and S are updated first (L_seg + lambda * adversarial term, D frozen), then D on the
raw patches and on G's output detached (eq. 3-4). During the identity warm-up only G
learns, with MSE to its input. Methods without G or D simply skip those parts, so
every experiment of Table 1 runs through this one class.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn
import torch.nn.functional as F

from advnorm.config import Config
from advnorm.losses import discriminator_loss, generator_adversarial_loss, segmentation_loss
from advnorm.models import build_discriminator, build_generator, build_segmenter
from advnorm.training.augment import augment_intensity
from advnorm.training.methods import MethodSpec


def _set_requires_grad(net: nn.Module | None, flag: bool) -> None:
    if net is not None:
        for p in net.parameters():
            p.requires_grad_(flag)


class AdversarialNormalization(nn.Module):
    """G, S and D with their optimizers; ``optimize_parameters`` performs one training step."""

    def __init__(self, cfg: Config, spec: MethodSpec, n_domains: int, dice_weights: torch.Tensor, device: torch.device) -> None:
        super().__init__()
        self.cfg, self.spec, self.device = cfg, spec, device
        self.G = build_generator(cfg.model) if spec.uses_generator else None
        self.S = build_segmenter(cfg.model)
        self.D = build_discriminator(cfg.model, n_domains) if spec.uses_discriminator else None
        self.raw: dict[str, nn.Module] = {}  # unwrapped nets when G/S/D are wrapped for DDP
        self.register_buffer("dice_weights", dice_weights.float())
        self.to(device)
        if cfg.train.channels_last:
            self.to(memory_format=torch.channels_last_3d)
        o = cfg.optim
        self.opt_GS = self._optimizer([(self.S, o.lr_segmenter)] + ([(self.G, o.lr_generator)] if self.G is not None else []))
        self.opt_G_warmup = self._optimizer([(self.G, o.lr_generator)]) if self.G is not None else None
        self.opt_D = self._optimizer([(self.D, o.lr_discriminator)]) if self.D is not None else None
        self.aug_gen = torch.Generator().manual_seed(cfg.train.seed + 17)

    # -- construction -------------------------------------------------------------------------
    def _optimizer(self, groups) -> torch.optim.Optimizer:
        o = self.cfg.optim
        params = [{"params": list(net.parameters()), "lr": lr} for net, lr in groups]
        fused = {"foreach": True}
        if o.optimizer == "sgd":
            return torch.optim.SGD(params, momentum=o.momentum, weight_decay=o.weight_decay, **fused)
        return torch.optim.Adam(params, weight_decay=o.weight_decay, **fused)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        named = {"GS": self.opt_GS, "G_warmup": self.opt_G_warmup, "D": self.opt_D}
        return {k: v for k, v in named.items() if v is not None}

    def networks(self) -> dict[str, nn.Module]:
        """G, S, D as plain modules (never DDP wrappers): what checkpoints hold."""
        nets = (("G", self.G), ("S", self.S), ("D", self.D))
        return {k: self.raw.get(k, v) for k, v in nets if v is not None}

    def _autocast(self):
        if not self.cfg.train.amp:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    # -- the step -----------------------------------------------------------------------------
    def set_input(self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, z: torch.Tensor) -> None:
        """Patches ``x`` (B,1,P,P,P) float, labels ``y`` (B,P,P,P) long, brain ``mask`` like ``x``, domains ``z`` (B,)."""
        fmt = torch.channels_last_3d if self.cfg.train.channels_last else torch.contiguous_format
        self.x = x.to(self.device, non_blocking=True).contiguous(memory_format=fmt)
        self.mask = mask.to(self.device, non_blocking=True).contiguous(memory_format=fmt)
        self.y = y.to(self.device, non_blocking=True)
        self.z = z.to(self.device, non_blocking=True)
        if self.spec.augment and self.training:
            self.x = augment_intensity(self.x, self.mask, self.aug_gen)

    def normalize(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x_hat = G(x), kept at zero outside the brain (as the inputs are), in training and inference alike."""
        return x if self.G is None else self.G(x) * mask

    def forward(self) -> None:
        with self._autocast():
            self.x_hat = self.normalize(self.x, self.mask)
            self.logits = self.S(self.x_hat)

    def backward_warmup(self) -> dict[str, torch.Tensor]:
        """Identity warm-up (paper: epochs 1-3): G learns to reproduce its input."""
        with self._autocast():
            x_hat = self.normalize(self.x, self.mask)
            loss = F.mse_loss(x_hat.float(), self.x.float())
        loss.backward()
        return {"loss_mse": loss.detach()}

    def backward_GS(self) -> dict[str, torch.Tensor]:
        """L_seg (eq. 2) + lambda * G's adversarial term (eq. 1), with D frozen."""
        probs = torch.softmax(self.logits.float(), dim=1)
        loss_seg = segmentation_loss(probs, self.y, self.dice_weights, self.cfg.loss.dice_epsilon,
                                     self.cfg.loss.dice_form)
        out = {"loss_seg": loss_seg.detach()}
        loss = loss_seg
        if self.D is not None:
            with self._autocast():  # D frozen: call the plain module, so DDP sees one D pass per step
                logits_fake = self.raw.get("D", self.D)(self.x_hat)
            loss_adv = generator_adversarial_loss(logits_fake, self.cfg.loss.adv_form)
            loss = loss + self.cfg.loss.adv_lambda * loss_adv
            out["loss_adv"] = loss_adv.detach()
        loss.backward()
        return out

    def backward_D(self) -> dict[str, torch.Tensor]:
        """Eq. (3)-(4): raw patches to their domain, G's output (detached) to "generated"."""
        with self._autocast():  # one pass over real and generated: D's GroupNorm is per sample
            logits = self.D(torch.cat([self.x, self.x_hat.detach()]))
        logits_real, logits_fake = logits[: len(self.x)], logits[len(self.x):]
        loss = discriminator_loss(logits_real.float(), self.z, logits_fake.float())
        loss.backward()
        fake = logits.shape[1] - 1  # the "generated" class is the last
        return {
            "loss_dis": loss.detach(),
            "d_acc_real": (logits_real.argmax(1) == self.z).float().mean().detach(),
            "d_acc_fake": (logits_fake.argmax(1) == fake).float().mean().detach(),
        }

    def optimize_parameters(self, phase: str = "main") -> dict[str, torch.Tensor]:
        """One step; returns detached loss tensors (no host synchronisation here)."""
        if phase == "warmup":
            self.opt_G_warmup.zero_grad(set_to_none=True)
            out = self.backward_warmup()
            self.opt_G_warmup.step()
            return out
        _set_requires_grad(self.D, False)
        self.opt_GS.zero_grad(set_to_none=True)
        self.forward()
        out = self.backward_GS()
        self.opt_GS.step()
        if self.D is not None:
            _set_requires_grad(self.D, True)
            self.opt_D.zero_grad(set_to_none=True)
            out.update(self.backward_D())
            self.opt_D.step()
        return out
