"""What the CLI verbs do, as plain functions (importable, testable, no argparse)."""

from __future__ import annotations

import json
import math
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advnorm.config import Config
from advnorm.config_file import resolve
from advnorm.data.fingerprint import dataset_fingerprint, fingerprint_differences
from advnorm.data.layouts import Dataset, enclosing_dataset, open_domains, open_input
from advnorm.data.layouts.masks import attach_masks
from advnorm.errors import AdvnormError, AdvnormWarning
from advnorm.io_atomic import atomic_write_json, staged_folder
from advnorm.labels import CLASS_NAMES
from advnorm.paths import check_output_target, refuse_inside_inputs
from advnorm.run_folder import RunFolder, config_differences

if TYPE_CHECKING:  # torch is imported by the verbs that run a model, not at start-up
    from advnorm.inference import InferenceWindow


def train(
    data: list[str],
    out: Path,
    *,
    method: str | None = None,
    profile: str = "quick",
    config_file: str | None = None,
    overrides: dict | None = None,
    resume: bool = False,
    progress: bool = True,
    log=print,
) -> dict:
    from advnorm.training.loop import fit

    out = Path(out)
    chosen = {**(overrides or {}), "method": method}  # a None method: the file's
    if resume and config_file is None and (out / "config.json").exists():
        cfg = RunFolder(out).read_config(chosen)[0]  # the run's own settings, as made
    else:
        cfg = resolve(profile, file=config_file, overrides=chosen)
    datasets = open_domains(data)
    refuse_inside_inputs(out, [d.root for d in datasets], "run folder")
    summary = fit(cfg, datasets, out, resume=resume, progress=progress, log=log)
    log(format_summary(out, summary))
    return summary


def format_summary(out: Path, summary: dict) -> str:
    """The one-screen end-of-training summary: validation Dice per domain and class, and the files."""
    final = summary["final"]
    classes = summary.get("classes", CLASS_NAMES)[1:]
    lines = [
        f"\n{summary['method']} on {', '.join(summary['domains'])}: {summary['epochs']} epochs in "
        f"{summary['seconds']:.0f} s, best validation loss {summary['best_val_loss']:.4f}",
        f"{'validation Dice (patches)':<28}" + "".join(f"{c[:12]:>13}" for c in classes),
    ]
    for d in summary["domains"]:
        vals = [final.get(f"val_dice_{d}_{c}") for c in classes]
        lines.append(f"{d:<28}" + "".join(f"{math.nan if v is None else v:13.3f}" for v in vals))
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
    window: InferenceWindow | None = None,
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
        window=window,
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
    window: InferenceWindow | None = None,
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
        window=window,
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
    window: InferenceWindow | None,
    progress: bool,
    log: Callable[[str], None],
) -> list[Path]:
    """Every check first (inputs, masks, outputs, model), then all outputs at once or none (a staged folder)."""
    from tqdm import tqdm

    from advnorm.inference import TrainedModel, output_name, write_outputs

    datasets = attach_masks([open_input(spec) for spec in inputs], mask)
    out_dir = Path(out_dir)
    input_files = {Path(c.image).resolve() for d in datasets for c in d.cases}
    roots = [d.root for d in datasets if d.layout != "file"]
    roots += [r for d in datasets if d.layout == "file" if (r := enclosing_dataset(d.cases[0].image)) is not None]
    refuse_inside_inputs(out_dir, roots, "output folder")
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
    model = TrainedModel(model_dir, checkpoint=checkpoint, device=device, window=window)
    values = {id(d): _output_values(d, model.classes) for d in datasets}
    written: list[Path] = []
    try:
        with staged_folder(out_dir) as staging:  # all outputs appear together, or none (and no new folder)
            bar = tqdm(planned, disable=None if progress else True, unit="image", leave=False)  # None: a terminal only
            for ds, case in bar:
                with warnings.catch_warnings(record=True) as said:  # shown below, once they are all known
                    subject = ds.load_case(case, with_label=False)
                model.warn_if_many_windows(subject)  # at once: before the wait
                with warnings.catch_warnings(record=True) as more:
                    pred = model.predict(subject, segment="seg" in kinds)
                said += more
                for w in said:  # filtered already (--strict raised above): show each as it would have been
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)
                # one line per input: its own warning (unstripped, unlike the training data) explains a bad result
                problem = model.segmentation_problem(pred) if "seg" in kinds else None
                if problem is not None and not any(issubclass(w.category, AdvnormWarning) for w in said):
                    warnings.warn(AdvnormWarning(problem, case.image), stacklevel=2)
                paths = write_outputs(subject, pred, staging, kinds, values=values[id(ds)])
                log(f"{case.case_id}: {', '.join(p.name for p in paths)}")
                written += [out_dir / p.name for p in paths]
    except OSError as exc:
        raise AdvnormError(f"cannot write the outputs: {exc.strerror or exc}", out_dir) from None
    return written


