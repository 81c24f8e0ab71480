"""Tests of finefcace/mitigation/group_balance.py: inverse-frequency weights and the reweighted loss."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from finefcace.mitigation.common import per_sample_loss
from finefcace.mitigation.group_balance import GroupBalance, group_balanced_iteration, inverse_frequency_weights


def test_weights_are_inverse_frequencies_and_every_cell_weighs_the_same():
    counts = torch.tensor([[40.0, 10.0], [5.0, 0.0], [25.0, 20.0]])  # (D=3 domains, K=2 classes), one empty cell
    weights = inverse_frequency_weights(counts)
    n, present = counts.sum(), 5
    expected = torch.tensor([n / (present * 40), n / (present * 10), n / (present * 5), 0.0,
                             n / (present * 25), n / (present * 20)], dtype=torch.float64)
    torch.testing.assert_close(weights, expected)
    totals = weights * counts.flatten()  # the total weight of each cell in the training split
    torch.testing.assert_close(totals[totals > 0], torch.full((present,), float(n / present), dtype=torch.float64))
    assert float((weights * counts.flatten()).sum() / n) == pytest.approx(1.0)  # mean weight per image: 1
    # the rarest cell gets the largest weight, 8x the most frequent one's
    assert weights[2] / weights[0] == pytest.approx(8.0)
    with pytest.raises(ValueError, match="every cell is empty"):
        inverse_frequency_weights(torch.zeros(2, 2))


class _Logits(nn.Module):
    """A stand-in 'model': fixed features times one weight matrix (the loss is easy to recompute)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)

    def forward(self, x):
        return self.linear(x)


def test_the_loss_is_the_cell_weighted_mean_and_resampling_leaves_it_plain():
    torch.manual_seed(0)
    model = _Logits()
    x, labels, domains = torch.randn(6, 3), torch.tensor([0, 1, 0, 1, 1, 0]), torch.tensor([0, 0, 1, 1, 2, 2])
    counts = torch.tensor([[30.0, 10.0], [5.0, 5.0], [20.0, 30.0]])
    state = GroupBalance(counts, "reweight")
    with torch.no_grad():
        losses = per_sample_loss(model(x), labels)
    weights = inverse_frequency_weights(counts).float()[domains * 2 + labels]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    stats = {}
    out = group_balanced_iteration(model, optimizer, x, labels, domains, state=state, stats=stats)
    torch.testing.assert_close(out["loss"], (weights * losses).mean())
    assert out["loss"] != pytest.approx(float(losses.mean()))
    assert int(stats["correct"]) == int((model(x).argmax(1) == labels).sum())
    plain = group_balanced_iteration(model, optimizer, x, labels, domains, state=GroupBalance(counts, "resample"))
    torch.testing.assert_close(plain["loss"], losses.mean())
    with pytest.raises(ValueError, match="'reweight' or 'resample'"):
        GroupBalance(counts, "oversample")
