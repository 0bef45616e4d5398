import dataclasses
import json

import pytest

from advnorm.config import ingredients, paper_profile, quick_profile
from advnorm.config_file import changed_from_profile, resolve
from advnorm.config_history import resolved_settings
from advnorm.errors import AdvnormError


def test_paper_profile_matches_the_paper():
    c = paper_profile()
    o = c.optim
    assert (o.optimizer, o.momentum, o.weight_decay) == ("sgd", 0.9, 0.1)
    assert (o.lr_generator, o.lr_segmenter, o.lr_discriminator) == (1e-5, 1e-4, 1e-4)
    assert (o.plateau_patience, o.plateau_factor) == (3, 0.1)
    assert c.train.warmup_epochs == 3 and c.train.batch_size == 16 and c.train.patch_size == 32
    assert c.loss.adv_lambda == 1.0


def test_the_quick_profile_trains_to_its_plateau_budget():
    """1,200 S updates: where every method's validation curve has flattened, but augmented's on the phantom
    (docs/method.md)."""
    t = quick_profile().train
    assert t.epochs * t.steps_per_epoch == 1200 and t.stop_patience == 0  # a fixed budget, equal for every method


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
        (
            {"method": "harmonized", "model": {"generator": "transfer"}, "loss": {"slope_floor": 1.5}},
            r"slope_floor must be in \[0, 1\]",
        ),
        ({"method": "harmonized", "model": {"generator_output": "sigmoid"}}, "feeds G a zscore image"),
        ({"method": "harmonized", "loss": {"adversary_view": "image"}}, "needs a transfer-function G"),
        ({"method": "harmonized", "loss": {"slope_floor": 0.35}}, "slope_floor needs a transfer-function G"),
        ({"method": "unconstrained", "model": {"generator_output": "additive"}}, "feeds G a scale image"),
        ({"method": "standardized", "model": {"generator": "unet"}}, "method 'standardized' has no G"),
        ({"method": "nyul", "model": {"generator_output": "residual"}}, "this run's G is absent"),
        (
            {"method": "harmonized", "model": {"generator": "transfer", "generator_output": "additive"}},
            "this run's G is transfer",
        ),
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


def test_content_already_read_resolves_as_the_file_and_names_it(tmp_path):
    """A run folder hands over the config.json it has checked; the result and the errors are the file's."""
    path = tmp_path / "config.json"
    content = {"method": "single", "train": {"epochs": 3}, "run": {"domains": ["a"]}}
    path.write_text(json.dumps(content))
    assert resolve("quick", file=path, content=content) == resolve("quick", file=path)
    assert "run" in content  # the caller's dict is left as it was
    path.unlink()  # not read again
    assert resolve("quick", file=path, content=content).train.epochs == 3
    with pytest.raises(AdvnormError, match="config.json") as err:
        resolve("quick", file=path, content={"train": {"epochs": -1}})
    assert "\n" not in str(err.value)


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
        ("quick", {"train": {"epochs": 48}}, {}, []),
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


TRANSFER = {"model": {"generator": "transfer"}}


@pytest.mark.parametrize(
    ("key", "method", "file", "expected"),
    [
        ("loss.content_weight", "harmonized", None, 3.0),  # the method's (docs/method.md)
        ("loss.content_weight", "adversarial", None, 0.0),  # the paper's row stays eq. (1)-(4)
        ("loss.content_weight", "unconstrained", None, 0.0),
        ("loss.content_weight", "standardized", None, 0.0),
        ("loss.content_weight", "harmonized", {"loss": {"content_weight": 0.0}}, 0.0),  # a user's choice wins
        ("loss.content_weight", "adversarial", {"loss": {"content_weight": 0.3}}, 0.3),
        ("loss.slope_floor", "harmonized", None, 0.0),  # its U-Net G has no curve
        ("loss.slope_floor", "harmonized", TRANSFER, 0.35),  # the transfer G's (docs/method.md)
        ("loss.slope_floor", "adversarial", None, 0.0),
        ("loss.slope_floor", "standardized", None, 0.0),
        ("loss.slope_floor", "harmonized", {**TRANSFER, "loss": {"slope_floor": 0.0}}, 0.0),  # 0 is a choice too
        ("loss.slope_floor", "harmonized", {**TRANSFER, "loss": {"slope_floor": 0.5}}, 0.5),
        ("loss.slope_floor", "adversarial", TRANSFER, 0.0),  # only harmonized's is non-zero
        ("model.generator", "harmonized", None, "unet"),
        ("model.generator", "adversarial", None, "unet"),
        ("model.generator", "harmonized", TRANSFER, "transfer"),
        ("model.generator", "standardized", None, "auto"),  # no G: nothing to resolve
        ("model.generator_output", "harmonized", None, "additive"),  # the z-scored input is unbounded
        ("model.generator_output", "unconstrained", None, "sigmoid"),  # the paper's, on the rescaled input
        ("model.generator_output", "adversarial", {"model": {"generator_output": "residual"}}, "residual"),
        ("model.generator_output", "harmonized", TRANSFER, "sigmoid"),  # no U-Net: the setting does nothing
        ("model.generator_output", "nyul", None, "sigmoid"),
    ],
)
def test_a_per_method_setting_is_resolved_and_stored(tmp_path, key, method, file, expected):
    """Settings left to the method (``None``, or ``auto`` for G's kind and form) resolve to the method's value."""
    path = None
    if file is not None:
        path = tmp_path / "c.json"
        path.write_text(json.dumps(file))
    cfg = resolve("quick", file=path, overrides={"method": method})
    head, name = key.split(".")
    if head == "loss":  # resolved in the config: config.json says what the run used
        assert getattr(cfg.loss, name) == expected
    assert resolved_settings(cfg)[head][name] == expected  # what a weights file holds and reuse compares
    if name != "generator":  # the ingredient is None without a G
        assert getattr(ingredients(cfg), name) == expected
