import dataclasses
import json

import pytest

from advnorm.config import ingredients, paper_profile, quick_profile
from advnorm.config_file import changed_from_profile, resolve
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
        ({"loss": {"slope_floor": 0.5}}, "slope_floor needs a transfer-function G"),
        ({"method": "harmonized", "loss": {"slope_floor": 1.5}}, r"slope_floor must be in \[0, 1\]"),
        ({"method": "harmonized", "model": {"generator": "unet"}}, "feeds G a zscore image"),
        ({"method": "unconstrained", "model": {"generator_output": "additive"}}, "feeds G a scale image"),
        ({"method": "standardized", "model": {"generator": "unet"}}, "method 'standardized' has no G"),
        ({"method": "nyul", "model": {"generator_output": "residual"}}, "this run's G is absent"),
        ({"method": "harmonized", "model": {"generator_output": "additive"}}, "this run's G is transfer"),
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


@pytest.mark.parametrize(
    "profile, file, overrides, expected",
    [
        ("quick", None, {}, []),
        ("paper", None, {}, []),
        # what reproduce sets per run (method, seed, domains) is not a user's change
        ("quick", None, {"method": "harmonized", "train.seed": 2, "data.left_out_domain": "A"}, []),
        (
            "quick",
            {"train": {"contrast_randomisation": 0.5}, "model": {"segmenter_widths": [4, 8, 16, 32]}},
            {"train.device": "cpu"},
            [
                ("model.segmenter_widths", [4, 8, 16, 32], [8, 16, 32, 64]),
                ("train.contrast_randomisation", 0.5, 0.0),
                ("train.device", "cpu", "auto"),
            ],
        ),
        # a file that sets a profile's own value changes nothing
        ("quick", {"train": {"epochs": 16}}, {}, []),
        # the method's own content weight is no change; another is, against the method's
        ("quick", {"loss": {"content_weight": 3.0}}, {"method": "harmonized"}, []),
        ("quick", {"loss": {"content_weight": 1.0}}, {"method": "harmonized"}, [("loss.content_weight", 1.0, 3.0)]),
        ("quick", {"loss": {"content_weight": 0.5}}, {"method": "unconstrained"}, [("loss.content_weight", 0.5, 0.0)]),
        ("paper", {"optim": {"lr_segmenter": 3e-3}}, {}, [("optim.lr_segmenter", 3e-3, 1e-4)]),
    ],
)
def test_changed_from_profile(tmp_path, profile, file, overrides, expected):
    path = None
    if file is not None:
        path = tmp_path / "c.json"
        path.write_text(json.dumps(file))
    got = changed_from_profile(resolve(profile, file=path, overrides=overrides))
    assert [(k, list(v) if isinstance(v, tuple) else v, list(d) if isinstance(d, tuple) else d) for k, v, d in got] == (
        expected
    )


@pytest.mark.parametrize(
    ("key", "method", "file", "expected"),
    [
        ("content_weight", "harmonized", None, 3.0),  # the method's (docs/method.md)
        ("content_weight", "adversarial", None, 0.0),  # the paper's row stays eq. (1)-(4)
        ("content_weight", "unconstrained", None, 0.0),
        ("content_weight", "standardized", None, 0.0),
        ("content_weight", "harmonized", {"loss": {"content_weight": 0.0}}, 0.0),  # a user's choice wins, 0 included
        ("content_weight", "adversarial", {"loss": {"content_weight": 0.3}}, 0.3),
        ("slope_floor", "harmonized", None, 0.35),  # the method's, with its transfer G (docs/method.md)
        ("slope_floor", "adversarial", None, 0.0),
        ("slope_floor", "standardized", None, 0.0),
        ("slope_floor", "harmonized", {"loss": {"slope_floor": 0.0}}, 0.0),  # a user's choice wins, 0 included
        ("slope_floor", "harmonized", {"loss": {"slope_floor": 0.5}}, 0.5),
        ("slope_floor", "adversarial", {"model": {"generator": "transfer"}}, 0.0),  # only harmonized's is non-zero
    ],
)
def test_a_per_method_setting_is_resolved_and_stored(tmp_path, key, method, file, expected):
    """``loss.content_weight`` and ``loss.slope_floor`` left unset mean the method's value."""
    path = None
    if file is not None:
        path = tmp_path / "c.json"
        path.write_text(json.dumps(file))
    cfg = resolve("quick", file=path, overrides={"method": method})
    assert getattr(cfg.loss, key) == expected  # resolved: config.json says what the run used
    assert getattr(ingredients(cfg), key) == expected
