"""The working-grid cache: each subject is preprocessed once and memory-mapped by every run, cell and process.

Without it every training, every cell of a ``reproduce`` and every torchrun process re-reads and re-resamples
all volumes and holds them in its own memory: nine cells load the same subjects nine times, eight processes on a
node hold eight copies, and ABIDE's ~1,000 scans (~28 GB on the 1 mm working grid) do not fit at all.

A cached subject is a folder of ``.npy`` files (image float32, mask bool, label uint8) and ``subject.json``
(affines, shapes, warnings), read back with ``np.load(mmap_mode="r")``: the pages live once in the OS page cache,
shared by every process that maps them, are read only where a patch is cut, and are dropped by the kernel under
memory pressure (they are clean) instead of being swapped.

* **Key**: SHA-256 of the content digests of the input files (:func:`advnorm.data.fingerprint.file_digest`: of the
  decompressed bytes), the reading rules that shape the arrays (layout, label map, mask rule, label ids) and
  :data:`PREPROCESS_VERSION`. A file edited in place, other rules or other preprocessing code is another key; an
  entry is never updated, only added.
* **Kill-safe**: an entry is written into a hidden temporary folder beside its place and renamed into place with
  one ``os.replace``, so it is seen complete or not at all. Two processes writing the same key both rename; the
  first wins and the second reads the first's entry (the contents are identical). A killed writer leaves a
  hidden folder that a later writer removes once it is an hour old.
* **Location**: ``$ADVNORM_CACHE``, else ``$XDG_CACHE_HOME/advnorm``, else ``~/.cache/advnorm``;
  ``ADVNORM_CACHE=off`` turns it off, and the CLI's ``--cache`` sets either for one command. A cache that cannot
  be written gives one :class:`CacheWarning` and the run goes on without it. Deleting the folder is always safe.

Small values derived from a cached subject (its transform's parameters, histograms, statistics) are kept beside
it by :func:`derived`, so a second ``prepare`` over a warm cache reads a few numbers per subject instead of
streaming through every volume again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import mmap
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from advnorm.data.subject import SourceGrid, Subject
from advnorm.errors import AdvnormError, AdvnormWarning, one_line
from advnorm.io_atomic import atomic_write_text, fsync_dir

PREPROCESS_VERSION = 1
"""The version of what turns input files into a working-grid :class:`Subject`.

