"""A corpus of bad inputs for every verb, through ``advnorm.cli.main`` in-process.

For each case: a non-zero exit, exactly one stderr line ``advnorm: error: ...`` naming the
offending file, folder or config key (warnings, one line each, may come before it), no traceback, and no partial
output (every output path is absent afterwards, or byte-for-byte unchanged if it existed before).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from advnorm.cli import main
from tests import (
    bad_input_cases_inspect_train,  # noqa: F401  (importing a case module registers its cases, in this order)
    bad_input_cases_outputs,  # noqa: F401
    bad_input_cases_regressions,  # noqa: F401
)
from tests.bad_input_kit import CASES, Env

# ---------------------------------------------------------------- the test


def _state(path: Path):
    """Everything at ``path`` (files and folders, hidden ones too), or None if absent."""
    if not path.exists():
        return None
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return {
        str(p.relative_to(path)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>")
        for p in sorted(path.rglob("*"))
    }


def test_the_corpus_is_large_and_covers_every_verb():
    assert len(CASES) >= 25
    assert {name.split("-")[0] for name in CASES} == {"inspect", "train", "predict", "evaluate", "reproduce"}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_clean_error_line(name, tiny_phantom, tiny_run, tiny_config, tmp_path, capsys):
    built = CASES[name](Env(tmp_path, tiny_phantom, tiny_run, tiny_config))
    before = {p: _state(p) for p in built.outputs}
    capsys.readouterr()
    code = main(built.argv)
    err = capsys.readouterr().err
    assert code != 0
    assert code != 1, f"internal error instead of a clean one: {err}"
    lines = [
        line for line in err.strip("\n").splitlines() if not line.startswith("advnorm: warning: ")
    ]  # one line each
    assert len(lines) == 1, err
    assert lines[0].startswith("advnorm: error: "), err
    assert "Traceback" not in err
    assert built.named in lines[0], f"{built.named!r} not named in: {lines[0]}"
    for p, state in before.items():
        assert _state(p) == state, f"partial output: {p} changed"
