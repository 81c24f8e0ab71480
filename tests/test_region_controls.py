"""The two controls of FineFACE's attention regions (``TrainConfig.regions``): "none" (every step
on the raw image) and "placebo" (the CAM's boxes moved to random positions). Each test pins
what differs from FineFACE — which input every step sees, which parameters every step moves —
and fails if a control silently falls back to the CAM's regions."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from finefcace import attention, mutual_learning, predict
from finefcace.course.training import iteration_table
from finefcace.model import FineFACE
from finefcace.training.recipe import build_optimizer, fusion_options, iteration_options
from finefcace.training.config import load_config
from tests.training_fixtures import one_thread  # noqa: F401  (autouse: one intra-op thread)

SIZE = 64


def _model_and_batch(seed: int = 0):
    torch.manual_seed(seed)
    config = load_config({"backbone": "resnet18", "input_size": SIZE, "overrides": {"descriptor_dim": 16}})
    model = FineFACE("resnet18", 2, descriptor_dim=16).train()
    images = torch.randn(6, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    return model, build_optimizer(model, config.resolved()), images, labels


def _steps(regions: str, **options):
    """One iteration from the same model and batch: the step table (name, input, parameters
    moved) and every step's ``on_step`` record (input tensor included)."""
    model, optimizer, images, labels = _model_and_batch()
    rows = iteration_table(model, optimizer, images, labels, regions=regions, generator=torch.Generator().manual_seed(1),
                           **options)
    seen = []
    model, optimizer, images, labels = _model_and_batch()
    mutual_learning.finefcace_iteration(model, optimizer, images, labels, regions=regions,
                                        generator=torch.Generator().manual_seed(1), on_step=seen.append, **options)
    return rows, seen, images


# ------------------------------------------------------------------ the placebo boxes
def test_placebo_boxes_keep_each_box_size_and_draw_positions_uniformly():
    size = (40, 50)
    boxes = torch.tensor([[5, 5, 25, 15], [0, 0, 50, 40], [10, 20, 13, 40]] * 400)
    moved = attention.placebo_boxes(boxes, size, torch.Generator().manual_seed(0))
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert torch.equal(moved[:, 2] - moved[:, 0], widths) and torch.equal(moved[:, 3] - moved[:, 1], heights)
    assert (moved[:, :2] >= 0).all() and (moved[:, 2] <= size[1]).all() and (moved[:, 3] <= size[0]).all()
    assert torch.equal(moved[1::3], boxes[1::3])  # a whole-image box has one place to go
    small = moved[2::3]  # a 3 × 20 box: 48 x positions, 21 y positions, each drawn about 400/48 times
    assert small[:, 0].unique().numel() >= 40 and small[:, 1].unique().numel() == 21
    assert small[:, 0].min() == 0 and small[:, 0].max() == size[1] - 3
    again = attention.placebo_boxes(boxes, size, torch.Generator().manual_seed(0))
    assert torch.equal(moved, again)  # seeded: the same draws
    assert not torch.equal(moved, attention.placebo_boxes(boxes, size, torch.Generator().manual_seed(1)))


# ------------------------------------------------------------------ what each step sees and moves
def test_no_regions_trains_every_step_on_the_raw_batch_and_moves_the_same_parameters():
    cam_rows, _, _ = _steps("cam", region_draw="sample")
    rows, seen, images = _steps("none", region_draw="sample")
    assert len(seen) == len(cam_rows) == 5  # N + 2 = 5 optimizer steps, as FineFACE
    assert list(rows["name"]) == list(cam_rows["name"])
    assert all(info["input_name"] == "raw" and torch.equal(info["input"], images) for info in seen)
    assert set(cam_rows["input"]) != {"raw"}  # FineFACE's step N+1 is on A_oval: the test can tell them apart
    assert list(rows["updated"]) == list(cam_rows["updated"])  # each step moves what FineFACE's moves


