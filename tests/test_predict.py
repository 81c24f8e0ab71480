"""Fused inference (finefcace/predict.py, paper §3.3 "Inference Phase")."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from finefcace.attention import class_activation_maps, overall_region
from finefcace.model import Baseline, FineFACE
from finefcace.predict import fused_logits, predict_loader


@pytest.fixture(scope="module")
def model() -> FineFACE:
    torch.manual_seed(0)
    model = FineFACE("resnet18", 3, descriptor_dim=16)
    model.train()
    with torch.no_grad():  # give the BatchNorms non-trivial statistics
        model(torch.randn(8, 3, 64, 64))
    return model.eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(4, 3, 64, 64)


def _manual(model, images, threshold=0.5, pad=0.1):
    with torch.no_grad():
        raw = model(images)
        oval = model(overall_region(images, class_activation_maps(model, raw), threshold, pad))
    return raw, oval


def test_default_is_the_mean_of_the_2n_plus_2_logits(model, images):
    raw, oval = _manual(model, images)
    expected = torch.stack([*raw.expert_logits, raw.concat_logits, *oval.expert_logits, oval.concat_logits]).mean(0)
    fused = fused_logits(model, images)
    assert fused.shape == (4, 3)
    torch.testing.assert_close(fused, expected)
    assert fused.is_inference()


def test_every_subset_is_selectable(model, images):
    raw, oval = _manual(model, images)
    torch.testing.assert_close(fused_logits(model, images, views=("raw",), heads="concat"), raw.concat_logits)
    torch.testing.assert_close(fused_logits(model, images, views=("oval",), heads="concat"), oval.concat_logits)
    torch.testing.assert_close(fused_logits(model, images, views=("raw",), heads=1), raw.expert_logits[1])
    torch.testing.assert_close(fused_logits(model, images, views=("oval",), heads=-1), oval.expert_logits[2])
    torch.testing.assert_close(fused_logits(model, images, views=("raw",), heads="experts"),
                               torch.stack(raw.expert_logits).mean(0))
    torch.testing.assert_close(fused_logits(model, images, views=("oval",)),
                               torch.stack([*oval.expert_logits, oval.concat_logits]).mean(0))


def test_probability_fusion(model, images):
    raw, oval = _manual(model, images)
    scores = [*raw.expert_logits, raw.concat_logits, *oval.expert_logits, oval.concat_logits]
    fused = fused_logits(model, images, combine="probabilities")
    torch.testing.assert_close(fused, torch.stack([s.softmax(1) for s in scores]).mean(0))
    torch.testing.assert_close(fused.sum(1), torch.ones(4))


def test_threshold_and_pad_reach_the_region(model, images):
    raw, oval = _manual(model, images, threshold=0.9, pad=0.0)
    torch.testing.assert_close(fused_logits(model, images, views=("oval",), heads="concat", threshold=0.9, pad=0.0),
                               oval.concat_logits)


def test_runs_in_eval_mode_and_restores_the_mode(model, images):
    model.train()
    try:
        before = model.stages[0].bn1.running_mean.clone()
        fused = fused_logits(model, images)
        assert model.training
        assert torch.equal(model.stages[0].bn1.running_mean, before)  # eval: statistics untouched
        model.eval()
        torch.testing.assert_close(fused, fused_logits(model, images))
    finally:
        model.eval()


def test_bad_options_are_refused(model, images):
    with pytest.raises(ValueError, match="views"):
        fused_logits(model, images, views=("crop",))
    with pytest.raises(ValueError, match="views"):
        fused_logits(model, images, views=())
    with pytest.raises(ValueError, match="heads"):
        fused_logits(model, images, heads="deepest")
    with pytest.raises(ValueError, match="heads"):
        fused_logits(model, images, heads=3)
    with pytest.raises(ValueError, match="combine"):
        fused_logits(model, images, combine="votes")


def _loader(images: torch.Tensor, batch_size: int = 3) -> DataLoader:
    labels = torch.tensor([0, 2, 1, 1, 0, 2, 2])[: len(images)]
    rows = torch.arange(100, 100 + len(images))
    return DataLoader(TensorDataset(images, labels, rows), batch_size=batch_size, shuffle=False)


def test_predict_loader_collects_fused_predictions(model):
    torch.manual_seed(2)
    images = torch.randn(7, 3, 64, 64)
    result = predict_loader(model, _loader(images))
    assert result["row_index"].tolist() == list(range(100, 107))
    assert result["y_true"].tolist() == [0, 2, 1, 1, 0, 2, 2]
    probs = fused_logits(model, images).softmax(1).numpy()
    np.testing.assert_allclose(result["probabilities"], probs, atol=1e-5)
    assert result["y_pred"].tolist() == probs.argmax(1).tolist()
    single = predict_loader(model, _loader(images), views=("raw",), heads="concat", combine="probabilities")
    with torch.no_grad():
        expected = model(images).concat_logits.softmax(1).numpy()
    np.testing.assert_allclose(single["probabilities"], expected, atol=1e-5)


def test_predict_loader_runs_the_baseline():
    torch.manual_seed(3)
    baseline = Baseline("resnet18", 3).eval()
    images = torch.randn(5, 3, 64, 64)
    result = predict_loader(baseline, _loader(images, 2))
    with torch.no_grad():
        np.testing.assert_allclose(result["probabilities"], baseline(images).softmax(1).numpy(), atol=1e-5)
    assert result["probabilities"].shape == (5, 3) and len(result["y_pred"]) == 5
    with pytest.raises(ValueError, match="FineFACE only"):
        predict_loader(baseline, _loader(images), heads="concat")
    with pytest.raises(ValueError, match="no batches"):
        predict_loader(baseline, [])


@pytest.mark.parametrize("backbone", ["convnext_tiny", "swin_t"])
def test_fused_inference_on_modern_backbones(backbone):
    """Fused inference (paper §3.3) on ConvNeXt and Swin at 64 px: the mean of the 2(N+1) logits
    of the raw image and A_oval, finite, with CAMs on each expert's grid (8², 4², 2²)."""
    torch.manual_seed(0)
    model = FineFACE(backbone, 3, descriptor_dim=16)
    with torch.no_grad():  # non-trivial BatchNorm statistics
        model(torch.randn(8, 3, 64, 64))
    model.eval()
    images = torch.randn(4, 3, 64, 64)
    raw, oval = _manual(model, images)
    assert [tuple(c.shape) for c in class_activation_maps(model, raw)] == [(4, 8, 8), (4, 4, 4), (4, 2, 2)]
    expected = torch.stack([*raw.expert_logits, raw.concat_logits, *oval.expert_logits, oval.concat_logits]).mean(0)
    fused = fused_logits(model, images)
    assert torch.isfinite(fused).all()
    torch.testing.assert_close(fused, expected)
