"""How ``docs/performance.md`` writes numbers: one place, so every section says them alike."""

from __future__ import annotations


def num(x: float | int | None, nd: int = 2) -> str:
    """A measure to ``nd`` decimals, large floats as whole numbers with thousands separators; None as n/a."""
    if x is None:
        return "n/a"
    if isinstance(x, float) and abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{nd}f}"


def pct(x: float | None, nd: int = 0) -> str:
    """A fraction as a percentage."""
    return "n/a" if x is None else f"{100 * x:.{nd}f} %"


def verdict(flag: bool | None) -> str:
    """A target met (bold), not met, or not measured."""
    return "n/a" if flag is None else ("**met**" if flag else "not met")


def mib(b: float) -> str:
    """Bytes in MiB."""
    return f"{b / 2**20:,.0f} MiB"


def gib(b: float) -> str:
    """Bytes in GiB."""
    return f"{b / 2**30:.2f} GiB"
