"""What the CLI verbs do, as plain functions (importable, testable, no argparse)."""

from __future__ import annotations

import os
from pathlib import Path

from advnorm.config import resolve
from advnorm.data.layouts import open_domains, open_input
from advnorm.errors import AdvnormError
from advnorm.io_atomic import atomic_write_json, staged_folder


def train(data: list[str], out: Path, *, method: str, profile: str = "quick", config_file: str | None = None,
          overrides: dict | None = None, resume: bool = False, progress: bool = True, log=print) -> dict:
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
    lines = [f"\n{summary['method']} on {', '.join(summary['domains'])}: {summary['epochs']} epochs in "
             f"{summary['seconds']:.0f} s, best validation loss {summary['best_val_loss']:.4f}",
             f"{'validation Dice (patches)':<28}{'CSF':>7}{'GM':>7}{'WM':>7}"]
    for d in summary["domains"]:
        vals = [final.get(f"val_dice_{d}_{c}", float("nan")) for c in ("CSF", "GM", "WM")]
        lines.append(f"{d:<28}" + "".join(f"{v:7.3f}" for v in vals))
    lines.append(f"run folder: {out} (checkpoint_best/final.safetensors, training_log.csv, progress.png, config.json)")
    return "\n".join(lines)


def predict(model_dir: Path, inputs: list[str], out_dir: Path, *, overwrite: bool = False, checkpoint: str = "best",
            device: str = "auto", log=print) -> list[Path]:
    from advnorm.inference import TrainedModel, write_outputs

    datasets = [open_input(spec) for spec in inputs]
    out_dir = Path(out_dir)
    input_files = {Path(c.image).resolve() for d in datasets for c in d.cases}
    refuse_inside_inputs(out_dir, [d.root for d in datasets if d.layout != "file"], "output folder")
    planned = [(d, c) for d in datasets for c in d.cases]
    if not planned:
        raise AdvnormError("no images to predict", inputs[0])
    targets = [out_dir / f"{c.case_id}_{kind}.nii.gz" for _, c in planned for kind in ("normalized", "seg")]
    clash = [t for t in targets if t.resolve() in input_files]
    if clash:
        raise AdvnormError("output would overwrite an input image", clash[0])
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        raise AdvnormError("output exists; pass --overwrite to replace it", existing[0])
    if len(set(targets)) < len(targets):
        dup = next(t for t in targets if targets.count(t) > 1)
        raise AdvnormError("two inputs have the same case name; their outputs would collide", dup)
    _check_output_parent(out_dir, "output folder", is_dir=True)
    model = TrainedModel(model_dir, checkpoint=checkpoint, device=device)
    written: list[Path] = []
    try:
        with staged_folder(out_dir) as staging:  # all outputs appear together, or none (and no new folder)
            for ds, case in planned:
                subject = ds.load_case(case, with_label=False)
                paths = write_outputs(subject, model.predict(subject), staging)
                log(f"{case.case_id}: {paths[0].name}, {paths[1].name}")
                written += [out_dir / p.name for p in paths]
    except OSError as exc:
        raise AdvnormError(f"cannot write the outputs: {exc.strerror or exc}", exc.filename or out_dir) from None
    return written


def evaluate_run(model_dir: Path, data: list[str], output: Path, *, checkpoint: str = "best", device: str = "auto", log=print) -> dict:
    from advnorm.evaluation.evaluate import evaluate
    from advnorm.inference import TrainedModel

    output = Path(output)
    datasets = open_domains(data)
    _check_output_parent(output, "metrics file", is_dir=False)
    model = TrainedModel(model_dir, checkpoint=checkpoint, device=device)
    result = evaluate(model, datasets, log=log).to_json()
    atomic_write_json(output, result)
    mean = result["summary"].get("mean", {}).get("dice", {})
    log("mean Dice: " + " ".join(f"{k}={v['mean']:.3f}" for k, v in mean.items() if isinstance(v, dict)))
    log(f"wrote {output}")
    return result


def refuse_inside_inputs(out: Path, roots: list[Path], what: str) -> None:
    out_r = Path(out).resolve()
    for root in roots:
        root_r = Path(root).resolve()
        if out_r == root_r or root_r in out_r.parents:
            raise AdvnormError(f"{what} must not be inside an input dataset folder ({root})", out)


def _check_output_parent(out: Path, what: str, *, is_dir: bool) -> None:
    """Refuse, before any work, an output that cannot be created: a file where a folder is needed, or vice versa."""
    out = Path(out)
    if out.exists() and out.is_dir() != is_dir:
        raise AdvnormError(f"{what} is {'a file' if is_dir else 'a folder'}; expected {'a folder' if is_dir else 'a file'}", out)
    for folder in ((out,) if is_dir else ()) + tuple(out.parents):
        if folder.exists():
            if not folder.is_dir():
                raise AdvnormError(f"cannot create the {what}: this is a file, not a folder", folder)
            if not os.access(folder, os.W_OK | os.X_OK):
                raise AdvnormError(f"cannot create the {what}: folder is not writable", folder)
            break
