"""Fuzzing the volume readers: mutated headers and voxel bytes of tiny NIfTI and Analyze files.

Whatever the bytes, ``load_volume``, the layout readers and ``advnorm inspect`` either work
or fail with :class:`AdvnormError` / the one-line CLI error: no other exception, no hang,
no big allocation (a header declaring gigabytes is refused before anything is allocated).
Bounded: a fixed number of derandomized examples, well under 20 s in all.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import logging
import os
import signal
import struct
import time
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from advnorm.cli import main
from advnorm.data.layouts import open_dataset
from advnorm.data.volume_io import MAX_VOXEL_BYTES, load_volume
from advnorm.errors import AdvnormError
from tests.fixtures import brain_phantom, nifti_affine, t1_image

SHAPE = (12, 14, 10)
HEADER_BYTES = 348
# per format; ~30-100 ms each. ADVNORM_FUZZ_EXAMPLES=5000 fuzzes deeper (and lifts the time budget).
EXAMPLES = int(os.environ.get("ADVNORM_FUZZ_EXAMPLES", "90"))
BUDGET_SECONDS = 7.0 if "ADVNORM_FUZZ_EXAMPLES" not in os.environ else float("inf")
"""Per format: on a loaded machine the remaining examples pass without running (the suite's time limit)."""
FUZZ_SEED = int(os.environ.get("ADVNORM_FUZZ_SEED", "0"))
PER_EXAMPLE_SECONDS = 5
MAX_TRACED_BYTES = 64 * 1024**2

# (offset, struct format) of the header fields worth hitting with extreme values (NIfTI-1 / Analyze 7.5 share them)
FIELDS = {
    "sizeof_hdr": (0, "<i"),
    "dim0": (40, "<h"),
    "dim1": (42, "<h"),
    "dim2": (44, "<h"),
    "dim3": (46, "<h"),
    "dim4": (48, "<h"),
    "datatype": (70, "<h"),
    "bitpix": (72, "<h"),
    "pixdim0": (76, "<f"),
    "pixdim1": (80, "<f"),
    "pixdim2": (84, "<f"),
    "pixdim3": (88, "<f"),
    "vox_offset": (108, "<f"),
    "scl_slope": (112, "<f"),
    "scl_inter": (116, "<f"),
    "qform_code": (252, "<h"),
    "sform_code": (254, "<h"),
    "quatern_b": (256, "<f"),
    "qoffset_x": (268, "<f"),
    "srow_x0": (280, "<f"),
    "srow_y1": (300, "<f"),
    "srow_z2": (320, "<f"),
}
INTS = [-32768, -1, 0, 1, 2, 3, 4, 5, 7, 16, 64, 255, 256, 512, 768, 1024, 2048, 2304, 30000, 32767]
FLOATS = [
    0.0,
    -1.0,
    1e-30,
    1e-6,
    0.5,
    1.0,
    3.0,
    352.0,
    353.0,
    1e6,
    1e30,
    3.4e38,
    float("nan"),
    float("inf"),
    -float("inf"),
]


def _value(fmt: str):
    return st.sampled_from(INTS if fmt in ("<h", "<i") else FLOATS)


field_edits = st.lists(
    st.sampled_from(sorted(FIELDS)).flatmap(lambda name: st.tuples(st.just(name), _value(FIELDS[name][1]))), max_size=4
)
byte_edits = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=6)
dim = st.sampled_from([0, 1, 2, 12, 14, 100, 255, 1024, 2048, 32767])
mutation = st.fixed_dictionaries(
    {
        "dims": st.one_of(st.none(), st.tuples(dim, dim, dim)),  # shapes from empty to petabytes
        "fields": field_edits,
        "header_bytes": byte_edits,
        "data_bytes": byte_edits,
        "truncate": st.one_of(st.none(), st.floats(0, 1, exclude_max=True)),
        "append": st.binary(max_size=64),
    }
)


