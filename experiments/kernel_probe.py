"""Does this machine's result depend on the instruction set torch's CPU kernels use? One 3-D convolution, three ways.

    .venv/bin/python experiments/kernel_probe.py

Runs the same seeded ``Conv3d`` forward and backward (S's first layer at the quick widths, a batch of two 32^3
patches, one thread) in a fresh process per instruction-set cap: the machine's own, AVX2 and none
(``ATEN_CPU_CAPABILITY`` and ``ONEDNN_MAX_CPU_ISA``, torch's and oneDNN's switches), and prints what each
process used, a hash of the output and the sum of the weight gradient. Different hashes mean the same seed
trains another model on a processor with other instructions: a training's first step differs in the last
bits, and a few hundred steps of a non-convex problem turn that into another trajectory. docs/method.md
("Why two machines give different numbers") quotes this script's output.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

CAPS: dict[str, tuple[str, str] | None] = {
    "this machine's": None,
    "AVX2": ("AVX2", "avx2"),
    "none (SSE4.1)": ("SSE41", "default"),
}
"""Each run's (``ONEDNN_MAX_CPU_ISA``, ``ATEN_CPU_CAPABILITY``); None: the machine's own."""


def probe() -> str:
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)
    x = torch.randn(2, 8, 32, 32, 32)
    conv = torch.nn.Conv3d(8, 16, 3, padding=1)
    y = conv(x)
    y.sum().backward()
    assert conv.weight.grad is not None
    digest = hashlib.sha256(y.detach().numpy().tobytes()).hexdigest()[:12]
    grad = float(conv.weight.grad.double().sum())
    return f"{torch.backends.cpu.get_cpu_capability()} output {digest} grad sum {grad:.4f}"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--inner":
        print(probe())
        return
    for name, cap in CAPS.items():
        env = dict(os.environ)
        if cap is not None:
            env.update(ONEDNN_MAX_CPU_ISA=cap[0], ATEN_CPU_CAPABILITY=cap[1])
        out = subprocess.run(
            [sys.executable, __file__, "--inner"], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
        print(f"{name:>16} kernels: {out}")


if __name__ == "__main__":
    main()
