"""The working-grid cache (``data/cache.py``): keyed by content, kill-safe, shared by processes, off on demand,
and invisible in the results: training batches and statistics are the bits of the in-memory path."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from advnorm.data import cache
from advnorm.data.intensity import transform_image
from advnorm.data.layouts import open_domains
from advnorm.errors import AdvnormWarning
from advnorm.methods import METHOD_SPECS
from advnorm.training import data as training_data
from advnorm.training.data import TrainingData, prepare
from tests.conftest import tiny_cfg
from tests.fixtures import make_iseg2017, make_mrbrains13, make_nnunet


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """A fresh cache for one test (and no memory of an earlier test's unwritable folder)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(cache.ENV, str(folder))
    monkeypatch.setattr(cache, "_broken", set())
    return folder


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("cache_layouts")
    return {
        "nnunet": make_nnunet(base, "Dataset001_Test", n=2),
        "iseg2017": make_iseg2017(base / "iSeg-2017-Training", n_labelled=1, n_unlabelled=0),
        "mrbrains13": make_mrbrains13(base / "mrb13", n=1, n_test=1),
    }


def entries(folder: Path) -> list[Path]:
    """The complete entries in a cache folder (what a reader can find)."""
    return sorted(p.parent for p in folder.glob(f"working-grid/v*/*/*/{cache.ENTRY_FILE}"))


def hidden(folder: Path) -> list[Path]:
    return sorted(folder.glob("working-grid/v*/*/.*"))


def same_subject(a, b) -> None:
    """Two subjects with the same arrays (bit for bit), grids and names."""
    for name in ("image", "label", "mask"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(np.asarray(x), np.asarray(y)), name
    assert np.array_equal(a.affine, b.affine) and np.array_equal(a.source.affine, b.source.affine)
    assert (a.case_id, a.domain, a.layout, a.label_values) == (b.case_id, b.domain, b.layout, b.label_values)
    assert (a.source.path, a.source.shape, a.source.spacing) == (b.source.path, b.source.shape, b.source.spacing)
    assert type(a.source.header) is type(b.source.header) and a.source.header == b.source.header
    assert a.extra.get("mask_from") == b.extra.get("mask_from")


# layout, which case, with_label, whether building it warns: nnU-Net (NIfTI .gz), iSEG (Analyze pairs),
# MRBrainS13 (skull-stripped with the label, then dropped without with_label; its unlabelled test case looks
# unstripped, which build_subject warns about)
HIT_MISS = [
    ("nnunet", 0, True, False),
    ("nnunet", 0, False, False),
    ("iseg2017", 0, True, False),
    ("mrbrains13", 0, True, False),
    ("mrbrains13", 0, False, False),
    ("mrbrains13", 1, False, True),
]


@pytest.mark.parametrize("layout,which,with_label,warns", HIT_MISS)
def test_a_case_is_built_once_then_read_back_memory_mapped_and_identical(
    layouts, cache_dir, monkeypatch, layout, which, with_label, warns
):
    (ds,) = open_domains([f"{layout}:{layouts[layout]}"])
    case = ds.cases[which]
    monkeypatch.setenv(cache.ENV, "off")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = ds.load_case(case, with_label=with_label)
    monkeypatch.setenv(cache.ENV, str(cache_dir))
    with warnings.catch_warnings(record=True) as first_warned:
        warnings.simplefilter("always")
        first = ds.load_case(case, with_label=with_label)  # a miss: built, stored, read back
    assert len(entries(cache_dir)) == 1 and not hidden(cache_dir)
    with warnings.catch_warnings(record=True) as second_warned:
        warnings.simplefilter("always")
        second = ds.load_case(case, with_label=with_label)  # a hit
    assert len(entries(cache_dir)) == 1
    for got in (first, second):
        same_subject(got, plain)
        assert isinstance(got.image, np.memmap) and not got.image.flags.writeable
        assert got.mask.dtype == bool and not got.mask.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            got.image[0, 0, 0] = 1.0
    assert (
        isinstance(plain.image, np.ndarray) and not isinstance(plain.image, np.memmap) and plain.image.flags.writeable
    )
    said = [
        [str(w.message) for w in ws if issubclass(w.category, AdvnormWarning)] for ws in (first_warned, second_warned)
    ]
    assert said[0] == said[1] and bool(said[0]) == warns  # build's warnings are given again on a hit
    if warns:
        assert said[0][0].startswith(f"{case.image}: looks unstripped")


def _edit_voxel(path: Path) -> None:
    import nibabel as nib

    img = nib.load(str(path))
    data = np.asarray(img.dataobj).copy()
    data.flat[data.size // 2] += 1
    nib.save(nib.Nifti1Image(data, img.affine, img.header), str(path))


# what changes, whether the case is then another entry
INVALIDATION = [
    ("nothing", False),
    ("the image file is rewritten with the same content", False),
    ("the dataset is copied elsewhere under another name", False),
    ("one voxel of the image", True),
    ("one voxel of the label", True),
    ("PREPROCESS_VERSION", True),
    ("the label map", True),
]


@pytest.mark.parametrize("change,new_entry", INVALIDATION)
def test_an_entry_is_keyed_by_content_rules_and_preprocess_version(
    layouts, cache_dir, tmp_path, monkeypatch, change, new_entry
):
    root = shutil.copytree(layouts["nnunet"], tmp_path / "Dataset001_Test")
    (ds,) = open_domains([str(root)])
    before = ds.load_case(ds.labelled()[0])
    case = ds.labelled()[0]
    if change == "the image file is rewritten with the same content":
        case.image.write_bytes(case.image.read_bytes())
    elif change == "the dataset is copied elsewhere under another name":
        (ds,) = open_domains([str(shutil.copytree(root, tmp_path / "Dataset009_Copy"))])
        case = ds.labelled()[0]
    elif change == "one voxel of the image":
        _edit_voxel(case.image)
    elif change == "one voxel of the label":
        assert case.label is not None
        _edit_voxel(case.label)
    elif change == "PREPROCESS_VERSION":
        monkeypatch.setattr(cache, "PREPROCESS_VERSION", cache.PREPROCESS_VERSION + 1)
    elif change == "the label map":
        ds.reading = dataclasses.replace(ds.reading, label_map={0: 0, 1: 1, 2: 3, 3: 2})
    after = ds.load_case(case)
    assert len(entries(cache_dir)) == (2 if new_entry else 1)
    assert (
        after.extra[cache.CACHE_ENTRY] != before.extra[cache.CACHE_ENTRY]
        if new_entry
        else (after.extra[cache.CACHE_ENTRY] == before.extra[cache.CACHE_ENTRY])
    )
    assert after.source.path == str(case.image) and after.domain == ds.name


def _fail_on_second_file(kill: bool):
    """A ``_save_synced`` that writes the first array, then dies: an exception, or a kill (``os._exit``)."""
    original = cache._save_synced
    calls = []

    def save(path, array):
        calls.append(path)
        if len(calls) == 2:
            if kill:
                os._exit(9)
            raise OSError(28, "No space left on device")
        original(path, array)

    return save


def _load_first_case(root: str, cache_folder: str, kill: bool) -> None:
    """In a child process: load a case with a writer that is killed after its first file."""
    os.environ[cache.ENV] = cache_folder
    cache._save_synced = _fail_on_second_file(kill)
    (ds,) = open_domains([root])
    ds.load_case(ds.labelled()[0])


@pytest.mark.parametrize("how", ["exception", "kill"])
def test_a_write_stopped_midway_leaves_no_entry_and_the_next_load_builds_it(layouts, cache_dir, monkeypatch, how):
    (ds,) = open_domains([str(layouts["nnunet"])])
    if how == "exception":  # disk full after the first file: a warning, the run goes on without the cache
        monkeypatch.setattr(cache, "_save_synced", _fail_on_second_file(kill=False))
        with pytest.warns(cache.CacheWarning, match="cannot write the working-grid cache"):
            subject = ds.load_case(ds.labelled()[0])
        assert not isinstance(subject.image, np.memmap) and not hidden(cache_dir)  # its temporary folder is removed
        monkeypatch.undo()
        monkeypatch.setenv(cache.ENV, str(cache_dir))
        monkeypatch.setattr(cache, "_broken", set())
    else:
        child = multiprocessing.get_context("fork").Process(
            target=_load_first_case, args=(str(layouts["nnunet"]), str(cache_dir), True)
        )
        child.start()
        child.join(60)
        assert child.exitcode == 9
        assert len(hidden(cache_dir)) == 1  # what the killed writer left: hidden, never read
        monkeypatch.setattr(cache, "STALE_SECONDS", -1)  # removed by the next writer once old
    assert entries(cache_dir) == []
    again = ds.load_case(ds.labelled()[0])
    assert isinstance(again.image, np.memmap) and len(entries(cache_dir)) == 1 and not hidden(cache_dir)


def _race(root: str, cache_folder: str, barrier) -> None:
    """In a child process: build the same case as another process and write it at the same moment."""
    os.environ[cache.ENV] = cache_folder
    original = cache._write

    def write(*args, **kwargs):
        barrier.wait(30)
        original(*args, **kwargs)

    cache._write = write
    (ds,) = open_domains([root])
    subject = ds.load_case(ds.labelled()[0])
    assert isinstance(subject.image, np.memmap)


def test_two_processes_writing_the_same_entry_leave_one_complete_entry(layouts, cache_dir):
    ctx = multiprocessing.get_context("fork")  # fast; the children only read files with numpy and nibabel
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_race, args=(str(layouts["nnunet"]), str(cache_dir), barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert len(entries(cache_dir)) == 1 and not hidden(cache_dir)
    (ds,) = open_domains([str(layouts["nnunet"])])
    cached = ds.load_case(ds.labelled()[0])
    with cache.use_location("off"):
        same_subject(cached, ds.load_case(ds.labelled()[0]))


@pytest.mark.parametrize("value", ["off", "OFF", "0", "none", "false"])
def test_the_cache_can_be_turned_off(layouts, tmp_path, monkeypatch, value):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv(cache.ENV, value)
    (ds,) = open_domains([str(layouts["nnunet"])])
    subject = ds.load_case(ds.labelled()[0])
    assert cache.cache_root() is None and subject.image.flags.writeable and not (tmp_path / ".cache").exists()


# ADVNORM_CACHE, XDG_CACHE_HOME, the --cache of the command -> where the cache is (relative to a fake home)
LOCATIONS = [
    (None, None, None, "home/.cache/advnorm"),
    (None, "{tmp}/xdg", None, "xdg/advnorm"),
    (None, "relative/xdg", None, "home/.cache/advnorm"),  # the XDG spec ignores a relative path
    ("{tmp}/mine", "{tmp}/xdg", None, "mine"),
    ("{tmp}/mine", None, "{tmp}/flag", "flag"),
    ("{tmp}/mine", None, "off", None),
    ("off", None, "{tmp}/flag", "flag"),
]


@pytest.mark.parametrize("env,xdg,flag,expected", LOCATIONS)
def test_where_the_cache_is(tmp_path, monkeypatch, env, xdg, flag, expected):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name, value in ((cache.ENV, env), ("XDG_CACHE_HOME", xdg)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value.format(tmp=tmp_path))
    with cache.use_location(None if flag is None else flag.format(tmp=tmp_path)):
        root = cache.cache_root()
    assert root == (None if expected is None else tmp_path / expected)


def test_an_unwritable_cache_gives_one_warning_and_the_run_goes_on(layouts, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(cache.ENV, str(blocker / "cache"))  # cannot be created, even by root
    monkeypatch.setattr(cache, "_broken", set())
    (ds,) = open_domains([str(layouts["nnunet"])])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        subjects = [ds.load_case(c) for c in ds.labelled()]
    said = [w for w in caught if issubclass(w.category, cache.CacheWarning)]
    assert len(said) == 1 and "cannot write the working-grid cache" in str(said[0].message)
    assert not issubclass(cache.CacheWarning, AdvnormWarning)  # --strict does not stop a run for it
    with cache.use_location("off"):
        for got, case in zip(subjects, ds.labelled(), strict=True):
            same_subject(got, ds.load_case(case))


def test_release_unmaps_the_pages_a_process_read(tmp_path):
    rollup = Path("/proc/self/smaps_rollup")
    if not rollup.exists():
        pytest.skip("no /proc/self/smaps_rollup")

    def rss_kib() -> int:
        return next(int(line.split()[1]) for line in rollup.read_text().splitlines() if line.startswith("Rss:"))

    np.save(tmp_path / "big.npy", np.ones(32 * 2**20 // 4, dtype=np.float32))  # 32 MiB
    mapped = np.load(tmp_path / "big.npy", mmap_mode="r")
    before = rss_kib()
    assert float(mapped.sum()) == mapped.size  # every page read
    touched = rss_kib()
    cache.release(mapped.view(np.uint8))  # found through the view's bases
    assert touched - before > 24 * 1024 and touched - rss_kib() > 24 * 1024
    assert float(mapped[::1024].sum()) == mapped[::1024].size  # still readable
    cache.release(np.ones(3), None)  # anything else: left alone


# --------------------------------------------------------------- training data: the bits of the in-memory path

METHODS = ["adversarial", "standardized", "nyul", "harmonized"]


def _today(data: TrainingData, cfg, method: str) -> TrainingData:
    """The same data the way training held it before the cache: every transformed volume in memory."""
    kind = METHOD_SPECS[method].input_transform
    inputs = [
        transform_image(
            kind, np.asarray(s.image), np.asarray(s.mask), percentile=cfg.data.scale_percentile, fitted=data.input_state
        )
        for s in data.subjects
    ]
    return TrainingData(
        domains=data.domains,
        subjects=data.subjects,
        inputs=inputs,
        labels=data.labels,
        masks=[np.asarray(s.mask).astype(np.uint8) for s in data.subjects],
        subject_domain=data.subject_domain,
        train=data.train,
        val=data.val,
        split=data.split,
        input_state=data.input_state,
        classes=data.classes,
        value_range=data.value_range,
    )


def _not_again(*args, **kwargs):
    raise AssertionError("computed again over a warm cache")


@pytest.mark.parametrize("method", METHODS)
def test_training_batches_and_statistics_are_the_bits_of_the_in_memory_path(
    tiny_phantom, cache_dir, monkeypatch, method
):
    datasets = open_domains([str(p) for p in tiny_phantom])
    cfg = tiny_cfg(method)
    spec = METHOD_SPECS[method]
    with cache.use_location("off"):
        off = prepare(datasets, cfg, spec, log=lambda m: None)
    cold = prepare(datasets, cfg, spec, log=lambda m: None)
    monkeypatch.setattr(training_data, "_input_profile", _not_again)  # a warm cache reads every whole-image value
    warm = prepare(datasets, cfg, spec, log=lambda m: None)
    assert isinstance(warm.inputs[0], np.memmap) and not isinstance(off.inputs[0], np.memmap)
    today = _today(off, cfg, method)
    rows = {"train": np.arange(0, len(off.train), 7), "val": np.arange(len(off.val))}
    for got in (off, cold, warm):
        assert torch.equal(got.subject_stats, today.subject_stats) and got.subject_stats.dtype == torch.float32
        assert got.input_state == off.input_state and got.input_histograms == off.input_histograms
        for part, pick in rows.items():
            for a, b in zip(got.batch(getattr(got, part), pick), today.batch(getattr(today, part), pick), strict=True):
                assert a.dtype == b.dtype and torch.equal(a, b), part
        for i in range(len(got.subjects)):
            assert np.array_equal(got.input_volume(i), today.inputs[i])
    hists = {}
    for k, name in enumerate(off.domains):  # the histograms as the in-memory path computed them
        from advnorm.data.intensity import input_histogram

        members = [i for i, d in enumerate(off.subject_domain) if d == k]
        h = [input_histogram(spec.input_transform, today.inputs[i], off.subjects[i].mask) for i in members]
        hists[name] = [round(float(v), 6) for v in np.mean(h, axis=0)]
    assert off.input_histograms == hists


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


# how an entry on disk is damaged after it was written (a disk error, a user's edit, a copy cut short)
DAMAGE = [
    ("image.npy cut in half", lambda folder: _truncate(folder / "image.npy")),
    ("label.npy deleted", lambda folder: (folder / "label.npy").unlink()),
    ("subject.json garbled", lambda folder: (folder / cache.ENTRY_FILE).write_text("{not json")),
    (
        "subject.json names another shape",
        lambda folder: (folder / cache.ENTRY_FILE).write_text(
            (folder / cache.ENTRY_FILE).read_text().replace('"image": [[', '"image": [[1, ')
        ),
    ),
]


@pytest.mark.parametrize("how,damage", DAMAGE, ids=[d[0] for d in DAMAGE])
def test_a_damaged_entry_is_built_again_not_trusted(layouts, cache_dir, monkeypatch, how, damage):
    (ds,) = open_domains([f"nnunet:{layouts['nnunet']}"])
    case = ds.cases[0]
    ds.load_case(case)  # stored (not kept: cutting a file this process maps would kill it with SIGBUS)
    monkeypatch.setenv(cache.ENV, "off")
    first = ds.load_case(case)
    monkeypatch.setenv(cache.ENV, str(cache_dir))
    (folder,) = entries(cache_dir)
    damage(folder)
    again = ds.load_case(case)  # the damaged entry is moved away and the case built and stored again
    same_subject(again, first)
    (rebuilt,) = entries(cache_dir)
    assert rebuilt == folder and ds.load_case(case).image.shape == first.image.shape
