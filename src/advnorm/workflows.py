"""What the CLI verbs do, as plain functions (importable, testable, no argparse)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from advnorm.config import Config, differences, resolve
from advnorm.data.fingerprint import dataset_fingerprint, fingerprint_differences
from advnorm.data.layouts import Dataset, open_domains, open_input
from advnorm.data.layouts.masks import attach_masks
from advnorm.errors import AdvnormError
from advnorm.io_atomic import atomic_write_json, staged_folder
from advnorm.labels import TISSUES
from advnorm.paths import check_output_target, refuse_inside_inputs
from advnorm.run_folder import RunFolder


def train(
    data: list[str],
    out: Path,
    *,
    method: str,
    profile: str = "quick",
    config_file: str | None = None,
    overrides: dict | None = None,
    resume: bool = False,
    progress: bool = True,
    log=print,
) -> dict:
    from advnorm.training.loop import fit

    out = Path(out)
    if resume and config_file is None and (out / "config.json").exists():
        config_file = str(out / "config.json")
    cfg = resolve(profile, file=config_file, overrides={**(overrides or {}), "method": method})
    datasets = open_domains(data)
    refuse_inside_inputs(out, [d.root for d in datasets], "run folder")
    summary = fit(cfg, datasets, out, resume=resume, progress=progress, log=log)
    log(format_summary(out, summary))
    return summary


def format_summary(out: Path, summary: dict) -> str:
    """The one-screen end-of-training summary: validation Dice per domain and class, and the files."""
    final = summary["final"]
    lines = [
        f"\n{summary['method']} on {', '.join(summary['domains'])}: {summary['epochs']} epochs in "
        f"{summary['seconds']:.0f} s, best validation loss {summary['best_val_loss']:.4f}",
        f"{'validation Dice (patches)':<28}" + "".join(f"{t:>7}" for t in TISSUES),
    ]
    for d in summary["domains"]:
        vals = [final.get(f"val_dice_{d}_{c}", float("nan")) for c in TISSUES]
        lines.append(f"{d:<28}" + "".join(f"{v:7.3f}" for v in vals))
    lines.append(f"run folder: {out} (checkpoint_best/final.safetensors, training_log.csv, progress.png, config.json)")
    return "\n".join(lines)


def predict(
    model_dir: Path,
    inputs: list[str],
    out_dir: Path,
    *,
    mask: str | None = None,
    overwrite: bool = False,
    checkpoint: str = "best",
    device: str = "auto",
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Normalize and segment every input: ``<case>_normalized.nii.gz`` and ``<case>_seg.nii.gz`` in ``out_dir``."""
    return _write_volumes(
        model_dir,
        inputs,
        out_dir,
        ("normalized", "seg"),
        mask=mask,
        overwrite=overwrite,
        checkpoint=checkpoint,
        device=device,
        progress=progress,
        log=log,
    )


