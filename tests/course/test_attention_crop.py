"""finefcace.course.attention_crop: paper §3.2 step by step equals the library's regions; its figures;
Fig. 3's maps."""

from __future__ import annotations

import pytest

from finefcace.course import attention_crop
from tests.course_fixtures import small_models  # noqa: F401  (a fixture)


def test_attention_steps_are_the_library_regions(small_models):
    import torch

    from finefcace import attention

    model, _ = small_models
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    steps = attention_crop.attention_steps(model, images, threshold=0.5, pad=0.1)
    cams = attention.class_activation_maps(model, model.eval()(images))
    for ours, library in zip(steps["regions"], [*attention.attention_regions(images, cams), attention.overall_region(images, cams)]):
        assert torch.equal(ours, library)
    assert [m.shape for m in steps["masks"]] == [torch.Size([3, 64, 64])] * 4
    assert float(steps["overall"].max()) == pytest.approx(1.0)
    shares = attention_crop.box_shares(steps)
    assert list(shares.index) == ["A_1", "A_2", "A_3", "A_oval"] and (shares.to_numpy() <= 100).all()


def test_comparison_maps_are_normalised_and_at_the_input_size(small_models):
    import torch

    model, baseline = small_models
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    experts, overall, baseline_map = attention_crop.comparison_maps(model, baseline, images)
    assert len(experts) == model.num_experts
    for found in (*experts, overall, baseline_map):
        assert found.shape == (2, 64, 64) and float(found.min()) >= 0 and float(found.max()) == pytest.approx(1.0)


def test_walkthrough_and_region_grid_have_a_panel_per_step(small_models):
    import torch

    model, _ = small_models
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    steps = attention_crop.attention_steps(model, images, threshold=0.5, pad=0.1)
    figure = attention_crop.walkthrough_figure(images, steps, index=1, caption="synthetic test")
    assert len(figure.axes) == 4 * 6  # 3 experts + the overall map, 6 steps each
    assert len(attention_crop.region_grid(images, steps).axes) == 3 * 5  # input, A_1..A_3, A_oval
