"""finefcace.course.training: the hyper-parameter and iteration tables of chapter 04, and the
model card it shows."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pandas as pd

from finefcace.course import session as course
from finefcace.course import training
from finefcace.training.model_card import MODEL_CARD_FILE, model_card_text
from tests.course_fixtures import small_models  # noqa: F401  (a fixture)


def test_hyperparameter_table_marks_what_the_profile_changed():
    config = course.train_config({"backbone": "resnet18", "input_size": 64, "overrides": {"head_lr": 0.01}})
    table = training.hyperparameter_table(config)
    assert set(table.index[table["changed"] == "yes"]) == {"backbone", "input_size", "head_lr"}
    assert config.progress is False
    # in words: no Python None or list repr in a cell
    assert table.loc["experts", "this run"] == "the last three stages"
    assert table.loc["fusion_views", "this run"] == "raw, oval"


def test_iteration_table_reports_what_each_step_updates(small_models):
    import torch

    from finefcace.mutual_learning import step_names
    from finefcace.training.recipe import build_model, build_optimizer

    config = course.train_config({"backbone": "resnet18", "input_size": 64, "overrides": {"descriptor_dim": 16}})
    torch.manual_seed(0)
    model = build_model(config, 2)
    optimizer = build_optimizer(model, config.resolved())
    images, labels = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 0, 1])
    steps = training.iteration_table(model, optimizer, images, labels, generator=torch.Generator().manual_seed(0))
    assert list(steps["name"]) == step_names(3)
    assert list(steps["updated"]) == ["stages 1-5, F_3, f_3", "stages 1-4, F_2, f_2", "stages 1-3, F_1, f_1",
                                      "stages 1-5, F_1, f_1, F_2, f_2, F_3, f_3, f_oval",
                                      "stages 1-5, F_1, F_2, F_3, f_oval"]
    assert steps.loc[4, "input"] == "A_oval" and steps.loc[1, "input"] == "raw"


def finished_run(folder):
    """A finished baseline run's card inputs, written by hand: config.json, summary.json, the
    test predictions and the dataset table (the synthetic faces' columns)."""
    folder.mkdir()
    rows = [{"path": f"test/{i}.png", "split": "test", "tone": f"tone_{i % 4 + 1}",
             "gender": ("Female", "Male")[i // 4 % 2]} for i in range(16)]
    table = pd.DataFrame(rows)
    table.to_csv(folder / "labels.csv", index=False)
    predictions = table.assign(target="gender", y_true=[int(g == "Male") for g in table["gender"]],
                               y_pred=[i % 2 for i in range(16)])
    predictions.to_csv(folder / "predictions_test.csv", index=False)
    (folder / "config.json").write_text(json.dumps({
        "config": {"method": "baseline", "target": "gender", "preset": "paper", "epochs": 3, "patience": 2,
                   "monitor": "val_accuracy", "seed": 0, "weights": None},
        "resolved": {"backbone": "resnet18", "input_size": 64, "batch_size": 8, "optimizer": "sgd"},
        "classes": ["Female", "Male"], "table": str(folder / "labels.csv")}))
    (folder / "summary.json").write_text(json.dumps({
        "finished": True, "method": "baseline", "epochs_run": 3, "best_epoch": 2, "best_metric": 0.5,
        "monitor": "val_accuracy", "steps": 12, "device": "cpu", "world_size": 1, "test_accuracy": 0.5}))
    return SimpleNamespace(run_dir=folder)


def test_the_card_is_shown_without_headings_and_not_written(tmp_path):
    run = finished_run(tmp_path / "run")
    shown = training.model_card(run).data
    assert not (run.run_dir / MODEL_CARD_FILE).exists(), "showing a card writes nothing (runs/ may be shared)"
    assert not any(line.startswith("#") for line in shown.splitlines())
    assert shown.startswith("**Model card: the baseline, gender classification, trained on the synthetic faces**")
    assert "**Uses it is not fit for**" in shown and "| tone_1 / Female | accuracy (%) | 2 | 100.0 |" in shown
    assert shown == re.sub(r"^#+ (.+)$", r"**\1**", model_card_text(run.run_dir), flags=re.M)


def test_a_written_card_is_the_one_shown(tmp_path):
    run = finished_run(tmp_path / "run")
    (run.run_dir / MODEL_CARD_FILE).write_text("# Model card\n\nwritten when the run finished\n")
    assert training.model_card(run).data == "**Model card**\n\nwritten when the run finished\n"


def test_run_folders_name_each_runs_files_in_words(tmp_path):
    from types import SimpleNamespace

    from finefcace.course import training

    for name in ("summary.json", "best.pt", "history.csv"):
        (tmp_path / name).write_text("x")
    table = training.run_folders({"FineFACE": SimpleNamespace(run_dir=tmp_path)})
    assert table.loc["FineFACE", "files"] == "best.pt, history.csv, summary.json"
    assert table.loc["FineFACE", "folder"] == tmp_path.as_posix() + "/"
