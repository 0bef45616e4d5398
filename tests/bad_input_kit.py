"""The kit of the bad-input corpus (tests/test_bad_input_corpus.py).

``Env`` (the fixtures a case may copy and corrupt) and ``Built`` (the argv a case runs, the name its
error line must hold, and the outputs that must not change), helpers that corrupt files and build the
argv of each verb, and the ``CASES`` registry that the ``case`` decorator fills. The cases themselves
live in tests/bad_input_cases_*.py.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from tests.conftest import TINY_CONFIG, copy_run, write_config
from tests.fixtures import save_nifti


@dataclass
class Env:
    tmp: Path
    phantom: list[Path]
    run: Path
    config: Path

    def domain(self, k: int = 0, name: str | None = None) -> Path:
        """A private copy of phantom domain ``k``."""
        src = Path(self.phantom[k])
        return Path(shutil.copytree(src, self.tmp / "data" / (name or src.name)))

    def run_copy(self) -> Path:
        return copy_run(self.run, self.tmp / "run_copy")

    def config_file(self, changes: dict | None = None, text: str | None = None) -> Path:
        path = self.tmp / "config.json"
        if text is not None:
            path.write_text(text)
            return path
        cfg = json.loads(json.dumps(TINY_CONFIG))
        for dotted, value in (changes or {}).items():
            node = cfg
            *heads, tail = dotted.split(".")
            for h in heads:
                node = node.setdefault(h, {})
            node[tail] = value
        return write_config(path, cfg)


@dataclass
class Built:
    argv: list[str]
    named: str  # must appear in the error line
    outputs: list[Path]  # absent afterwards, or unchanged if they existed


# ---------------------------------------------------------------- corrupting files


def _image(folder: Path, case: int = 1) -> Path:
    return sorted((folder / "imagesTr").iterdir())[case - 1]


def _label(folder: Path, case: int = 1) -> Path:
    return sorted((folder / "labelsTr").iterdir())[case - 1]


def _rewrite(path: Path, fn: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]) -> Path:
    img = nib.load(str(path))
    data, affine = fn(np.array(np.asanyarray(img.dataobj)), img.affine.copy())
    save_nifti(path, data, affine)
    return path


def _garbage(path: Path) -> Path:
    path.write_bytes(b"this is not an image \x00\xff" * 50)
    return path


def _truncate(path: Path, keep: float = 0.5) -> Path:
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    return path


def _set_voxel(value: float):
    def fn(data, affine):
        data = data.astype(np.float32)
        c = tuple(s // 2 for s in data.shape)
        data[c] = value
        return data, affine

    return fn


def _train(env: Env, data: list, out: Path, *extra: str, config: Path | None = None) -> list[str]:
    argv = ["train", "--out", str(out), "--config", str(config or env.config), "--no-progress", *extra]
    return argv + [a for d in data for a in ("--data", str(d))]


def _train_with_config(env: Env, named: str, changes: dict | None = None, text: str | None = None) -> Built:
    """``train`` on the phantom with a bad config file (the tiny config with ``changes``, or ``text``); ``named``
    must be in the error line, with ``{config}`` standing for the config file's path."""
    cfg, out = env.config_file(changes, text), env.tmp / "run"
    return Built(_train(env, env.phantom, out, config=cfg), named.format(config=cfg), [out])


def _predict(model: Path, inputs: list, out: Path, *extra: str) -> list[str]:
    return ["predict", "--model", str(model), "-o", str(out), *extra] + [a for i in inputs for a in ("-i", str(i))]


def _evaluate(model: Path, data: list, out: Path) -> list[str]:
    return ["evaluate", "--model", str(model), "-o", str(out)] + [a for d in data for a in ("--data", str(d))]


def _inspect(*data) -> list[str]:
    return ["inspect"] + [a for d in data for a in ("--data", str(d))]


def _reproduce(env: Env, data: list, out: Path, *extra: str) -> list[str]:
    argv = ["reproduce", "--out", str(out), "--config", str(env.config), "--no-progress", *extra]
    return argv + [a for d in data for a in ("--data", str(d))]


def _zscored(path: Path, dest: Path) -> Path:
    img = nib.load(str(path))
    data = np.asarray(img.dataobj, dtype=np.float32)
    brain = data != 0
    z = np.where(brain, (data - data[brain].mean()) / data[brain].std(), 0.0).astype(np.float32)
    return save_nifti(dest, z, img.affine)


def _edit_run_config(env: Env, change: Callable[[dict], None]) -> Path:
    run = env.run_copy()
    cfg = json.loads((run / "config.json").read_text())
    change(cfg)
    (run / "config.json").write_text(json.dumps(cfg))
    return run


def _split_case(env, k: int, role: str) -> str:
    """A case id of ``role`` ("train", "val", "test") in phantom domain ``k``.

    The split is a function of the ids and the seed.
    """
    run = json.loads((env.run / "config.json").read_text())["run"]
    return run["split"][run["domains"][k]][role][0]


# ---------------------------------------------------------------- the cases

CASES: dict[str, Callable[[Env], Built]] = {}


def case(fn: Callable[[Env], Built]) -> Callable[[Env], Built]:
    CASES[fn.__name__.replace("_", "-")] = fn
    return fn
