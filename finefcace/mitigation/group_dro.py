"""Group distributionally robust optimisation (Sagawa, Koh, Hashimoto & Liang, ICLR 2020).

Introduced in ``notebooks/07_mitigation_methods.ipynb``. Instead of the mean loss, group DRO
minimises the **worst group's** expected loss, ``max_g E_{P_g}[ℓ]``, over groups
g = (protected domain, class) — Sagawa et al. define the groups by the spurious attribute and
the label, as here. It is solved as a game: a weight ``q_g`` per group (a distribution over
the m groups, uniform at the start) rises for the groups with high loss, by the online
**exponentiated-gradient** step of Sagawa et al.'s Algorithm 1,

    q_g ← q_g · exp(η_q · L_g),   then q ← q / Σ_g q_g,

with ``L_g`` the batch's mean loss of group g (0 for a group absent from the batch, as in their
released code), and the model descends the reweighted loss ``Σ_g q_g L_g``. ``η_q`` is
``step_size`` (0.01 in their code). The weights q are training state: they travel with the
checkpoint, so a resumed run continues with the same q.

Algorithm 1 samples a group uniformly, then an example from it; the minibatch version
(their released code, ``--reweight_groups``) draws group-balanced batches. Hence
``sampling: balanced`` by default (the sampler draws every group equally often, with
replacement; :mod:`finefcace.mitigation.group_balance`'s weights); ``sampling: shuffle`` keeps
the baseline's order. Sagawa et al. stress that group DRO needs strong regularisation (or
early stopping) to help the worst group *at test time*: the runs here have the shared recipe's
weight decay and early stopping on validation, nothing more.

The protected label is used in training only; inference is the baseline's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from finefcace.mitigation.common import cell_index, group_means, optimizer_step, per_sample_loss
from finefcace.model import Baseline
from finefcace.precision import autocast

__all__ = ["GroupWeights", "exponentiated_gradient_step", "group_dro_iteration"]


def exponentiated_gradient_step(q: Tensor, group_losses: Tensor, step_size: float) -> Tensor:
    """Sagawa et al.'s update of the group weights: ``q · exp(η_q · L) / Σ q · exp(η_q · L)``."""
    updated = q * torch.exp(step_size * group_losses)
    return updated / updated.sum()


class GroupWeights(nn.Module):
    """The adversary's distribution q over the m = D·K groups (a buffer: checkpointed)."""

    def __init__(self, num_groups: int, step_size: float = 0.01) -> None:
        super().__init__()
        if num_groups < 1:
            raise ValueError(f"num_groups must be at least 1, got {num_groups}")
        if step_size < 0:
            raise ValueError(f"step_size (η_q) must be >= 0, got {step_size}")
        self.step_size = float(step_size)
        self.register_buffer("q", torch.full((num_groups,), 1.0 / num_groups))

    @property
    def num_groups(self) -> int:
        return self.q.numel()

    def update(self, group_losses: Tensor) -> Tensor:
        """One exponentiated-gradient step on q (no gradient); returns the new q."""
        with torch.no_grad():
            self.q.copy_(exponentiated_gradient_step(self.q, group_losses.detach().to(self.q.dtype), self.step_size))
        return self.q


def group_dro_iteration(
    model: Baseline,
    optimizer: torch.optim.Optimizer,
    images: Tensor,
    labels: Tensor,
    domains: Tensor,
    *,
    state: GroupWeights,
    amp_dtype: torch.dtype | None = None,
    after_backward: Callable[[], Any] | None = None,
    stats: dict[str, Any] | None = None,
) -> dict[str, Tensor]:
    """One iteration of online group DRO: per-group mean losses of the batch, the q update,
    then one step on ``Σ_g q_g L_g``. Returns ``{"loss": Σ_g q_g L_g, "worst_group": max_g L_g}``
    (the max over the groups present in the batch); ``stats`` receives ``"correct"`` and
    ``"group_weights"`` (q after the update)."""
    optimizer.zero_grad(set_to_none=True)
    with autocast(images.device, amp_dtype):
        logits = model(images)
    losses = per_sample_loss(logits, labels)
    groups = cell_index(domains, labels, logits.shape[1])
    group_losses, counts = group_means(losses, groups, state.num_groups)
    q = state.update(group_losses)
    loss = group_losses @ q.to(group_losses.dtype)
    optimizer_step(loss, optimizer, after_backward)
    if stats is not None:
        stats["correct"] = (logits.detach().argmax(dim=1) == labels).sum()
        stats["group_weights"] = q.detach().clone()
    worst = torch.where(counts > 0, group_losses.detach(), torch.full_like(group_losses, -torch.inf)).max()
    return {"loss": loss.detach(), "worst_group": worst}
