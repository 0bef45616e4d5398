"""The report's figures: Fig. 3 and Fig. 4 of the paper, segmentation overlays and learning curves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from advnorm.data.layouts import Dataset
from advnorm.evaluation.results import Cell
from advnorm.run_folder import RunFolder
from advnorm.training.log import plot_learning_curves


def write_figures(
    out: Path,
    datasets: list[Dataset],
    cells: list[Cell],
    run_dir: Callable[[Cell], Path],
    figure_methods: tuple[str, ...],
) -> list[str]:
    """Figures in ``out``; their file names. Fig. 3/4 and overlays come from the first seed of each of
    ``figure_methods`` (the methods with a G), on the first test subject of each domain; learning curves
    from the first seed of every model."""
    made: list[str] = []
    first: dict[str, Cell] = {}
    for cell in sorted(cells, key=lambda c: c.seed):
        first.setdefault(cell.name, cell)
    for method in figure_methods:
        chosen = first.get(method)
        if chosen is not None and RunFolder(run_dir(chosen)).best.exists():
            made += _normalization_figures(out, datasets, run_dir(chosen), method)
    for name, cell in first.items():
        log = RunFolder(run_dir(cell)).log
        if log.exists():
            plot_learning_curves(log, out / f"curves_{name}.png")
            made.append(f"curves_{name}.png")
    return made


def _normalization_figures(out: Path, datasets: list[Dataset], run: Path, method: str) -> list[str]:
    from advnorm.evaluation.evaluate import held_out_cases, raw_input
    from advnorm.evaluation.figures import fig3_normalization, fig4_histograms, segmentation_overlay
    from advnorm.inference import TrainedModel

    model = TrainedModel(run)
    rows, before, after, made = [], {}, {}, []
    for ds in datasets:
        cases = held_out_cases(model, ds)
        if not cases:
            continue
        subject = ds.load_case(cases[0])
        label = subject.require_label()
        pred = model.predict(subject)
        x = raw_input(model, subject)
        rows.append((ds.name, x, pred.normalized))
        before[ds.name] = {t: x[label == c] for c, t in enumerate(model.classes[1:], start=1)}
        after[ds.name] = {t: pred.normalized[label == c] for c, t in enumerate(model.classes[1:], start=1)}
        name = f"overlay_{method}_{ds.name}.png"
        segmentation_overlay(
            pred.normalized,
            label,
            pred.labels,
            out / name,
            title=f"{method}, {ds.name}/{cases[0].case_id}",
            classes=model.classes[1:],
        )
        made.append(name)
    if rows:
        suffix = "" if method == "adversarial" else f"_{method}"
        fig3_normalization(rows, out / f"fig3{suffix}.png")
        fig4_histograms(before, after, out / f"fig4{suffix}.png")
        made = [f"fig3{suffix}.png", f"fig4{suffix}.png", *made]
    return made
