"""The methods advnorm trains: the experiments of the paper's Table 1 and the baselines a reviewer asks for.

This table is the one source of the method names: the config's ``Method`` type, the CLI's
``--method`` choices and every report read it (``tests/test_methods.py`` ties them together).

| method         | paper      | input to the first net | G | D | augmentation |
|----------------|------------|------------------------|---|---|--------------|
| single         | Exp. 1-4   | per-image rescale      |   |   |              |
| standardized   | Exp. 5     | per-image z-score      |   |   |              |
| unconstrained  | Exp. 6     | per-image rescale      | x |   |              |
| adversarial    | Exp. 7     | per-image rescale      | x | x |              |
| nyul           | (reviewer) | Nyul standardization   |   |   |              |
| augmented      | (reviewer) | per-image rescale      |   |   | x            |
| harmonized     | (advnorm)  | per-image z-score      | x + U-Net(x) | domain confusion | |

``harmonized`` is advnorm's own method (docs/method.md): G adds a U-Net's correction to the z-scored image (the
identity at the start, held near it by a content term), and D is a domain classifier on the intensity histogram of
G's output whose posterior G makes uniform, so the adversary pulls the sites together instead of only keeping G's
output "real". Its earlier G, a per-image intensity transfer function, is ``model.generator`` ``transfer``.
``adversarial`` stays the paper's eq. (1)-(4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Method = Literal["single", "standardized", "unconstrained", "adversarial", "nyul", "augmented", "harmonized"]
InputTransform = Literal["scale", "zscore", "nyul"]


@dataclass(frozen=True)
class MethodSpec:
    """What one method trains and feeds its first network."""

    name: str
    input_transform: InputTransform
    uses_generator: bool = False
    uses_discriminator: bool = False
    augment: bool = False
    single_domain: bool = False
    title: str = ""
    """The row name in the tables (the paper's wording for Exp. 1-7)."""
    experiment: str = ""
    """The experiment number in Table 1 (single-domain runs are numbered by the report: 1-2 and 3-4)."""
    generator: str = "unet"
    """With a G: ``unet`` (the paper's) or ``transfer`` (an intensity transfer function per image)."""
    adversary: str = "paper"
    """With a D: ``paper`` (eq. 1-4, K + 1 classes) or ``confusion`` (D's domain posterior of G(x) made uniform)."""
    discriminator: str = "patch"
    """D's input: ``patch`` or ``histogram``."""
    stem_norm: str = "group"
    """``group`` (the paper's ResNet stem) or ``none``."""
    content_weight: float = 0.0
    """With a G: the weight of the content-preservation term (``loss.content_weight``, which overrides it)."""
    slope_floor: float = 0.0
    """With a transfer G (``model.generator`` ``transfer``): the floor on its curve's slope (``loss.slope_floor``,
    which overrides it)."""


METHOD_SPECS: dict[str, MethodSpec] = {
    "single": MethodSpec("single", "scale", single_domain=True, title="No adaptation", experiment="1-4"),
    "standardized": MethodSpec("standardized", "zscore", title="Standardized", experiment="5"),
    "unconstrained": MethodSpec(
        "unconstrained", "scale", uses_generator=True, title="Without constraint", experiment="6"
    ),
    "adversarial": MethodSpec(
        "adversarial",
        "scale",
        uses_generator=True,
        uses_discriminator=True,
        title="Adversarially normalized",
        experiment="7",
    ),
    "nyul": MethodSpec("nyul", "nyul", title="Nyul standardized", experiment="8"),
    "augmented": MethodSpec("augmented", "scale", augment=True, title="Intensity augmentation", experiment="9"),
    "harmonized": MethodSpec(
        "harmonized",
        "zscore",
        uses_generator=True,
        uses_discriminator=True,
        title="Adversarially harmonized (advnorm)",
        experiment="10",
        generator="unet",
        adversary="confusion",
        discriminator="histogram",
        stem_norm="none",
        content_weight=3.0,
        slope_floor=0.35,
    ),
}

METHODS: tuple[str, ...] = tuple(METHOD_SPECS)
"""Method names in table order."""

assert get_args(Method) == METHODS, "the Method type and the method table must list the same names"
