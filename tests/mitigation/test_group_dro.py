"""Tests of finefcace/mitigation/group_dro.py: the exponentiated-gradient group weights and the robust loss."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from finefcace.mitigation.common import group_means, per_sample_loss
from finefcace.mitigation.group_dro import GroupWeights, exponentiated_gradient_step, group_dro_iteration


def test_one_step_is_the_exponentiated_gradient_update():
    q = torch.tensor([0.25, 0.25, 0.25, 0.25])
    losses = torch.tensor([0.2, 1.5, 0.7, 0.0])
    new = exponentiated_gradient_step(q, losses, 0.5)
    expected = torch.tensor([math.exp(0.1), math.exp(0.75), math.exp(0.35), 1.0])
    torch.testing.assert_close(new, expected / expected.sum())
    torch.testing.assert_close(exponentiated_gradient_step(q, losses, 0.0), q)  # η_q = 0: uniform forever


def test_the_weights_move_towards_the_worst_group():
    weights = GroupWeights(4, step_size=0.1)
    torch.testing.assert_close(weights.q, torch.full((4,), 0.25))
    losses = torch.tensor([0.3, 0.9, 0.5, 0.1])  # group 1 is the worst
    history = [weights.update(losses).clone() for _ in range(50)]
    worst = [float(q[1]) for q in history]
    assert all(b > a for a, b in zip(worst, worst[1:]))  # rises at every step
    assert all(float(q[3]) < 0.25 for q in history)       # the best group loses weight
    assert history[-1].argmax().item() == 1 and worst[-1] > 0.75
    torch.testing.assert_close(history[-1].sum(), torch.tensor(1.0))
    with pytest.raises(ValueError, match="step_size"):
        GroupWeights(4, step_size=-1.0)


def test_group_means_leave_absent_groups_at_zero():
    means, counts = group_means(torch.tensor([1.0, 3.0, 2.0]), torch.tensor([0, 0, 2]), 4)
    torch.testing.assert_close(means, torch.tensor([2.0, 0.0, 2.0, 0.0]))
    torch.testing.assert_close(counts, torch.tensor([2.0, 0.0, 1.0, 0.0]))


def test_the_iteration_descends_the_q_weighted_group_losses():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    x, labels, domains = torch.randn(6, 3), torch.tensor([0, 1, 0, 1, 1, 0]), torch.tensor([0, 0, 1, 1, 1, 0])
    state = GroupWeights(4, step_size=0.5)
    with torch.no_grad():
        group_losses, _ = group_means(per_sample_loss(model(x), labels), domains * 2 + labels, 4)
    q = exponentiated_gradient_step(torch.full((4,), 0.25), group_losses, 0.5)
    stats = {}
    out = group_dro_iteration(model, torch.optim.SGD(model.parameters(), lr=0.0), x, labels, domains,
                              state=state, stats=stats)
    torch.testing.assert_close(state.q, q)
    torch.testing.assert_close(stats["group_weights"], q)
    torch.testing.assert_close(out["loss"], group_losses @ q)
    torch.testing.assert_close(out["worst_group"], group_losses.max())
