"""The two presets, paper and official_code (finefcace/presets.py)."""

from __future__ import annotations

import pytest

from finefcace.presets import MODEL_KEYS, PRESETS, get_preset

CONTRACT_KEYS = {
    "activation", "head", "pooling", "descriptor_dim", "descriptor_bn_momentum", "concat_loss_weight",
    "head_lr", "backbone_lr", "momentum", "weight_decay", "batch_size", "input_size", "threshold", "pad",
    "region_draw", "steps_forward",
}


def test_both_presets_hold_every_contract_key():
    assert set(PRESETS) >= {"paper", "official_code"}
    for name in ("paper", "official_code"):
        assert CONTRACT_KEYS <= set(PRESETS[name]), CONTRACT_KEYS - set(PRESETS[name])
        assert set(MODEL_KEYS) <= set(PRESETS[name])


def test_paper_preset_values():
    """Paper §3.1 eq. 1 (ELU, GMP, C_v = 1024), §4.2 (SGD 0.9, 5e-4, batch 16, 448, lr 0.002, t = 0.5)."""
    paper = get_preset("paper")
    assert (paper["activation"], paper["pooling"], paper["descriptor_dim"]) == ("elu", "gmp", 1024)
    assert (paper["momentum"], paper["weight_decay"], paper["batch_size"]) == (0.9, 5e-4, 16)
    assert (paper["input_size"], paper["head_lr"], paper["threshold"]) == (448, 0.002, 0.5)
    assert paper["concat_loss_weight"] == 1 and paper["steps_forward"] == "expert_only"
    assert paper["descriptor_bn_momentum"] == 0.01  # paper silent: the published code's value
    assert paper["checkpoint_selection"] == "val"


def test_official_code_differs_only_where_the_published_code_does():
    paper, official = get_preset("paper"), get_preset("official_code")
    differing = {k for k in paper if paper[k] != official[k]}
    assert differing == {"activation", "concat_loss_weight", "steps_forward"}
    assert official["activation"] == "relu"
    assert official["concat_loss_weight"] == 2 and official["steps_forward"] == "all_heads"
    assert official["backbone_lr"] == 0.0002 and official["pad"] == 0.1


def test_get_preset_returns_an_independent_copy():
    copy = get_preset("paper")
    copy["head_lr"] = 1.0
    copy["fusion_views"] = ()
    assert PRESETS["paper"]["head_lr"] == 0.002 and get_preset("paper")["head_lr"] == 0.002


def test_unknown_preset_lists_the_valid_names():
    with pytest.raises(ValueError, match="official_code.*paper|paper.*official_code"):
        get_preset("papr")


def test_presets_serialise_to_yaml():
    yaml = pytest.importorskip("yaml")
    for name in PRESETS:
        assert yaml.safe_load(yaml.safe_dump(get_preset(name))) == get_preset(name)


def test_region_defaults_come_from_the_paper_preset():
    """t and the box padding are typed once (the preset); every region-drawing signature takes them from there."""
    import inspect

    from finefcace import attention, mutual_learning, predict
    from finefcace.course import ablations, attention_crop
    from finefcace.presets import REGION_PAD, REGION_THRESHOLD

    assert (REGION_THRESHOLD, REGION_PAD) == (PRESETS["paper"]["threshold"], PRESETS["paper"]["pad"])
    functions = [attention.boxes_from_maps, attention.attention_regions, attention.overall_region,
                 predict.fused_logits, mutual_learning.finefcace_iteration, attention_crop.attention_steps,
                 ablations.fusion_scores, ablations.threshold_table]
    for function in functions:
        parameters = inspect.signature(function).parameters
        if "threshold" in parameters:
            assert parameters["threshold"].default is REGION_THRESHOLD, function.__qualname__
        assert parameters["pad"].default is REGION_PAD, function.__qualname__