def _apply(raw: bytes, m: dict, data_start: int) -> bytes:
    """Mutate the header (first 348 bytes) and the voxel bytes of a file image."""
    buf = bytearray(raw)
    if m["dims"] is not None and len(buf) >= 48:
        struct.pack_into("<hhh", buf, 42, *m["dims"])
    for name, value in m["fields"]:
        offset, fmt = FIELDS[name]
        if offset + struct.calcsize(fmt) <= len(buf):
            struct.pack_into(fmt, buf, offset, value)
    for where, byte in m["header_bytes"]:
        buf[int(where * min(HEADER_BYTES, len(buf)))] = byte
    if len(buf) > data_start:
        for where, byte in m["data_bytes"]:
            buf[data_start + int(where * (len(buf) - data_start))] = byte
    if m["truncate"] is not None:
        buf = buf[: int(m["truncate"] * len(buf))]
    return bytes(buf) + m["append"]


@contextlib.contextmanager
def _guarded():
    """Fail on a hang (SIGALRM) or on a big allocation (tracemalloc peak; numpy's buffers are traced)."""

    def hang(*_):
        raise TimeoutError(f"no result within {PER_EXAMPLE_SECONDS} s: a hang")

    old = signal.signal(signal.SIGALRM, hang)
    signal.setitimer(signal.ITIMER_REAL, PER_EXAMPLE_SECONDS)
    tracemalloc.reset_peak()
    baseline = tracemalloc.get_traced_memory()[0]
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    grown = tracemalloc.get_traced_memory()[1] - baseline
    assert grown < MAX_TRACED_BYTES, f"{grown / 1024**2:.0f} MiB allocated for a {SHAPE} volume"


class _NibabelLog(logging.Handler):
    """Records what nibabel would print to stderr (its logger has a StreamHandler of its own)."""

    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)
        self.records: list[str] = []

    def emit(self, record) -> None:
        self.records.append(record.getMessage())


def _exercise(image: Path, dataset: Path) -> None:
    """load_volume, the layout reader and `advnorm inspect` on a (possibly) broken image."""
    with _guarded():
        try:
            load_volume(image)
        except AdvnormError as exc:
            assert "\n" not in str(exc)
        try:
            ds = open_dataset(str(dataset))
            ds.load_case(ds.cases[0])
        except AdvnormError as exc:
            assert "\n" not in str(exc)
        out, err = io.StringIO(), io.StringIO()
        nib_log = _NibabelLog()
        logging.getLogger("nibabel.global").addHandler(nib_log)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(["inspect", "--data", str(dataset)])
        finally:
            logging.getLogger("nibabel.global").removeHandler(nib_log)
    lines = [line for line in err.getvalue().splitlines() if not line.startswith("advnorm: warning: ")]
    text = err.getvalue()
    assert code in (0, 2), text
    if code == 0:
        assert lines == [], text  # warnings (one line each) may say what looks odd
    else:
        assert len(lines) == 1 and lines[0].startswith("advnorm: error: "), text
    assert nib_log.records == [], f"nibabel would print to stderr: {nib_log.records}"


@pytest.fixture(scope="module")
def traced():
    tracemalloc.start()
    yield
    tracemalloc.stop()


def _volume() -> np.ndarray:
    return t1_image(brain_phantom(SHAPE, (1.0, 1.0, 1.0), seed=3), 3)


class _Case(dict):
    def __repr__(self) -> str:
        return f"<fuzz case in {self['root']}>"


@pytest.fixture(scope="module")
def nifti_case(tmp_path_factory) -> dict:
    """An nnU-Net folder whose one (unlabelled) case is rewritten by every example; the valid bytes."""
    root = tmp_path_factory.mktemp("fuzz_nii") / "Dataset009_Fuzz"
    (root / "imagesTr").mkdir(parents=True)
    (root / "imagesTs").mkdir()
    (root / "dataset.json").write_text('{"labels": {"background": 0, "CSF": 1, "GM": 2, "WM": 3}}')
    img = nib.Nifti1Image(_volume(), nifti_affine((1.0, 1.0, 1.0)))
    img.set_qform(img.affine, code=1)
    raw = img.to_bytes()
    return _Case(root=root, image=root / "imagesTs" / "case_001_0000.nii.gz", raw=raw, data_start=352)


