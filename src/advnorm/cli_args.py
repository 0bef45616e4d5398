"""The ``advnorm`` command line: one argparse parser, one small function per verb."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from advnorm import __version__
from advnorm.config import DEMO_EPOCHS, INFERENCE_OVERLAP, PROFILES
from advnorm.methods import METHODS

EXIT_USER_ERROR = 2
CACHE_HELP = (
    "the working-grid cache of preprocessed subjects, or off (default: $ADVNORM_CACHE, else ~/.cache/advnorm); "
    "shared by every run and process, safe to delete"
)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``advnorm: error: ...``) and exit code 2, like every other error."""

    def error(self, message: str) -> NoReturn:
        hint = f" (see '{self.prog} --help')"
        self.exit(EXIT_USER_ERROR, f"advnorm: error: {' '.join(message.split())}{hint}\n")


def _add_data(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument(
        "--data",
        action="append",
        required=required,
        metavar="[LAYOUT:]PATH",
        help="a dataset folder, one domain each (layouts: iseg2017, mrbrains13, mrbrains18, nnunet; "
        "auto-detected unless LAYOUT: is given); repeat for several domains",
    )


def _add_mask(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mask",
        metavar="PATH",
        help="brain mask: a file for a single image, or a folder of masks named by case "
        "(<case>.nii.gz, <case>_mask.nii.gz, ...); overrides the layout's skull stripping",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="turn warnings (an image that looks unstripped or unlike the training data, an implausible "
        "segmentation, ...) into errors",
    )


def _window_edge(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of voxels") from None
    if value < 8:
        raise argparse.ArgumentTypeError(f"{text} voxels: the window edge must be at least 8")
    return value


def _window_overlap(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text}: the overlap is a fraction in [0, 1)")
    return value


def _add_inference(p: argparse.ArgumentParser) -> None:
    """Options of the verbs that run a trained model over whole volumes (predict, normalize, evaluate)."""
    p.add_argument("--checkpoint", choices=("best", "final"), default="best")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--window",
        type=_window_edge,
        default=None,
        metavar="N",
        help="edge of the sliding inference window in voxels (default: the run's training patch size, 32 in both "
        "profiles: what the networks saw in training); --window 160 --overlap 0.25 takes half the time, and "
        "changes the labels of adversarial and augmented (docs/method.md, the window)",
    )
    p.add_argument(
        "--overlap",
        type=_window_overlap,
        default=INFERENCE_OVERLAP,
        metavar="F",
        help=f"overlap of neighbouring windows, a fraction (default {INFERENCE_OVERLAP})",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_training(p: argparse.ArgumentParser, *, seed: bool = True) -> None:
    p.add_argument(
        "--profile", choices=sorted(PROFILES), default="quick", help="quick (CPU minutes) or paper (authors' sizes)"
    )
    p.add_argument("--config", metavar="FILE", help="JSON file overriding profile settings (see docs/configuration.md)")
    p.add_argument("--epochs", type=int, help="override train.epochs")
    if seed:  # reproduce takes --seeds instead
        p.add_argument("--seed", type=int, help="override train.seed")
    p.add_argument(
        "--split", choices=("subject", "patch"), help="subject (default) or the paper's patch-level split (leaky)"
    )
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:1, mps")
    p.add_argument("--amp", action="store_true", default=None, help="bf16 mixed precision")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="advnorm", description="Adversarial intensity normalization for multi-domain 3-D MRI segmentation."
    )
    parser.add_argument("--version", action="version", version=f"advnorm {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--cache", metavar="DIR|off", help=CACHE_HELP)
    common = Parser(add_help=False)  # every verb also takes --debug and --cache
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    common.add_argument("--cache", metavar="DIR|off", default=argparse.SUPPRESS, help=CACHE_HELP)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for add in (_inspect, _phantom, _train, _predict_and_normalize, _evaluate, _export, _reproduce, _demo, _cache):
        add(lambda name, **kw: verbs.add_parser(name, parents=[common], **kw))
    return parser


AddVerb = Callable[..., argparse.ArgumentParser]


def _inspect(add: AddVerb) -> None:
    p = add("inspect", help="describe datasets: layout, subjects, shapes, spacing, intensities, class counts")
    _add_data(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def _phantom(add: AddVerb) -> None:
    p = add("phantom", help="write the built-in multi-domain brain phantom (nnU-Net layout)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--domains", type=int, default=3)
    p.add_argument("--subjects", type=int, default=5, help="subjects per domain")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", type=float, default=0.7, help="brain size relative to the adult template")


def _train(add: AddVerb) -> None:
    p = add("train", help="train one method (an experiment of Table 1) into a run folder")
    _add_data(p)
    p.add_argument("--method", choices=METHODS, help="what to train (default: the config file's, else adversarial)")
    p.add_argument("--out", required=True, type=Path, help="run folder")
    p.add_argument("--train-domain", help="for --method single: the domain to train on (default: the first --data)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    _add_training(p)


def _predict_and_normalize(add: AddVerb) -> None:
    for verb, what in (
        (
            "predict",
            "normalize and segment whole volumes: <case>_normalized.nii.gz and <case>_seg.nii.gz on each "
            "input's own grid and header",
        ),
        (
            "normalize",
            "only the harmonized image, <case>_normalized.nii.gz, on each input's own grid and header "
            "(for FreeSurfer, FSL, nnU-Net, a viewer)",
        ),
    ):
        p = add(verb, help=what, description=what)
        p.add_argument("--model", required=True, type=Path, help="run folder")
        p.add_argument(
            "-i", "--input", action="append", required=True, help="image file or dataset folder (repeatable)"
        )
        p.add_argument("-o", "--output", required=True, type=Path, help="output folder")
        _add_mask(p)
        p.add_argument("--overwrite", action="store_true", help="replace outputs that exist")
        _add_inference(p)


def _evaluate(add: AddVerb) -> None:
    p = add("evaluate", help="Dice, HD95, ASD per class and JSD on the full test volumes")
    p.add_argument("--model", required=True, type=Path, help="run folder")
    _add_data(p)
    p.add_argument("-o", "--output", required=True, type=Path, help="metrics JSON file")
    _add_mask(p)
    _add_inference(p)


def _export(add: AddVerb) -> None:
    p = add(
        "export",
        help="a trained run as portable files: G + S (or S alone) as ONNX or TorchScript, plus model.json",
        description="Write G and S of a run (or S alone) as one ONNX or TorchScript file, checked against PyTorch, "
        "and a JSON saying the input transform, the 1 mm RAS working grid, the stride, the classes and label ids. "
        "A harmonized run's G also takes the whole image's intensity statistics (the JSON has the numpy code that "
        "computes them). ONNX needs: pip install 'advnorm[export]'.",
    )
    p.add_argument("--model", required=True, type=Path, help="run folder")
    p.add_argument("--format", required=True, choices=("onnx", "torchscript"), dest="fmt")
    p.add_argument("-o", "--output", required=True, type=Path, help="output folder (model.onnx|model.pt + model.json)")
    p.add_argument(
        "--segmenter-only",
        action="store_true",
        help="S alone: input = the normalized image (segmenter.onnx|.pt + segmenter.json)",
    )
    p.add_argument("--checkpoint", choices=("best", "final"), default="best")
    p.add_argument("--overwrite", action="store_true", help="replace export files that exist")


def _reproduce(add: AddVerb) -> None:
    p = add("reproduce", help="train and evaluate every experiment of Table 1 (+ baselines); tables, figures, report")
    _add_data(p)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--methods", help="comma-separated subset of " + ",".join(METHODS))
    p.add_argument(
        "--seeds",
        type=int,
        default=3,
        help="train every model this many times, with seeds 0..N-1 (the subject split stays fixed); default 3",
    )
    p.add_argument(
        "--unseen",
        action="store_true",
        help="also train every multi-domain method without each domain in turn and test it there, as a site "
        "never seen (leave-one-domain-out; table3.csv)",
    )
    p.add_argument(
        "--recompute",
        action="store_true",
        help="train again the runs in --out that were made with other settings or data (default: refuse)",
    )
    _add_training(p, seed=False)


def _demo(add: AddVerb) -> None:
    p = add(
        "demo",
        help="build the phantom (3 domains) and compare z-scoring with harmonized on it with the quick profile "
        "(within 15 minutes on 2 cores; the README gives the measured time); --methods adds the paper's adversarial "
        "method or any other; --full: 3 seeds",
    )
    p.add_argument("--out", type=Path, default=Path("advnorm-demo"))
    p.add_argument(
        "--methods",
        help="comma-separated subset of " + ",".join(METHODS) + " (default standardized,harmonized; with --full, all)",
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="3 seeds, and every method (the single-domain models, all baselines) unless --methods: the README's "
        "table (hours on a CPU)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=DEMO_EPOCHS,
        help=f"main epochs of 25 S updates (default {DEMO_EPOCHS}: 400 updates, a third of the quick profile's "
        "budget of 48, to stay within 15 minutes; docs/method.md says what it costs in Dice)",
    )
    p.add_argument(
        "--recompute",
        action="store_true",
        help="train again the runs of an earlier demo in --out that were made with other settings",
    )
    p.add_argument("--no-progress", action="store_true")


def _cache(add: AddVerb) -> None:
    p = add(
        "cache",
        help="what the working-grid cache holds; remove entries not used for N days, down to a size, or all",
        description="Say where the working-grid cache is, how many subjects and bytes it holds and when its least "
        "recently used entry was last read; with an option, remove entries (entries of an older preprocessing "
        "version, which are never read, go with any option). Safe while other runs use the cache: a removed "
        "subject is preprocessed again when a run needs it.",
    )
    p.add_argument("--unused-days", type=float, metavar="N", help="remove entries not read for N days")
    p.add_argument("--max-size", metavar="SIZE", help="then remove the least recently used until the rest fit (50G)")
    p.add_argument("--clear", action="store_true", help="remove every entry")
