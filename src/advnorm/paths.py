"""Where outputs may go: checks made before any work, so a refused command leaves nothing behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from advnorm.errors import AdvnormError


def top_missing(path: str | Path) -> Path | None:
    """The top-most folder of ``path`` (itself included) that does not exist yet; ``None`` if ``path`` exists.

    What a command may remove again after a failure: the folders it created, and no others."""
    path = Path(path)
    if path.exists():
        return None
    top = path
    while not top.parent.exists():
        top = top.parent
    return top


def refuse_inside_inputs(out: Path, roots: list[Path], what: str) -> None:
    """An output folder must not be an input dataset folder or lie inside one (it would be read as data)."""
    out_r = Path(out).resolve()
    for root in roots:
        root_r = Path(root).resolve()
        if out_r == root_r or root_r in out_r.parents:
            raise AdvnormError(f"{what} must not be inside an input dataset folder ({root})", out)


def check_output_target(out: Path, what: str, *, is_dir: bool) -> None:
    """Refuse an output that cannot be created: a file where a folder is needed or the other way round,
    a file on the way, or a folder that is not writable."""
    out = Path(out)
    if out.exists() and out.is_dir() != is_dir:
        raise AdvnormError(
            f"{what} is {'a file' if is_dir else 'a folder'}; expected {'a folder' if is_dir else 'a file'}", out
        )
    for folder in ((out,) if is_dir else ()) + tuple(out.parents):
        if folder.exists():
            if not folder.is_dir():
                raise AdvnormError(f"cannot create the {what}: this is a file, not a folder", folder)
            try:  # a real write: permissions, read-only mounts and special file systems (/sys) all show here
                fd, probe = tempfile.mkstemp(prefix=".advnorm-probe-", dir=folder)
                os.close(fd)
                os.unlink(probe)
            except OSError as exc:
                raise AdvnormError(f"cannot write the {what} here: {exc.strerror or exc}", out) from None
            break


def probe_writable(folder: Path) -> None:
    """Write and remove a small file: the one sure test that ``folder`` takes files
    (permissions, quota, read-only mounts)."""
    probe = Path(folder) / ".write_test"
    try:
        probe.write_bytes(b"x" * 1024)
        probe.unlink()
    except OSError as exc:
        raise AdvnormError(f"folder is not writable: {exc.strerror or exc}", folder) from None
