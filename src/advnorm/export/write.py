"""``export_run``: every check first, then export, verify and describe in a staging folder, written all or nothing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import torch

from advnorm.errors import AdvnormError, one_line
from advnorm.export.exporters import EXPORTERS, FORMATS, SUFFIX, ExportFormat, quiet, require_onnx_packages
from advnorm.export.metadata import describe
from advnorm.export.modules import exportable
from advnorm.export.verify import check_export
from advnorm.inference import TrainedModel
from advnorm.io_atomic import atomic_write_json, staged_folder
from advnorm.paths import check_output_target
from advnorm.run_folder import RunFolder


def export_run(
    run_dir: str | Path,
    out_dir: str | Path,
    fmt: ExportFormat,
    *,
    segmenter_only: bool = False,
    overwrite: bool = False,
    checkpoint: Literal["best", "final"] = "best",
) -> list[Path]:
    """Export the run in ``run_dir`` to ``out_dir`` as ``fmt``; returns the model file and its JSON.

    Every check comes first (format, packages, run folder, output folder); the files then appear in
    ``out_dir`` together or not at all. Existing files are refused unless ``overwrite``; the run's own
    files are never overwritten.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if fmt not in FORMATS:
        raise AdvnormError(f"unknown export format {fmt!r}; use onnx or torchscript", out_dir)
    if checkpoint not in ("best", "final"):
        raise AdvnormError(f"unknown checkpoint {checkpoint!r}; use best or final", run_dir)
    if fmt == "onnx":
        require_onnx_packages()
    run_files = RunFolder(run_dir)
    run_files.read_raw_config()  # not a run folder, or an unreadable config.json: one line naming it
    stem = "segmenter" if segmenter_only else "model"
    targets = [out_dir / f"{stem}{SUFFIX[fmt]}", out_dir / f"{stem}.json"]
    own = {p.resolve() for p in run_files.own_files()}
    for t in targets:
        if t.resolve() in own:
            raise AdvnormError("export would overwrite a file of the run folder", t)
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        raise AdvnormError("export file exists; pass --overwrite to replace it", existing[0])
    check_output_target(out_dir, "export folder", is_dir=True)

    model = TrainedModel(run_dir, checkpoint=checkpoint, device="cpu")
    exp = exportable(model, segmenter_only)
    try:
        with staged_folder(out_dir) as staging:
            started = time.perf_counter()
            model_file = staging / targets[0].name
            with torch.no_grad(), quiet():
                try:
                    EXPORTERS[fmt](exp, model_file)
                except (RuntimeError, TypeError, ValueError, AssertionError, ImportError) as exc:
                    raise AdvnormError(f"{fmt} export failed: {type(exc).__name__}: {one_line(exc)}", run_dir) from exc
            seconds = time.perf_counter() - started
            with quiet():
                check = check_export(exp, model_file, fmt, targets[0])
            meta = describe(model, fmt, model_file, exp.stride, segmenter_only, check, checkpoint)
            meta["export_seconds"] = round(seconds, 2)
            atomic_write_json(staging / targets[1].name, meta)
    except OSError as exc:
        raise AdvnormError(f"cannot write the export: {exc.strerror or exc}", out_dir) from None
    return targets
