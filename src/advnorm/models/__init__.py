"""G and S (3-D U-Nets) and D (the (K+1)-class discriminator), built from a ModelConfig."""

from __future__ import annotations

from advnorm.config import ModelConfig
from advnorm.models.discriminator import DomainDiscriminator
from advnorm.models.unet import UNet3D, kaiming_init


def build_generator(cfg: ModelConfig) -> UNet3D:
    net = UNet3D(1, 1, cfg.generator_widths, output="sigmoid")
    kaiming_init(net)
    return net


def build_segmenter(cfg: ModelConfig) -> UNet3D:
    net = UNet3D(1, cfg.n_classes, cfg.segmenter_widths, output="logits")
    kaiming_init(net)
    return net


def build_discriminator(cfg: ModelConfig, n_domains: int) -> DomainDiscriminator:
    net = DomainDiscriminator(n_domains, cfg.discriminator_widths, cfg.discriminator_blocks)
    kaiming_init(net)
    return net


__all__ = ["UNet3D", "DomainDiscriminator", "build_generator", "build_segmenter", "build_discriminator", "kaiming_init"]
