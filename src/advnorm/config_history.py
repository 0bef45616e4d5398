"""What a stored run's settings mean when they were written by an older advnorm: a run folder's config.json or a
weights file's architecture lacks the settings added since, and a changed default's old value must not be read as
the new one."""

from __future__ import annotations

from typing import Any

from advnorm.methods import METHOD_SPECS

ABSENT_MEANS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "train.augment_noise": (0.08, ("augmented",)),
    "loss.content_weight": (0.0, tuple(METHOD_SPECS)),
    "loss.slope_floor": (0.0, tuple(METHOD_SPECS)),
}
"""What a setting missing from a stored run's ``config.json`` means where that is not today's profile default (a
setting whose default changed after it was added: the run was made before, with the old value), and the methods
it acts in. A setting missing otherwise means the profile's default, which kept the behaviour from before it
existed; so does this one for a run of a method it does not act in."""


def absent_settings(stored: dict[str, Any]) -> dict[str, Any]:
    """The dotted keys of :data:`ABSENT_MEANS` that ``stored`` (a run's config.json) lacks and that act in its
    method, with the value the run was made with."""
    out = {}
    for dotted, (value, methods) in ABSENT_MEANS.items():
        head, key = dotted.split(".")
        if stored.get("method") in methods and key not in stored.get(head, {}):
            out[dotted] = value
    return out


def as_made(stored: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``stored`` (a run's config.json, or a weights file's architecture) with every setting it lacks, in the
    sections it has, set to what the run was made with: a changed default's old value (:func:`absent_settings`),
    otherwise the value in ``defaults`` (a profile's config as a dict), which kept the behaviour from before the
    setting existed. So a run or weights file older than a setting stays usable under its default."""
    changed = absent_settings(stored)
    out = dict(stored)
    for head, section in stored.items():
        base = defaults.get(head)
        if isinstance(section, dict) and isinstance(base, dict):
            out[head] = {**{k: changed.get(f"{head}.{k}", v) for k, v in base.items()}, **section}
    return out
