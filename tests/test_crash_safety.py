"""Crash safety of ``advnorm train``: kill -9 and --resume, interrupted writes, NaN losses, unwritable folders."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from advnorm.cli import main
from advnorm.errors import AdvnormError
from advnorm.io_atomic import atomic_path, atomic_write_text
from advnorm.models import weights as model_weights
from advnorm.models.networks import Networks
from advnorm.training import checkpoint
from tests.conftest import TINY_CONFIG, read_csv_rows, tiny_cfg, write_config

# epoch 1 is the identity warm-up (2 steps); epochs 2-3 are adversarial (6 steps each): 2 main epochs on top of it
RESUME_CONFIG = {"model": TINY_CONFIG["model"], "train": {**TINY_CONFIG["train"], "epochs": 2, "steps_per_epoch": 6}}
SUBPROCESS_LIMIT = 150.0


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _log_rows(run: Path) -> list[dict]:
    return read_csv_rows(run / "training_log.csv")


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("advnorm: error: "), err
    assert "Traceback" not in err
    return lines[0]


def _train_cmd(data: list[Path], out: Path, config: Path, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "advnorm", "train", "--out", str(out), "--config", str(config), *extra]
    for d in data:
        cmd += ["--data", str(d)]
    return cmd


class _Drain(threading.Thread):
    """Collect a pipe's output without ever blocking the child (tqdm writes with \\r, not lines)."""

    def __init__(self, pipe) -> None:
        super().__init__(daemon=True)
        self.pipe, self.chunks = pipe, []

    def run(self) -> None:
        fd = self.pipe.fileno()
        while chunk := os.read(fd, 4096):
            self.chunks.append(chunk.decode("utf-8", "replace"))

    @property
    def text(self) -> str:
        return "".join(self.chunks)


