"""What the working-grid cache holds, and making room in it (``advnorm cache``).

The cache only grows by itself (:mod:`advnorm.data.cache`): every subject any command reads is added, and at
ABIDE's scale that is tens of gigabytes. Each read of an entry marks it used (the modification time of its
``subject.json``), so entries can be removed least recently used first. Removing one is safe while other runs
use it: the folder is renamed away first (a reader then finds no entry and rebuilds it) and the files a running
process has mapped stay readable to it until it lets them go (POSIX unlink semantics).
"""

from __future__ import annotations

import math
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from advnorm.data.cache import ENTRY_FILE, PREPROCESS_VERSION, discard
from advnorm.errors import AdvnormError

SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


@dataclass(frozen=True)
class Entry:
    folder: Path
    bytes: int
    last_used: float
    """Seconds since the epoch of the last read (or the write)."""
    version: int
    """The preprocessing version that wrote it; only :data:`PREPROCESS_VERSION`'s entries are ever read."""


def entries(root: Path) -> list[Entry]:
    """Every complete entry under ``root``, least recently used first. Hidden (unfinished or damaged) folders are
    not entries."""
    found = []
    for version_dir in sorted((root / "working-grid").glob("v*")):
        match = re.fullmatch(r"v(\d+)", version_dir.name)
        if match is None:
            continue
        for folder in version_dir.glob("[!.]?/[!.]*"):
            marker = folder / ENTRY_FILE
            try:
                last = marker.stat().st_mtime
                size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
            except OSError:  # removed meanwhile, or not an entry
                continue
            found.append(Entry(folder, size, last, int(match.group(1))))
    return sorted(found, key=lambda e: e.last_used)


def parse_size(text: str) -> int:
    """``"50G"``, ``"500M"``, ``"0"`` -> bytes (binary units)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)I?B?\s*", text.upper())
    if match is None:
        raise AdvnormError(f"--max-size: {text!r} is not a size (examples: 50G, 500M, 0)")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2)])


def choose(
    found: list[Entry],
    *,
    everything: bool = False,
    unused_days: float | None = None,
    max_bytes: int | None = None,
    now: float | None = None,
) -> list[Entry]:
    """The entries to remove: all; or those of another preprocessing version (never read again), those unused
    for ``unused_days``, then the least recently used until the rest fit in ``max_bytes``."""
    if everything:
        return list(found)
    now = time.time() if now is None else now
    stale = unused_days * 86400 if unused_days is not None else math.inf
    outdated = [e.version != PREPROCESS_VERSION or now - e.last_used > stale for e in found]
    gone = [e for e, out in zip(found, outdated, strict=True) if out]
    if max_bytes is not None:
        kept = [e for e, out in zip(found, outdated, strict=True) if not out]  # least recently used first
        total = sum(e.bytes for e in kept)
        for e in kept:
            if total <= max_bytes:
                break
            gone.append(e)
            total -= e.bytes
    return gone


def remove(chosen: list[Entry]) -> int:
    """Remove ``chosen`` (see the module doc for why this is safe under running jobs); returns the bytes freed."""
    freed = 0
    for e in chosen:
        if e.folder.is_dir():
            discard(e.folder)
            freed += e.bytes
    for shard in {e.folder.parent for e in chosen}:  # drop shard folders left empty
        if shard.is_dir() and not any(shard.iterdir()):
            shutil.rmtree(shard, ignore_errors=True)
    return freed


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def describe(root: Path, found: list[Entry], now: float | None = None) -> str:
    """One paragraph: where the cache is, how many subjects and bytes, how old its least recently used entry is."""
    if not found:
        return f"{root}: empty"
    now = time.time() if now is None else now
    total = sum(e.bytes for e in found)
    other = [e for e in found if e.version != PREPROCESS_VERSION]
    idle = (now - found[0].last_used) / 86400
    text = f"{root}: {len(found)} subject(s), {human(total)}; least recently used {idle:.1f} days ago"
    if other:
        text += f"; {len(other)} of another preprocessing version ({human(sum(e.bytes for e in other))}, never read)"
    return text
