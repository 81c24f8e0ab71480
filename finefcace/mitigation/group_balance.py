"""Group-balanced training: every (protected group × class) cell weighs the same in the loss.

Introduced in ``notebooks/07_mitigation_methods.ipynb``. A cell c of the training split with
n_c of its N images gets the **inverse-frequency weight** ``w_c = N / (C · n_c)`` (C: the
non-empty cells), so that every cell contributes the same total weight N / C and the mean
weight over the training images is 1. Two ways to use it:

- **reweighting** (``balance: reweight``, the default): the loss of a batch is
  ``mean_i w_{c_i} · CE_i`` — an unbiased estimate of the mean over cells of each cell's mean
  loss. The images and their order are exactly the baseline's, so the comparison isolates the
  change of the objective; it is also the "Weighting" row of the FineFACE paper's Table 7
  (from Wang et al., CVPR 2020, the paper's [29], who weight the loss for CelebA's
  attributes, where oversampling a multi-label set is not possible).
- **resampling** (``balance: resample``): the sampler draws training images with replacement
  with probability ∝ ``w_{c_i}`` (every cell equally often) and the loss is the plain mean CE.
  Lower gradient variance for rare cells, at the price of repeating their few images.

The protected label is used in training only; inference is the baseline's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from finefcace.mitigation.common import cell_index, optimizer_step, per_sample_loss
from finefcace.model import Baseline
from finefcace.precision import autocast

__all__ = ["inverse_frequency_weights", "GroupBalance", "group_balanced_iteration"]


def inverse_frequency_weights(counts: Tensor) -> Tensor:
    """``w_c = N / (C · n_c)`` for every cell of ``counts`` (any shape, e.g. (D, K)), 0 for an
    empty cell; flattened to (D·K,) in cell order ``d·K + y``. Σ_c n_c w_c = N."""
    counts = torch.as_tensor(counts, dtype=torch.float64).flatten()
    present = counts > 0
    if not present.any():
        raise ValueError("inverse_frequency_weights: every cell is empty")
    weights = torch.zeros_like(counts)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


class GroupBalance(nn.Module):
    """The training state of group-balanced training: the cell weights (a buffer, so it travels
    with checkpoints) and whether they weight the loss (``reweight``) or, through the
    trainer's sampler, the draws (``resample``)."""

    def __init__(self, counts: Tensor, balance: str = "reweight") -> None:
        super().__init__()
        if balance not in ("reweight", "resample"):
            raise ValueError(f"balance must be 'reweight' or 'resample', got {balance!r}")
        self.balance = balance
        self.register_buffer("cell_weights", inverse_frequency_weights(counts).float())


def group_balanced_iteration(
    model: Baseline,
    optimizer: torch.optim.Optimizer,
    images: Tensor,
    labels: Tensor,
    domains: Tensor,
    *,
    state: GroupBalance,
    amp_dtype: torch.dtype | None = None,
    after_backward: Callable[[], Any] | None = None,
    stats: dict[str, Any] | None = None,
) -> dict[str, Tensor]:
    """One iteration: forward, the inverse-frequency-weighted CE (or the plain CE when the
    sampler balances), one step. Returns ``{"loss": ...}``; ``stats`` receives ``"correct"``."""
    optimizer.zero_grad(set_to_none=True)
    with autocast(images.device, amp_dtype):
        logits = model(images)
    losses = per_sample_loss(logits, labels)
    if state.balance == "reweight":
        weights = state.cell_weights[cell_index(domains, labels, logits.shape[1])]
        loss = (weights * losses).mean()
    else:
        loss = losses.mean()
    optimizer_step(loss, optimizer, after_backward)
    if stats is not None:
        stats["correct"] = (logits.detach().argmax(dim=1) == labels).sum()
    return {"loss": loss.detach()}
