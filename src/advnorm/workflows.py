"""What the CLI verbs do, as plain functions (importable, testable, no argparse)."""

from __future__ import annotations

from pathlib import Path

from advnorm.config import resolve
from advnorm.data.layouts import open_domains, open_input
from advnorm.errors import AdvnormError
from advnorm.io_atomic import atomic_write_json


def train(data: list[str], out: Path, *, method: str, profile: str = "quick", config_file: str | None = None,
          overrides: dict | None = None, resume: bool = False, progress: bool = True, log=print) -> dict:
    from advnorm.training.loop import fit

    out = Path(out)
    if resume and config_file is None and (out / "config.json").exists():
        config_file = str(out / "config.json")
    cfg = resolve(profile, file=config_file, overrides={**(overrides or {}), "method": method})
    datasets = open_domains(data)
    _refuse_inside_inputs(out, [d.root for d in datasets], "run folder")
    summary = fit(cfg, datasets, out, resume=resume, progress=progress, log=log)
    log(f"done: {out} (best validation loss {summary['best_val_loss']:.4f}, "
        f"final validation Dice {summary['final'].get('val_dice_mean', float('nan')):.3f}, {summary['seconds']:.0f} s)")
    return summary


def predict(model_dir: Path, inputs: list[str], out_dir: Path, *, overwrite: bool = False, checkpoint: str = "best",
            device: str = "auto", log=print) -> list[Path]:
    from advnorm.inference import TrainedModel, write_outputs

    datasets = [open_input(spec) for spec in inputs]
    out_dir = Path(out_dir)
    input_files = {Path(c.image).resolve() for d in datasets for c in d.cases}
    _refuse_inside_inputs(out_dir, [d.root for d in datasets if d.layout != "file"], "output folder")
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
    model = TrainedModel(model_dir, checkpoint=checkpoint, device=device)
    written: list[Path] = []
    for ds, case in planned:
        subject = ds.load_case(case, with_label=False)
        paths = write_outputs(subject, model.predict(subject), out_dir)
        log(f"{case.case_id}: {paths[0].name}, {paths[1].name}")
        written += list(paths)
    return written


def evaluate_run(model_dir: Path, data: list[str], output: Path, *, checkpoint: str = "best", device: str = "auto", log=print) -> dict:
    from advnorm.evaluation.evaluate import evaluate
    from advnorm.inference import TrainedModel

    datasets = open_domains(data)
    model = TrainedModel(model_dir, checkpoint=checkpoint, device=device)
    result = evaluate(model, datasets, log=log).to_json()
    atomic_write_json(output, result)
    mean = result["summary"].get("mean", {}).get("dice", {})
    log("mean Dice: " + " ".join(f"{k}={v['mean']:.3f}" for k, v in mean.items() if isinstance(v, dict)))
    log(f"wrote {output}")
    return result


def _refuse_inside_inputs(out: Path, roots: list[Path], what: str) -> None:
    out_r = Path(out).resolve()
    for root in roots:
        root_r = Path(root).resolve()
        if out_r == root_r or root_r in out_r.parents:
            raise AdvnormError(f"{what} must not be inside an input dataset folder ({root})", out)
