"""One source for the method names: the table, the config's type and the CLI's choices agree."""

from __future__ import annotations

import dataclasses
import typing

from advnorm.cli_args import build_parser
from advnorm.config import Config
from advnorm.methods import METHOD_SPECS, METHODS, Method


def _choices(verb: str, option: str) -> tuple[str, ...]:
    sub = next(a for a in build_parser()._actions if a.dest == "verb").choices[verb]
    return tuple(next(a for a in sub._actions if option in a.option_strings).choices)


def test_method_table_config_type_and_cli_agree():
    assert METHODS == tuple(METHOD_SPECS) == typing.get_args(Method)
    assert typing.get_type_hints(Config)["method"] == Method
    assert _choices("train", "--method") == METHODS
    assert all(spec.name == name for name, spec in METHOD_SPECS.items())


def test_every_method_has_a_title_and_an_experiment_number():
    for spec in METHOD_SPECS.values():
        assert spec.title and spec.experiment
    assert len({s.experiment for s in METHOD_SPECS.values()}) == len(METHOD_SPECS)


def test_a_method_with_a_discriminator_has_a_generator():
    for spec in METHOD_SPECS.values():
        assert spec.uses_generator or not spec.uses_discriminator
        assert dataclasses.is_dataclass(spec)
