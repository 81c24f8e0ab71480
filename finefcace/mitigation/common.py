"""What the four bias-mitigation methods share: protected groups of a batch, per-sample losses, one step.

Introduced in ``notebooks/07_mitigation_methods.ipynb``. The methods of
:mod:`finefcace.mitigation` train with a *protected label* per image — its **domain** d
(race, or tone on the synthetic faces; gender for the CelebA attributes), never the target
itself. A **group** (Sagawa et al.'s term; a *cell* here) is a (domain, class) pair, coded
``d·K + y`` for K classes: on FairFace gender with race as the domain these are the paper's
race × gender subgroups (§4.3).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["cell_index", "cell_counts", "per_sample_loss", "group_means", "optimizer_step"]


def cell_index(domains: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """The group (cell) of each sample: ``domain · K + class``."""
    return domains.long() * num_classes + labels.long()


def cell_counts(domains: Tensor, labels: Tensor, num_domains: int, num_classes: int) -> Tensor:
    """Samples per (domain, class) cell, shape (D, K), float64 (a training split's counts)."""
    cells = cell_index(torch.as_tensor(domains), torch.as_tensor(labels), num_classes)
    counts = torch.bincount(cells, minlength=num_domains * num_classes)
    return counts.double().reshape(num_domains, num_classes)


def per_sample_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of every sample (no reduction), in float32 also under bf16 autocast."""
    return F.cross_entropy(logits.float(), labels, reduction="none")


def group_means(values: Tensor, groups: Tensor, num_groups: int) -> tuple[Tensor, Tensor]:
    """(mean of ``values`` per group, samples per group) over one batch; a group with no sample
    in the batch gets mean 0 (as in Sagawa et al.'s released code), never NaN."""
    one_hot = F.one_hot(groups.long(), num_groups).to(values.dtype)   # (B, G)
    counts = one_hot.sum(dim=0)
    means = (one_hot.T @ values) / counts.clamp(min=1)
    return means, counts


def optimizer_step(loss: Tensor, optimizer: torch.optim.Optimizer,
                   after_backward: Callable[[], Any] | None = None) -> None:
    """Backward, the multi-process gradient hook (if any), one optimizer step. The caller
    reset the gradients (``zero_grad(set_to_none=True)``) before its forward."""
    loss.backward()
    if after_backward is not None:
        after_backward()
    optimizer.step()
