"""Tests of finefcace/training/recipe.py: the optimizer and schedule a preset describes (paper §4.2)."""

from __future__ import annotations

import torch

from finefcace.model import FineFACE
from finefcace.presets import get_preset
from finefcace.training.recipe import build_optimizer


def test_optimizer_has_two_learning_rates_from_the_preset():
    torch.manual_seed(0)
    model = FineFACE("resnet18", 2, descriptor_dim=16)
    for preset in ("paper", "official_code"):
        values = get_preset(preset)
        optimizer = build_optimizer(model, values)
        head, backbone = optimizer.param_groups
        assert head["lr"] == values["head_lr"] and backbone["lr"] == values["backbone_lr"]
        assert head["momentum"] == values["momentum"] and head["weight_decay"] == values["weight_decay"]
        assert {id(p) for p in backbone["params"]} == {id(p) for p in model.stages.parameters()}
        total = len(head["params"]) + len(backbone["params"])
        assert total == len(list(model.parameters()))


def test_iteration_and_fusion_keywords_come_from_the_config():
    """One function per keyword set: what the trainer, evaluation and notebook 04 pass on."""
    import inspect

    from finefcace.mutual_learning import finefcace_iteration
    from finefcace.predict import fused_logits
    from finefcace.training.config import load_config
    from finefcace.training.recipe import fusion_options, iteration_options

    config = load_config({"preset": "official_code", "region_draw": "sample", "fusion_views": ["oval"],
                          "overrides": {"threshold": 0.3}})
    iteration, fusion = iteration_options(config), fusion_options(config)
    assert iteration == {"concat_loss_weight": 2.0, "threshold": 0.3, "pad": 0.1, "region_draw": "sample",
                         "steps_forward": "all_heads", "regions": "cam"}
    assert fusion == {"views": ("oval",), "heads": "all", "combine": "logits", "threshold": 0.3, "pad": 0.1,
                      "regions": "cam"}
    assert set(iteration) <= set(inspect.signature(finefcace_iteration).parameters)
    assert set(fusion) <= set(inspect.signature(fused_logits).parameters)
    # the placebo control's seed becomes the generator fused_logits draws its boxes from
    from finefcace.predict import seeded_fusion

    placebo = seeded_fusion(fusion_options(config.replace(regions="placebo")))
    assert set(placebo) <= set(inspect.signature(fused_logits).parameters)
