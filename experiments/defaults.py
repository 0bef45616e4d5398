"""The measurements behind three defaults (docs/method.md), each on the demo's phantom and budget.

    .venv/bin/python experiments/defaults.py dice_form        OUT   # eq. (2)'s single ratio vs per-class Dice
    .venv/bin/python experiments/defaults.py generator_output OUT   # G = sigmoid(U(x)) vs residual in logit space
    .venv/bin/python experiments/defaults.py adv_form         OUT   # saturating vs non-saturating G term

Each trains the quick profile with seeds 0 and 1 on the demo's phantom (3 domains, 5 subjects each) and
writes ``OUT/comparison.json`` and ``OUT/comparison.md``. The tables in docs/method.md were measured when the
quick profile trained 4 epochs (7-9 minutes per comparison on 2 idle cores); today's 400 S updates take
about four times as long.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _compare import compare  # noqa: E402

COMPARISONS = {
    # method, variants (name -> config overrides)
    "dice_form": (
        "unconstrained",
        {"single_ratio": {"loss.dice_form": "single_ratio"}, "per_class": {"loss.dice_form": "per_class"}},
    ),
    "generator_output": (
        "unconstrained",
        {"sigmoid": {"model.generator_output": "sigmoid"}, "residual": {"model.generator_output": "residual"}},
    ),
    "adv_form": (
        "adversarial",
        {"saturating": {"loss.adv_form": "saturating"}, "non_saturating": {"loss.adv_form": "non_saturating"}},
    ),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", choices=sorted(COMPARISONS))
    ap.add_argument("out", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = ap.parse_args()
    method, variants = COMPARISONS[args.which]
    compare(args.out, method, variants, args.seeds)


if __name__ == "__main__":
    main()
