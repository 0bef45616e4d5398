"""The run folder: what a training run writes, and reading it back with errors that name the file.

One place for the file names (``RunFolder``), the run's ``config.json`` (the resolved config,
plus ``run``: what training learned about its data, and ``versions``), ``summary.json``, the
library versions and the device choice. Training writes through it, inference, evaluation,
reproduce, the benchmarks and the experiments read through it.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import advnorm
from advnorm.config import PROFILES, Config
from advnorm.config_file import differences, resolve
from advnorm.config_history import absent_settings, as_made, resolved_settings, stored_ingredients
from advnorm.errors import AdvnormError
from advnorm.io_atomic import atomic_write_json

RUN_KEYS: dict[str, type] = {
    "domains": list,
    "split": dict,
    "input_state": dict,
    "dice_weights": list,
}
"""Keys of ``config.json``'s ``run`` section that inference needs, with their JSON types."""


@dataclass(frozen=True)
class RunFolder:
    """The files of one training run."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def best(self) -> Path:
        return self.root / "checkpoint_best.safetensors"

    @property
    def final(self) -> Path:
        return self.root / "checkpoint_final.safetensors"

    @property
    def state(self) -> Path:
        return self.root / "train_state.pt"

    @property
    def log(self) -> Path:
        return self.root / "training_log.csv"

    @property
    def progress(self) -> Path:
        return self.root / "progress.png"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def evaluation(self) -> Path:
        return self.root / "evaluation.json"

    def own_files(self) -> list[Path]:
        """Every file a run folder holds (what no other output may overwrite)."""
        return [self.config, self.best, self.final, self.state, self.log, self.progress, self.summary, self.evaluation]

    def checkpoint(self, which: str) -> Path:
        if which not in ("best", "final"):
            raise ValueError(which)
        return self.best if which == "best" else self.final

    def write_config(self, cfg: Config, run: dict[str, Any]) -> None:
        record = {"ingredients": stored_ingredients(cfg), "run": run, "versions": versions()}
        atomic_write_json(self.config, {**cfg.to_dict(), **record})

    def read_raw_config(self) -> dict[str, Any]:
        """``config.json`` as JSON, with its ``run`` section checked; every problem names the file."""
        if not self.config.exists():
            below = runs_below(self.root)
            hint = f"; it holds runs, pass one: {', '.join(str(r) for r in below)}" if below else ""
            raise AdvnormError(f"not a training run folder (config.json missing){hint}", self.root)
        try:
            raw = json.loads(self.config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise AdvnormError(f"run config is not readable JSON ({type(exc).__name__})", self.config) from None
        if not isinstance(raw, dict):
            raise AdvnormError("run config must hold a JSON object", self.config)
        run = raw.get("run")
        if not isinstance(run, dict):
            raise AdvnormError('run config has no "run" section (was it written by advnorm train?)', self.config)
        for key, kind in RUN_KEYS.items():
            if not isinstance(run.get(key), kind):
                raise AdvnormError(f'run config: "run.{key}" is missing or not a {_json_type(kind)}', self.config)
        if not run["domains"] or not all(isinstance(d, str) for d in run["domains"]):
            raise AdvnormError('run config: "run.domains" must be a non-empty list of names', self.config)
        classes = run.get("classes", ["background", "CSF", "GM", "WM"])
        if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) for c in classes):
            raise AdvnormError('run config: "run.classes" must be a list of at least two class names', self.config)
        profile = raw.get("profile", "quick")
        if not isinstance(profile, str) or profile not in PROFILES:
            raise AdvnormError(
                f'run config: "profile" must be one of {", ".join(PROFILES)}, got {profile!r}', self.config
            )
        return raw

    def read_config(self, overrides: dict[str, Any] | None = None) -> tuple[Config, dict[str, Any]]:
        """The run's resolved config, as made (what an older advnorm's stored settings meant:
        :func:`advnorm.config_history.absent_settings`), then ``overrides``; and its ``run`` section."""
        raw = self.read_raw_config()
        settings = {**absent_settings(raw), **(overrides or {})}
        cfg = resolve(raw.get("profile", "quick"), file=self.config, overrides=settings, content=raw)
        return cfg, raw["run"]

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.summary, summary)


def config_differences(stored: dict[str, Any], cfg: Config, may_differ: tuple[str, ...] = ()) -> list[str]:
    """What differs between a run's stored config.json and ``cfg``, but the dotted keys in ``may_differ``.

    A setting the stored file lacks was added to advnorm after the run was made; every new setting's profile
    default keeps the behaviour from before it existed, so the run counts as made with that default (and stays
    reusable), but not with any other value. A setting whose default changed since counts as made with the
    old one (:func:`advnorm.config_history.as_made`)."""
    new = resolved_settings(cfg)  # ``auto`` compared by what it means, on both sides
    defaults = PROFILES[cfg.profile]().to_dict() if cfg.profile in PROFILES else new
    old = as_made({k: v for k, v in stored.items() if k not in ("run", "versions")}, defaults)
    for dotted in may_differ:
        head, key = dotted.split(".")
        for d in (old, new):
            d.get(head, {}).pop(key, None)
    return differences(old, new, there="there", here="now")


def _json_type(kind: type) -> str:
    return {"list": "list", "dict": "object", "str": "string"}.get(kind.__name__, "value")


def versions() -> dict[str, str]:
    import monai

    return {
        "advnorm": advnorm.__version__,
        "torch": torch.__version__,
        "monai": monai.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def cpuinfo() -> dict[str, str]:
    """The first processor's fields in ``/proc/cpuinfo`` (``model name``, ``flags``, ...); empty where there is none."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    first = text.split("\n\n", 1)[0]  # processors are blank-line-separated blocks; the first speaks for all
    return {
        key.strip(): value.strip()
        for key, colon, value in (line.partition(":") for line in first.splitlines())
        if colon
    }


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux, else what the platform reports; ``unknown``)."""
    return cpuinfo().get("model name") or platform.processor() or platform.machine() or "unknown"


def machine(device: torch.device) -> dict[str, Any]:
    """What a training's floating-point trajectory depends on besides the config, the data and the versions: the
    processor, the instruction set torch's CPU kernels use, the thread count and the device. The same seed on
    another CPU (or with another thread count) sums in another order and trains another model
    (docs/method.md, "Why two machines give different numbers")."""
    record: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_kernels": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        record["gpu"] = torch.cuda.get_device_name(device)
    return record


def runs_below(folder: Path, depth: int = 3, shown: int = 3) -> list[Path]:
    """Run folders (holding ``config.json``) up to ``depth`` levels below ``folder``, the first ``shown`` in
    name order: what a user meant who gave ``reproduce``'s output or a method's folder of seeds as a run."""
    found: list[Path] = []
    level = [folder]
    for _ in range(depth):
        try:  # a few hundred folders at most: the hint must not crawl a home directory
            level = sorted(child for parent in level[:200] for child in parent.iterdir() if child.is_dir())
        except OSError:
            break
        found += [child for child in level if (child / "config.json").is_file()]
        if len(found) >= shown:
            break
    return found[:shown]


def describe_machine(record: dict[str, Any]) -> str:
    """One phrase for a ``machine`` record: ``Intel(R) Xeon(R) Processor, AVX512 kernels, 2 threads``."""
    where = record.get("gpu") or record.get("cpu", "unknown processor")
    threads = record.get("threads", "?")
    return f"{where}, {record.get('cpu_kernels', '?')} kernels, {threads} thread{'' if threads == 1 else 's'}"


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA, then MPS, then CPU), or a device that exists here; anything else is a one-line error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps") if mps is not None and mps.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise AdvnormError(f"--device {name!r} is not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise AdvnormError(
                f"--device {name}: this PyTorch build or machine has no CUDA GPU "
                f"(torch {torch.__version__}); use --device cpu or auto"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise AdvnormError(f"--device {name}: there are only {torch.cuda.device_count()} CUDA GPU(s)")
    elif device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise AdvnormError(f"--device {name}: MPS (Apple GPU) is not available here; use --device cpu or auto")
    elif device.type != "cpu":
        raise AdvnormError(f"--device {name}: advnorm runs on cpu, cuda or mps")
    return device
