"""G, S and D of one method, apart from training: what a run's weights file holds and inference runs.

The trainer (:class:`advnorm.training.trainer.Trainer`) adds optimizers and the adversarial step on
top; inference builds only this (no optimizer, no augmentation state), as pytorch-CycleGAN builds
D and its optimizers only when training.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

from advnorm.config import Config, ingredients
from advnorm.config_history import resolved_settings
from advnorm.data.intensity import VALUE_RANGE
from advnorm.labels import CLASS_NAMES
from advnorm.methods import METHOD_SPECS, MethodSpec
from advnorm.models.builders import build_discriminator, build_generator, build_segmenter
from advnorm.models.transfer import IntensityTransfer, image_stats


class Networks(nn.Module):
    """G (``None`` for methods without one), S, and D (``None`` without the adversarial term)."""

    def __init__(
        self, cfg: Config, n_domains: int, device: torch.device | str = "cpu", classes: tuple[str, ...] = CLASS_NAMES
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.spec: MethodSpec = METHOD_SPECS[cfg.method]
        self.n_domains = n_domains
        self.classes = tuple(classes)
        """The names of S's classes (background first): the data's label set."""
        self.device = torch.device(device)
        self.ingredients = parts = ingredients(cfg)
        self.value_range = VALUE_RANGE[self.spec.input_transform]
        """The range of the method's input transform: a transfer G's curve and a histogram D are defined on it."""
        self.G = (
            build_generator(cfg.model, parts.generator, self.value_range, parts.generator_output)
            if parts.generator is not None
            else None
        )
        self.S = build_segmenter(cfg.model, len(self.classes))
        self.D = (
            build_discriminator(
                cfg.model,
                n_domains,
                generated_class=parts.adversary == "paper",
                kind=parts.discriminator,
                stem_norm=parts.stem_norm,
                value_range=self.value_range,
            )
            if parts.adversary is not None
            else None
        )
        self.plain: dict[str, nn.Module] = {}
        """The unwrapped nets while G/S/D are wrapped for DistributedDataParallel."""
        self.to(self.device)
        if cfg.train.channels_last:
            self.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]  # torch's stubs omit memory_format

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last_3d if self.cfg.train.channels_last else torch.contiguous_format

    def autocast(self) -> AbstractContextManager:
        """bf16 autocast when ``train.amp`` is on, else nothing."""
        if not self.cfg.train.amp:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def normalize(self, x: torch.Tensor, mask: torch.Tensor, stats: torch.Tensor | None = None) -> torch.Tensor:
        """x_hat = G(x), kept at zero outside the brain (as the inputs are), in training and inference alike.

        A transfer-function G also needs the statistics of the whole image each patch comes from (``stats``,
        :func:`advnorm.models.transfer.image_stats`); computed from ``x`` itself when not given."""
        if self.G is None:
            return x
        if self.ingredients.generator == "transfer":
            return self.G(x, self._image_stats(x, mask, stats)) * mask
        return self.G(x) * mask

    def curve_slopes(self, x: torch.Tensor, mask: torch.Tensor, stats: torch.Tensor | None = None) -> torch.Tensor:
        """The slope of a transfer G's curve at each voxel of ``x``, relative to the identity's
        (:meth:`advnorm.models.transfer.IntensityTransfer.slopes`); through the plain module, as D's frozen pass."""
        G = self.plain.get("G", self.G)
        if not isinstance(G, IntensityTransfer):
            raise ValueError("curve slopes need a transfer-function G (model.generator 'transfer')")
        return G.slopes(x, self._image_stats(x, mask, stats))

    def _image_stats(self, x: torch.Tensor, mask: torch.Tensor, stats: torch.Tensor | None) -> torch.Tensor:
        return image_stats(x, mask, self.value_range) if stats is None else stats

    def segment(self, x_hat: torch.Tensor) -> torch.Tensor:
        """S's logits for the normalized image."""
        return self.S(x_hat)

    def unwrapped(self) -> dict[str, nn.Module]:
        """G, S, D as plain modules (never DDP wrappers): what weights files hold."""
        nets = (("G", self.G), ("S", self.S), ("D", self.D))
        return {k: self.plain.get(k, v) for k, v in nets if v is not None}

    def architecture(self) -> dict:
        """What must match between a weights file and the config that rebuilds these nets."""
        return architecture(self.cfg, self.n_domains, self.classes)


def architecture(cfg: Config, n_domains: int, classes: tuple[str, ...] = CLASS_NAMES) -> dict:
    parts = ingredients(cfg)
    return {
        "method": cfg.method,
        "n_domains": n_domains,
        "classes": list(classes),
        "model": resolved_settings(cfg)["model"],  # G's kind and form as the method resolved them
        "generator": parts.generator,
        "adversary": parts.adversary,
        "discriminator": parts.discriminator,
    }
