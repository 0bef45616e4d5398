"""Range checks of a configuration that its types alone cannot express (:func:`validate`), each failure one line."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import fields
from typing import Any

from advnorm.config import PROFILES, SCALE_TOP, Config, ingredients, model_stride
from advnorm.errors import AdvnormError
from advnorm.methods import METHOD_SPECS, METHODS

MAX_PATCH = 160
"""Training patches larger than this (160^3 voxels: more than a whole infant brain) are a typo, not a setting."""
MAX_BATCH = 1024


def validate(cfg: Config) -> None:
    """Range checks that types alone cannot express."""

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise AdvnormError(f"invalid configuration: {what}")

    t, o, m, loss = cfg.train, cfg.optim, cfg.model, cfg.loss
    for name, value in _numbers(cfg):
        need(math.isfinite(value), f"{name} must be a finite number, got {value!r}")
    need(cfg.method in METHODS, f"method must be one of {', '.join(METHODS)}")
    need(cfg.profile in PROFILES, f"profile must be one of {', '.join(PROFILES)}")
    need(t.epochs >= 1, "train.epochs must be >= 1")
    need(t.warmup_epochs >= 0, "train.warmup_epochs must be >= 0")
    need(t.stop_patience >= 0, "train.stop_patience must be >= 0 (0: off)")
    need(0 <= t.augment_bias <= 2, "train.augment_bias must be in [0, 2]")
    need(0 <= t.augment_noise <= 1, "train.augment_noise must be in [0, 1]")
    need(0 < t.augment_share <= 1, "train.augment_share must be in (0, 1]")
    need(0 <= t.contrast_randomisation <= 1, "train.contrast_randomisation must be in [0, 1]")
    need(2 <= t.batch_size <= MAX_BATCH, f"train.batch_size must be in [2, {MAX_BATCH}]")
    need(
        8 <= t.patch_size <= MAX_PATCH and t.patch_size % 8 == 0,
        f"train.patch_size must be a multiple of 8 in [8, {MAX_PATCH}]",
    )
    need(0 <= t.seed < 2**32 and 0 <= cfg.data.split_seed < 2**32, "seeds must be integers in [0, 2^32)")
    need(m.discriminator_blocks >= 1, "model.discriminator_blocks must be >= 1")
    need(t.d_steps >= 1 and loss.adv_ramp_epochs >= 0, "train.d_steps must be >= 1 and loss.adv_ramp_epochs >= 0")
    need(loss.content_weight is None or loss.content_weight >= 0, "loss.content_weight must be >= 0")
    need(loss.slope_floor is None or 0 <= loss.slope_floor <= 1, "loss.slope_floor must be in [0, 1]")
    need(t.patch_stride >= 1, "train.patch_stride must be >= 1")
    need(t.steps_per_epoch is None or t.steps_per_epoch >= 1, "train.steps_per_epoch must be >= 1")
    need(t.val_patches >= 1, "train.val_patches must be >= 1")
    need(t.bn_recalibration_batches >= 0, "train.bn_recalibration_batches must be >= 0")
    need(all(lr > 0 for lr in (o.lr_generator, o.lr_segmenter, o.lr_discriminator)), "learning rates must be > 0")
    need(0 <= o.momentum < 1 and o.weight_decay >= 0, "optim.momentum must be in [0, 1) and weight_decay >= 0")
    need(o.plateau_patience >= 0 and 0 < o.plateau_factor < 1, "optim.plateau_factor must be in (0, 1)")
    need(0 <= o.plateau_floor < 1, "optim.plateau_floor must be in [0, 1)")
    for name in ("generator_widths", "segmenter_widths", "discriminator_widths"):
        widths = getattr(m, name)
        need(len(widths) >= 2 and all(w >= 1 for w in widths), f"model.{name} needs >= 2 positive widths")
    need(
        t.patch_size % model_stride(m) == 0,
        "train.patch_size must be divisible by the U-Net's total stride",
    )
    need(
        loss.dice_weights is None
        or (len(loss.dice_weights) >= 2 and all(w >= 0 for w in loss.dice_weights) and sum(loss.dice_weights) > 0),
        "loss.dice_weights needs one non-negative weight per class, background first",
    )
    need(loss.dice_epsilon > 0 and loss.adv_lambda >= 0, "loss.dice_epsilon must be > 0 and loss.adv_lambda >= 0")
    need(
        len(cfg.data.fractions) == 3
        and all(f >= 0 for f in cfg.data.fractions)
        and abs(sum(cfg.data.fractions) - 1) < 1e-6,
        "data.fractions must be three non-negative numbers summing to 1",
    )
    need(
        all(f > 0 for f in cfg.data.fractions),
        "data.fractions: training, validation and test each need a share > 0 (every set holds at least one subject)",
    )
    need(50 < cfg.data.scale_percentile <= 100, "data.scale_percentile must be in (50, 100]")
    parts = ingredients(cfg)  # only now: it needs a known method, checked above
    need(
        cfg.loss.adversary_view == "patch" or (parts.generator == "transfer" and parts.adversary == "confusion"),
        "loss.adversary_view 'image' needs a transfer-function G and the confusion adversary "
        "(method 'harmonized' with model.generator 'transfer')",
    )
    need(
        not cfg.loss.slope_floor or parts.generator == "transfer",
        "loss.slope_floor needs a transfer-function G (model.generator 'transfer')",
    )
    spec = METHOD_SPECS[cfg.method]
    need(
        cfg.model.generator == "auto" or spec.uses_generator,
        f"model.generator: method {cfg.method!r} has no G (methods with one: "
        f"{', '.join(m for m, s in METHOD_SPECS.items() if s.uses_generator)})",
    )
    need(
        cfg.model.generator_output in ("auto", "sigmoid") or parts.generator == "unet",
        f"model.generator_output {cfg.model.generator_output!r} shapes a U-Net G's output; this run's G is "
        f"{parts.generator or 'absent'} (method {cfg.method!r})",
    )
    need(
        parts.generator != "unet" or (spec.input_transform == "scale") == (parts.generator_output != "additive"),
        f"model.generator 'unet': the rescaled input needs model.generator_output 'sigmoid' or 'residual' (an output "
        f"in (0, {SCALE_TOP})), any other 'additive' (unbounded); method {cfg.method!r} feeds G a "
        f"{spec.input_transform} image and generator_output is {cfg.model.generator_output!r}",
    )


def _numbers(obj: Any, prefix: str = "") -> list[tuple[str, float]]:
    """Every float (also inside tuples) of a config tree, with its dotted name."""
    out: list[tuple[str, float]] = []
    for f in fields(obj):
        value, name = getattr(obj, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            out += _numbers(value, name + ".")
        elif isinstance(value, float):
            out.append((name, value))
        elif isinstance(value, tuple):
            out += [(name, float(v)) for v in value if isinstance(v, float)]
    return out
