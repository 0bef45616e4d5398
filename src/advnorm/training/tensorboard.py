"""TensorBoard event files beside ``training_log.csv``, when the ``tensorboard`` extra is installed.

The same scalar names as the CSV log (one point per epoch, epoch 0 the untrained state) and, for
methods with a G, an image per epoch of a fixed validation patch: the input beside G's output.
Without TensorBoard installed nothing is written and nothing changes (``pip install -e ".[tensorboard]"``).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import numpy as np


def available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


class TensorBoardLog:
    """One run's event files in ``folder`` (the run folder: ``tensorboard --logdir runs/`` finds every run)."""

    def __init__(self, folder: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(folder))

    def row(self, row: dict[str, Any]) -> None:
        """Every finite number of a log row, under its CSV column name, at step ``epoch``."""
        step = int(row["epoch"])
        for key, value in row.items():
            if (
                key != "epoch"
                and isinstance(value, (int, float))
                and not isinstance(value, bool)
                and math.isfinite(value)
            ):
                self.writer.add_scalar(key, float(value), global_step=step)
        self.writer.flush()

    def normalization(self, image: np.ndarray, normalized: np.ndarray, step: int) -> None:
        """The middle axial slice of a patch: input (left) and G's output (right), each scaled to [0, 1]."""
        k = image.shape[-1] // 2
        panels = [_unit(np.asarray(a)[..., k].T[::-1]) for a in (image, normalized)]
        self.writer.add_image(
            "G/input_and_output", np.concatenate(panels, axis=1)[None], global_step=step, dataformats="CHW"
        )
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _unit(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return ((a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)).astype(np.float32)


def open_log(folder: Path) -> TensorBoardLog | None:
    """A TensorBoard log in ``folder`` if TensorBoard is installed, else ``None``."""
    return TensorBoardLog(folder) if available() else None
