"""``advnorm cache`` (``data/cache_admin.py``): what the cache holds, least-recently-used removal, safe removal."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from advnorm.cli import main
from advnorm.data import cache, cache_admin
from advnorm.data.cache_admin import Entry, choose, parse_size
from advnorm.data.layouts import open_domains
from tests.fixtures import make_nnunet

DAY = 86400.0
NOW = 1_000 * DAY


def _entry(name: str, size: int, days_ago: float, version: int = cache.PREPROCESS_VERSION) -> Entry:
    return Entry(Path(name), size, NOW - days_ago * DAY, version)


# the entries, least recently used first; what each rule removes
OLDEST, OLD, NEW = _entry("a", 300, 40), _entry("b", 200, 10), _entry("c", 100, 1)
STALE_VERSION = _entry("v0", 50, 0.5, version=cache.PREPROCESS_VERSION - 1)
FOUND = [OLDEST, OLD, STALE_VERSION, NEW]


@pytest.mark.parametrize(
    "rule, removed",
    [
        ({}, [STALE_VERSION]),  # any removal drops entries no run will read again
        ({"unused_days": 30}, [STALE_VERSION, OLDEST]),
        ({"unused_days": 5}, [STALE_VERSION, OLDEST, OLD]),
        ({"max_bytes": 300}, [STALE_VERSION, OLDEST]),  # 600 bytes of this version: the oldest goes first
        ({"max_bytes": 299}, [STALE_VERSION, OLDEST, OLD]),
        ({"max_bytes": 0}, [STALE_VERSION, OLDEST, OLD, NEW]),
        ({"max_bytes": 10_000}, [STALE_VERSION]),
        ({"unused_days": 30, "max_bytes": 100}, [STALE_VERSION, OLDEST, OLD]),
        ({"everything": True}, FOUND),
    ],
)
def test_choose_removes_by_version_then_age_then_least_recently_used_until_it_fits(rule, removed):
    assert sorted(e.folder.name for e in choose(FOUND, now=NOW, **rule)) == sorted(e.folder.name for e in removed)


@pytest.mark.parametrize(
    "text, expected",
    [("0", 0), ("500", 500), ("2K", 2048), ("1.5M", 1572864), ("50G", 50 * 1024**3), ("50GiB", 50 * 1024**3)],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "G", "-1G", "5Q", "1e9"])
def test_parse_size_refuses_what_is_not_a_size(text):
    with pytest.raises(Exception, match="not a size"):
        parse_size(text)


@pytest.fixture
def filled(tmp_path, monkeypatch) -> tuple[Path, list]:
    """A cache holding the three subjects of a tiny nnU-Net dataset, and the dataset."""
    root = tmp_path / "cache"
    monkeypatch.setenv(cache.ENV, str(root))
    monkeypatch.setattr(cache, "_broken", set())
    (ds,) = open_domains([str(make_nnunet(tmp_path, "Dataset001_Test", n=3))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for case in ds.cases:
            ds.load_case(case, with_label=True)
    return root, ds


def _load(ds, i: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ds.load_case(ds.cases[i], with_label=True)


def test_a_read_marks_an_entry_used(filled):
    root, ds = filled
    found = cache_admin.entries(root)
    assert len(found) == 3 and all(e.bytes > 0 for e in found)
    first = Path(_load(ds, 0).extra[cache.CACHE_ENTRY])
    others = [e.folder for e in found if e.folder != first]
    for folder, days in [(first, 30), (others[0], 20), (others[1], 10)]:
        os.utime(folder / cache.ENTRY_FILE, (NOW - days * DAY,) * 2)
    assert [e.folder for e in cache_admin.entries(root)] == [first, *others]
    _load(ds, 0)
    after = cache_admin.entries(root)
    assert [e.folder for e in after] == [*others, first] and after[-1].last_used > NOW  # now the most recent


def test_removing_an_entry_a_run_has_mapped_leaves_its_arrays_readable_and_the_next_read_rebuilds_it(filled):
    root, ds = filled
    subject = _load(ds, 0)
    before = np.array(subject.image)
    freed = cache_admin.remove(cache_admin.entries(root))
    assert freed > 0 and cache_admin.entries(root) == []
    assert np.array_equal(np.asarray(subject.image), before)  # the mapping outlives the removal
    again = _load(ds, 0)
    assert np.array_equal(np.asarray(again.image), before) and len(cache_admin.entries(root)) == 1


def test_the_cache_verb_shows_removes_and_refuses(filled, capsys, monkeypatch):
    root, _ = filled
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{root}: 3 subject(s), ") and "least recently used" in out
    assert main(["cache", "--max-size", "nonsense"]) == 2
    assert "not a size" in capsys.readouterr().err and len(cache_admin.entries(root)) == 3  # nothing removed
    assert main(["cache", "--unused-days", "1"]) == 0  # all used just now: none goes
    assert "removed 0 subject(s)" in capsys.readouterr().out and len(cache_admin.entries(root)) == 3
    assert main(["cache", "--clear"]) == 0
    out = capsys.readouterr().out
    assert "removed 3 subject(s)" in out and out.strip().endswith(f"{root}: empty")
    assert main(["--cache", "off", "cache"]) == 2
    assert "cache is off" in capsys.readouterr().err
