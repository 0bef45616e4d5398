"""Write the realistic-layout phantom: iSEG-2017 and MRBrainS13 look-alikes built from the shipped anatomy.

    .venv/bin/python experiments/make_realistic.py OUT            # full size: 10 iSEG + 5 MRBrainS subjects
    .venv/bin/python experiments/make_realistic.py OUT --small    # every length / 4, for a quick look

Then give advnorm ``OUT/iSeg-2017-Training`` and ``OUT/MRBrainS13DataNii``, e.g.
``advnorm inspect --data OUT/iSeg-2017-Training --data OUT/MRBrainS13DataNii``.
Synthetic data (ICBM 2009a template anatomy), not real scans; see
``advnorm.data.phantom.realistic`` for what is simulated.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from advnorm.data.phantom.realistic import RealisticSpec, write_realistic
from advnorm.errors import AdvnormError


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="output folder (new, empty, or written by a previous run)")
    ap.add_argument("--small", action="store_true", help="divide every length by 4 (seconds instead of a minute)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iseg", type=int, default=RealisticSpec.iseg_subjects, help="iSEG training subjects")
    ap.add_argument("--mrbrains", type=int, default=RealisticSpec.mrbrains_subjects, help="MRBrainS training subjects")
    ap.add_argument(
        "--mrbrains-test", type=int, default=RealisticSpec.mrbrains_test_subjects, help="MRBrainS TestData subjects"
    )
    args = ap.parse_args()
    spec = RealisticSpec(
        iseg_subjects=args.iseg,
        mrbrains_subjects=args.mrbrains,
        mrbrains_test_subjects=args.mrbrains_test,
        seed=args.seed,
        shrink=4 if args.small else 1,
    )
    start = time.perf_counter()
    try:
        folders = write_realistic(args.out, spec, progress=True)
    except AdvnormError as exc:
        raise SystemExit(f"error: {exc}") from None
    seconds = time.perf_counter() - start
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    for layout, folder in folders.items():
        print(f"{layout}: {folder}")
    print(f"wrote {size / 1e6:.1f} MB in {seconds:.1f} s")


if __name__ == "__main__":
    main()
