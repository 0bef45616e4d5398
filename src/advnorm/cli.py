"""The ``advnorm`` command: parse, call, report. Errors are one line and a non-zero exit (``--debug``: traceback)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from collections.abc import Callable
from typing import Any

from advnorm.cli_args import EXIT_USER_ERROR, build_parser
from advnorm.errors import AdvnormError, AdvnormWarning

EXIT_INTERNAL_ERROR = 1


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
        **_inference_options(args),
    )


def _export(args: argparse.Namespace) -> None:
    from advnorm.export import export_run

    for path in export_run(
        args.model,
        args.output,
        args.fmt,
        segmenter_only=args.segmenter_only,
        overwrite=args.overwrite,
        checkpoint=args.checkpoint,
    ):
        print(path)


def _evaluate(args: argparse.Namespace) -> None:
    from advnorm.workflows import evaluate_run

    evaluate_run(
        args.model,
        args.data,
        args.output,
        mask=args.mask,
        **_inference_options(args),
    )


def _inference_options(args: argparse.Namespace) -> dict[str, Any]:
    """What ``cli_args._add_inference`` parsed, as the keywords of predict, normalize and evaluate_run."""
    from advnorm.inference import InferenceWindow

    return {
        "checkpoint": args.checkpoint,
        "device": args.device,
        "window": InferenceWindow(args.window, args.overlap),
        "progress": not args.no_progress,
    }


def _reproduce(args: argparse.Namespace) -> None:
    from advnorm.reproduce import reproduce

    reproduce(
        args.data,
        args.out,
        profile=args.profile,
        config_file=args.config,
        overrides=_training_overrides(args),
        methods=_methods(args),
        seeds=args.seeds,
        unseen=args.unseen,
        recompute=args.recompute,
        progress=not args.no_progress,
    )


def _methods(args: argparse.Namespace) -> list[str] | None:
    """``--methods`` as a list (names checked by reproduce), or None when not given; spaces around a name and
    empty items (``a,,b``, a trailing comma) are dropped, and a list with no name at all is an error."""
    if args.methods is None:
        return None
    names = [name for name in (part.strip() for part in args.methods.split(",")) if name]
    if not names:
        raise AdvnormError(f"--methods {args.methods!r} names no method")
    return names


def _demo(args: argparse.Namespace) -> None:
    from advnorm.reproduce import demo

    demo(
        args.out,
        full=args.full,
        methods=_methods(args),
        epochs=args.epochs,
        recompute=args.recompute,
        progress=not args.no_progress,
    )


def _cache(args: argparse.Namespace) -> None:
    from advnorm.data import cache_admin
    from advnorm.data.cache import ENV, cache_root

    root = cache_root()
    if root is None:
        raise AdvnormError(f"the working-grid cache is off (--cache off or {ENV}=off): nothing to show")
    if args.unused_days is not None and args.unused_days < 0:
        raise AdvnormError("--unused-days must be >= 0")
    max_bytes = None if args.max_size is None else cache_admin.parse_size(args.max_size)
    found = cache_admin.entries(root)
    print(cache_admin.describe(root, found))
    if not (args.clear or args.unused_days is not None or max_bytes is not None):
        return
    chosen = cache_admin.choose(found, everything=args.clear, unused_days=args.unused_days, max_bytes=max_bytes)
    freed = cache_admin.remove(chosen)
    print(f"removed {len(chosen)} subject(s), {cache_admin.human(freed)}")
    print(cache_admin.describe(root, cache_admin.entries(root)))


VERBS: dict[str, Callable[[argparse.Namespace], None]] = {
    "inspect": _inspect,
    "phantom": _phantom,
    "train": _train,
    "predict": _predict,
    "normalize": _predict,
    "evaluate": _evaluate,
    "export": _export,
    "reproduce": _reproduce,
    "demo": _demo,
    "cache": _cache,
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
    from advnorm.data.cache import use_location

    with warnings.catch_warnings(), use_location(getattr(args, "cache", None)):  # for this command only
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
