"""The classes S segments: their names and order, in one place."""

from __future__ import annotations

CLASS_NAMES: tuple[str, ...] = ("background", "CSF", "GM", "WM")
"""The output classes of S, in label order 0-3."""

TISSUES: tuple[str, ...] = CLASS_NAMES[1:]
"""The foreground classes every table and metric reports (labels 1-3)."""


def class_name(label: int) -> str:
    """Name of a label: ``CSF``/``GM``/``WM`` for 1-3, ``background`` for 0, ``label<k>`` otherwise."""
    return CLASS_NAMES[label] if 0 <= label < len(CLASS_NAMES) else f"label{label}"
