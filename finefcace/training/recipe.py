"""The training recipe a config describes: model, optimizer, schedule, seeds (paper §4.2).

Introduced in ``notebooks/04_training.ipynb``; written out in ``book/method.md`` §9
("Training setup") and, for the backbone's smaller learning rate, ``book/decisions.md``. The
numbers (learning rates, momentum, weight decay, schedule) come from :mod:`finefcace.presets`.
:mod:`finefcace.training.trainer` builds a run from these; :func:`finefcace.training.run_directory.load_run`
rebuilds a finished run's model with :func:`build_model`.
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch
from torch import nn

from finefcace.mitigation import MITIGATIONS
from finefcace.model import Baseline, FineFACE
from finefcace.training.config import ConfigError, TrainConfig

__all__ = ["build_model", "build_optimizer", "build_scheduler", "compile_in_place", "fusion_options",
           "iteration_options", "seed_everything"]


def build_model(config: TrainConfig, num_classes: int, num_domains: int | None = None) -> nn.Module:
    """The model a config describes (FineFACE from its preset, the baseline, or a mitigation
    method's model, which may need the number of protected domains).

    Book: ``notebooks/04_training.ipynb``, ``notebooks/07_mitigation_methods.ipynb``.
    """
    resolved = config.resolved()
    try:
        if config.method in MITIGATIONS:
            if num_domains is None:
                raise ConfigError(f"method {config.method!r}: the model needs the number of protected domains")
            return MITIGATIONS[config.method].build_model(resolved["backbone"], num_classes, num_domains,
                                                          config.weights, resolved["method_options"])
        if config.method == "baseline":
            return Baseline(resolved["backbone"], num_classes, weights=config.weights)
        model_keys = {k: resolved[k] for k in ("experts", "activation", "head", "pooling",
                                               "descriptor_dim", "descriptor_bn_momentum")}
        return FineFACE(resolved["backbone"], num_classes, weights=config.weights, **model_keys)
    except ValueError as error:  # a model key or weights file the config names (the message says which)
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"the model this config describes cannot be built: {error}") from error


def build_optimizer(model: FineFACE | Baseline, resolved: dict[str, Any]) -> torch.optim.SGD:
    """SGD with two parameter groups (paper §4.2, published code): the pretrained backbone at
    ``backbone_lr`` (0.0002), the new layers at ``head_lr`` (0.002); momentum 0.9, weight decay
    5e-4 — all from the preset. Group 0 is the heads, group 1 the backbone."""
    if resolved.get("optimizer", "sgd") != "sgd":
        raise ConfigError(f"preset key 'optimizer' must be 'sgd', got {resolved['optimizer']!r}")
    return torch.optim.SGD(
        [
            {"params": model.head_parameters(), "lr": resolved["head_lr"], "name": "head"},
            {"params": model.backbone_parameters(), "lr": resolved["backbone_lr"], "name": "backbone"},
        ],
        lr=resolved["head_lr"],
        momentum=resolved["momentum"],
        weight_decay=resolved["weight_decay"],
    )


def build_scheduler(optimizer: torch.optim.Optimizer, resolved: dict[str, Any], epochs: int):
    """Cosine annealing over the epochs (stepped once per epoch), as the published code."""
    if resolved.get("lr_schedule", "cosine") != "cosine":
        raise ConfigError(f"preset key 'lr_schedule' must be 'cosine', got {resolved['lr_schedule']!r}")
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)


def iteration_options(config: TrainConfig) -> dict[str, Any]:
    """The keywords of :func:`finefcace.mutual_learning.finefcace_iteration` a config sets (paper
    §3.3, Algorithm 1): λ, the region threshold t and padding, one region draw per batch or per
    sample, which heads steps 2..N forward, and where the regions come from (``regions``: the CAMs
    or a control). The trainer and ``notebooks/04_training.ipynb`` use it."""
    resolved = config.resolved()
    options = {key: resolved[key] for key in ("concat_loss_weight", "threshold", "pad", "region_draw", "steps_forward")}
    return {**options, "regions": config.regions}


def fusion_options(config: TrainConfig) -> dict[str, Any]:
    """The keywords of :func:`finefcace.predict.fused_logits` a config sets (paper §3.3
    "Inference Phase"): which views and heads are fused and how, the region threshold and
    padding of A_oval, and where its box comes from (the placebo control's seed with it). Evaluation (:mod:`finefcace.training.evaluation`) uses it."""
    resolved = config.resolved()
    options = {"views": tuple(resolved["fusion_views"]), "heads": resolved["fusion_heads"],
               "combine": resolved["fusion_combine"], "threshold": resolved["threshold"], "pad": resolved["pad"],
               "regions": config.regions}
    if config.regions == "placebo":  # the oval view's random boxes: drawn from the run's seed, the same every pass
        options["placebo_seed"] = config.seed
    return options


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices); ``deterministic`` also asks torch for
    deterministic algorithms (``torch.use_deterministic_algorithms(True)``, cuDNN
    deterministic, no benchmark). Book: ``notebooks/04_training.ipynb``."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def compile_in_place(model: nn.Module, backend: str = "inductor") -> None:
    """``torch.compile`` every top-level block in place (the trainer calls the blocks —
    ``backbone_features``, ``expert_head`` — not only ``forward``); state-dict keys unchanged.
    ``backend``: torch.compile's backend (``"aot_eager"`` traces forward and backward without
    generating code, as the CPU rehearsal of ``scripts/gpu_check.py`` does).

    The blocks share one compiled entry point, guarded per block and per grad mode, so the
    recompile limit is raised to fit them all (otherwise dynamo falls back to eager after 8)."""
    modules = []
    for child in model.children():
        modules.extend(list(child) if isinstance(child, nn.ModuleList) else [child])
    import torch._dynamo

    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, max(getattr(torch._dynamo.config, name), 4 * len(modules) + 8))
    for module in modules:
        module.compile(backend=backend)