Bump it in the same commit as any change to that output: ``data/subject.py`` (validation, skull-stripping rules,
cropping margin), ``data/grid.py`` (working grid, resampling), ``data/volume_io.py`` (how voxels are read) or
a layout's mask or label rules. Entries of another version are never read (they sit in another folder, which can
be deleted). Nothing checks this automatically: an automatic check (a hash of those files' source) would also
throw away tens of gigabytes of preprocessed data for an edited comment.
"""

ENV = "ADVNORM_CACHE"
OFF_VALUES = frozenset({"off", "0", "no", "false", "none"})
STALE_SECONDS = 3600
"""A hidden temporary folder older than this was left by a killed writer (writing an entry takes seconds)."""
ENTRY_FILE = "subject.json"
CACHE_ENTRY = "cache_entry"
"""The key of ``Subject.extra`` that holds the folder a subject was read from (for :func:`derived`)."""

_location: str | None = None
_broken: set[str] = set()
T = TypeVar("T")


class CacheWarning(UserWarning):
    """The cache could not be used; the run goes on without it. Not an :class:`AdvnormWarning`: ``--strict``
    must not stop a run for a cache problem, whose results do not depend on the cache."""


def cache_root() -> Path | None:
    """The cache folder in use, or ``None`` when the cache is off."""
    value = (_location if _location is not None else os.environ.get(ENV, "")).strip()
    if value.lower() in OFF_VALUES:
        return None
    if value:
        return Path(value).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"  # the XDG spec ignores relative
    return base / "advnorm"


@contextlib.contextmanager
def use_location(value: str | None) -> Iterator[None]:
    """Within the block, the cache is at ``value`` (a folder, or ``off``) whatever ``$ADVNORM_CACHE`` says; ``None``
    changes nothing. The CLI's ``--cache``: it also reaches every torchrun process, which gets the same arguments."""
    global _location  # noqa: PLW0603 - one process-wide setting, restored on exit
    before = _location
    if value is not None:
        _location = value
    try:
        yield
    finally:
        _location = before


def entry_folder(root: Path, key: str) -> Path:
    return root / "working-grid" / f"v{PREPROCESS_VERSION}" / key[:2] / key


def subject_key(files: Mapping[str, str | None], rules: Mapping[str, Any]) -> str:
    """SHA-256 of the input files' content digests, the reading rules and :data:`PREPROCESS_VERSION`."""
    blob = json.dumps({"preprocess_version": PREPROCESS_VERSION, "files": files, "rules": rules}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def cached_subject(
    build: Callable[[], Subject],
    *,
    files: Mapping[str, str | Path | None],
    rules: Mapping[str, Any],
    case_id: str,
    domain: str,
) -> Subject:
    """The subject ``build()`` makes, from the cache (memory-mapped) when it holds it, else built and stored first.

    ``files`` are the input files ``build`` reads (``"image"`` first; ``None`` for a file not used), ``rules``
    everything else that shapes the arrays (JSON values). ``case_id`` and ``domain`` only name the subject: the
    same files under another name are the same entry. Warnings ``build`` gave are given again on every hit.
    A subject stored by this call is returned memory-mapped too, so a cold first run holds no more than a warm one.
    """
    root = cache_root()
    if root is None:
        return build()
    image_path = Path(str(files["image"]))
    try:
        from advnorm.data.fingerprint import file_digest  # here: fingerprint imports the layouts, which import this

        digests = {name: None if path is None else file_digest(path) for name, path in files.items()}
    except AdvnormError:  # unreadable: let the reader say what is wrong with it
        return build()
    folder = entry_folder(root, subject_key(digests, rules))
    found = _read(folder, image_path, case_id, domain)
    if found is not None:
        subject, told = found
        for warning in told:  # what build() warned about when the entry was made
            warnings.warn(warning, stacklevel=3)
        return subject
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        subject = build()
    for record in caught:  # given now, and stored to be given again on every hit
        warnings.warn_explicit(record.message, record.category, record.filename, record.lineno, source=record.source)
    if str(root) in _broken:
        return subject
    told = [record.message for record in caught if isinstance(record.message, AdvnormWarning)]
    try:
        _write(folder, subject, {"key": folder.name, "files": digests, "rules": rules}, told)
    except OSError as exc:
        _broken.add(str(root))
        warnings.warn(
            CacheWarning(
                f"{root}: cannot write the working-grid cache ({exc.strerror or one_line(exc, 80)}); going on "
                f"without it (set {ENV} to a writable folder, or to off)"
            ),
            stacklevel=3,
        )
        return subject
    stored = _read(folder, image_path, case_id, domain, header=subject.source.header)
    return subject if stored is None else stored[0]


def _write(folder: Path, subject: Subject, key: dict[str, Any], told: list[AdvnormWarning]) -> None:
    """Write the entry into a hidden folder beside ``folder`` and rename it into place (see the module doc)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(folder.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        arrays = {"image": subject.image, "mask": subject.mask, "label": subject.label}
        for name, array in arrays.items():
            if array is not None:
                _save_synced(tmp / f"{name}.npy", np.ascontiguousarray(array))
        meta = {
            **key,
            "preprocess_version": PREPROCESS_VERSION,
            "layout": subject.layout,
            "label_values": list(subject.label_values),
            "affine": np.asarray(subject.affine, dtype=np.float64).tolist(),
            "arrays": {n: [list(a.shape), a.dtype.str] for n, a in arrays.items() if a is not None},
            "source": {
                "path": subject.source.path,
                "shape": list(subject.source.shape),
                "affine": np.asarray(subject.source.affine, dtype=np.float64).tolist(),
                "spacing": list(subject.source.spacing),
            },
            "warnings": [{"problem": w.problem, "of_image": w.path == subject.source.path} for w in told],
        }
        with open(tmp / ENTRY_FILE, "w", encoding="utf-8") as fh:
            json.dump(meta, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700 folders; a shared cache is read by other users
        try:
            os.replace(tmp, folder)
        except OSError:
            if not (folder / ENTRY_FILE).is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process wrote the same key first: same content
        fsync_dir(folder.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _save_synced(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())


def _remove_stale(shard: Path) -> None:
    """Remove hidden temporary folders that killed writers left in ``shard``."""
    now = time.time()
    with contextlib.suppress(OSError):
        for tmp in shard.glob(".*"):
            with contextlib.suppress(OSError):
                if now - tmp.stat().st_mtime > STALE_SECONDS:
                    shutil.rmtree(tmp, ignore_errors=True)


def _read(
    folder: Path, image_path: Path, case_id: str, domain: str, header: Any = None
) -> tuple[Subject, list[AdvnormWarning]] | None:
    """The entry in ``folder`` as a :class:`Subject` of memory-mapped arrays and the warnings its build gave, or
    ``None`` if there is none. An entry that does not read back as it was written (a disk error, someone's edit)
    is moved away, to be built again."""
    try:
        meta = json.loads((folder / ENTRY_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        discard(folder)
        return None
    try:
        arrays = {}
        for name, (shape, dtype) in meta["arrays"].items():
            arrays[name] = np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            if list(arrays[name].shape) != shape or arrays[name].dtype.str != dtype:
                raise ValueError(f"{name}.npy is not what {ENTRY_FILE} says")
        src = meta["source"]
        source = SourceGrid(
            path=str(image_path),
            shape=tuple(src["shape"]),
            affine=np.asarray(src["affine"], dtype=np.float64),
            spacing=tuple(src["spacing"]),
            header=header,
        )
        subject = Subject(
            case_id=case_id,
            domain=domain,
            layout=meta["layout"],
            image=arrays["image"],
            label=arrays.get("label"),
            mask=arrays["mask"],
            affine=np.asarray(meta["affine"], dtype=np.float64),
            source=source,
            label_values=tuple(meta["label_values"]),
            extra={CACHE_ENTRY: str(folder)},
        )
        told = [AdvnormWarning(w["problem"], image_path if w["of_image"] else None) for w in meta["warnings"]]
    except (OSError, ValueError, EOFError, KeyError, TypeError):
        discard(folder)
        return None
    with contextlib.suppress(OSError):  # mark it used, for advnorm cache's least-recently-used removal
        os.utime(folder / ENTRY_FILE)
    if header is None:
        try:
            header = _source_header(image_path)
        except Exception:  # any reader failure: build() reports it properly
            return None
        subject.source = dataclasses.replace(source, header=header)
    return subject, told


def _source_header(path: Path) -> Any:
    """The input file's header, as the reader returned it (only the header is read: outputs are written on it)."""
    import nibabel as nib

    logger = logging.getLogger("nibabel.global")  # header fix-ups were reported when the entry was built
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        return nib.load(str(path)).header
    finally:
        logger.setLevel(level)


def discard(folder: Path) -> None:
    """Move an entry out of the way (readers that mapped its files keep them) and delete it: a damaged one, or one
    ``advnorm cache`` removes."""
    aside = folder.with_name(f".{folder.name}.damaged.{os.getpid()}")
    with contextlib.suppress(OSError):
        os.replace(folder, aside)
        shutil.rmtree(aside, ignore_errors=True)


def derived(subject: Subject, name: str, params: Mapping[str, Any], compute: Callable[[], T]) -> T:
    """``compute()``, a JSON value derived from ``subject``, kept beside its cache entry under ``name`` and ``params``.

    ``params`` must name everything the value depends on besides the subject's arrays (settings, and a version of
    the code computing it). Without a cache entry (cache off, or unwritable) this is just ``compute()``.
    Floats survive the JSON round trip exactly.
    """
    entry = subject.extra.get(CACHE_ENTRY)
    if entry is None:
        return compute()
    tag = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:24]
    path = Path(entry) / f"derived-{name}-{tag}.json"
    with contextlib.suppress(OSError, ValueError, KeyError):
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored["params"] == json.loads(json.dumps(params)):
            return stored["value"]
    value = compute()
    if (Path(entry) / ENTRY_FILE).is_file():  # never recreate an entry folder someone removed meanwhile
        with contextlib.suppress(OSError):  # a read-only shared cache: computed each time
            atomic_write_text(path, json.dumps({"params": params, "value": value}))  # NaN stays NaN
    return value


def release(*arrays: np.ndarray | None) -> None:
    """Unmap from this process the pages it has read of memory-mapped arrays; other arrays are left alone.

    The pages stay in the OS page cache, so reading them again costs a minor fault, not a disk read. Without this,
    the pages a process has touched count in its resident size (RSS) until the kernel needs the memory, and after
    a few epochs that is every volume it trains on: schedulers that police RSS (SLURM) would see the whole data set
    in every process.
    """
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if advice is None:  # pragma: no cover - not Linux
        return
    for array in arrays:
        base: Any = array
        while base is not None and not isinstance(base, mmap.mmap):
            base = getattr(base, "base", None)
        if base is not None:
            with contextlib.suppress(OSError, ValueError):
                base.madvise(advice)
