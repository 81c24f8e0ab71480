"""Tests of finefcace/mitigation/adversarial.py: the gradient-reversal layer and the adversary's update."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from finefcace.mitigation.adversarial import AdversarialClassifier, adversarial_iteration, gradient_reversal


def test_gradient_reversal_is_the_identity_forward_and_flips_and_scales_the_gradient():
    x = torch.randn(5, 4, requires_grad=True)
    upstream = torch.randn(5, 4)
    y = gradient_reversal(x, 0.3)
    torch.testing.assert_close(y, x)
    (y * upstream).sum().backward()
    torch.testing.assert_close(x.grad, -0.3 * upstream)
    x.grad = None
    (gradient_reversal(x, 0.0) * upstream).sum().backward()
    assert x.grad.abs().sum() == 0  # weight 0: the adversary does not reach the features


@pytest.mark.parametrize("adversary_input", ["features", "prediction"])
def test_the_adversary_descends_its_loss_and_the_backbone_ascends_it_times_the_weight(adversary_input):
    """With the GRL, one backward of CE(class) + CE(domain) gives the adversary ∇L_adv and the
    backbone ∇L_cls − α ∇L_adv: checked against the two gradients computed separately."""
    torch.manual_seed(0)
    alpha = 0.7
    model = AdversarialClassifier("resnet18", 2, 3, adversary_input=adversary_input).eval()  # eval: fixed BN
    x, labels, domains = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 1, 0]), torch.tensor([0, 2, 1, 2])
    backbone, adversary = model.backbone_parameters()[0], model.adversary[0].weight

    def losses(weight):
        pooled, logits = model.features_and_logits(x)
        scores = model.adversary_logits(pooled, logits, labels, weight)
        return F.cross_entropy(logits, labels), F.cross_entropy(scores, domains)

    classifier_backbone = torch.autograd.grad(losses(1.0)[0], backbone)[0]
    # through a GRL of weight 1 the backbone receives exactly −∇L_adv, the adversary +∇L_adv
    reversed_backbone, adversary_own = torch.autograd.grad(losses(1.0)[1], [backbone, adversary])
    adversary_backbone = -reversed_backbone
    model.zero_grad(set_to_none=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    stats = {}
    out = adversarial_iteration(model, optimizer, x, labels, domains, adversary_weight=alpha, stats=stats)
    torch.testing.assert_close(model.adversary[0].weight.grad, adversary_own, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(backbone.grad, classifier_backbone - alpha * adversary_backbone, rtol=1e-4, atol=1e-6)
    assert set(out) == {"loss", "adversary"} and 0 <= int(stats["adversary_correct"]) <= 4


def test_inference_is_the_classifier_alone_and_the_adversary_is_a_trained_head():
    torch.manual_seed(0)
    model = AdversarialClassifier("resnet18", 2, 4, hidden=8).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.features_and_logits(x)[1])
    heads = {id(p) for p in model.head_parameters()}
    assert all(id(p) in heads for p in model.adversary.parameters())
    with pytest.raises(ValueError, match="at least 2 domains"):
        AdversarialClassifier("resnet18", 2, 1)
