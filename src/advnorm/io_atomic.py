"""Atomic file writes: a kill at any moment leaves either the old file or the new one, never half."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from advnorm.paths import top_missing


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes) or ".tmp"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{suffix}", dir=path.parent)
    tmp = Path(tmp_name)
    os.close(fd)
    try:
        yield tmp
        # mkstemp makes 0600 files, and some writers (safetensors) replace the file with another 0600 one:
        # give the final file the mode any other file gets (0644 under the usual umask)
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def _umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (a power cut after it could otherwise lose it); best effort."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


STAGING_TAG = ".advnorm-partial-"


@contextlib.contextmanager
def staged_folder(out_dir: str | Path) -> Iterator[Path]:
    """Yield a hidden staging folder; on success its files appear in ``out_dir`` all at once.

    When ``out_dir`` (or some of its parents) does not exist yet, the top-most missing folder is
    staged beside its future place (``.<name>.advnorm-partial-<host>-<pid>-*``) and renamed into place
    at the end, so a kill at any moment leaves no new folder behind. Into an existing ``out_dir`` the
    files are staged inside it and moved in at the end. On an error the staging folder is removed.
    A kill (-9) cannot clean up: the next run for the same ``out_dir`` removes staging folders whose
    process is gone (:func:`remove_stale_staging`).
    """
    out_dir = Path(out_dir)
    top = top_missing(out_dir)
    remove_stale_staging(out_dir)
    if top is None:
        staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_TAG}{_owner()}-", dir=out_dir))
        root = staging
    else:
        root = Path(tempfile.mkdtemp(prefix=f".{top.name}{STAGING_TAG}{_owner()}-", dir=top.parent))
        staging = root / out_dir.relative_to(top)
        staging.mkdir(parents=True, exist_ok=True)
    try:
        yield staging
        if top is not None and not top.exists():
            os.chmod(root, 0o777 & ~_umask())  # mkdtemp makes 0700 folders
            os.replace(root, top)
        else:
            out_dir.mkdir(parents=True, exist_ok=True)
            for f in sorted(staging.iterdir()):
                os.replace(f, out_dir / f.name)
            shutil.rmtree(root)
        fsync_dir(out_dir.parent)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def _owner() -> str:
    return f"{socket.gethostname().replace('-', '_')}-{os.getpid()}"


def remove_stale_staging(out_dir: str | Path) -> list[Path]:
    """Remove staging folders for ``out_dir`` left by killed runs on this host; returns what was removed."""
    out_dir = Path(out_dir)
    host = socket.gethostname().replace("-", "_")
    top = top_missing(out_dir) or out_dir
    candidates = list(top.parent.glob(f".{top.name}{STAGING_TAG}*"))
    if out_dir.is_dir():
        candidates += out_dir.glob(f"{STAGING_TAG}*")
    removed = []
    for folder in candidates:
        tag = folder.name[folder.name.index(STAGING_TAG) + len(STAGING_TAG) :]
        parts = tag.split("-")
        if len(parts) < 3 or parts[0] != host or not parts[1].isdigit() or _alive(int(parts[1])):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Standard JSON, atomically: NaN and infinities (an undefined metric) are written as ``null``."""
    text = json.dumps(_finite(obj), indent=2, sort_keys=False, default=_jsonable, allow_nan=False)
    atomic_write_text(path, text + "\n")


def _finite(obj: Any) -> Any:
    import math

    import numpy as np

    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _finite(obj.tolist())
    return obj


def _jsonable(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")
