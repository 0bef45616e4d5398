"""What a dataset *is*, independent of where it lies: its layout, case ids and the content of its files.

A run records the fingerprint of every domain it trained on. ``train --resume`` and a
re-run of ``reproduce`` compare it with the data they are given now and refuse other data
(another folder whose domain names happen to match, an edited label file, a case added or
removed) instead of mixing weights of one dataset with the split and landmarks of another.
The same digests tell when one dataset is given twice (a folder and a symlink to it, or two
copies), which would otherwise become two "domains" and count every subject twice.

File contents are hashed in full (BLAKE2b, ~1 GB/s): a byte changed anywhere changes the
digest. Digests are memoized per process by (resolved path, size, mtime), so one command
hashes a file once.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from pathlib import Path
from typing import Any

from advnorm.data.layouts.base import CaseRef, Dataset
from advnorm.errors import AdvnormError, one_line

_CHUNK = 1 << 22
_MEMO: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | Path) -> str:
    """BLAKE2b-128 of the file's content: of its bytes after decompression, so a ``.nii`` and its ``.nii.gz``
    (or the same file compressed again) are the same content; Analyze headers with their ``.img``."""
    path = Path(path)
    parts = [path]
    if path.suffix.lower() == ".hdr":
        parts += [p for p in (path.with_suffix(".img"), path.with_suffix(".IMG")) if p.exists()][:1]
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(_one_file(part).encode())
    return h.hexdigest()


def _one_file(path: Path) -> str:
    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        if key not in _MEMO:
            h = hashlib.blake2b(digest_size=16)
            opener = gzip.open if path.name.lower().endswith(".gz") else open
            with opener(path, "rb") as fh:
                while chunk := fh.read(_CHUNK):
                    h.update(chunk)
            _MEMO[key] = h.hexdigest()
        return _MEMO[key]
    except (OSError, EOFError, zlib.error) as exc:
        raise AdvnormError(f"cannot read file (corrupt or truncated?): {one_line(exc, 80)}", path) from None


def case_digest(case: CaseRef) -> dict[str, Any]:
    return {
        "case": case.case_id,
        "image": file_digest(case.image),
        "label": None if case.label is None else file_digest(case.label),
    }


def dataset_fingerprint(ds: Dataset, *, labelled_only: bool = True) -> dict[str, Any]:
    """``{"name", "layout", "root", "cases": [{"case", "image", "label"}...], "digest"}`` of a dataset."""
    cases = [case_digest(c) for c in (ds.labelled() if labelled_only else ds.cases)]
    reading = reading_rules(ds)
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(reading, sort_keys=True).encode())
    for c in cases:
        h.update(f"{c['case']}\0{c['image']}\0{c['label']}\n".encode())
    return {
        "name": ds.name,
        "layout": ds.layout,
        "root": str(Path(ds.root).resolve()),
        "reading": reading,
        "cases": cases,
        "digest": h.hexdigest(),
    }


def reading_rules(ds: Dataset) -> dict[str, Any]:
    """How the files are read: the layout, the label ids -> classes (dataset.json's ``labels`` for nnU-Net), the ids
    written back, the skull-stripping rule. The same files read another way are other data."""
    return {
        "layout": ds.layout,
        "label_map": sorted(ds.label_map.items()),
        "label_maps": {k: sorted(v.items()) for k, v in sorted(ds.label_maps.items())},
        "label_values": list(ds.label_values),
        "mask_from": ds.mask_from,
    }


def fingerprint_differences(stored: list[dict[str, Any]], current: list[dict[str, Any]]) -> list[str]:
    """What differs between the fingerprints a run recorded and those of the data given now (empty: same data)."""
    out: list[str] = []
    if [d["name"] for d in stored] != [d["name"] for d in current]:
        return [f"domains {', '.join(d['name'] for d in stored)} then, {', '.join(d['name'] for d in current)} now"]
    for old, new in zip(stored, current, strict=True):
        if old.get("digest") == new["digest"]:
            continue
        name = new["name"]
        old_cases = {c["case"]: c for c in old.get("cases", [])}
        new_cases = {c["case"]: c for c in new["cases"]}
        added, removed = sorted(set(new_cases) - set(old_cases)), sorted(set(old_cases) - set(new_cases))
        changed = sorted(c for c in set(new_cases) & set(old_cases) if new_cases[c] != old_cases[c])
        if added:
            out.append(f"{name}: case(s) {', '.join(added[:3])} added")
        if removed:
            out.append(f"{name}: case(s) {', '.join(removed[:3])} removed")
        if changed:
            out.append(f"{name}: the files of case(s) {', '.join(changed[:3])} differ")
        if not (added or removed or changed):
            what = "its label map" if old.get("reading", {}).get("layout", new["layout"]) == new["layout"] else "layout"
            out.append(f"{name}: {what} (dataset.json's labels, the layout) differs")
    return out


def refuse_duplicate_content(datasets: list[Dataset], fingerprints: list[dict[str, Any]]) -> None:
    """Two domains holding the same image file content are one dataset given twice: refuse."""
    seen: dict[str, tuple[str, str]] = {}
    for ds, fp in zip(datasets, fingerprints, strict=True):
        for c in fp["cases"]:
            other = seen.get(c["image"])
            if other is not None and other[0] != ds.name:
                raise AdvnormError(
                    f"holds the same images as the domain {other[0]} (case {c['case']} is identical to "
                    f"{other[1]}): one dataset given twice would count every subject twice",
                    ds.root,
                )
            seen.setdefault(c["image"], (ds.name, c["case"]))
