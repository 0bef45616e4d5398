"""G and S (3-D U-Nets) and D (the (K+1)-class discriminator), built from a ModelConfig."""

from __future__ import annotations

from torch import nn

from advnorm.config import SCALE_TOP, ModelConfig
from advnorm.models.discriminator import DomainDiscriminator
from advnorm.models.unet import UNet3D, kaiming_init


def build_generator(cfg: ModelConfig) -> UNet3D:
    """G: output in (0, SCALE_TOP), the range of its input. The residual form starts as the identity
    (its head, the logit-space correction, is zero; every other layer Kaiming-initialized)."""
    net = UNet3D(1, 1, cfg.generator_widths, output=cfg.generator_output, top=SCALE_TOP)
    kaiming_init(net)
    if cfg.generator_output == "residual":
        nn.init.zeros_(net.head.weight)
        if net.head.bias is not None:
            nn.init.zeros_(net.head.bias)
    return net


def build_segmenter(cfg: ModelConfig, n_classes: int) -> UNet3D:
    net = UNet3D(1, n_classes, cfg.segmenter_widths, output="logits")
    kaiming_init(net)
    return net


def build_discriminator(cfg: ModelConfig, n_domains: int) -> DomainDiscriminator:
    net = DomainDiscriminator(n_domains, cfg.discriminator_widths, cfg.discriminator_blocks)
    kaiming_init(net)
    return net