@pytest.fixture(scope="module")
def analyze_case(tmp_path_factory) -> dict:
    """An iSEG folder (subject-1-T1.hdr/.img, unlabelled); the valid header and image bytes."""
    root = tmp_path_factory.mktemp("fuzz_hdr") / "iseg"
    root.mkdir()
    img = nib.AnalyzeImage(np.round(_volume()).astype(np.int16)[..., None], np.eye(4))
    nib.save(img, str(root / "subject-1-T1.hdr"))
    return _Case(
        root=root,
        hdr=root / "subject-1-T1.hdr",
        img=root / "subject-1-T1.img",
        raw_hdr=(root / "subject-1-T1.hdr").read_bytes(),
        raw_img=(root / "subject-1-T1.img").read_bytes(),
    )


class _Budget:
    def __init__(self) -> None:
        self.started: dict[str, float] = {}

    def spent(self, name: str) -> bool:
        t0 = self.started.setdefault(name, time.monotonic())
        return time.monotonic() - t0 > BUDGET_SECONDS


BUDGET = _Budget()

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=FUZZ_SEED == 0,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@seed(FUZZ_SEED)
@given(m=mutation, compressed=st.booleans(), corrupt_stream=st.one_of(st.none(), st.floats(0, 1, exclude_max=True)))
def test_mutated_nifti_is_read_or_cleanly_refused(nifti_case, traced, m, compressed, corrupt_stream):
    if BUDGET.spent("nifti"):
        return
    mutated = _apply(nifti_case["raw"], m, nifti_case["data_start"])
    for old in nifti_case["root"].joinpath("imagesTs").iterdir():
        old.unlink()
    if compressed:
        blob = bytearray(gzip.compress(mutated, compresslevel=1))
        if corrupt_stream is not None and len(blob) > 20:
            blob[10 + int(corrupt_stream * (len(blob) - 20))] ^= 0x5A
        image = nifti_case["image"]
        image.write_bytes(bytes(blob))
    else:
        image = nifti_case["image"].with_name("case_001_0000.nii")
        image.write_bytes(mutated)
        (nifti_case["root"] / "dataset.json").write_text(
            '{"labels": {"background": 0, "CSF": 1, "GM": 2, "WM": 3}, "file_ending": ".nii"}'
        )
    try:
        _exercise(image, nifti_case["root"])
    finally:
        (nifti_case["root"] / "dataset.json").write_text('{"labels": {"background": 0, "CSF": 1, "GM": 2, "WM": 3}}')


@FUZZ
@seed(FUZZ_SEED)
@given(header=mutation, data=mutation)
def test_mutated_analyze_pair_is_read_or_cleanly_refused(analyze_case, traced, header, data):
    if BUDGET.spent("analyze"):
        return
    analyze_case["hdr"].write_bytes(_apply(analyze_case["raw_hdr"], {**header, "data_bytes": []}, HEADER_BYTES))
    no_header = {**data, "dims": None, "fields": [], "header_bytes": []}
    analyze_case["img"].write_bytes(_apply(analyze_case["raw_img"], no_header, 0))
    _exercise(analyze_case["hdr"], analyze_case["root"])


