"""finefcace.notebook: the course's helpers for chapters 01-06, and start() with its path rules.

The parameter check itself is finefcace.parameters' (tests/test_parameters.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from course_fixtures import course_dir, namespace, small_models  # noqa: F401  (fixtures)
from finefcace import notebook as course
from finefcace.parameters import ParameterError


def test_expert_tables_give_the_shapes_and_parameters(small_models):
    model, baseline = small_models
    stages = course.stage_table(model, 64)
    assert list(stages["map"]) == ["32x32", "16x16", "8x8", "4x4", "2x2"]
    assert list(stages["expert ends here"]) == ["-", "-", "e_1", "e_2", "e_3"]
    experts = course.expert_table(model, 64)
    assert list(experts["x_n"])[:3] == ["128x8x8", "256x4x4", "512x2x2"]
    assert list(experts["x''_n"])[:3] == ["16x8x8", "16x4x4", "16x2x2"]
    assert experts.loc["concat", "v_n"] == 48
    parts = course.parameter_table(model, baseline)["parameters"]
    assert parts.iloc[:4].sum() == parts["FineFACE total"] == sum(p.numel() for p in model.parameters())
    assert parts.iloc[-1] == sum(p.numel() for p in baseline.parameters())


def test_flop_table_counts_the_passes_of_algorithm_1(small_models):
    model, baseline = small_models
    flops = course.flop_table(model, 64, baseline)["GFLOPs"]
    full = flops["FineFACE forward (N experts + concat)"]
    experts = [flops[f"expert e_{n} alone"] for n in (1, 2, 3)]
    assert experts[0] < experts[1] < experts[2] <= full
    assert flops["training iteration, forwards (N+2 steps)"] == pytest.approx(3 * full + experts[0] + experts[1], abs=2e-3)
    assert flops["fused inference (raw + A_oval)"] == pytest.approx(2 * full, abs=2e-3)
    assert flops["baseline forward"] < full


def test_preset_differences_are_exactly_the_keys_that_differ():
    from finefcace.presets import get_preset

    a, b = get_preset("paper"), get_preset("official_code")
    assert list(course.preset_differences().index) == [k for k in a if a[k] != b[k]]


def test_hyperparameter_table_marks_what_the_profile_changed():
    config = course.train_config({"backbone": "resnet18", "input_size": 64, "overrides": {"head_lr": 0.01}})
    table = course.hyperparameter_table(config)
    assert set(table.index[table["changed"] == "yes"]) == {"backbone", "input_size", "head_lr"}
    assert config.progress is False


def test_iteration_table_reports_what_each_step_updates(small_models):
    import torch

    from finefcace.train import build_model, build_optimizer, step_names

    config = course.train_config({"backbone": "resnet18", "input_size": 64, "overrides": {"descriptor_dim": 16}})
    torch.manual_seed(0)
    model = build_model(config, 2)
    optimizer = build_optimizer(model, config.resolved())
    images, labels = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 0, 1])
    steps = course.iteration_table(model, optimizer, images, labels, generator=torch.Generator().manual_seed(0))
    assert list(steps["name"]) == step_names(3)
    assert list(steps["updated"]) == ["stages 1-5, F_3, f_3", "stages 1-4, F_2, f_2", "stages 1-3, F_1, f_1",
                                      "stages 1-5, F_1, f_1, F_2, f_2, F_3, f_3, f_oval",
                                      "stages 1-5, F_1, F_2, F_3, f_oval"]
    assert steps.loc[4, "input"] == "A_oval" and steps.loc[1, "input"] == "raw"


def test_attention_steps_are_the_library_regions(small_models):
    import torch

    from finefcace import attention

    model, _ = small_models
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    steps = course.attention_steps(model, images, threshold=0.5, pad=0.1)
    cams = attention.class_activation_maps(model, model.eval()(images))
    for ours, library in zip(steps["regions"], [*attention.attention_regions(images, cams), attention.overall_region(images, cams)]):
        assert torch.equal(ours, library)
    assert [m.shape for m in steps["masks"]] == [torch.Size([3, 64, 64])] * 4
    assert float(steps["overall"].max()) == pytest.approx(1.0)
    shares = course.box_shares(steps)
    assert list(shares.index) == ["A_1", "A_2", "A_3", "A_oval"] and (shares.to_numpy() <= 100).all()
    figure = course.walkthrough_figure(images, steps, index=1, caption="synthetic test")
    assert len(figure.axes) == 4 * 6
    assert len(course.region_grid(images, steps).axes) == 3 * 5


def test_fusion_subsets_agree_with_fused_inference(small_models):
    import numpy as np
    import torch

    from finefcace import predict

    model, _ = small_models
    images = torch.randn(6, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    loader = [(images[:4], torch.tensor([0, 1, 0, 1]), torch.arange(4)),
              (images[4:], torch.tensor([1, 0]), torch.arange(4, 6))]
    scores = course.fusion_scores(model, loader)
    assert scores["heads"] == ["e_1", "e_2", "e_3", "concat"] and scores["raw"].shape == (4, 6, 2)
    for views, heads, options in [("raw+oval", "all", {}), ("raw", "concat", {"views": ("raw",), "heads": "concat"}),
                                  ("oval", "e_2", {"views": ("oval",), "heads": 1}),
                                  ("raw+oval", "experts", {"heads": "experts"})]:
        expected = predict.fused_logits(model, images, **options).argmax(dim=1).numpy()
        assert np.array_equal(course.fusion_predictions(scores, views, heads), expected), (views, heads)
    with pytest.raises(ValueError, match="heads="):
        course.fusion_predictions(scores, "raw", "e_9")


def test_prepare_dataset_generates_once_and_regenerates_when_the_options_change(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    options = {"n_train": 8, "n_val": 4, "n_test": 8, "seed": 0}
    table, path = course.prepare_dataset("synthetic", "syn", None, options, input_size=64)
    assert path == Path("syn/labels.csv") and len(table) == 20
    stamp = path.stat().st_mtime_ns
    course.prepare_dataset("synthetic", "syn", None, options, input_size=64)
    assert path.stat().st_mtime_ns == stamp, "an up-to-date synthetic set must be reused, not rendered again"
    course.prepare_dataset("synthetic", "syn", None, {**options, "seed": 1}, input_size=64)
    assert path.stat().st_mtime_ns != stamp
    counts = course.group_counts(table)
    assert counts.loc["total", ("total", "")] == 20 and list(counts.index) == ["train", "val", "test", "total"]
    with pytest.raises(ParameterError, match="synthetic"):
        course.prepare_dataset("synthetic", "syn", None, None)


def test_real_dataset_tables_are_written_once(tmp_path, monkeypatch, realdata_dir):
    """FairFace's real label files through the adapter (labels only: no images here)."""
    import pandas as pd

    monkeypatch.chdir(tmp_path)
    from finefcace import datasets

    frame = datasets.fairface_table(realdata_dir / "fairface", check_images=False)
    target = Path("data/tables/fairface.csv")
    frame.to_csv(target.parent.mkdir(parents=True, exist_ok=True) or target, index=False)
    table, path = course.prepare_dataset("fairface", "missing-root", None, None)
    assert path == target and len(table) == len(frame)
    assert set(course.group_counts(table).columns.get_level_values(0)) >= {"White", "Black", "total"}
    assert isinstance(table, pd.DataFrame)


