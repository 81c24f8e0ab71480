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
    assert len(figure.axes) == 4 * 6 + 4 * 2  # 3 experts + the overall map, 6 steps each; 2 colour bars a row
    bars = [ax for ax in figure.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 8 and {bar.get_ylabel() for bar in bars} == {"CAM value", "normalised (0-1)", "sum of maps"}
    assert len(attention_crop.region_grid(images, steps).axes) == 3 * 5  # input, A_1..A_3, A_oval



def test_the_walkthrough_and_region_grid_are_legible_at_the_books_width(small_models):
    """Their smallest text, as the book shows them (shrunk to its column when wider), is at
    least plots.MIN_TEXT_PT — with a caption longer than the figure is wide, which used to
    widen the saved image until its titles and colour bars were ~4 px tall."""
    import torch

    from finefcace import plots

    model, _ = small_models
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    steps = attention_crop.attention_steps(model, images, threshold=0.5, pad=0.1)
    caption = "tone_2 / Female, true Female, predicted Male; " + "synthetic faces, resnet18 from scratch, " * 4
    for figure in (attention_crop.walkthrough_figure(images, steps, index=1, caption=caption),
                   attention_crop.region_grid(images, steps, row_labels=["tone_1 / Female"] * 3, caption=caption)):
        points, text = plots.smallest_text_as_shown(figure)
        assert points >= plots.MIN_TEXT_PT, f"{text!r} reads as {points:.1f} pt"


def test_the_deepest_map_is_a_32nd_of_the_input(small_models):
    model, _ = small_models
    assert attention_crop.deepest_map_size(model, 64) == (2, 2)
    assert attention_crop.deepest_map_size(model, 128) == (4, 4)
    assert next(model.parameters()).device.type == "cpu"  # measured on a copy


def test_chapter_run_fine_tunes_chapter_4s_backbone_when_its_maps_are_too_small(monkeypatch, tmp_path, small_models):
    import torch

    from finefcace.course import session

    model, _ = small_models
    (tmp_path / "best.pt").write_text("")

    class Run:
        run_dir = tmp_path

    Run.model = model
    asked = []
    monkeypatch.setattr(session, "trained_run", lambda params, name, **changes: asked.append((name, changes)) or Run())
    quick = {"target": "gender", "input_size": 64, "root": "data/synthetic",
             "synthetic": {"n_train": 16, "size": 64, "seed": 0}}
    attention_crop.chapter_run(quick, 128, epochs=2, max_batches=5)
    assert [name for name, _ in asked] == ["gender-finefcace", "gender-finefcace-128px"]
    changes = asked[-1][1]
    assert changes["input_size"] == 128 and changes["epochs"] == 2 and changes["max_batches"] == 5
    assert changes["synthetic"] == {"n_train": 16, "size": 128, "seed": 0}  # faces rendered at 128 px
    assert changes["root"] == "data/synthetic-128px" and changes["table"] is None
    # the weights: chapter 4's trunk, as a torchvision state dict that a ResNet-18 loads
    from finefcace.backbones import load_torchvision_backbone

    trunk = load_torchvision_backbone("resnet18", changes["weights"])
    assert torch.equal(trunk.layer4[1].conv2.weight, model.stages[4].layer4[1].conv2.weight)
    asked.clear()
    attention_crop.chapter_run({**quick, "input_size": 448}, 128)  # the paper's size: chapter 4's run
    attention_crop.chapter_run(quick, None)
    assert [name for name, _ in asked] == ["gender-finefcace", "gender-finefcace"]


def test_prediction_labels_say_true_and_predicted_class():
    import pandas as pd

    class Run:
        predictions = pd.DataFrame({"path": ["a.png", "b.png"], "label_true": ["Female", "Male"],
                                    "label_pred": ["Female", "Female"]})

    rows = pd.DataFrame({"path": ["b.png", "a.png"], "tone": ["tone_4", "tone_1"], "gender": ["Male", "Female"]})
    assert attention_crop.prediction_labels(Run(), rows) == [
        "tone_4 / Male\ntrue Male\npredicted Female ✗", "tone_1 / Female\ntrue Female\npredicted Female ✓"]
