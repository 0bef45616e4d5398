"""The resumable training state, ``train_state.pt``: optimizers, schedulers, RNG state and the epoch.

Read with ``torch.load(weights_only=True)``, which refuses pickled objects, so a training
state from elsewhere cannot run code. Written atomically, so a kill leaves the previous one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from advnorm.errors import AdvnormError, one_line
from advnorm.io_atomic import atomic_path


def save_train_state(path: str | Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, str(tmp))


def load_train_state(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise AdvnormError("no training state to resume from (train_state.pt missing)", path) from None
    except Exception as exc:  # weights_only refuses arbitrary pickles: report, never execute
        raise AdvnormError(f"refusing to load training state: {one_line(exc)}", path) from None
