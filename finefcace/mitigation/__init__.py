"""Bias-mitigation methods trained side by side with FineFACE, under identical conditions.

Introduced in ``notebooks/07_mitigation_methods.ipynb``. Each method is one small module with
its mechanism and its one-batch iteration (beside :func:`finefcace.mutual_learning.baseline_iteration`):

- ``group_balanced`` — :mod:`~finefcace.mitigation.group_balance`: inverse-frequency weights
  per (protected group × class) cell, on the loss (default) or on the sampler;
- ``domain_independent`` — :mod:`~finefcace.mitigation.domain_independent`: one classifier per
  protected domain on a shared backbone, heads summed at inference (Wang et al., CVPR 2020);
- ``adversarial`` — :mod:`~finefcace.mitigation.adversarial`: an adversary predicts the domain
  through a gradient-reversal layer (Zhang, Lemoine & Mitchell, AIES 2018);
- ``group_dro`` — :mod:`~finefcace.mitigation.group_dro`: the worst group's loss, by online
  exponentiated-gradient group weights (Sagawa et al., ICLR 2020).

**All four train with the protected label of every training image** (its *domain*: race, or
tone on the synthetic faces, gender for CelebA's attributes; never the target itself).
FineFACE and the baseline use none. At inference none of them needs it.

:data:`MITIGATIONS` describes each method for the engine (:mod:`finefcace.training`): its
options and their defaults, the model it trains, its training state, its iteration and the
loss columns of its history. A method's options are the ``method_options`` config key.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from finefcace.mitigation.adversarial import ADVERSARY_INPUTS, AdversarialClassifier, adversarial_iteration
from finefcace.mitigation.common import cell_counts, cell_index
from finefcace.mitigation.domain_independent import (COMBINE_RULES, DomainIndependentClassifier,
                                                     domain_independent_iteration)
from finefcace.mitigation.group_balance import GroupBalance, group_balanced_iteration, inverse_frequency_weights
from finefcace.mitigation.group_dro import GroupWeights, group_dro_iteration
from finefcace.model import Baseline

__all__ = ["Mitigation", "MITIGATIONS", "METHODS", "uses_protected_labels", "check_options", "cell_counts",
           "cell_index", "inverse_frequency_weights"]


@dataclasses.dataclass(frozen=True)
class Mitigation:
    """What the engine needs to know of one method (see the module docstring)."""

    name: str
    title: str                          # for tables and plots
    source: str                         # the work it follows
    options: Mapping[str, Any]          # option -> default
    choices: Mapping[str, tuple]        # the allowed values of the options that are names
    loss_kinds: tuple[str, ...]         # keys of the iteration's losses: history columns
    build_model: Callable[[str, int, int, Any, Mapping[str, Any]], nn.Module]
    build_state: Callable[[Tensor, Mapping[str, Any]], nn.Module | None]
    run_iteration: Callable[..., dict[str, Tensor]]
    balanced_sampling: Callable[[Mapping[str, Any]], bool]
    minimum: Mapping[str, float] = dataclasses.field(default_factory=dict)  # lower bounds of numbers

    def iteration(self, model: nn.Module, optimizer: torch.optim.Optimizer, images: Tensor, labels: Tensor,
                  domains: Tensor, *, state: nn.Module | None, options: Mapping[str, Any],
                  **common: Any) -> dict[str, Tensor]:
        """One training iteration of this method (``common``: ``amp_dtype``, ``after_backward``, ``stats``)."""
        return self.run_iteration(model, optimizer, images, labels, domains, state, options, **common)


def _baseline(backbone: str, num_classes: int, num_domains: int, weights: Any, options: Mapping[str, Any]) -> Baseline:
    return Baseline(backbone, num_classes, weights=weights)


MITIGATIONS: dict[str, Mitigation] = {m.name: m for m in (
    Mitigation(
        name="group_balanced", title="Group-balanced", source="inverse-frequency weights per group",
        options={"balance": "reweight"}, choices={"balance": ("reweight", "resample")}, loss_kinds=("loss",),
        build_model=_baseline,
        build_state=lambda counts, o: GroupBalance(counts, o["balance"]),
        run_iteration=lambda m, opt, x, y, d, state, o, **c: group_balanced_iteration(m, opt, x, y, d, state=state, **c),
        balanced_sampling=lambda o: o["balance"] == "resample",
    ),
    Mitigation(
        name="domain_independent", title="Domain-independent", source="Wang et al., CVPR 2020",
        options={"combine": "logits"}, choices={"combine": COMBINE_RULES}, loss_kinds=("loss",),
        build_model=lambda b, k, d, w, o: DomainIndependentClassifier(b, k, d, weights=w, combine=o["combine"]),
        build_state=lambda counts, o: None,
        run_iteration=lambda m, opt, x, y, d, state, o, **c: domain_independent_iteration(m, opt, x, y, d, **c),
        balanced_sampling=lambda o: False,
    ),
    Mitigation(
        name="adversarial", title="Adversarial (GRL)", source="Zhang, Lemoine & Mitchell, AIES 2018",
        options={"adversary_weight": 1.0, "adversary_hidden": 256, "adversary_input": "features"},
        choices={"adversary_input": ADVERSARY_INPUTS}, loss_kinds=("loss", "adversary"),
        build_model=lambda b, k, d, w, o: AdversarialClassifier(b, k, d, weights=w, hidden=o["adversary_hidden"],
                                                                adversary_input=o["adversary_input"]),
        build_state=lambda counts, o: None,
        run_iteration=lambda m, opt, x, y, d, state, o, **c: adversarial_iteration(
            m, opt, x, y, d, adversary_weight=o["adversary_weight"], **c),
        balanced_sampling=lambda o: False,
        minimum={"adversary_weight": 0.0, "adversary_hidden": 1},
    ),
    Mitigation(
        name="group_dro", title="Group DRO", source="Sagawa et al., ICLR 2020",
        options={"step_size": 0.01, "sampling": "balanced"}, choices={"sampling": ("balanced", "shuffle")},
        loss_kinds=("loss", "worst_group"),
        build_model=_baseline,
        build_state=lambda counts, o: GroupWeights(counts.numel(), o["step_size"]),
        run_iteration=lambda m, opt, x, y, d, state, o, **c: group_dro_iteration(m, opt, x, y, d, state=state, **c),
        balanced_sampling=lambda o: o["sampling"] == "balanced",
        minimum={"step_size": 0.0},
    ),
)}

#: Every training method the engine knows: FineFACE, the baseline, then the mitigation methods.
METHODS: tuple[str, ...] = ("finefcace", "baseline", *MITIGATIONS)


def uses_protected_labels(method: str) -> bool:
    """Whether ``method`` trains with the protected label of every training image (FineFACE
    and the baseline do not)."""
    return method in MITIGATIONS


def check_options(method: str, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The options in force for ``method``: its defaults, with ``given`` applied and checked
    (unknown names, types, allowed values, lower bounds); ``ValueError`` naming the fix."""
    given = dict(given or {})
    if method not in MITIGATIONS:
        if given:
            raise ValueError(f"method {method!r} takes no method_options (got {sorted(given)}); they are for "
                             f"the mitigation methods: {', '.join(MITIGATIONS)}")
        return {}
    spec = MITIGATIONS[method]
    resolved = dict(spec.options)
    for key, value in given.items():
        if key not in spec.options:
            close = difflib.get_close_matches(key, list(spec.options), n=2, cutoff=0.6)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise ValueError(f"unknown option {key!r} of method {method!r}{hint} (its options: "
                             f"{', '.join(f'{k} (default {v!r})' for k, v in spec.options.items())})")
        default = spec.options[key]
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not type(default):
            raise ValueError(f"option {key!r} of method {method!r} must be {type(default).__name__}, got "
                             f"{value!r} ({type(value).__name__}); e.g. {key}: {default!r}")
        if key in spec.choices and value not in spec.choices[key]:
            raise ValueError(f"option {key!r} of method {method!r} is {value!r}; choose one of {list(spec.choices[key])}")
        if key in spec.minimum and value < spec.minimum[key]:
            raise ValueError(f"option {key!r} of method {method!r} must be >= {spec.minimum[key]}, got {value!r}")
        resolved[key] = value
    return resolved