@pytest.mark.parametrize("fmt", ["nii", "nii.gz", "hdr"])
def test_header_declaring_gigabytes_is_refused_before_allocating(tmp_path, traced, fmt):
    """A 32767^3 int16 volume (64 TiB), and one just over 2 GiB, in files of a few kilobytes."""
    vol = np.round(_volume()).astype(np.int16)
    for dims in ((32767, 32767, 32767), (1024, 1024, 1025)):
        if fmt == "hdr":
            img = nib.AnalyzeImage(vol, np.eye(4))
            path = tmp_path / "big.hdr"
            nib.save(img, str(path))
            raw = bytearray(path.read_bytes())
        else:
            raw = bytearray(nib.Nifti1Image(vol, np.eye(4)).to_bytes())
            path = tmp_path / f"big.{fmt}"
        struct.pack_into("<hhh", raw, 42, *dims)
        path.write_bytes(gzip.compress(bytes(raw)) if fmt == "nii.gz" else bytes(raw))
        t0 = time.perf_counter()
        tracemalloc.reset_peak()
        baseline = tracemalloc.get_traced_memory()[0]
        with pytest.raises(AdvnormError, match="GiB") as info:
            load_volume(path)
        assert tracemalloc.get_traced_memory()[1] - baseline < MAX_TRACED_BYTES
        assert time.perf_counter() - t0 < 2
        assert str(path) in str(info.value)
    assert np.prod((1024, 1024, 1025)) * 2 > MAX_VOXEL_BYTES


@pytest.mark.parametrize("fmt", ["nii", "nii.gz", "hdr"])
def test_header_declaring_more_data_than_the_file_holds_is_refused_before_allocating(tmp_path, traced, fmt):
    """200 MB declared (under the 2 GiB cap), a few kilobytes on disk."""
    vol = np.round(_volume()).astype(np.int16)
    img = nib.AnalyzeImage(vol, np.eye(4)) if fmt == "hdr" else nib.Nifti1Image(vol, np.eye(4))
    path = tmp_path / f"big.{fmt}"
    nib.save(img, str(path))
    hdr_path = path
    raw = bytearray(gzip.decompress(path.read_bytes()) if fmt == "nii.gz" else path.read_bytes())
    struct.pack_into("<hhh", raw, 42, 500, 500, 400)
    hdr_path.write_bytes(gzip.compress(bytes(raw)) if fmt == "nii.gz" else bytes(raw))
    tracemalloc.reset_peak()
    baseline = tracemalloc.get_traced_memory()[0]
    with pytest.raises(AdvnormError, match="truncated|can hold"):
        load_volume(path)
    assert tracemalloc.get_traced_memory()[1] - baseline < MAX_TRACED_BYTES


def test_nibabel_header_fixups_do_not_reach_stderr(tmp_path):
    """An invalid sform_code is fixed by nibabel, which logs it to stderr: the CLI must stay quiet."""
    root = tmp_path / "Dataset001_Quiet"
    (root / "imagesTs").mkdir(parents=True)
    (root / "dataset.json").write_text('{"labels": {"background": 0, "CSF": 1, "GM": 2, "WM": 3}}')
    img = nib.Nifti1Image(_volume(), nifti_affine((1.0, 1.0, 1.0)))
    img.set_qform(img.affine, code=1)
    raw = bytearray(img.to_bytes())
    struct.pack_into("<h", raw, 254, 7)  # sform_code 7: "not valid; setting to 0"
    (root / "imagesTs" / "case_001_0000.nii.gz").write_bytes(gzip.compress(bytes(raw)))
    logger = logging.getLogger("nibabel.global")
    level, nib_log = logger.level, _NibabelLog()
    logger.addHandler(nib_log)
    try:
        logger.setLevel(logging.NOTSET)  # as in a fresh process
        load_volume(root / "imagesTs" / "case_001_0000.nii.gz")
        assert nib_log.records == []
        assert main(["inspect", "--data", str(root)]) == 0
        assert nib_log.records == []
        logger.setLevel(logging.NOTSET)
        nib.load(str(root / "imagesTs" / "case_001_0000.nii.gz"))  # the check above can see the message
        assert any("sform_code" in r for r in nib_log.records)
    finally:
        logger.removeHandler(nib_log)
        logger.setLevel(level)