def test_paper_table_for_each_dataset_and_task():
    assert course.paper_table_key("synthetic") == ("table2", None)
    assert course.paper_table_key("fairface", "densenet121") == ("table9", None)
    assert course.paper_table_key("utkface") == ("table3", "UTKFace")
    assert course.paper_table_key("lfwa") == ("table3", "LFWA+")
    assert course.paper_table_key("celeba") == ("table4", None)
    assert course.paper_table_key("celeba", "resnet50", "Smiling") == ("table6", None)


def test_cli_command_names_the_same_run():
    command = course.cli_command({"run_dir": "runs/quick"}, "gender-baseline", method="baseline")
    assert command == ("python -m finefcace train --profile <profile>.yaml "
                       "--set run_dir=runs/quick/gender-baseline --set method=baseline")


@pytest.mark.slow
def test_train_or_load_runs_feed_the_evaluation_helpers(tmp_path, monkeypatch):
    """A tiny FineFACE on tiny synthetic data: trained once, loaded the second time, and every
    chapter 03-06 helper that reads a run works on it."""
    monkeypatch.chdir(tmp_path)
    params = {"root": "syn", "synthetic": {"n_train": 24, "n_val": 8, "n_test": 16, "size": 64, "seed": 0},
              "backbone": "resnet18", "input_size": 64, "batch_size": 8, "epochs": 1,
              "overrides": {"descriptor_dim": 16}, "run_dir": "runs", "device": "cpu", "dataset": "synthetic"}
    first = course.train_or_load(params, "gender-finefcace", method="finefcace")
    assert first.run_dir == Path("runs/gender-finefcace") and first.finished
    stamp = (first.run_dir / "best.pt").stat().st_mtime_ns
    second = course.train_or_load(params, "gender-finefcace", method="finefcace")
    assert (second.run_dir / "best.pt").stat().st_mtime_ns == stamp, "a finished run must be loaded, not retrained"
    assert "synthetic" in course.describe_run(second) and "resnet18" in course.describe_run(second)
    images, labels, rows = course.figure_batch(second, per_group=1)
    assert images.shape == (8, 3, 64, 64) and len(rows) == 8  # one image per tone x gender
    table, _ = course.run_table(second)
    scores = course.fusion_scores(second.model, course.split_loader(second))
    assert scores["raw"].shape == (4, 16, 2)
    fusion = course.fusion_table(scores, table)
    assert ("raw+oval", "all") in fusion.index and "DoB" in fusion.columns
    thresholds = course.threshold_table(second.model, course.split_loader(second), table, [0.3, 0.9])
    assert list(thresholds.index) == [0.3, 0.9]
    report = course.task_report(second.predictions, "gender", n_bootstrap=20)
    assert "degree_of_bias" in set(report["metric"])
    summary = course.run_summary({"FineFACE": second})
    assert summary.loc["FineFACE", "epochs run"] == 1
    # the cross-dataset path of chapter 5: the run evaluated on a table given by path
    cross = course.evaluate_on(second, "syn/labels.csv", "syn")
    assert len(cross) == 16 and {"y_true", "y_pred", "tone", "gender"} <= set(cross.columns)


