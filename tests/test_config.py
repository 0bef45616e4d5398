import dataclasses
import json

import pytest

from advnorm.config import paper_profile, quick_profile
from advnorm.config_file import resolve
from advnorm.errors import AdvnormError


def test_paper_profile_matches_the_paper():
    c = paper_profile()
    o = c.optim
    assert (o.optimizer, o.momentum, o.weight_decay) == ("sgd", 0.9, 0.1)
    assert (o.lr_generator, o.lr_segmenter, o.lr_discriminator) == (1e-5, 1e-4, 1e-4)
    assert (o.plateau_patience, o.plateau_factor) == (3, 0.1)
    assert c.train.warmup_epochs == 3 and c.train.batch_size == 16 and c.train.patch_size == 32
    assert c.loss.adv_lambda == 1.0


def test_profiles_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        quick_profile().train.epochs = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "content, message",
    [
        ({"trian": {}}, "unknown configuration key 'trian'"),
        ({"train": {"epoch": 3}}, "unknown configuration key 'train.epoch'"),
        ({"train": {"epochs": "3"}}, "must be an integer"),
        ({"train": {"amp": 1}}, "must be true or false"),
        ({"optim": {"optimizer": "rmsprop"}}, "must be one of"),
        ({"train": {"epochs": 0}}, "epochs must be >= 1"),
        ({"optim": {"lr_segmenter": -1}}, "learning rates"),
        ({"loss": {"dice_weights": [1, -1]}}, "one non-negative weight per class"),
        ({"train": {"patch_size": 20}}, "patch_size"),
        ({"model": {"segmenter_widths": 8}}, "must be a list"),
        ([1, 2], "JSON object"),
        ({"loss": {"adversary_view": "image"}}, "adversary_view 'image' needs a transfer-function G"),
        ({"method": "harmonized", "loss": {"adversary_view": "whole"}}, "must be one of"),
    ],
)
def test_bad_config_files(tmp_path, content, message):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(content))
    with pytest.raises(AdvnormError, match=message) as err:
        resolve("quick", file=path)
    assert "\n" not in str(err.value)


def test_file_then_overrides():
    import tempfile
    from pathlib import Path

    p = Path(tempfile.mkdtemp()) / "c.json"
    p.write_text(json.dumps({"train": {"epochs": 9, "batch_size": 4}, "loss": {"dice_weights": [0, 1, 1, 1]}}))
    c = resolve("paper", file=p, overrides={"train.epochs": 4})
    assert c.train.epochs == 4 and c.train.batch_size == 4 and c.loss.dice_weights == (0.0, 1.0, 1.0, 1.0)
    assert c.model.segmenter_widths == (64, 128, 256, 512)
