"""Model files that cannot run code on load, and the resumable training state.

* ``checkpoint_best.safetensors`` / ``checkpoint_final.safetensors``: weights of G, S, D as
  safetensors (a flat tensor container: loading it never unpickles anything), with the
  method, domains and architecture in its metadata; ``config.json`` beside it.
* ``train_state.pt``: optimizer, scheduler and RNG state for ``--resume``; read with
  ``torch.load(weights_only=True)``, which refuses pickled objects.
Every file is written atomically, so a kill leaves the previous good one intact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from advnorm.config import differences
from advnorm.errors import AdvnormError
from advnorm.io_atomic import atomic_path

FORMAT = "advnorm-weights-1"


def architecture(cfg_dict: dict, n_domains: int) -> dict[str, Any]:
    """What must match between a weights file and the config that will rebuild the nets."""
    return {"method": cfg_dict["method"], "n_domains": n_domains, "model": cfg_dict["model"]}


def save_weights(path: str | Path, networks: dict[str, torch.nn.Module], arch: dict[str, Any]) -> None:
    tensors = {f"{name}.{k}": v.detach().contiguous().cpu() for name, net in networks.items() for k, v in net.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "architecture": json.dumps(arch, sort_keys=True)})


def load_weights(path: str | Path, networks: dict[str, torch.nn.Module], arch: dict[str, Any]) -> None:
    """Load into ``networks``; a file made for another architecture, K or method is refused with what differs."""
    path = Path(path)
    if not path.exists():
        raise AdvnormError("model weights file does not exist", path)
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise AdvnormError(f"not a valid safetensors weights file ({' '.join(str(exc).split())[:100]})", path) from None
    if meta.get("format") != FORMAT:
        raise AdvnormError("not an advnorm weights file (missing format metadata)", path)
    stored = json.loads(meta.get("architecture", "{}"))
    diffs = differences(stored, arch)
    if diffs:
        raise AdvnormError("weights do not match the run's config: " + "; ".join(diffs[:4]), path)
    for name, net in networks.items():
        prefix = name + "."
        own = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            net.load_state_dict(own, strict=True)
        except RuntimeError as exc:
            raise AdvnormError(f"weights of {name} do not fit the network: {' '.join(str(exc).split())[:160]}", path) from None


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
        raise AdvnormError(f"refusing to load training state: {' '.join(str(exc).split())[:160]}", path) from None
