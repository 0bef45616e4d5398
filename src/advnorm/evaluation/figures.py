"""Figures of the paper (Fig. 3, Fig. 4) and segmentation overlays, as PNG files (learning curves: ``training.log``).

Matplotlib runs on the Agg backend and nothing is ever shown; every function writes its
PNG atomically (:func:`advnorm.plotting.save_figure`) so a killed run never leaves a
truncated image, and returns the path it wrote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.colors import ListedColormap

from advnorm.labels import TISSUES
from advnorm.plotting import plt, save_figure

TISSUE_COLORS = ("#1f77b4", "#2ca02c", "#d62728")
"""CSF, GM, WM overlay colours."""
_HIST_PERCENTILES = (1.0, 99.0)


def axial_index(volume: np.ndarray, mask: np.ndarray | None = None) -> int:
    """Middle axial slice (last axis) of the brain: of ``mask`` if given, else of the non-zero voxels."""
    region = np.asarray(mask if mask is not None else volume) != 0
    idx = np.flatnonzero(region.any(axis=(0, 1)))
    return int((idx[0] + idx[-1]) // 2) if idx.size else volume.shape[-1] // 2


def _axial(volume: np.ndarray, k: int) -> np.ndarray:
    """Axial slice ``k`` oriented for display (rows = second axis, flipped so anterior is up)."""
    return np.asarray(volume)[:, :, k].T[::-1]


def _grey_limits(img: np.ndarray) -> tuple[float, float]:
    vals = img[np.isfinite(img) & (img != 0)]
    if vals.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(vals, (0.5, 99.5))
    return float(lo), float(hi if hi > lo else lo + 1.0)


def fig3_normalization(rows: Sequence[tuple[str, np.ndarray, np.ndarray]], out: Path) -> Path:
    """Paper Fig. 3: per domain, an axial slice of the input (left) and of G's output (right).

    ``rows`` holds ``(domain name, input volume, normalized volume)``. The slice is the
    middle of the input's non-zero (brain) extent; each panel has its own grey scale
    (0.5-99.5th percentile of its non-zero pixels) because input and output intensities
    live on different scales.
    """
    if not rows:
        raise ValueError("fig3_normalization needs at least one row")
    fig, axes = plt.subplots(len(rows), 2, figsize=(7, 3.4 * len(rows)), squeeze=False)
    for r, (name, image, normalized) in enumerate(rows):
        k = axial_index(image)
        for c, (vol, what) in enumerate(((image, "input"), (normalized, "normalized"))):
            sl = _axial(vol, k)
            lo, hi = _grey_limits(sl)
            ax = axes[r, c]
            ax.imshow(sl, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_title(f"{name}: {what} (z={k})", fontsize=10)
            ax.axis("off")
    fig.suptitle("Inputs and adversarially normalized images")
    return save_figure(fig, out)


def _tones(cmap_name: str, n: int) -> list:
    cmap = plt.get_cmap(cmap_name)
    return [cmap(v) for v in np.linspace(0.85, 0.45, max(n, 1))]


def fig4_histograms(
    before: Mapping[str, Mapping[str, np.ndarray]],
    after: Mapping[str, Mapping[str, np.ndarray]],
    out: Path,
    bins: int = 100,
) -> Path:
    """Paper Fig. 4: per tissue, intensity histograms of the inputs (reds) and of G's outputs (blues).

    ``before[domain][tissue]`` and ``after[domain][tissue]`` are 1-D arrays of voxel
    intensities. Inputs and outputs are on unrelated scales, so the figure has two rows,
    inputs on top and outputs below, one column per tissue (CSF, GM, WM), each panel
    with its own x axis spanning the 1st-99th percentile of what it shows. Two rows
    rather than rescaling both to [0, 1]: rescaling would hide exactly what the figure
    is about, the spread of each tissue relative to the others. Histograms are
    densities, so domains with different voxel counts compare.
    """
    tissues = list(dict.fromkeys(t for d in (*before.values(), *after.values()) for t in d))
    if not tissues:
        raise ValueError("fig4_histograms found none of CSF, GM, WM in its inputs")
    fig, axes = plt.subplots(2, len(tissues), figsize=(4.2 * len(tissues), 6.4), squeeze=False)
    for r, (data, cmap, what) in enumerate(((before, "Reds", "input"), (after, "Blues", "normalized"))):
        colors = _tones(cmap, len(data))
        for c, tissue in enumerate(tissues):
            ax = axes[r, c]
            series = {d: np.asarray(v[tissue], float).ravel() for d, v in data.items() if tissue in v}
            series = {d: x[np.isfinite(x)] for d, x in series.items()}
            series = {d: x for d, x in series.items() if x.size}
            if series:
                lo, hi = np.percentile(np.concatenate(list(series.values())), _HIST_PERCENTILES)
                hi = hi if hi > lo else lo + 1.0
                for color, (domain, x) in zip(colors, series.items(), strict=False):
                    ax.hist(
                        x,
                        bins=bins,
                        range=(lo, hi),
                        density=True,
                        histtype="stepfilled",
                        alpha=0.45,
                        color=color,
                        edgecolor=color,
                        label=domain,
                    )
                ax.legend(fontsize=8)
            else:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(f"{tissue} ({what})", fontsize=10)
            ax.set_xlabel("intensity")
            ax.set_ylabel("density")
    fig.suptitle("Intensity histograms: inputs (red) and generator outputs (blue)")
    fig.tight_layout()
    return save_figure(fig, out)


def _colours(n: int) -> list[str]:
    """CSF blue, GM green, WM red for the paper's classes; a qualitative palette beyond."""
    if n <= len(TISSUE_COLORS):
        return list(TISSUE_COLORS[:n])
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [matplotlib.colors.to_hex(cmap(i % cmap.N)) for i in range(n)]


