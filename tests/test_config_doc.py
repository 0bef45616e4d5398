"""docs/configuration.md is generated from the config dataclasses and may not drift from them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from advnorm import config_doc
from advnorm.config import Config

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_the_committed_page_is_what_the_code_generates():
    assert DOC.read_text(encoding="utf-8") == config_doc.render(), (
        "docs/configuration.md is stale: run `python -m advnorm.config_doc > docs/configuration.md`"
    )


def _leaves(obj, prefix=""):
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, f"{prefix}{f.name}.")
        else:
            yield f"{type(obj).__name__}.{f.name}"


def test_every_key_is_documented_and_on_the_page():
    docs = config_doc.field_docs()
    page = DOC.read_text(encoding="utf-8")
    missing = [k for k in _leaves(Config()) if not docs.get(k)]
    assert missing == [], f"config fields without a docstring: {missing}"
    assert page.count("\n| `") == len(list(_leaves(Config())))
