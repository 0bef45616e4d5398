"""Full-volume normalization and segmentation with a trained run, results on the input's own grid.

G and S use BatchNorm, whose eval-mode output does not depend on the statistics of
a window, so a volume is processed fully convolutionally in sliding windows of any
size; the default is the training patch size (the window's border still matters, see
:class:`InferenceWindow`), two windows per forward pass, blended with Gaussian
weights; what is averaged is G's output
and S's softmax probabilities, never label ids. Probabilities are resampled back
to the source grid and only then turned into labels.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from monai.inferers import sliding_window_inference

from advnorm.config import INFERENCE_OVERLAP, INFERENCE_PASS_VOXELS, model_stride
from advnorm.data.divergence import jensen_shannon
from advnorm.data.intensity import FAR_FROM_TRAINING_JSD, input_histogram, raw_input_problem, transform_image
from advnorm.data.subject import Subject
from advnorm.data.tissue_shares import implausible_shares, tissue_shares
from advnorm.data.volume_io import save_nifti
from advnorm.errors import AdvnormError, AdvnormWarning, one_line
from advnorm.labels import CLASS_NAMES
from advnorm.methods import METHOD_SPECS
from advnorm.models.networks import Networks
from advnorm.models.transfer import image_stats
from advnorm.models.weights import load_weights
from advnorm.run_folder import RunFolder, pick_device


@dataclass(frozen=True)
class InferenceWindow:
    """The sliding window of whole-volume inference. ``edge`` None: the run's training patch size, what the
    networks saw in training (nnU-Net's choice). Larger windows (160^3 at overlap 0.25, the default until
    2026-11-28) take a third to a half of the time and give labels within 0.010 mean Dice of it for most methods,
    but not for two whose S reads context: the paper's ``adversarial`` (its G erases the GM/WM contrast) and
    ``augmented`` (S trained under random contrasts), which segment differently with them (docs/method.md,
    "Whole-volume inference and the window")."""

    edge: int | None = None
    overlap: float = INFERENCE_OVERLAP


@dataclass
class Prediction:
    normalized: np.ndarray  # working grid, float32 (G's output, or the fixed input transform without G)
    probs: np.ndarray | None  # (classes, ...) working grid; None when only the normalized image was asked for

    @property
    def labels(self) -> np.ndarray:
        if self.probs is None:
            raise ValueError("this prediction has no segmentation (made with segment=False)")
        return self.probs.argmax(0).astype(np.uint8)


class TrainedModel:
    """A run folder loaded for inference: config, fitted input transform and weights (never pickles)."""

    def __init__(
        self,
        run_dir: str | Path,
        checkpoint: str = "best",
        device: str = "auto",
        window: InferenceWindow | None = None,
        *,
        nets: Networks | None = None,
    ) -> None:
        """``nets``: a training run's live networks to use instead of a checkpoint's (``checkpoint`` and
        ``device`` are then ignored, and the caller sets their mode); the run folder still gives the config
        and the fitted input transform."""
        self.files = files = RunFolder(Path(run_dir))
        self.cfg, self.run = files.read_config()
        self.window = self._on_the_pooling_grid(window or InferenceWindow())
        self.spec = METHOD_SPECS[self.cfg.method]
        self.domains: list[str] = self.run["domains"]
        self.classes: tuple[str, ...] = tuple(self.run.get("classes") or CLASS_NAMES)
        """The names of the classes S predicts, background first (the training data's label set)."""
        if nets is not None:
            self.device, self.nets = nets.device, nets
            return
        self.device = pick_device(device)
        self.nets = Networks(self.cfg, len(self.domains), self.device, classes=self.classes)
        load_weights(files.checkpoint(checkpoint), self.nets)
        self.nets.eval()

    def _on_the_pooling_grid(self, window: InferenceWindow) -> InferenceWindow:
        """``window`` with its edge rounded up to a multiple of the networks' stride (what the sliding window
        can use), with a warning when that changes it, so the edge recorded is the one used."""
        stride = model_stride(self.cfg.model)
        if window.edge is None:
            return dataclasses.replace(window, edge=_round_up(self.cfg.train.patch_size, stride))
        edge = _round_up(window.edge, stride)
        if edge != window.edge:
            warnings.warn(
                AdvnormWarning(
                    f"inference window {window.edge} is not a multiple of the networks' stride {stride}: using {edge}",
                    self.files.config,
                ),
                stacklevel=3,
            )
        return dataclasses.replace(window, edge=edge)

    def network_input(self, subject: Subject) -> np.ndarray:
        """The run's input transform of ``subject``; an image it cannot take is refused, one unlike every
        training domain gets a warning (:class:`AdvnormWarning`) naming the file."""
        kind = self.spec.input_transform
        problem = raw_input_problem(kind, subject.image, subject.mask)
        if problem is not None:
            raise AdvnormError(problem, subject.source.path)
        try:  # what the run's config.json says about its inputs (hand-edited files are read defensively)
            x = transform_image(
                kind,
                subject.image,
                subject.mask,
                percentile=self.cfg.data.scale_percentile,
                fitted=self.run.get("input_state") or None,
            )
            far = self._far_from_training(input_histogram(kind, x, subject.mask))
        except (KeyError, TypeError, ValueError) as exc:
            raise AdvnormError(
                f"run config: the fitted input transform or the training histograms are unusable ({one_line(exc, 80)})",
                self.files.config,
            ) from None
        if far is not None:
            warnings.warn(AdvnormWarning(far, subject.source.path), stacklevel=2)
        return x

    def _far_from_training(self, hist: np.ndarray) -> str | None:
        stored = self.run.get("input_histograms") or {}
        if not stored:
            return None
        nearest, jsd = min(
            ((d, jensen_shannon(hist, np.asarray(h, dtype=float))) for d, h in stored.items()), key=lambda t: t[1]
        )
        if jsd <= FAR_FROM_TRAINING_JSD:
            return None
        return (
            f"intensities unlike every training domain of this run (JSD {jsd:.2f} to the nearest, {nearest}): "
            "check that it is the same modality, unnormalized; its results may be unreliable"
        )

    def segmentation_problem(self, prediction: Prediction) -> str | None:
        """What makes ``prediction``'s segmentation implausible for this run (a class's share of the segmented
        tissue far outside the training subjects' range, :mod:`advnorm.data.tissue_shares`), or None. Runs made
        before the ranges were recorded are not judged. ``advnorm predict`` warns with it."""
        ranges = self.run.get("tissue_shares") or {}
        if not ranges:
            return None
        shares = tissue_shares(prediction.labels, len(self.classes))
        try:  # hand-edited files are read defensively
            return implausible_shares(shares, ranges, self.classes)
        except (AttributeError, TypeError, ValueError) as exc:
            raise AdvnormError(
                f"run config: tissue_shares is unusable ({one_line(exc, 80)})", self.files.config
            ) from None

    @property
    def edge(self) -> int:
        """The edge of the model's window in voxels (resolved: never None)."""
        assert self.window.edge is not None
        return self.window.edge

    def _padding_and_roi(self, shape: tuple[int, ...], window: int) -> tuple[list[int], tuple[int, ...]]:
        """The padding at the far end of each axis (so the pooling grid starts at voxel 0) and the window."""
        stride = model_stride(self.cfg.model)
        pad = [_round_up(s, stride) - s for s in shape]
        return pad, tuple(min(_round_up(window, stride), s + p) for s, p in zip(shape, pad, strict=True))

    def windows_for(self, shape: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
        """How many sliding windows :meth:`predict` places on a working-grid volume of ``shape`` with this model's
        window (after padding to the pooling grid), and the window it slides."""
        pad, roi = self._padding_and_roi(shape, self.edge)
        padded = tuple(s + p for s, p in zip(shape, pad, strict=True))
        return window_count(padded, roi, self.window.overlap), roi

    def warn_if_many_windows(self, subject: Subject) -> None:
        """Warn (naming the input) when ``subject`` needs more than :data:`MANY_WINDOWS` sliding windows with
        this model's window: the CLI calls it before :meth:`predict`, so the user learns it before the wait."""
        count, roi = self.windows_for(subject.mask.shape)
        if count > MANY_WINDOWS:
            warnings.warn(
                AdvnormWarning(
                    f"{count:,} inference windows of {roi[0]}^3 voxels (overlap {self.window.overlap:g}) for this "
                    "volume: it will take long; a larger --window or smaller --overlap is faster",
                    subject.source.path,
                ),
                stacklevel=2,
            )

    @torch.no_grad()
    def predict(
        self, subject: Subject, *, window: int | None = None, overlap: float | None = None, segment: bool = True
    ) -> Prediction:
        """G's output (or the fixed input transform) and, with ``segment``, S's probabilities, on the working grid;
        ``window`` and ``overlap`` default to the model's :class:`InferenceWindow`; a ``window`` off the networks'
        pooling grid is rounded up with a warning, as the model's own is."""
        window = self.edge if window is None else self._on_the_pooling_grid(InferenceWindow(window)).edge
        assert window is not None
        overlap = self.window.overlap if overlap is None else overlap
        x = torch.from_numpy(self.network_input(subject))[None, None]
        m = torch.from_numpy(subject.mask.astype(np.float32))[None, None]
        shape = x.shape[2:]
        pad, roi = self._padding_and_roi(shape, window)
        nets = self.nets
        stats = image_stats(x, m, nets.value_range).to(
            self.device
        )  # of the whole volume: every window gets the same curve

        def predictor(inp: torch.Tensor) -> torch.Tensor:
            xi, mi = inp[:, :1], inp[:, 1:]
            with nets.autocast():
                x_hat = nets.normalize(xi, mi, stats.expand(len(xi), -1))
                if not segment:
                    return x_hat.float()
                probs = torch.softmax(nets.segment(x_hat).float(), dim=1)
            return torch.cat([x_hat.float(), probs], dim=1)

        inp = torch.nn.functional.pad(torch.cat([x, m], dim=1), (0, pad[2], 0, pad[1], 0, pad[0])).to(self.device)
        out = sliding_window_inference(
            inp,
            roi,
            windows_per_pass(roi),
            predictor,
            overlap=overlap,
            mode="gaussian",
            padding_mode="constant",
            cval=0.0,
        )
        assert isinstance(out, torch.Tensor)  # MONAI returns a tuple or dict only for such predictors
        stack = out[0, :, : shape[0], : shape[1], : shape[2]].cpu().numpy()
        normalized = np.where(subject.mask, stack[0], 0.0).astype(np.float32)
        return Prediction(normalized=normalized, probs=stack[1:].astype(np.float32) if segment else None)


OUTPUT_KINDS = ("normalized", "seg")


def output_name(case_id: str, kind: str) -> str:
    """``<case>_normalized.nii.gz`` (the harmonized image) or ``<case>_seg.nii.gz`` (the segmentation)."""
    return f"{case_id}_{kind}.nii.gz"


def write_outputs(
    subject: Subject,
    pred: Prediction,
    out_dir: Path,
    kinds: tuple[str, ...] = OUTPUT_KINDS,
    values: tuple[int, ...] | None = None,
) -> list[Path]:
    """The ``kinds`` of output on the source grid and header; segmentations in the dataset's own label ids.

    The normalized image is G's output (methods with G: 0 to 1.5, the range of the rescaled input) or the
    method's fixed transform (z-score: mean 0 and sd 1 in the brain; Nyul: the standard scale, 0 at the 1st and
    1 at the 99th percentile landmark, linear beyond), and 0 outside the brain mask.
    """
    paths = []
    if "normalized" in kinds:
        paths.append(out_dir / output_name(subject.case_id, "normalized"))
        norm = subject.to_source(pred.normalized, order=1).astype(np.float32)
        save_nifti(paths[-1], norm, subject.source.affine, template_header=subject.source.header)
    if "seg" in kinds:
        if pred.probs is None:
            raise ValueError("this prediction has no segmentation (made with segment=False)")
        paths.append(out_dir / output_name(subject.case_id, "seg"))
        classes = subject.to_source(pred.probs, order=1).argmax(0)
        seg = np.asarray(subject.label_values if values is None else values, dtype=np.int64)[classes]
        dtype = np.uint8 if seg.max(initial=0) < 256 else np.int16
        save_nifti(paths[-1], seg.astype(dtype), subject.source.affine, template_header=subject.source.header)
    return paths


MANY_WINDOWS = 20_000
"""More sliding windows per volume than this gets a warning (the default 32^3 windows at overlap 0.5 need
1,320 on an iSEG volume, 160^3 ones at 0.25 need 4;
``--window 8 --overlap 0.9`` on an iSEG volume needs 6.3 million)."""


MAX_WINDOWS_PER_PASS = 2


def windows_per_pass(roi: tuple[int, ...]) -> int:
    """How many sliding windows G and S take in one forward pass: two when two fit in
    :data:`~advnorm.config.INFERENCE_PASS_VOXELS` (the memory of a 160^3 window), else one.

    Why: on the CPU, PyTorch's 3-D convolution over a batch of one small volume takes a slower kernel than over
    two, and S's deep levels are small even when the window is not. An iSEG volume, one thread: 32^3 windows at
    overlap 0.5 take 0.24 of the time with two windows per pass (four: 0.24, eight: 0.28), 64^3 windows 0.53
    (four: 0.58), measured with ``experiments/window_batch_timing.py`` (docs/method.md, "Whole-volume inference
    and the window")."""
    fits = INFERENCE_PASS_VOXELS // max(int(np.prod(roi)), 1)
    return int(min(max(fits, 1), MAX_WINDOWS_PER_PASS))


def window_count(shape: tuple[int, ...] | torch.Size, roi: tuple[int, ...], overlap: float) -> int:
    """How many windows MONAI's ``sliding_window_inference`` places over ``shape`` (its step: ``roi`` x
    (1 - ``overlap``), at least 1 voxel; the last window flush with the far edge)."""
    count = 1
    for size, edge in zip(shape, roi, strict=True):
        step = max(int(edge * (1 - overlap)), 1)
        count *= 1 if size <= edge else -(-(size - edge) // step) + 1
    return count


def _round_up(n: int, k: int) -> int:
    return int(-(-n // k) * k)