@pytest.mark.slow
def test_kill_9_then_resume_ends_like_an_uninterrupted_run(tiny_phantom, tmp_path):
    config = write_config(tmp_path / "resume.json", RESUME_CONFIG)
    # one thread each (the two runs overlap); TQDM_MININTERVAL=0: the progress bar shows every step
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
        "TQDM_MININTERVAL": "0",
    }
    ref_dir, killed_dir = tmp_path / "uninterrupted", tmp_path / "killed"
    ref = subprocess.Popen(
        _train_cmd(tiny_phantom, ref_dir, config, "--no-progress"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    victim = subprocess.Popen(
        _train_cmd(tiny_phantom, killed_dir, config), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    progress = _Drain(victim.stderr)
    progress.start()
    try:
        # the progress bar of epoch 2 after >= 1 finished step: past epoch 1's checkpoint, inside epoch 2
        in_epoch_2 = re.compile(r"epoch 2/3 main:\s+\d+%\|[^|]*\|\s+([1-5])/6")
        deadline = time.monotonic() + SUBPROCESS_LIMIT
        while not in_epoch_2.search(progress.text):
            assert victim.poll() is None, f"training ended before it could be killed:\n{progress.text[-2000:]}"
            assert time.monotonic() < deadline, "training did not reach epoch 2 in time"
            time.sleep(0.01)
        assert (killed_dir / "train_state.pt").exists()
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=30) == -signal.SIGKILL
        progress.join(timeout=10)

        # killed inside epoch 2: the last checkpoint is epoch 1's, and it is intact
        state = checkpoint.load_train_state(killed_dir / "train_state.pt")
        assert int(state["epoch"]) == 0, "the kill landed after epoch 2's checkpoint"
        assert [r["epoch"] for r in _log_rows(killed_dir)] == ["0", "1"]
        assert not (killed_dir / "checkpoint_final.safetensors").exists()

        resumed = subprocess.run(
            _train_cmd(tiny_phantom, killed_dir, config, "--no-progress", "--resume"),
            env=env,
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_LIMIT,
            check=False,  # the return code is asserted next, with stderr as the message
        )
        assert resumed.returncode == 0, resumed.stderr
        assert "resuming" in resumed.stdout and "after epoch 1" in resumed.stdout
        _, ref_err = ref.communicate(timeout=SUBPROCESS_LIMIT)
        assert ref.returncode == 0, ref_err.decode()
    finally:
        for p in (ref, victim):
            if p.poll() is None:
                p.kill()
                p.wait()

    # same final metrics: every logged value but the wall-clock seconds
    ref_rows, res_rows = _log_rows(ref_dir), _log_rows(killed_dir)
    assert [r["epoch"] for r in res_rows] == ["0", "1", "2", "3"]
    assert list(ref_rows[0]) == list(res_rows[0])
    for a, b in zip(ref_rows, res_rows, strict=True):
        for key in a:
            if key == "seconds":
                continue
            if a[key] in ("", "init", "warmup", "main"):
                assert a[key] == b[key], key
            else:
                assert float(b[key]) == pytest.approx(float(a[key]), rel=1e-5, abs=1e-7), (a["epoch"], key)
    # ... and the same final weights
    w_ref = load_file(str(ref_dir / "checkpoint_final.safetensors"))
    w_res = load_file(str(killed_dir / "checkpoint_final.safetensors"))
    assert w_ref.keys() == w_res.keys()
    for k in w_ref:
        torch.testing.assert_close(w_res[k], w_ref[k], rtol=1e-5, atol=1e-6, msg=k)
    assert not list(killed_dir.glob(".*.part*")), "temporary files left behind"


# ------------------------------------------------------------------ (b) interrupted writes


class _CrashError(Exception):
    pass


def test_atomic_path_exception_mid_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "checkpoint_best.safetensors"
    target.write_bytes(b"the previous good checkpoint")
    with pytest.raises(_CrashError), atomic_path(target) as tmp, open(tmp, "wb") as fh:
        fh.write(b"half of a new che")
        fh.flush()
        raise _CrashError
    assert target.read_bytes() == b"the previous good checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_best.safetensors"]


@pytest.mark.parametrize("interrupt", [_CrashError, KeyboardInterrupt])
def test_checkpoint_writers_interrupted_mid_write_keep_the_previous_files(tmp_path, monkeypatch, interrupt):
    nets = Networks(tiny_cfg("single"), 2)
    weights, state = tmp_path / "checkpoint_best.safetensors", tmp_path / "train_state.pt"
    model_weights.save_weights(weights, nets)
    checkpoint.save_train_state(state, {"epoch": 0, "best": 1.0})
    before = {p.name: _sha(p) for p in tmp_path.iterdir()}

    def half_then_die(_obj, path, *a, **k):
        Path(path).write_bytes(b"\x00" * 17)
        raise interrupt

    monkeypatch.setattr(model_weights, "save_file", half_then_die)
    monkeypatch.setattr(checkpoint.torch, "save", half_then_die)
    with torch.no_grad():
        next(nets.S.parameters()).fill_(7.0)
    with pytest.raises(interrupt):
        model_weights.save_weights(weights, nets)
    with pytest.raises(interrupt):
        checkpoint.save_train_state(state, {"epoch": 1, "best": 0.5})
    assert {p.name: _sha(p) for p in tmp_path.iterdir()} == before  # same files, same bytes, no temporaries
    monkeypatch.undo()
    assert checkpoint.load_train_state(state)["epoch"] == 0
    fresh = Networks(tiny_cfg("single"), 2)
    model_weights.load_weights(weights, fresh)
    assert not torch.all(next(fresh.S.parameters()) == 7.0)


def test_atomic_files_respect_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640
        os.umask(0o022)
        atomic_write_text(tmp_path / "b.txt", "x")
        assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o644
    finally:
        os.umask(old)


# ------------------------------------------------------------------ (c) NaN / Inf losses


@pytest.mark.slow
def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(
    tiny_phantom, tiny_config, tmp_path, monkeypatch, capsys
):
    from advnorm.training import loop, trainer

    real_loss, calls = trainer.segmentation_loss, [0]

    def poisoned(*args, **kwargs):  # main epochs have 3 steps: training call 5 is epoch 3, step 2
        loss = real_loss(*args, **kwargs)
        if not torch.is_grad_enabled():  # validation
            return loss
        calls[0] += 1
        return loss * float("nan") if calls[0] == 5 else loss

    saved: dict[int, dict[str, str]] = {}
    real_save = loop.save_train_state

    def recording_save(path, state):
        real_save(path, state)
        saved[int(state["epoch"])] = {
            p.name: _sha(p) for p in Path(path).parent.glob("*.*") if p.suffix in (".pt", ".safetensors")
        }

    monkeypatch.setattr(trainer, "segmentation_loss", poisoned)
    monkeypatch.setattr(loop, "save_train_state", recording_save)
    run = tmp_path / "run"
    argv = ["train", "--out", str(run), "--config", str(tiny_config), "--no-progress"]
    for d in tiny_phantom:
        argv += ["--data", str(d)]
    assert main(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "loss_seg became NaN/Inf" in line and "epoch 3" in line and "step 2" in line, line
    assert "checkpoint_best.safetensors of an earlier epoch is kept" in line
    # epoch 2's checkpoints are on disk, byte for byte; nothing of the poisoned epoch 3 was written
    assert sorted(saved) == [0, 1]
    assert {p.name: _sha(p) for p in run.glob("*.*") if p.suffix in (".pt", ".safetensors")} == saved[1]
    assert int(checkpoint.load_train_state(run / "train_state.pt")["epoch"]) == 1
    assert not (run / "checkpoint_final.safetensors").exists()
    assert [r["epoch"] for r in _log_rows(run)] == ["0", "1", "2"]


def test_inf_and_divergence_checks_name_epoch_step_and_term():
    from advnorm.training.divergence import check_finite

    history = [torch.tensor([0.7, 2.1]), torch.tensor([0.6, 80.0])]
    with pytest.raises(AdvnormError, match=r"loss_dis diverged \(80\) at epoch 4, step 12.*earlier epoch is kept"):
        check_finite(history, ["loss_seg", "loss_dis"], epoch=3, first_step=10, has_checkpoint=True)
    history = [torch.tensor([0.7, 2.1]), torch.tensor([0.6, 2.0]), torch.tensor([float("inf"), 2.0])]
    with pytest.raises(
        AdvnormError, match=r"loss_seg became NaN/Inf \(inf\) at epoch 2, step 3.*no checkpoint was written"
    ):
        check_finite(history, ["loss_seg", "loss_dis"], epoch=1, first_step=0, has_checkpoint=False)


# ------------------------------------------------------------------ (d) unwritable output


def test_unwritable_run_folder_is_reported_before_the_run_starts(tiny_phantom, tiny_config, tmp_path, capsys):
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        if os.access(parent, os.W_OK):  # root ignores the mode bits: put --out below a regular file instead
            blocker = tmp_path / "a-file"
            blocker.write_text("not a folder")
            out, named = blocker / "run", blocker
        else:
            out, named = parent / "run", parent / "run"
        argv = ["train", "--out", str(out), "--config", str(tiny_config), "--no-progress"]
        for d in tiny_phantom:
            argv += ["--data", str(d)]
        t0 = time.perf_counter()
        assert main(argv) == 2
        captured = capsys.readouterr()
        line = _one_error_line(captured.err)
        assert str(named) in line, line
        assert "loading" not in captured.out  # refused before any data was read
        assert time.perf_counter() - t0 < 5
        assert not out.exists()
    finally:
        parent.chmod(0o755)
    assert sorted(p.name for p in parent.iterdir()) == []
