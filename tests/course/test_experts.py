"""finefcace.course.experts: the stage, expert, parameter and FLOP tables of chapter 02."""

from __future__ import annotations

import pytest

from finefcace.course import experts
from tests.course_fixtures import small_models  # noqa: F401  (a fixture)


def test_expert_tables_give_the_shapes_and_parameters(small_models):
    model, baseline = small_models
    stages = experts.stage_table(model, 64)
    assert list(stages["map"]) == ["32x32", "16x16", "8x8", "4x4", "2x2"]
    assert list(stages["expert ends here"]) == ["-", "-", "e_1", "e_2", "e_3"]
    table = experts.expert_table(model, 64)
    assert list(table["x_n"])[:3] == ["128x8x8", "256x4x4", "512x2x2"]
    assert list(table["x''_n"])[:3] == ["16x8x8", "16x4x4", "16x2x2"]
    assert table.loc["concat", "v_n"] == 48
    parts = experts.parameter_table(model, baseline)["parameters"]
    assert parts.iloc[:4].sum() == parts["FineFACE total"] == sum(p.numel() for p in model.parameters())
    assert parts.iloc[-1] == sum(p.numel() for p in baseline.parameters())


def test_flop_table_counts_the_passes_of_algorithm_1(small_models):
    model, baseline = small_models
    flops = experts.flop_table(model, 64, baseline)["GFLOPs"]
    full = flops["FineFACE forward (N experts + concat)"]
    alone = [flops[f"expert e_{n} alone"] for n in (1, 2, 3)]
    assert alone[0] < alone[1] < alone[2] <= full
    assert flops["training iteration, forwards (N+2 steps)"] == pytest.approx(3 * full + alone[0] + alone[1], abs=2e-3)
    assert flops["fused inference (raw + A_oval)"] == pytest.approx(2 * full, abs=2e-3)
    assert flops["baseline forward"] < full


def test_preset_differences_are_exactly_the_keys_that_differ():
    from finefcace.presets import get_preset

    a, b = get_preset("paper"), get_preset("official_code")
    assert list(experts.preset_differences().index) == [k for k in a if a[k] != b[k]]


def test_backbone_comparison_gives_every_hierarchical_backbone_the_papers_expert_grids():
    """ConvNeXt-T and Swin-T are cut into four stages like ResNet-50's last four: their default
    experts see the paper's 56², 28², 14² maps at 448 px (and half that at 224 px)."""
    table = experts.backbone_comparison(("resnet50", "convnext_tiny", "swin_t"), sizes=(224, 448))
    assert list(table.index) == ["resnet50", "convnext_tiny", "swin_t"]
    assert set(table["maps at 448 px"]) == {"56x56, 28x28, 14x14"}
    assert set(table["maps at 224 px"]) == {"28x28, 14x14, 7x7"}
    assert table.loc["resnet50", "experts end at stages"] == "3, 4, 5"
    assert table.loc["swin_t", "experts end at stages"] == "2, 3, 4"
    assert (table["GFLOPs FineFACE (448 px)"] > table["GFLOPs baseline (448 px)"]).all()
    assert (table["iteration ÷ baseline"] > 3).all()  # N + 2 forwards, each at least the backbone's


def test_a_plain_vit_is_refused_with_the_reason():
    reason = experts.unsupported_backbone_reason("vit_b_16")
    assert "no shallow-to-deep pyramid" in reason and "swin_t" in reason
    assert experts.unsupported_backbone_reason("resnet18") == "resnet18 is supported"