def normalize(
    model_dir: Path,
    inputs: list[str],
    out_dir: Path,
    *,
    mask: str | None = None,
    overwrite: bool = False,
    checkpoint: str = "best",
    device: str = "auto",
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Only the harmonized image of every input, ``<case>_normalized.nii.gz``, for another pipeline to use."""
    return _write_volumes(
        model_dir,
        inputs,
        out_dir,
        ("normalized",),
        mask=mask,
        overwrite=overwrite,
        checkpoint=checkpoint,
        device=device,
        progress=progress,
        log=log,
    )


def _write_volumes(
    model_dir: Path,
    inputs: list[str],
    out_dir: Path,
    kinds: tuple[str, ...],
    *,
    mask: str | None,
    overwrite: bool,
    checkpoint: str,
    device: str,
    progress: bool,
    log: Callable[[str], None],
) -> list[Path]:
    """Every check first (inputs, masks, outputs, model), then all outputs at once or none (a staged folder)."""
    from tqdm import tqdm

    from advnorm.inference import TrainedModel, output_name, write_outputs

    datasets = attach_masks([open_input(spec) for spec in inputs], mask)
    out_dir = Path(out_dir)
    input_files = {Path(c.image).resolve() for d in datasets for c in d.cases}
    refuse_inside_inputs(out_dir, [d.root for d in datasets if d.layout != "file"], "output folder")
    planned = [(d, c) for d in datasets for c in d.cases]
    if not planned:
        raise AdvnormError("no images to process", inputs[0])
    targets = [out_dir / output_name(c.case_id, kind) for _, c in planned for kind in kinds]
    clash = [t for t in targets if t.resolve() in input_files]
    if clash:
        raise AdvnormError("output would overwrite an input image", clash[0])
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        raise AdvnormError("output exists; pass --overwrite to replace it", existing[0])
    if len(set(targets)) < len(targets):
        dup = next(t for t in targets if targets.count(t) > 1)
        raise AdvnormError("two inputs have the same case name; their outputs would collide", dup)
    check_output_target(out_dir, "output folder", is_dir=True)
    model = TrainedModel(model_dir, checkpoint=checkpoint, device=device)
    written: list[Path] = []
    try:
        with staged_folder(out_dir) as staging:  # all outputs appear together, or none (and no new folder)
            for ds, case in tqdm(planned, disable=not progress, unit="image", leave=False):
                subject = ds.load_case(case, with_label=False)
                paths = write_outputs(subject, model.predict(subject, segment="seg" in kinds), staging, kinds)
                log(f"{case.case_id}: {', '.join(p.name for p in paths)}")
                written += [out_dir / p.name for p in paths]
    except OSError as exc:
        raise AdvnormError(f"cannot write the outputs: {exc.strerror or exc}", exc.filename or out_dir) from None
    return written


def evaluate_run(
    model_dir: Path,
    data: list[str],
    output: Path,
    *,
    mask: str | None = None,
    checkpoint: str = "best",
    device: str = "auto",
    log: Callable[[str], None] = print,
) -> dict:
    """Metrics of a run on the held-out subjects of ``data``, written to ``output`` (JSON)."""
    from advnorm.evaluation.evaluate import evaluate, held_out_cases
    from advnorm.inference import TrainedModel

    output = Path(output)
    datasets = open_domains(data)
    check_output_target(output, "metrics file", is_dir=False)
    model = TrainedModel(model_dir, checkpoint=checkpoint, device=device)
    if mask is not None:
        held_out = {(d.name, c.case_id) for d in datasets for c in held_out_cases(model, d)}
        datasets = attach_masks(datasets, mask, needed=lambda d, c: (d.name, c.case_id) in held_out)
    result = evaluate(model, datasets, log=log).to_json()
    atomic_write_json(output, result)
    mean = result["summary"].get("mean", {}).get("dice", {})
    log("mean Dice: " + " ".join(f"{k}={v['mean']:.3f}" for k, v in mean.items() if isinstance(v, dict)))
    log(f"wrote {output}")
    return result


# -- train, then evaluate: one run of a comparison (reproduce, experiments) ---------------------------------

MAY_DIFFER = ("train.device",)
"""Config keys a run may be reused under with another value: where it runs, not what it computes."""


def train_and_evaluate(
    run_dir: Path,
    cfg: Config,
    datasets: list[Dataset],
    *,
    recompute: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train (or resume) ``cfg`` into ``run_dir`` and evaluate it on the held-out subjects; its evaluation JSON.

    A run folder made earlier is reused (finished and evaluated: read back; interrupted: resumed) only
    when it was made with this config and these data; otherwise this is refused, or with ``recompute``
    the old run is deleted and trained again.
    """
    from advnorm.evaluation.evaluate import evaluate
    from advnorm.inference import TrainedModel
    from advnorm.training.loop import fit

    files = RunFolder(run_dir)
    if recompute and (diffs := reuse_differences(files.root, cfg, datasets)):
        log(f"made with other settings or data ({diffs[0]}): training it again")
        shutil.rmtree(files.root)
    refuse_unless_reusable(files.root, cfg, datasets)
    if files.evaluation.exists():
        log("finished earlier, skipped")
        return json.loads(files.evaluation.read_text(encoding="utf-8"))
    if not files.final.exists():
        resume = files.state.exists()
        log(f"{'resuming' if resume else 'training'} ({cfg.method})")
        fit(cfg, datasets, files.root, resume=resume, progress=progress, log=log)
    log(f"evaluating on the test subjects of {', '.join(d.name for d in datasets)}")
    payload = evaluate(TrainedModel(files.root), datasets, log=log).to_json()
    atomic_write_json(files.evaluation, payload)
    return payload


def refuse_unless_reusable(run_dir: Path, cfg: Config, datasets: list[Dataset]) -> None:
    diffs = reuse_differences(run_dir, cfg, datasets)
    if diffs:
        raise AdvnormError(
            f"this run was made with other settings or data ({'; '.join(diffs[:3])}); use another "
            "--out, or --recompute to train it again",
            run_dir,
        )


def reuse_differences(run_dir: Path, cfg: Config, datasets: list[Dataset]) -> list[str]:
    """Why an existing run folder cannot be reused for ``cfg`` on ``datasets`` (empty: it can, or there is none)."""
    files = RunFolder(run_dir)
    if not files.root.is_dir() or not any(files.root.iterdir()):
        return []
    try:
        stored = json.loads(files.config.read_text(encoding="utf-8"))
        stored_data = stored["run"]["data"]
    except (OSError, ValueError, KeyError, TypeError):
        return ["its config.json with the record of its data is missing or unreadable"]
    stored.pop("run", None)
    stored.pop("versions", None)
    wanted = cfg.to_dict()
    for dotted in MAY_DIFFER:
        head, key = dotted.split(".")
        for d in (stored, wanted):
            d.get(head, {}).pop(key, None)
    return differences(stored, wanted, there="there", here="now") + fingerprint_differences(
        stored_data, [dataset_fingerprint(d) for d in datasets]
    )
