"""Weights files that cannot run code on load: ``checkpoint_best`` / ``checkpoint_final.safetensors``.

The weights of G, S and D as safetensors (a flat tensor container: loading it never unpickles
anything), with the method, the number of domains and the architecture in its metadata, so a
file is refused, with what differs, by a config that would rebuild other networks.
Written atomically: a kill leaves the previous good file intact.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from advnorm.config import PROFILES
from advnorm.config_file import differences
from advnorm.config_history import as_made
from advnorm.errors import AdvnormError, one_line
from advnorm.io_atomic import atomic_path
from advnorm.models.networks import Networks

FORMAT = "advnorm-weights-1"


def save_weights(path: str | Path, nets: Networks) -> None:
    tensors = {
        f"{name}.{k}": v.detach().contiguous().cpu()
        for name, net in nets.unwrapped().items()
        for k, v in net.state_dict().items()
    }
    with atomic_path(path) as tmp:
        save_file(
            tensors,
            str(tmp),
            metadata={"format": FORMAT, "architecture": json.dumps(nets.architecture(), sort_keys=True)},
        )


def load_weights(path: str | Path, nets: Networks) -> None:
    """Load into ``nets``; a file made for another architecture, K or method is refused with what differs."""
    path = Path(path)
    if not path.exists():
        raise AdvnormError("model weights file does not exist", path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise AdvnormError(f"not a valid safetensors weights file ({one_line(exc, 100)})", path) from None
    if meta.get("format") != FORMAT:
        raise AdvnormError("not an advnorm weights file (missing format metadata)", path)
    defaults = PROFILES[nets.cfg.profile]().to_dict() if nets.cfg.profile in PROFILES else {}
    stored = as_made(json.loads(meta.get("architecture", "{}")), defaults)  # files older than a model setting
    diffs = differences(stored, nets.architecture())
    if diffs:
        raise AdvnormError("weights do not match the run's config: " + "; ".join(diffs[:4]), path)
    for name, net in nets.unwrapped().items():
        prefix = name + "."
        own = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            net.load_state_dict(own, strict=True)
        except RuntimeError as exc:
            raise AdvnormError(f"weights of {name} do not fit the network: {one_line(exc)}", path) from None


def tensors_of(path: str | Path) -> dict[str, torch.Tensor]:
    """The raw tensors of a weights file (for comparisons in tests and benchmarks)."""
    return load_file(str(path))
