"""G and S (3-D U-Nets) and D (the (K+1)-class discriminator), built from a ModelConfig."""

from __future__ import annotations

from typing import Literal, cast

from torch import nn

from advnorm.config import SCALE_TOP, ModelConfig
from advnorm.models.discriminator import DomainDiscriminator
from advnorm.models.histogram_discriminator import HistogramDiscriminator
from advnorm.models.transfer import SCALE_RANGE, IntensityTransfer, ValueRange
from advnorm.models.unet import StridedStemUNet3D, UNet3D, kaiming_init


def build_generator(
    cfg: ModelConfig, kind: str = "unet", value_range: ValueRange = SCALE_RANGE, output: str | None = None
) -> nn.Module:
    """G: its output in the range of its input. ``unet``: the paper's, in (0, SCALE_TOP) for the rescaled input, or
    unbounded in its ``additive`` form (for the z-scored input); its residual and additive forms start as the
    identity (their head, the correction, is zero; every other layer Kaiming-initialized). ``output``: the U-Net's
    form as resolved for the method (:func:`advnorm.config.ingredients`); ``None`` takes ``cfg``'s, whose ``auto``
    is the paper's ``sigmoid``. ``transfer``: a per-image intensity transfer function
    (:mod:`advnorm.models.transfer`) over ``value_range``, the range of the method's input transform; the identity
    at the start."""
    if kind == "transfer":
        return IntensityTransfer(value_range=value_range)
    chosen = output or cfg.generator_output
    form = cast(Literal["sigmoid", "residual", "additive"], "sigmoid" if chosen == "auto" else chosen)
    net = UNet3D(1, 1, cfg.generator_widths, output=form, top=SCALE_TOP)
    kaiming_init(net)
    if form in ("residual", "additive"):
        nn.init.zeros_(net.head.weight)
        if net.head.bias is not None:
            nn.init.zeros_(net.head.bias)
    return net


def build_segmenter(cfg: ModelConfig, n_classes: int) -> nn.Module:
    """S: logits per class, at the input's resolution (``cfg.segmenter_stem`` chooses its first level)."""
    net: nn.Module
    if cfg.segmenter_stem == "strided":
        net = StridedStemUNet3D(1, n_classes, cfg.segmenter_widths)
    else:
        net = UNet3D(1, n_classes, cfg.segmenter_widths, output="logits")
    kaiming_init(net)
    return net


def build_discriminator(
    cfg: ModelConfig,
    n_domains: int,
    *,
    generated_class: bool = True,
    kind: str = "patch",
    stem_norm: str = "group",
    value_range: ValueRange = SCALE_RANGE,
) -> nn.Module:
    """D: the paper's (K + 1)-class patch CNN, or a K-way domain classifier (``generated_class=False``) on the
    patch or on its intensity histogram (``kind="histogram"``)."""
    n_outputs = n_domains + 1 if generated_class else n_domains
    net: nn.Module
    if kind == "histogram":
        net = HistogramDiscriminator(n_outputs, value_range=value_range)
    else:
        net = DomainDiscriminator(
            n_domains,
            cfg.discriminator_widths,
            cfg.discriminator_blocks,
            generated_class=generated_class,
            stem_norm=stem_norm,
        )
    kaiming_init(net)
    return net
