"""Tests of finefcace/training/config.py: keys and types checked before training, presets as the one source."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from finefcace import presets
from finefcace.training.config import ConfigError, TrainConfig, load_config, parse_assignment, profile_values

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_defaults_take_every_hyper_parameter_from_the_preset():
    for name in presets.PRESETS:
        config = load_config({"preset": name})
        resolved = config.resolved()
        preset = presets.get_preset(name)
        for key, value in preset.items():
            expected = list(value) if isinstance(value, tuple) else value
            assert resolved[key] == expected, key


def test_shortcuts_and_overrides_change_the_resolved_values():
    config = load_config({"backbone": "resnet18", "input_size": 64, "experts": [3, 4],
                          "overrides": {"head_lr": 0.01, "concat_loss_weight": 2}})
    resolved = config.resolved()
    assert resolved["backbone"] == "resnet18" and resolved["input_size"] == 64 and resolved["experts"] == [3, 4]
    assert resolved["head_lr"] == 0.01 and resolved["concat_loss_weight"] == 2
    assert resolved["backbone_lr"] == presets.get_preset("paper")["backbone_lr"]


@pytest.mark.parametrize(
    ("values", "pattern"),
    [
        ({"epoch": 3}, r"unknown config key 'epoch'; did you mean 'epochs'\?"),
        ({"batchsize": 8}, r"did you mean 'batch_size'"),
        ({"head_lr": 0.01}, r"'head_lr' is a preset value: set it under 'overrides'.*overrides\.head_lr"),
        ({"overrides": {"head_lrr": 0.1}}, r"unknown preset key 'head_lrr'; did you mean 'head_lr'"),
        ({"epochs": "3"}, r"'epochs' must be int, got str '3'; write numbers.*without quotes.*epochs: 3"),
        ({"epochs": 2.5}, r"'epochs' must be int, got float"),
        ({"amp": "yes"}, r"'amp' must be bool or null"),
        ({"deterministic": 1}, r"'deterministic' must be bool"),
        ({"batch_size": True}, r"'batch_size' must be int or null"),
        ({"experts": [3, "4"]}, r"'experts' must be a list of int or null"),
        ({"region_draw": "image"}, r"'region_draw' must be one of 'batch', 'sample' or null"),
        ({"method": "cmal"}, r"'method' must be one of 'finefcace', 'baseline'"),
        ({"method": "group_dro", "method_options": {"stepsize": 0.1}},
         r"'method_options': unknown option 'stepsize' of method 'group_dro'; did you mean 'step_size'"),
        ({"method": "baseline", "method_options": {"step_size": 0.1}}, r"'baseline' takes no method_options"),
        ({"preset": "papers"}, r"'preset' is 'papers'; choose one of \['official_code', 'paper'\]"),
        ({"epochs": 0}, r"'epochs' must be >= 1"),
        ({"patience": 0}, r"'patience' must be >= 1 or null"),
        ({"workers": -1}, r"'workers' must be >= 0"),
        ({"pooling": "gmp", "overrides": {"pooling": "gap"}}, r"'pooling' is set both"),
        ({"overrides": {"steps_forward": "some"}}, r"'overrides.steps_forward' must be one of 'expert_only', 'all_heads'"),
        # every preset value in force is typed and range-checked, overrides included
        ({"overrides": {"head_lr": "fast"}}, r"'overrides.head_lr' must be float, got str 'fast'"),
        ({"overrides": {"head_lr": -0.01}}, r"'overrides.head_lr' must be > 0, got -0.01"),
        ({"overrides": {"backbone_lr": float("nan")}}, r"'overrides.backbone_lr' must be a finite number, got nan"),
        ({"overrides": {"momentum": 1.5}}, r"'overrides.momentum' must be in \[0, 1\)"),
        ({"overrides": {"fusion_views": []}}, r"'overrides.fusion_views' must be a non-empty list of raw, oval"),
        ({"input_size": 8}, r"config key 'input_size' must be at least 64 \(the smallest input"),
        ({"batch_size": 1}, r"config key 'batch_size' must be at least 2 \(BatchNorm"),
        ({"backbone": "resnet9000"}, r"config key 'backbone': unsupported backbone 'resnet9000'"),
        ({"backbone": "resnet18", "experts": [9]}, r"config key 'experts': expert stage 9 is not a stage.*1\.\.5"),
        ({"weights": "IMAGENET_BOGUS", "backbone": "resnet18"}, r"config key 'weights': unknown weights 'IMAGENET_BOGUS'"),
        ({"device": "gpu0"}, r"config key 'device' is 'gpu0', which torch does not know"),
        ({"min_delta": -1}, r"'min_delta' must be a finite number >= 0"),
        ({"synthetic": {"n_trian": 8}}, r"config key 'synthetic': unknown synthetic option key 'n_trian'; did you mean 'n_train'"),
        ({"synthetic": {"n_train": -1, "n_val": 2, "n_test": 2}}, r"config key 'synthetic': .*'n_train' must be a whole"),
    ],
)
def test_bad_keys_and_types_fail_naming_the_key_and_the_fix(values, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(values)


def test_numbers_are_accepted_where_floats_are_expected():
    assert load_config({"min_delta": 0}).min_delta == 0.0
    assert isinstance(load_config({"min_delta": 0}).min_delta, float)


def test_yaml_exponent_numbers_are_numbers(tmp_path):
    """PyYAML reads ``1e-3`` (no dot) as text: accepted as 0.001, and stored as a number."""
    path = tmp_path / "run.yaml"
    path.write_text("overrides: {head_lr: 1e-3, backbone_lr: 2E-4}\nmin_delta: 1e-4\n")
    config = load_config(path)
    assert config.overrides == {"head_lr": 0.001, "backbone_lr": 0.0002} and config.min_delta == 0.0001
    assert config.resolved()["head_lr"] == 0.001 and config.to_dict()["overrides"]["head_lr"] == 0.001
    assert load_config(path, ["overrides.head_lr=5e-3"]).overrides["head_lr"] == 0.005


def test_yaml_files_and_set_assignments(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("epochs: 4\nbackbone: resnet18\noverrides: {head_lr: 0.01}\n")
    config = load_config(path, ["epochs=2", "experts=[2, 3]", "overrides.backbone_lr=0.001", "weights=null",
                                "run_dir=runs/x"])
    assert config.epochs == 2 and config.experts == [2, 3] and config.weights is None
    assert config.overrides == {"head_lr": 0.01, "backbone_lr": 0.001}
    assert config.run_dir == "runs/x"
    assert parse_assignment("amp=true") == ("amp", True)
    assert parse_assignment("table=data/a b.csv") == ("table", "data/a b.csv")
    with pytest.raises(ConfigError, match="key=value"):
        parse_assignment("epochs")
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        load_config(path, ["epoch=2"])
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(tmp_path / "list.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_identity_ignores_where_and_how_a_run_shows_itself():
    a = load_config({"run_dir": "a", "progress": True, "workers": 0, "stop_after_batches": 3})
    b = load_config({"run_dir": "b", "progress": False, "workers": 4})
    assert a.identity() == b.identity()
    assert a.identity() != load_config({"seed": 1}).identity()
    assert a.identity() != load_config({"overrides": {"head_lr": 0.1}}).identity()


def test_to_dict_round_trips():
    config = load_config({"experts": [3, 4, 5], "overrides": {"pad": 0.2}, "synthetic": {"n_train": 10, "n_val": 4, "n_test": 4}})
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert config.replace(epochs=7).epochs == 7


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_example_configs_and_profiles_load(path):
    values = yaml.safe_load(path.read_text())  # plain YAML, no tags
    if "dataset" in values:  # a notebook profile: its training keys (python -m finefcace train --profile)
        config = load_config(profile_values(path))
    else:  # a training config: every key must be a training key
        config = load_config(path)
    assert config.table is not None or config.synthetic is not None


def test_a_config_is_checked_once_and_never_changes():
    import dataclasses

    config = load_config({"epochs": 2, "min_delta": 0})
    assert config.min_delta == 0.0 and isinstance(config.min_delta, float)  # converted when made
    assert load_config(config) is config  # nothing to change: the checked config itself
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epochs = 0
    assert config.replace(epochs=3).epochs == 3 and config.epochs == 2
    with pytest.raises(ConfigError, match="'epochs' must be >= 1"):
        TrainConfig(epochs=0)  # the constructor checks too



def test_method_options_are_resolved_and_change_the_identity_only_when_given():
    dro = load_config({"method": "group_dro", "method_options": {"step_size": 0.05}})
    assert dro.resolved()["method_options"] == {"step_size": 0.05, "sampling": "balanced"}
    assert dro.identity() != dro.replace(method_options={"step_size": 0.01}).identity()
    # the defaults in force are part of the identity through "resolved"; a method without
    # options keeps the identity it had before the key existed (no 'method_options' in it)
    assert dro.replace(method_options={}).identity()["resolved"]["method_options"]["step_size"] == 0.01
    plain = load_config({"method": "baseline"})
    assert "method_options" not in plain.identity() and "method_options" not in plain.resolved()