def _label_rgba(labels: np.ndarray, n: int) -> np.ndarray:
    cmap = ListedColormap(["none", *_colours(n)])
    rgba = cmap(np.clip(labels.astype(int), 0, n))
    rgba[..., 3] = np.where(labels > 0, 0.45, 0.0)
    return rgba


def segmentation_overlay(
    image: np.ndarray,
    truth: np.ndarray,
    pred: np.ndarray,
    out: Path,
    title: str = "",
    classes: tuple[str, ...] = TISSUES,
) -> Path:
    """Axial slice through the middle of the labelled brain, ground truth (left) and prediction (right) in colour.

    The foreground ``classes`` (labels 1, 2, ...) are drawn as translucent fills (CSF blue, GM green, WM red
    for the paper's) over the image, which shows both the boundaries and the misclassified regions.
    """
    k = axial_index(image, mask=np.asarray(truth) > 0)
    sl = _axial(image, k)
    lo, hi = _grey_limits(sl)
    fig, axes = plt.subplots(1, 2, figsize=(8, 4.4), squeeze=False)
    for ax, (labels, what) in zip(axes[0], ((truth, "ground truth"), (pred, "prediction")), strict=True):
        ax.imshow(sl, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        ax.imshow(_label_rgba(_axial(labels, k), len(classes)), interpolation="nearest")
        ax.set_title(what, fontsize=10)
        ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in _colours(len(classes))]
    fig.legend(handles, classes, loc="lower center", ncol=min(len(classes), 5), fontsize=9)
    fig.suptitle(f"{title} (z={k})" if title else f"z={k}")
    return save_figure(fig, out)


def tissue_overlap_figure(rows: Sequence[Mapping[str, Any]], out: Path) -> Path:
    """Beside Table 2: per test domain, the overlap of each tissue pair's intensity histograms (0: separable,
    1: the same) in the inputs and in what each method feeds S. ``rows`` as ``results.overlap_rows``."""
    domains = list(dict.fromkeys(str(r["domain"]) for r in rows))
    methods = list(dict.fromkeys(str(r["method"]) for r in rows))
    pairs = [k for k in rows[0] if k not in ("method", "domain")] if rows else []
    if not domains or not pairs:
        raise ValueError("tissue_overlap_figure needs at least one row with tissue pairs")
    fig, axes = plt.subplots(1, len(domains), figsize=(4.6 * len(domains), 3.8), squeeze=False, sharey=True)
    width = 0.8 / len(methods)
    colors = ["#7f7f7f", *_colours(max(len(methods) - 1, 1))]
    for ax, domain in zip(axes[0], domains, strict=True):
        for m, method in enumerate(methods):
            found = [r for r in rows if r["domain"] == domain and r["method"] == method]
            if not found:
                continue
            values = [float(found[0][p]) for p in pairs]
            ax.bar(np.arange(len(pairs)) + m * width, values, width, color=colors[m % len(colors)], label=method)
        ax.set_xticks(np.arange(len(pairs)) + width * (len(methods) - 1) / 2, pairs, fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(domain, fontsize=10)
    axes[0, 0].set_ylabel("histogram overlap (0 = separable)")
    axes[0, -1].legend(fontsize=7)
    fig.suptitle("Tissue overlap within each domain: inputs (grey) and what each method feeds S")
    fig.tight_layout()
    return save_figure(fig, out)
