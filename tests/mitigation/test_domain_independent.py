"""Tests of finefcace/mitigation/domain_independent.py: one head per domain, summed at inference."""

from __future__ import annotations

import pytest
import torch

from finefcace.mitigation.domain_independent import (DomainIndependentClassifier, combine_domain_scores,
                                                     domain_independent_iteration)

D, K = 3, 2


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return DomainIndependentClassifier("resnet18", K, D).eval()


def test_inference_sums_the_class_scores_of_every_domain_head(model):
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        heads = model.domain_logits(x)
        assert heads.shape == (4, D, K)
        # each head is its own rows of the one Linear: head d = rows d*K .. d*K+K-1
        pooled = model.feature_map(x).mean(dim=(2, 3))
        for d in range(D):
            torch.testing.assert_close(heads[:, d], pooled @ model.classifier.weight[d * K:(d + 1) * K].T
                                       + model.classifier.bias[d * K:(d + 1) * K])
        torch.testing.assert_close(model(x), heads[:, 0] + heads[:, 1] + heads[:, 2])
        # the CAM weights of the summed logits are the heads' weights summed
        torch.testing.assert_close(model.class_weights(), sum(model.classifier.weight[d * K:(d + 1) * K] for d in range(D)))


def test_the_probability_rule_sums_the_per_domain_probabilities():
    scores = torch.tensor([[[4.0, 0.0], [0.0, 1.8], [0.0, 1.8]]])  # head 0 sure of class 0, heads 1-2 lean to 1
    by_logits = combine_domain_scores(scores, "logits")
    by_probabilities = combine_domain_scores(scores, "probabilities")
    torch.testing.assert_close(by_logits, torch.tensor([[4.0, 3.6]]))
    torch.testing.assert_close(by_probabilities.softmax(dim=1), scores.softmax(dim=2).mean(dim=1))
    assert by_logits.argmax(1).item() == 0
    assert by_probabilities.argmax(1).item() == 1  # the two rules can disagree: mean P = (0.42, 0.58)
    with pytest.raises(ValueError, match="combine must be one of"):
        combine_domain_scores(scores, "max")


def test_an_image_trains_only_the_head_of_its_own_domain():
    torch.manual_seed(1)
    model = DomainIndependentClassifier("resnet18", K, D)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    x, labels = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 1, 0])
    domains = torch.tensor([0, 2, 0, 2])  # no image of domain 1
    stats = {}
    domain_independent_iteration(model, optimizer, x, labels, domains, stats=stats)
    grad = model.classifier.weight.grad.unflatten(0, (D, K))
    assert grad[1].abs().sum() == 0 and model.classifier.bias.grad[K:2 * K].abs().sum() == 0
    assert grad[0].abs().sum() > 0 and grad[2].abs().sum() > 0
    assert 0 <= int(stats["correct"]) <= 4