def _output_values(ds: Dataset, classes: tuple[str, ...]) -> tuple[int, ...]:
    """The ids to write for the model's classes: the dataset's own ids when its labels are those classes
    (iSEG's 0/10/150/250), else the class indices 0, 1, 2, ..."""
    try:
        return ds.read_as(classes).label_values
    except AdvnormError:
        return tuple(range(len(classes)))


def evaluate_run(
    model_dir: Path,
    data: list[str],
    output: Path,
    *,
    mask: str | None = None,
    checkpoint: str = "best",
    device: str = "auto",
    window: InferenceWindow | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Metrics of a run on the held-out subjects of ``data``, written to ``output`` (JSON)."""
    from advnorm.evaluation.evaluate import evaluate, held_out_cases
    from advnorm.inference import TrainedModel

    output = Path(output)
    datasets = open_domains(data)
    refuse_inside_inputs(output, [d.root for d in datasets], "metrics file")
    run_files = RunFolder(model_dir)
    if output.resolve() in {p.resolve() for p in run_files.own_files()}:
        raise AdvnormError("metrics file would overwrite a file of the run folder", output)
    check_output_target(output, "metrics file", is_dir=False)
    model = TrainedModel(model_dir, checkpoint=checkpoint, device=device, window=window)
    if mask is not None:
        held_out = {(d.name, c.case_id) for d in datasets for c in held_out_cases(model, d)}
        datasets = attach_masks(datasets, mask, needed=lambda d, c: (d.name, c.case_id) in held_out)
    result = evaluate(model, datasets, log=log, progress=progress).to_json()
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
    it is trained again: the old run is set aside and comes back if the new one fails.
    """
    files = RunFolder(run_dir)
    set_aside = files.root.with_name(f".{files.root.name}.replaced")
    moved = False
    if recompute and (diffs := reuse_differences(files.root, cfg, datasets)):
        log(f"made with other settings or data ({diffs[0]}): training it again")
        shutil.rmtree(set_aside, ignore_errors=True)
        os.replace(files.root, set_aside)
        moved = True
    refuse_unless_reusable(files.root, cfg, datasets)
    try:
        payload = _train_and_evaluate(files, cfg, datasets, progress=progress, log=log)
    except BaseException:
        if moved:  # the new run failed: the old one is back, as if nothing happened
            shutil.rmtree(files.root, ignore_errors=True)
            os.replace(set_aside, files.root)
        raise
    if moved:
        shutil.rmtree(set_aside, ignore_errors=True)
    return payload


def _train_and_evaluate(
    files: RunFolder, cfg: Config, datasets: list[Dataset], *, progress: bool, log: Callable[[str], None]
) -> dict[str, Any]:
    from advnorm.evaluation.evaluate import evaluate
    from advnorm.inference import TrainedModel
    from advnorm.training.loop import fit

    if files.evaluation.exists():
        payload = json.loads(files.evaluation.read_text(encoding="utf-8"))
        if payload.get("version") == EVALUATION_VERSION:
            log("finished earlier, skipped")
            return payload
        log("finished earlier; evaluated by an older advnorm: evaluating it again")
    if not files.final.exists():
        resume = files.state.exists()
        log(f"{'resuming' if resume else 'training'} ({cfg.method})")
        fit(cfg, datasets, files.root, resume=resume, progress=progress, log=log)
    log(f"evaluating on the test subjects of {', '.join(d.name for d in datasets)}")
    payload = {
        "version": EVALUATION_VERSION,
        **evaluate(TrainedModel(files.root), datasets, log=log, progress=progress).to_json(),
    }
    atomic_write_json(files.evaluation, payload)
    return payload


EVALUATION_VERSION = 3
"""Bumped when the evaluation gains or changes a measure (2: tissue overlap within each domain; 3: the default
inference window became the training patch size, so that no table mixes windows): a finished run's
evaluation.json of another version is recomputed from its weights, without training again."""


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
    return config_differences(stored, cfg, MAY_DIFFER) + fingerprint_differences(
        stored_data, [dataset_fingerprint(d) for d in datasets]
    )
