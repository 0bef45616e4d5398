"""Per-epoch validation (``training/validation.py``): the Dice it reports is the Dice of what S predicts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from advnorm.data.patches import PatchIndex, gather
from advnorm.training.data import TrainingData
from advnorm.training.trainer import ValidationBatch
from advnorm.training.validation import auc, discriminator_view, validate
from tests.conftest import make_trainer, tiny_cfg


def _data(k: int = 2) -> TrainingData:
    rng = np.random.default_rng(0)
    labels = [rng.integers(0, 4, (24, 24, 24)).astype(np.uint8) for _ in range(k)]
    inputs = [rng.random((24, 24, 24)).astype(np.float32) for _ in range(k)]
    masks = [np.ones((24, 24, 24), np.uint8) for _ in range(k)]
    index = PatchIndex.build([lab > 0 for lab in labels], patch_size=16, stride=8)
    return TrainingData(
        domains=[f"D{i}" for i in range(k)],
        subjects=[],
        inputs=inputs,
        labels=labels,
        masks=masks,
        subject_domain=np.arange(k),
        train=index,
        val=index,
        split={},
    )


class _Oracle:
    """A trainer stand-in whose S predicts the truth (or one class everywhere)."""

    def __init__(self, trainer, constant: int | None = None):
        self.nets, self.constant = trainer.nets, constant

    def validation_batch(self, x, y, m, z, stats=None, profile=None):
        pred = y.clone() if self.constant is None else torch.full_like(y, self.constant)
        return ValidationBatch(0.25, pred)


def test_a_perfect_segmenter_scores_one_everywhere_and_the_loss_is_averaged():
    data = _data()
    rows = np.arange(len(data.val))
    out = validate(_Oracle(make_trainer(tiny_cfg())), data, rows, chunk=3)
    assert out["val_loss"] == 0.25
    assert all(v == 1.0 for k, v in out.items() if k.startswith("val_dice_"))
    assert {k for k in out if k.startswith("val_dice_D0")} == {"val_dice_D0_CSF", "val_dice_D0_GM", "val_dice_D0_WM"}


def test_one_class_everywhere_scores_its_hand_computed_dice_and_zero_elsewhere():
    data = _data(k=1)
    rows = np.arange(len(data.val))
    out = validate(_Oracle(make_trainer(tiny_cfg("standardized")), constant=2), data, rows)
    y = gather(data.labels, data.val, rows)
    expected = 2 * np.sum(y == 2) / (y.size + np.sum(y == 2))
    assert math.isclose(out["val_dice_D0_GM"], expected, rel_tol=1e-9)
    assert out["val_dice_D0_CSF"] == 0.0 and out["val_dice_D0_WM"] == 0.0


def test_validation_leaves_the_networks_in_training_mode_and_unchanged():
    trainer = make_trainer(tiny_cfg())
    before = {k: v.clone() for k, v in trainer.nets.state_dict().items()}
    out = validate(trainer, _data(), np.arange(4))
    assert trainer.nets.training and math.isfinite(out["val_loss"])
    assert all(torch.equal(before[k], v) for k, v in trainer.nets.state_dict().items())


@pytest.mark.parametrize(
    "positive,negative,expected",
    [
        ([2.0, 3.0], [0.0, 1.0], 1.0),
        ([0.0, 1.0], [2.0, 3.0], 0.0),
        ([1.0, 1.0], [1.0, 1.0, 1.0], 0.5),
        ([1.0, 3.0], [2.0, 0.0], 0.75),
        ([2.0], [1.0, 2.0, 3.0], 0.5),
    ],
)
def test_auc_hand_computed(positive, negative, expected):
    assert auc(np.array(positive), np.array(negative)) == pytest.approx(expected)


def test_discriminator_view_reads_only_the_k_domain_logits_for_accuracy():
    # K = 2: logits (domain 0, domain 1, generated). "generated" is the largest for every real patch, yet the
    # domain logits are right for 3 of 4: the K-way accuracy is 0.75 (an argmax over K + 1 classes would say 0)
    real = torch.tensor([[2.0, 0.0, 9.0], [0.0, 2.0, 9.0], [2.0, 0.0, 9.0], [2.0, 0.0, 9.0]])
    generated = torch.tensor([[0.0, 0.0, 9.5]] * 4)
    out = discriminator_view(real, generated, torch.tensor([0, 1, 0, 1]))
    assert out["d_domain_acc"] == pytest.approx(0.75)
    assert out["d_generated_auc"] == pytest.approx(1.0)


def test_validation_reports_the_discriminators_view_for_adversarial_runs_only():
    data = _data()
    with_d = validate(make_trainer(tiny_cfg()), data, np.arange(6))
    without = validate(make_trainer(tiny_cfg("unconstrained")), data, np.arange(6))
    assert 0.0 <= with_d["d_domain_acc"] <= 1.0 and 0.0 <= with_d["d_generated_auc"] <= 1.0
    assert "d_domain_acc" not in without
