"""Reading a configuration: a profile, then a JSON file, then command-line overrides, each value checked
against the field's type and the whole against :func:`advnorm.config_checks.validate`; and the differences between
two stored configurations, in words."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Literal

from advnorm.config import PROFILES, Config, ingredients
from advnorm.config_checks import validate
from advnorm.config_history import STORED_RECORDS
from advnorm.errors import AdvnormError


def resolve(
    profile: str = "quick",
    *,
    file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    content: dict[str, Any] | None = None,
) -> Config:
    """Profile, then a JSON file, then ``overrides`` (``{"train.epochs": 3, "method": "single"}``).

    ``content`` is ``file``'s parsed JSON where the caller has read it already (a run folder checks its
    config.json first); ``file`` then only names it in errors."""
    if profile not in PROFILES:
        raise AdvnormError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    cfg = PROFILES[profile]()
    if file is not None:
        path = Path(file)
        data = dict(content) if content is not None else _read_json_object(path)
        for record in STORED_RECORDS:  # a run's config.json is a config file too
            data.pop(record, None)
        cfg = _merge(cfg, data, str(path), "")
    from_file = cfg
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        head, _, tail = dotted.rpartition(".")
        nested: dict[str, Any] = {tail: value}
        for part in reversed(head.split(".") if head else []):
            nested = {part: nested}
        cfg = _merge(cfg, nested, "command line", "")
    cfg = with_method_defaults(cfg)
    try:
        validate(cfg)
    except AdvnormError as exc:
        if file is not None and _invalid(replace(from_file, method=cfg.method)):
            raise AdvnormError(exc.problem, file) from None  # the bad value is in the file: name it
        raise
    return cfg


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AdvnormError("config file does not exist", path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdvnormError(f"config file is not valid JSON: {exc}", path) from None
    if not isinstance(data, dict):
        raise AdvnormError("config file must hold a JSON object", path)
    return data


def with_method_defaults(cfg: Config) -> Config:
    """``cfg`` with the settings left to the method (``None``) set to the method's value, as a run's config.json
    stores them: a run says what it used, whatever the default was. (``auto`` stays: a config file stays usable for
    every method; a run's config.json records what its ``auto`` resolved to in its ``ingredients`` section.)"""
    loss, chosen = cfg.loss, ingredients(cfg)
    if loss.content_weight is None:
        loss = replace(loss, content_weight=chosen.content_weight)
    if loss.slope_floor is None:
        loss = replace(loss, slope_floor=chosen.slope_floor)
    return replace(cfg, loss=loss)


def _invalid(cfg: Config) -> bool:
    try:
        validate(cfg)
    except AdvnormError:
        return True
    return False


def _merge(obj: Any, data: dict[str, Any], source: str, prefix: str) -> Any:
    known = {f.name: f for f in fields(obj)}
    hints = typing.get_type_hints(type(obj))
    changes: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{prefix}{key}"
        if key not in known:
            raise AdvnormError(f"unknown configuration key {where!r} (known: {', '.join(known)})", source)
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise AdvnormError(f"configuration key {where!r} must be an object", source)
            changes[key] = _merge(current, value, source, where + ".")
        else:
            changes[key] = _coerce(value, hints[key], where, source)
    return replace(obj, **changes)


def _coerce(value: Any, hint: Any, where: str, source: str) -> Any:  # noqa: PLR0911 - one return per kind of type
    """Check ``value`` against a type hint; lists become tuples. Wrong types are errors."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, where, source)
            except AdvnormError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is Literal:
        if value not in args:
            raise AdvnormError(
                f"configuration key {where!r} must be one of {', '.join(map(repr, args))}, got {value!r}", source
            )
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise AdvnormError(f"configuration key {where!r} must be a list, got {type(value).__name__}", source)
        inner = args[0] if args else Any
        if len(args) == 2 and args[1] is Ellipsis or len(args) == 1:
            return tuple(_coerce(v, inner, where, source) for v in value)
        if len(value) != len(args):
            raise AdvnormError(f"configuration key {where!r} must have {len(args)} items", source)
        return tuple(_coerce(v, a, where, source) for v, a in zip(value, args, strict=True))
    check = _SCALARS.get(hint)
    if check is None:
        return value
    ok, what = check
    if not ok(value):
        raise AdvnormError(f"configuration key {where!r} must be {what}, got {value!r}", source)
    return float(value) if hint is float else value


_SCALARS: dict[Any, tuple[Any, str]] = {
    bool: (lambda v: isinstance(v, bool), "true or false"),
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    float: (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    str: (lambda v: isinstance(v, str), "a string"),
}
"""JSON scalar types of config values: the check and how the error names the expected type."""


def differences(
    stored: Any, expected: Any, *, there: str = "in the file", here: str = "in the config", where: str = ""
) -> list[str]:
    """Human-readable differences between two nested JSON-like values (lists and tuples compare alike):
    ``"model.widths is [4, 8] in the file, [4, 16] in the config"``."""
    if isinstance(stored, dict) and isinstance(expected, dict):
        out = []
        for key in sorted(set(stored) | set(expected)):
            out += differences(stored.get(key), expected.get(key), there=there, here=here, where=f"{where}{key}.")
        return out
    if isinstance(stored, (list, tuple)) and isinstance(expected, (list, tuple)):
        stored, expected = list(stored), list(expected)
    return [] if stored == expected else [f"{where.rstrip('.')} is {stored!r} {there}, {expected!r} {here}"]


PER_RUN_SETTINGS = ("method", "train.seed", "data.train_domain", "data.left_out_domain")
"""What ``reproduce`` sets per run (the cell's method, seed and domains), not a setting the user changed."""


def changed_from_profile(cfg: Config, ignore: tuple[str, ...] = PER_RUN_SETTINGS) -> list[tuple[str, Any, Any]]:
    """(dotted key, value, the profile's value) of every setting of ``cfg`` its profile sets otherwise, in the
    configuration's order; ``ignore`` names keys left out. What a report must state beside its results."""

    def flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
        return out

    profile = with_method_defaults(replace(PROFILES[cfg.profile](), method=cfg.method))
    mine, base = flat(cfg.to_dict()), flat(profile.to_dict())

    def same(a: Any, b: Any) -> bool:
        return list(a) == list(b) if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) else a == b

    return [(k, v, base.get(k)) for k, v in mine.items() if k not in ignore and not same(v, base.get(k))]