def test_no_regions_computes_no_class_activation_map(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the no-regions control computed a CAM")

    monkeypatch.setattr(attention, "class_activation_maps", refuse)
    model, optimizer, images, labels = _model_and_batch()
    losses = mutual_learning.finefcace_iteration(model, optimizer, images, labels, regions="none")
    assert list(losses) == mutual_learning.step_names(model.num_experts)
    with pytest.raises(AssertionError, match="computed a CAM"):
        mutual_learning.finefcace_iteration(model, optimizer, images, labels, regions="cam")


@pytest.mark.parametrize("steps_forward", ["expert_only", "all_heads"])
def test_placebo_crops_same_size_boxes_at_random_positions(monkeypatch, steps_forward):
    drawn = []
    original = attention.placebo_boxes

    def recording(boxes, size, generator=None):
        moved = original(boxes, size, generator)
        drawn.append((boxes.clone(), moved.clone()))
        return moved

    monkeypatch.setattr(attention, "placebo_boxes", recording)
    model, optimizer, images, labels = _model_and_batch()
    stats = {}
    seen = []
    mutual_learning.finefcace_iteration(model, optimizer, images, labels, regions="placebo", stats=stats,
                                        steps_forward=steps_forward, region_draw="sample",
                                        generator=torch.Generator().manual_seed(3), on_step=seen.append)
    assert len(drawn) == model.num_experts + 1  # A_1..A_N, then A_oval: every region replaced
    for cam_boxes, moved in drawn:
        assert torch.equal(moved[:, 2] - moved[:, 0], cam_boxes[:, 2] - cam_boxes[:, 0])
        assert torch.equal(moved[:, 3] - moved[:, 1], cam_boxes[:, 3] - cam_boxes[:, 1])
    regions = [attention.crop_and_resize(images, moved) for _, moved in drawn]
    for made, expected in zip([*stats["regions"], stats["overall_region"]], regions):
        torch.testing.assert_close(made, expected)
    oval_step = seen[model.num_experts]
    assert oval_step["input_name"] == "A_oval"
    torch.testing.assert_close(oval_step["input"], regions[-1])


def test_placebo_and_cam_regions_differ_on_the_same_batch_and_seeds():
    """A placebo that fell back to the CAM's boxes would give the CAM's regions: it does not."""
    outputs = {}
    for regions in ("cam", "placebo"):
        model, optimizer, images, labels = _model_and_batch()
        stats = {}
        mutual_learning.finefcace_iteration(model, optimizer, images, labels, regions=regions, stats=stats,
                                            generator=torch.Generator().manual_seed(3))
        outputs[regions] = stats
    cam, placebo = outputs["cam"], outputs["placebo"]
    moved = [not torch.equal(a, b) for a, b in zip([*cam["regions"], cam["overall_region"]],
                                                   [*placebo["regions"], placebo["overall_region"]])]
    # a box covering the whole image has nowhere to go; the others move
    assert any(moved)


# ------------------------------------------------------------------ inference
def test_placebo_inference_is_seeded_and_differs_from_the_cam_view():
    model, _, images, _ = _model_and_batch()
    model.eval()
    with torch.no_grad():  # make the CAM boxes smaller than the image: a strongly peaked expert map
        for block in model.modules():
            if isinstance(block, torch.nn.BatchNorm2d):
                block.running_var.fill_(1.0)
    cam = predict.fused_logits(model, images)
    first = predict.fused_logits(model, images, regions="placebo", generator=torch.Generator().manual_seed(0))
    second = predict.fused_logits(model, images, regions="placebo", generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(first, second)
    raw_only = predict.fused_logits(model, images, views=("raw",))
    assert not torch.equal(first, raw_only)  # the placebo's oval view is fused in
    size = (SIZE, SIZE)
    cams = attention.class_activation_maps(model, model(images))
    boxes = attention.overall_box(cams, size)
    if (attention.box_fractions(boxes, size) < 1).any():  # some box can move: the views differ
        assert not torch.equal(cam, first)
    with pytest.raises(ValueError, match="raw view only"):
        predict.fused_logits(model, images, regions="none")


def test_config_switches_reach_the_iteration_and_the_fused_inference():
    none = load_config({"regions": "none"})
    assert iteration_options(none)["regions"] == "none"
    assert fusion_options(none)["views"] == ("raw",) and fusion_options(none)["regions"] == "none"
    placebo = load_config({"regions": "placebo", "seed": 4})
    fusion = predict.seeded_fusion(fusion_options(placebo))
    assert fusion["regions"] == "placebo" and isinstance(fusion["generator"], torch.Generator)
    assert fusion["generator"].initial_seed() == 4
    assert "regions" not in load_config({}).identity()  # FineFACE's runs keep their identity
    assert load_config({"regions": "none"}).identity() != load_config({}).identity()


def test_controls_train_end_to_end_and_predict_reproducibly(tmp_path):
    from finefcace.sources.synthetic import generate_synthetic
    from finefcace.training.trainer import train

    root = tmp_path / "data"
    generate_synthetic(root, n_train=16, n_val=8, n_test=8, size=SIZE, seed=0)
    base = {"table": str(root / "labels.csv"), "backbone": "resnet18", "input_size": SIZE, "batch_size": 8,
            "epochs": 1, "overrides": {"descriptor_dim": 16}, "device": "cpu", "progress": False,
            "image_cache": str(tmp_path / "cache")}
    histories = {}
    for regions in ("none", "placebo"):
        run_dir = tmp_path / regions
        train({**base, "regions": regions, "run_dir": str(run_dir)})
        histories[regions] = pd.read_csv(run_dir / "history.csv")
        first = pd.read_csv(run_dir / "predictions_test.csv")
        from finefcace.training.evaluation import evaluate_run

        again = evaluate_run(run_dir, split="test", out=tmp_path / f"{regions}_again.csv")
        pd.testing.assert_frame_equal(first[["prob_0", "prob_1"]], again[["prob_0", "prob_1"]])
    for history in histories.values():  # the same N + 2 losses as FineFACE's history
        assert {"loss_expert_3", "loss_overall_region", "loss_concat_raw"} <= set(history.columns)
