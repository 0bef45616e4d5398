"""The experiments of the paper's Table 1 and the baselines a reviewer asks for, as data.

| method         | paper      | input to the first net | G | D | augmentation |
|----------------|------------|------------------------|---|---|--------------|
| single         | Exp. 1-4   | per-image rescale      |   |   |              |
| standardized   | Exp. 5     | per-image z-score      |   |   |              |
| unconstrained  | Exp. 6     | per-image rescale      | x |   |              |
| adversarial    | Exp. 7     | per-image rescale      | x | x |              |
| nyul           | (reviewer) | Nyúl standardization   |   |   |              |
| augmented      | (reviewer) | per-image rescale      |   |   | x            |
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MethodSpec:
    name: str
    input_transform: str  # "scale" | "zscore" | "nyul"
    uses_generator: bool = False
    uses_discriminator: bool = False
    augment: bool = False
    single_domain: bool = False
    title: str = ""


METHOD_SPECS: dict[str, MethodSpec] = {
    "single": MethodSpec("single", "scale", single_domain=True, title="No adaptation"),
    "standardized": MethodSpec("standardized", "zscore", title="Standardized"),
    "unconstrained": MethodSpec("unconstrained", "scale", uses_generator=True, title="Without constraint"),
    "adversarial": MethodSpec("adversarial", "scale", uses_generator=True, uses_discriminator=True,
                              title="Adversarially normalized"),
    "nyul": MethodSpec("nyul", "nyul", title="Nyul standardized"),
    "augmented": MethodSpec("augmented", "scale", augment=True, title="Intensity augmentation"),
}