def test_start_applies_the_course_rules_for_paths(course_dir, monkeypatch):
    monkeypatch.chdir(course_dir / "notebooks")
    notebooks = course_dir / "notebooks"
    real = {"dataset": (str, "fairface"), "root": (str | None, "data/fairface"),
            "table": (str | None, "data/tables/fairface.csv"), "synthetic": (dict | None, None)}
    with pytest.raises(ParameterError, match=r"'root' = 'data/fairface'.*official layout"):
        course.start(namespace(__annotations__=real), notebooks_dir=notebooks)
    (course_dir / "data" / "fairface").mkdir(parents=True)
    with pytest.raises(ParameterError, match=r"'table'.*01_dataset_preparation"):
        course.start(namespace(__annotations__=real), notebooks_dir=notebooks)
    assert course.start(namespace(__annotations__=real), makes_table=True, notebooks_dir=notebooks)["dataset"] == "fairface"
    mixed = {**real, "synthetic": (dict | None, {"n_train": 8})}
    with pytest.raises(ParameterError, match="synthetic: null"):
        course.start(namespace(__annotations__=mixed), makes_table=True, notebooks_dir=notebooks)
    with pytest.raises(ParameterError, match="weights.*state-dict"):
        course.start(namespace(__annotations__={"weights": (str | None, "weights/resnet50.pth")}), notebooks_dir=notebooks)
    course.start(namespace(__annotations__={"weights": (str | None, "IMAGENET1K_V1")}), notebooks_dir=notebooks)
    with pytest.raises(ParameterError, match=r"cross_datasets\['utkface'\].*remove it"):
        course.start(namespace(__annotations__={"cross_datasets": (dict, {"utkface": "data/utkface"})}),
                     notebooks_dir=notebooks)
