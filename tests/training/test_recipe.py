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
