"""Domain-independent training (Wang et al., CVPR 2020, §5 — the FineFACE paper's [29]).

Introduced in ``notebooks/07_mitigation_methods.ipynb``. One shared backbone, and **one
classifier per protected domain** d: the head of domain d gives class scores s(y, d, x) and
is trained only on the images of domain d (a K-way softmax per domain). The backbone is thus
never asked to tell the domains apart to classify — but it may still encode them.

Inference does not know the domain of a test image, so the heads are combined. Wang et al.
compare several rules; the one they propose, and the one used here by default
(``combine: logits``), **sums the class scores (logits) of all the heads**,
``ŷ = argmax_y Σ_d s(y, d, x)`` — for per-domain softmax heads this is the argmax of the
product of the per-domain class probabilities (each head's normaliser does not depend on y).
``combine: probabilities`` sums the per-domain probabilities instead,
``ŷ = argmax_y Σ_d P(y | d, x)`` (Wang et al.'s "sum of probabilities" alternative).
:meth:`DomainIndependentClassifier.forward` returns scores whose softmax is the model's
class probability: the summed logits, or ``log mean_d P(y | d, x)``.

The protected label is used in training only.
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

__all__ = ["COMBINE_RULES", "combine_domain_scores", "DomainIndependentClassifier", "domain_independent_iteration"]

#: How the per-domain heads are combined at inference (Wang et al. §5).
COMBINE_RULES = ("logits", "probabilities")


def combine_domain_scores(domain_logits: Tensor, combine: str = "logits") -> Tensor:
    """Group-agnostic class scores (B, K) from every domain head's scores (B, D, K):
    ``Σ_d s(y, d, x)`` (``"logits"``) or ``log mean_d softmax(s(·, d, x))_y``
    (``"probabilities"``: same argmax as Σ_d P(y | d, x))."""
    if combine == "logits":
        return domain_logits.sum(dim=1)
    if combine == "probabilities":
        return torch.logsumexp(F.log_softmax(domain_logits.float(), dim=2), dim=1) - torch.log(
            torch.tensor(float(domain_logits.shape[1])))
    raise ValueError(f"combine must be one of {COMBINE_RULES}, got {combine!r}")


class DomainIndependentClassifier(Baseline):
    """The baseline's backbone and pooling with one Linear(K) head per domain (one
    Linear(D·K) here: rows d·K..d·K+K−1 are domain d's head). ``forward`` gives the combined,
    group-agnostic scores; :meth:`domain_logits` every head's."""

    def __init__(self, backbone: str = "resnet50", num_classes: int = 2, num_domains: int = 2, *,
                 weights: Any = None, combine: str = "logits") -> None:
        super().__init__(backbone, num_classes, weights=weights)
        if num_domains < 1:
            raise ValueError(f"num_domains must be at least 1, got {num_domains}")
        if combine not in COMBINE_RULES:
            raise ValueError(f"combine must be one of {COMBINE_RULES}, got {combine!r}")
        self.num_domains = num_domains
        self.combine = combine
        self.classifier = nn.Linear(self.classifier.in_features, num_domains * num_classes)
        self.config = dict(self.config, num_domains=num_domains, combine=combine)

    def domain_logits(self, x: Tensor) -> Tensor:
        """s(y, d, x) for every domain head: (B, D, K)."""
        pooled = self.feature_map(x).mean(dim=(2, 3))
        return self.classifier(pooled).unflatten(1, (self.num_domains, self.num_classes))

    def forward_with_map(self, x: Tensor) -> tuple[Tensor, Tensor]:
        maps = self.feature_map(x)
        scores = self.classifier(maps.mean(dim=(2, 3))).unflatten(1, (self.num_domains, self.num_classes))
        return combine_domain_scores(scores, self.combine), maps

    def class_weights(self) -> Tensor:
        """Σ_d W_{d,k}: the linear weight of class k in the summed logits (exact CAM weights for
        ``combine: logits``; an approximation for ``probabilities``)."""
        return self.classifier.weight.unflatten(0, (self.num_domains, self.num_classes)).sum(dim=0)


def domain_independent_iteration(
    model: DomainIndependentClassifier,
    optimizer: torch.optim.Optimizer,
    images: Tensor,
    labels: Tensor,
    domains: Tensor,
    *,
    amp_dtype: torch.dtype | None = None,
    after_backward: Callable[[], Any] | None = None,
    stats: dict[str, Any] | None = None,
) -> dict[str, Tensor]:
    """One iteration: every image's CE under **its own domain's head** only, one step.
    Returns ``{"loss": ...}``; ``stats["correct"]`` counts the group-agnostic (combined)
    predictions, the ones inference makes."""
    optimizer.zero_grad(set_to_none=True)
    with autocast(images.device, amp_dtype):
        scores = model.domain_logits(images)                           # (B, D, K)
    own = scores[torch.arange(len(labels), device=scores.device), domains.long()]  # (B, K)
    loss = F.cross_entropy(own.float(), labels)
    optimizer_step(loss, optimizer, after_backward)
    if stats is not None:
        combined = combine_domain_scores(scores.detach().float(), model.combine)
        stats["correct"] = (combined.argmax(dim=1) == labels).sum()
    return {"loss": loss.detach()}
