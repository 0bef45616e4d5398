"""Atomic writes and staged output folders (``advnorm.io_atomic``)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from advnorm.io_atomic import STAGING_TAG, atomic_path, atomic_write_text, remove_stale_staging, staged_folder


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _expected_mode() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def test_atomic_file_gets_the_usual_mode_even_if_the_writer_makes_it_0600(tmp_path):
    """Regression (issue 15.15): checkpoints came out 0600 (safetensors writes its own file) while others were 0644."""
    with atomic_path(tmp_path / "weights.bin") as tmp:
        tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"x")
        os.close(fd)
    assert _mode(tmp_path / "weights.bin") == _expected_mode()
    atomic_write_text(tmp_path / "a.txt", "x")
    assert _mode(tmp_path / "a.txt") == _expected_mode()


def test_a_failed_write_leaves_the_old_file(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert (tmp_path / "a.txt").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_a_new_output_folder_does_not_exist_until_it_is_complete(tmp_path):
    out = tmp_path / "deep" / "pred"
    with staged_folder(out) as staging:
        (staging / "a.nii.gz").write_bytes(b"1")
        assert not out.parent.exists()  # a kill here leaves no new folder, not even the missing parent
        assert staging.parent.parent == tmp_path and staging.parent.name.startswith(f".deep{STAGING_TAG}")
    assert sorted(p.name for p in out.iterdir()) == ["a.nii.gz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep"]


def test_an_existing_output_folder_gets_all_files_or_none(tmp_path):
    out = tmp_path / "pred"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    with pytest.raises(RuntimeError), staged_folder(out) as staging:
        (staging / "a.nii.gz").write_bytes(b"1")
        raise RuntimeError
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    with pytest.raises(RuntimeError), staged_folder(tmp_path / "new" / "pred") as staging:
        raise RuntimeError
    assert not (tmp_path / "new").exists()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_staging_left_by_a_killed_run_is_removed_by_the_next(tmp_path):
    """Regression (issue 15.8): kill -9 of predict left a hidden staging folder with finished NIfTIs, forever."""
    import socket

    host = socket.gethostname().replace("-", "_")
    out = tmp_path / "pred"
    out.mkdir()
    dead = [tmp_path / f".pred{STAGING_TAG}{host}-{_dead_pid()}-abc", out / f"{STAGING_TAG}{host}-{_dead_pid()}-def"]
    alive = out / f"{STAGING_TAG}{host}-{os.getpid()}-ghi"  # a run in progress: left alone
    other_host = out / f"{STAGING_TAG}otherhost-{_dead_pid()}-jkl"  # cannot tell from here: left alone
    for d in (*dead, alive, other_host):
        d.mkdir()
        (d / "x.nii.gz").write_bytes(b"1")
    assert sorted(remove_stale_staging(out)) == sorted(dead)
    assert alive.exists() and other_host.exists() and not any(d.exists() for d in dead)
