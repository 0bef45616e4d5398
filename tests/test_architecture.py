"""The dependency rule of docs/architecture.md, read from the code's own imports.

core -> data -> models -> training -> inference -> evaluation -> workflows -> reproduce -> cli:
a module may import its own layer and the layers before it, never a later one, and never
another module's ``_private`` name. Imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "core",
        (
            "advnorm",
            "advnorm.errors",
            "advnorm.paths",
            "advnorm.io_atomic",
            "advnorm.methods",
            "advnorm.labels",
            "advnorm.config",
            "advnorm.config_checks",
            "advnorm.config_file",
            "advnorm.config_history",
            "advnorm.config_doc",
            "advnorm.run_folder",
            "advnorm.plotting",
        ),
    ),
    ("data", ("advnorm.data",)),
    ("models", ("advnorm.models",)),
    ("training", ("advnorm.training",)),
    ("inference", ("advnorm.inference", "advnorm.export")),
    ("evaluation", ("advnorm.evaluation",)),
    ("workflows", ("advnorm.workflows",)),
    ("reproduce", ("advnorm.reproduce",)),
    ("cli", ("advnorm.cli", "advnorm.cli_args", "advnorm.__main__")),
]


def layer_of(module: str) -> int:
    """Index of the layer holding ``module`` (the longest matching prefix wins)."""
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len and (p != "advnorm" or module == p):
                best, best_len = i, len(p)
    if best is None:
        raise AssertionError(
            f"{module} is in no layer of tests/test_architecture.py: add it (and to docs/architecture.md)"
        )
    return best


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / "advnorm").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports(path: Path, name: str) -> list[tuple[str, str, int]]:
    """(imported module, imported name or "", line) of every advnorm import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, "", node.lineno) for a in node.names if a.name.split(".")[0] == "advnorm"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            if base.split(".")[0] == "advnorm":
                found += [(base, a.name, node.lineno) for a in node.names]
    return found


MODULES = modules()


def test_every_module_has_a_layer():
    for name in MODULES:
        layer_of(name)


def violations(name: str, path: Path) -> list[str]:
    own, out = layer_of(name), []
    for target, what, line in imports(path, name):
        full = f"{target}.{what}" if what and f"{target}.{what}" in MODULES else target
        if layer_of(full) > own:
            out.append(
                f"{name}:{line} imports {full} ({LAYERS[layer_of(full)][0]}), a later layer than {LAYERS[own][0]}"
            )
        if what.startswith("_") and not what.startswith("__"):
            out.append(f"{name}:{line} imports the private {target}.{what}")
    return out


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_imports_a_later_layer_or_a_private_name(name):
    assert violations(name, MODULES[name]) == []


@pytest.mark.parametrize(
    "source,found",
    [
        ("from advnorm.cli import main", "a later layer"),
        ("def f():\n    from advnorm.training.loop import fit", "a later layer"),
        ("import advnorm.workflows", "a later layer"),
        ("from advnorm.data.grid import _signed_permutation", "private"),
        ("from advnorm.data import grid", None),
        ("from advnorm.config import SCALE_TOP", None),
    ],
)
def test_the_check_finds_what_it_should(tmp_path, source, found):
    path = tmp_path / "fake.py"
    path.write_text(source + "\n")
    result = violations("advnorm.models.fake", path)
    assert (found is None and result == []) or (found is not None and any(found in v for v in result)), result


def test_the_rule_is_the_one_in_the_docs():
    doc = (SRC.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert " -> ".join(n for n, _ in LAYERS) in doc
