"""The ``advnorm`` command: parse, call, report. Errors are one line and a non-zero exit (``--debug``: traceback)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from advnorm import __version__
from advnorm.config import METHODS, PROFILES
from advnorm.errors import AdvnormError, AdvnormWarning

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1


class _Parser(argparse.ArgumentParser):
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
        help="turn warnings (an image that looks unstripped, unlike the training data, ...) into errors",
    )


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
    parser = _Parser(
        prog="advnorm", description="Adversarial intensity normalization for multi-domain 3-D MRI segmentation."
    )
    parser.add_argument("--version", action="version", version=f"advnorm {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    class _Verbs:  # every verb also takes --debug
        @staticmethod
        def add_parser(name: str, **kwargs: Any) -> argparse.ArgumentParser:
            return verbs.add_parser(name, parents=[common], **kwargs)

    sub = _Verbs()

    p = sub.add_parser(
        "inspect", help="describe datasets: layout, subjects, shapes, spacing, intensities, class counts"
    )
    _add_data(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")

    p = sub.add_parser("phantom", help="write the built-in multi-domain brain phantom (nnU-Net layout)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--domains", type=int, default=3)
    p.add_argument("--subjects", type=int, default=5, help="subjects per domain")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", type=float, default=0.7, help="brain size relative to the adult template")

    p = sub.add_parser("train", help="train one method (an experiment of Table 1) into a run folder")
    _add_data(p)
    p.add_argument("--method", choices=METHODS, help="what to train (default: the config file's, else adversarial)")
    p.add_argument("--out", required=True, type=Path, help="run folder")
    p.add_argument("--train-domain", help="for --method single: the domain to train on (default: the first --data)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    _add_training(p)

    for verb, what in (
        (
            "predict",
            "normalize and segment whole volumes: <case>_normalized.nii.gz and "
            "<case>_seg.nii.gz on each input's own grid and header",
        ),
        (
            "normalize",
            "only the harmonized image, <case>_normalized.nii.gz, on each input's own grid "
            "and header (for FreeSurfer, FSL, nnU-Net, a viewer)",
        ),
    ):
        p = sub.add_parser(verb, help=what, description=what)
        p.add_argument("--model", required=True, type=Path, help="run folder")
        p.add_argument(
            "-i", "--input", action="append", required=True, help="image file or dataset folder (repeatable)"
        )
        p.add_argument("-o", "--output", required=True, type=Path, help="output folder")
        _add_mask(p)
        p.add_argument("--overwrite", action="store_true", help="replace outputs that exist")
        p.add_argument("--checkpoint", choices=("best", "final"), default="best")
        p.add_argument("--device", default="auto")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("evaluate", help="Dice, HD95, ASD per class and JSD on the full test volumes")
    p.add_argument("--model", required=True, type=Path, help="run folder")
    _add_data(p)
    p.add_argument("-o", "--output", required=True, type=Path, help="metrics JSON file")
    _add_mask(p)
    p.add_argument("--checkpoint", choices=("best", "final"), default="best")
    p.add_argument("--device", default="auto")

    p = sub.add_parser(
        "reproduce", help="train and evaluate every experiment of Table 1 (+ baselines); tables, figures, report"
    )
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
        "--recompute",
        action="store_true",
        help="train again the runs in --out that were made with other settings or data (default: refuse)",
    )
    _add_training(p, seed=False)

    p = sub.add_parser("demo", help="build the phantom and reproduce Table 1 on it with the quick profile")
    p.add_argument("--out", type=Path, default=Path("advnorm-demo"))
    p.add_argument("--no-progress", action="store_true")
    return parser


def _training_overrides(args: argparse.Namespace) -> dict:
    return {
        "train.epochs": args.epochs,
        "train.seed": getattr(args, "seed", None),
        "data.split": args.split,
        "train.device": args.device,
        "train.amp": args.amp,
    }


def _inspect(args: argparse.Namespace) -> None:
    from advnorm.data.inspect import describe, format_text
    from advnorm.data.layouts import open_domains

    report = describe(open_domains(args.data))
    print(json.dumps(report, indent=2) if args.json else format_text(report))
    errors = [c["error"] for d in report["domains"] for c in d["cases"] if "error" in c]
    if errors:  # the report is printed, but a dataset with unreadable cases is not fit for use
        more = f" (and {len(errors) - 1} more case(s) could not be read; see the report)" if len(errors) > 1 else ""
        raise AdvnormError(errors[0] + more)


def _phantom(args: argparse.Namespace) -> None:
    from advnorm.data.phantom.generate import PhantomSpec, write_phantom

    spec = PhantomSpec(domains=args.domains, subjects=args.subjects, seed=args.seed, scale=args.scale)
    for folder in write_phantom(args.out, spec, progress=True):
        print(folder)
    print(args.out / "phantom.png")


def _train(args: argparse.Namespace) -> None:
    from advnorm.workflows import train

    train(
        args.data,
        args.out,
        method=args.method,
        profile=args.profile,
        config_file=args.config,
        overrides={**_training_overrides(args), "data.train_domain": args.train_domain},
        resume=args.resume,
        progress=not args.no_progress,
    )


def _predict(args: argparse.Namespace) -> None:
    from advnorm.workflows import normalize, predict

    verb = predict if args.verb == "predict" else normalize
    verb(
        args.model,
        args.input,
        args.output,
        mask=args.mask,
        overwrite=args.overwrite,
        checkpoint=args.checkpoint,
        device=args.device,
        progress=not args.no_progress,
    )


def _evaluate(args: argparse.Namespace) -> None:
    from advnorm.workflows import evaluate_run

    evaluate_run(args.model, args.data, args.output, mask=args.mask, checkpoint=args.checkpoint, device=args.device)


def _reproduce(args: argparse.Namespace) -> None:
    from advnorm.reproduce import reproduce

    reproduce(
        args.data,
        args.out,
        profile=args.profile,
        config_file=args.config,
        overrides=_training_overrides(args),
        methods=args.methods.split(",") if args.methods else None,
        seeds=args.seeds,
        recompute=args.recompute,
        progress=not args.no_progress,
    )


def _demo(args: argparse.Namespace) -> None:
    from advnorm.reproduce import demo

    demo(args.out, progress=not args.no_progress)


VERBS: dict[str, Callable[[argparse.Namespace], None]] = {
    "inspect": _inspect,
    "phantom": _phantom,
    "train": _train,
    "predict": _predict,
    "normalize": _predict,
    "evaluate": _evaluate,
    "reproduce": _reproduce,
    "demo": _demo,
}


def run(args: argparse.Namespace) -> int:
    VERBS[args.verb](args)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a usage error (one line already printed), or --help / --version
        return int(exc.code or 0)
    with warnings.catch_warnings():  # the settings below last for this command only
        _configure_messages(args)
        return _run_reporting_errors(args)


def _configure_messages(args: argparse.Namespace) -> None:
    """Warnings are one line each on stderr (``advnorm: warning: FILE: problem``); ``--strict`` makes advnorm's
    own warnings errors. Without ``--debug``, library chatter that is not the user's to act on is silenced."""
    warnings.showwarning = _show_warning
    warnings.simplefilter("always", AdvnormWarning)
    if getattr(args, "strict", False):
        warnings.simplefilter("error", AdvnormWarning)
    if not args.debug:
        warnings.filterwarnings("ignore", category=UserWarning, module="monai")
        # nibabel logs header fix-ups ("sform_code 7 not valid; setting to 0") straight to stderr,
        # which would break the one-line contract; real problems still raise and are reported
        logging.getLogger("nibabel.global").setLevel(logging.CRITICAL + 1)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: PLR0913 - the hook's signature
    print(f"advnorm: warning: {' '.join(str(message).split())}", file=sys.stderr)


def _run_reporting_errors(args: argparse.Namespace) -> int:
    try:
        return run(args)
    except KeyboardInterrupt:
        print("advnorm: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        code, line = _error_line(exc)
        print(line, file=sys.stderr)
        return code


def _error_line(exc: Exception) -> tuple[int, str]:
    """Exit code and the one line a user sees for ``exc``."""
    if isinstance(exc, (AdvnormError, AdvnormWarning)):  # a warning is raised as an error under --strict
        return EXIT_USER_ERROR, f"advnorm: error: {exc}"
    if isinstance(exc, OSError) and exc.filename is not None:  # disk full, permission denied: the user's to fix
        return EXIT_USER_ERROR, f"advnorm: error: {exc.filename}: {exc.strerror or exc}"
    if isinstance(exc, MemoryError):
        return EXIT_USER_ERROR, "advnorm: error: not enough memory for this (smaller train.patch_size or batch_size?)"
    msg = " ".join(str(exc).split())[:300]
    return EXIT_INTERNAL_ERROR, (
        f"advnorm: internal error: {type(exc).__name__}: {msg} (run with --debug for the traceback)"
    )
