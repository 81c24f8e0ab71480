"""finefcace.ablations: every fusion subset agrees with the library's fused inference."""

from __future__ import annotations

import pytest

from course_fixtures import small_models  # noqa: F401  (a fixture)
from finefcace import ablations


def test_fusion_subsets_agree_with_fused_inference(small_models):
    import numpy as np
    import torch

    from finefcace import predict

    model, _ = small_models
    images = torch.randn(6, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    loader = [(images[:4], torch.tensor([0, 1, 0, 1]), torch.arange(4)),
              (images[4:], torch.tensor([1, 0]), torch.arange(4, 6))]
    scores = ablations.fusion_scores(model, loader)
    assert scores["heads"] == ["e_1", "e_2", "e_3", "concat"] and scores["raw"].shape == (4, 6, 2)
    for views, heads, options in [("raw+oval", "all", {}), ("raw", "concat", {"views": ("raw",), "heads": "concat"}),
                                  ("oval", "e_2", {"views": ("oval",), "heads": 1}),
                                  ("raw+oval", "experts", {"heads": "experts"})]:
        expected = predict.fused_logits(model, images, **options).argmax(dim=1).numpy()
        assert np.array_equal(ablations.fusion_predictions(scores, views, heads), expected), (views, heads)
    with pytest.raises(ValueError, match="heads="):
        ablations.fusion_predictions(scores, "raw", "e_9")
