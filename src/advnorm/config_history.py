"""What a stored run's settings mean when they were written by an older advnorm: a run folder's config.json or a
weights file's architecture lacks the settings added since, or holds ``auto`` for a choice the method made
differently then, and a changed default's old value must not be read as the new one."""

from __future__ import annotations

import dataclasses
from typing import Any

from advnorm.config import Config, ingredients
from advnorm.methods import METHOD_SPECS

ABSENT_MEANS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "train.augment_noise": (0.08, ("augmented",)),
    "train.augment_share": (1.0, ("augmented",)),
    "train.bn_recalibration_batches": (0, tuple(METHOD_SPECS)),  # made before precise BN existed
    "loss.content_weight": (0.0, tuple(METHOD_SPECS)),
    "loss.slope_floor": (0.0, tuple(METHOD_SPECS)),
}
"""What a setting missing from a stored run's ``config.json`` means where that is not today's profile default (a
setting whose default changed after it was added: the run was made before, with the old value), and the methods
it acts in. A setting missing otherwise means the profile's default, which kept the behaviour from before it
existed; so does this one for a run of a method it does not act in."""

RESOLVED = ("model.generator", "model.generator_output")
"""Settings whose ``auto`` the method resolves (:func:`advnorm.config.ingredients`); a run's config.json records
what they resolved to in its ``ingredients`` section, and a weights file's architecture holds them resolved."""

AUTO_MEANT: dict[str, dict[str, Any]] = {
    "model.generator": {
        **{name: "unet" for name, spec in METHOD_SPECS.items() if spec.uses_generator},
        "harmonized": "transfer",
    },
    "model.generator_output": dict.fromkeys(METHOD_SPECS, "sigmoid"),  # absent then: made before the setting
}
"""What ``auto`` meant, per method, in what was stored before ``ingredients`` was recorded: ``harmonized``'s G was
the transfer function until its U-Net became the default; every U-Net G had the sigmoid form before
``model.generator_output`` existed."""

STORED_RECORDS = ("run", "versions", "ingredients")
"""The sections of a run's config.json that record the run rather than set it."""


def resolved_settings(cfg: Config) -> dict[str, Any]:
    """``cfg`` as a dict, with the settings of :data:`RESOLVED` as the method resolves them (``auto`` kept for G's
    kind where the method has no G): what a run stores in a weights file and compares by meaning."""
    out = cfg.to_dict()
    parts = ingredients(cfg)
    out["model"]["generator"] = parts.generator or cfg.model.generator
    out["model"]["generator_output"] = parts.generator_output
    return out


def stored_ingredients(cfg: Config) -> dict[str, Any]:
    """What a run's config.json records as its ``ingredients`` section."""
    return dataclasses.asdict(ingredients(cfg))


def absent_settings(stored: dict[str, Any]) -> dict[str, Any]:
    """The settings ``stored`` (a run's config.json, or a weights file's architecture) holds as an older advnorm
    wrote them or leaves to its method, as dotted keys with the value the run was made with: those of
    :data:`ABSENT_MEANS` it lacks and that act in its method, and those of :data:`RESOLVED` it holds as ``auto``
    (its recorded ``ingredients``, or, stored before they were, :data:`AUTO_MEANT`)."""
    return {**_absent(stored), **_autos(stored, stored)}


def _absent(stored: dict[str, Any]) -> dict[str, Any]:
    """The settings of :data:`ABSENT_MEANS` that ``stored`` lacks and that act in its method, with their old value."""
    out = {}
    for dotted, (value, methods) in ABSENT_MEANS.items():
        head, key = dotted.split(".")
        if stored.get("method") in methods and key not in stored.get(head, {}):
            out[dotted] = value
    return out


def _autos(settings: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """The settings of :data:`RESOLVED` that ``settings`` holds as ``auto``, as ``stored`` (the run's config.json
    or architecture) resolved them: its recorded ``ingredients``, or, stored before they were, :data:`AUTO_MEANT`."""
    out = {}
    recorded, method = stored.get("ingredients"), stored.get("method")
    has_g = method in METHOD_SPECS and METHOD_SPECS[method].uses_generator
    for dotted in RESOLVED:
        head, key = dotted.split(".")
        if settings.get(head, {}).get(key) != "auto" or (key == "generator" and not has_g):
            continue  # G's kind of a method without G stays ``auto``, as :func:`resolved_settings` keeps it
        if isinstance(recorded, dict) and recorded.get(key) is not None:
            out[dotted] = recorded[key]
        elif method in AUTO_MEANT[dotted]:
            out[dotted] = AUTO_MEANT[dotted][method]
    return out


def as_made(stored: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``stored`` (a run's config.json, or a weights file's architecture) with every setting it lacks, in the
    sections it has, set to what the run was made with: a changed default's old value (:func:`absent_settings`),
    otherwise the value in ``defaults`` (a profile's config as a dict), which kept the behaviour from before the
    setting existed; and every ``auto`` it resolved, as it resolved. So a run or weights file older than a setting
    stays usable under its default."""
    changed = _absent(stored)
    out = {k: v for k, v in stored.items() if k != "ingredients"}
    for head, section in stored.items():
        base = defaults.get(head)
        if isinstance(section, dict) and isinstance(base, dict):
            out[head] = {**{k: changed.get(f"{head}.{k}", v) for k, v in base.items()}, **section}
    for dotted, value in _autos(out, stored).items():  # stored as ``auto``, or absent and ``auto`` by default
        head, key = dotted.split(".")
        out[head] = {**out[head], key: value}
    return out
