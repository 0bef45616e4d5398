"""G, S and D: the networks of paper Fig. 2 (``builders``), held together by :class:`Networks`."""

from advnorm.models.builders import build_discriminator, build_generator, build_segmenter
from advnorm.models.discriminator import DomainDiscriminator
from advnorm.models.networks import Networks, architecture
from advnorm.models.unet import UNet3D, kaiming_init

__all__ = [
    "DomainDiscriminator",
    "Networks",
    "UNet3D",
    "architecture",
    "build_discriminator",
    "build_generator",
    "build_segmenter",
    "kaiming_init",
]
