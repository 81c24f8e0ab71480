"""Adversarial debiasing (Zhang, Lemoine & Mitchell, AIES 2018 — the FineFACE paper's [33]),
through a gradient-reversal layer.

Introduced in ``notebooks/07_mitigation_methods.ipynb``. Beside the classifier, an
**adversary** (a small MLP) tries to predict the protected domain d of each image from what
the classifier computes; the classifier is trained to predict the target *and* to make the
adversary fail. One backward pass does both through a **gradient-reversal layer** (GRL,
Ganin & Lempitsky, ICML 2015): the identity going forward, ``−α ×`` the gradient going back.
With the total loss ``L_cls + L_adv`` the adversary's weights descend ``∇L_adv`` (it learns to
predict d) while the backbone descends ``∇L_cls − α ∇L_adv`` (it unlearns d). ``α`` is
``adversary_weight``.

Two simplifications of Zhang et al., both common (Wang et al., CVPR 2020, compare this form):

- Zhang et al.'s predictor update is ``∇L_P − proj_{∇L_A} ∇L_P − α ∇L_A``: it also removes the
  component of the predictor's gradient that would *help* the adversary (the projection
  term). A GRL keeps only ``∇L_P − α ∇L_A``.
- Zhang et al.'s adversary reads the predictor's *output* (for equality of odds, the output
  and the true label); by default ours reads the pooled backbone **features** (what the
  course's issue asks: the representation should not reveal the domain).
  ``adversary_input: prediction`` gives Zhang et al.'s equality-of-odds input instead: the
  class logits and the one-hot true label.

The protected label is used in training only; inference is the classifier alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from finefcace.mitigation.common import optimizer_step
from finefcace.model import Baseline
from finefcace.precision import autocast

__all__ = ["ADVERSARY_INPUTS", "GradientReversal", "gradient_reversal", "AdversarialClassifier", "adversarial_iteration"]

#: What the adversary reads: the pooled features, or (Zhang et al.'s equality of odds) the
#: class logits with the one-hot true label.
ADVERSARY_INPUTS = ("features", "prediction")


class GradientReversal(torch.autograd.Function):
    """Identity forward; the incoming gradient times ``−weight`` backward (Ganin & Lempitsky 2015)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: float) -> Tensor:
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return -ctx.weight * grad, None


def gradient_reversal(x: Tensor, weight: float = 1.0) -> Tensor:
    """``x`` unchanged; its gradient flipped and scaled by ``weight`` on the way back."""
    return GradientReversal.apply(x, float(weight))


class AdversarialClassifier(Baseline):
    """The baseline (backbone → GAP → Linear(K)) plus an adversary MLP that predicts one of D
    domains: Linear(in → hidden) → ReLU → Linear(hidden → D). Its input is the pooled
    features (``adversary_input="features"``) or the logits and the one-hot label
    (``"prediction"``). ``forward`` is the classifier's alone (inference ignores the adversary)."""

    def __init__(self, backbone: str = "resnet50", num_classes: int = 2, num_domains: int = 2, *,
                 weights: Any = None, hidden: int = 256, adversary_input: str = "features") -> None:
        super().__init__(backbone, num_classes, weights=weights)
        if num_domains < 2:
            raise ValueError(f"the adversary needs at least 2 domains to tell apart, got {num_domains}")
        if adversary_input not in ADVERSARY_INPUTS:
            raise ValueError(f"adversary_input must be one of {ADVERSARY_INPUTS}, got {adversary_input!r}")
        self.num_domains = num_domains
        self.adversary_input = adversary_input
        width = self.classifier.in_features if adversary_input == "features" else 2 * num_classes
        self.adversary = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_domains))
        self.config = dict(self.config, num_domains=num_domains, hidden=hidden, adversary_input=adversary_input)

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.classifier.parameters()) + list(self.adversary.parameters())

    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        pooled = self.feature_map(x).mean(dim=(2, 3))
        return pooled, self.classifier(pooled)

    def adversary_logits(self, pooled: Tensor, logits: Tensor, labels: Tensor, weight: float) -> Tensor:
        """The adversary's domain scores (B, D) from its input passed through the GRL."""
        if self.adversary_input == "features":
            seen = pooled
        else:
            seen = torch.cat([logits, F.one_hot(labels, self.num_classes).to(logits.dtype)], dim=1)
        return self.adversary(gradient_reversal(seen, weight))


def adversarial_iteration(
    model: AdversarialClassifier,
    optimizer: torch.optim.Optimizer,
    images: Tensor,
    labels: Tensor,
    domains: Tensor,
    *,
    adversary_weight: float = 1.0,
    amp_dtype: torch.dtype | None = None,
    after_backward: Callable[[], Any] | None = None,
    stats: dict[str, Any] | None = None,
) -> dict[str, Tensor]:
    """One iteration: ``CE(class) + CE(domain | adversary)`` with the adversary behind a GRL of
    weight α = ``adversary_weight``; one step updates the classifier, the backbone and the
    adversary together. Returns ``{"loss": CE(class), "adversary": CE(domain)}``; ``stats``
    receives ``"correct"`` and ``"adversary_correct"`` (domains the adversary got right)."""
    optimizer.zero_grad(set_to_none=True)
    with autocast(images.device, amp_dtype):
        pooled, logits = model.features_and_logits(images)
        domain_logits = model.adversary_logits(pooled, logits, labels, adversary_weight)
    class_loss = F.cross_entropy(logits.float(), labels)
    adversary_loss = F.cross_entropy(domain_logits.float(), domains.long())
    optimizer_step(class_loss + adversary_loss, optimizer, after_backward)
    if stats is not None:
        stats["correct"] = (logits.detach().argmax(dim=1) == labels).sum()
        stats["adversary_correct"] = (domain_logits.detach().argmax(dim=1) == domains).sum()
    return {"loss": class_loss.detach(), "adversary": adversary_loss.detach()}
