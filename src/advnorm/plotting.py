"""Matplotlib, headless: the Agg backend, nothing ever shown, every PNG written atomically."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend
from matplotlib.figure import Figure  # noqa: E402 - after choosing the backend

from advnorm.io_atomic import atomic_path  # noqa: E402 - after choosing the backend

__all__ = ["plt", "save_figure"]


def save_figure(fig: Figure, out: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as PNG atomically (a killed run never leaves a truncated image) and close it."""
    out = Path(out)
    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return out
