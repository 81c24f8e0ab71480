"""finefcace.course.session: start() with the course's path rules, and runs shared by train-or-load."""

from __future__ import annotations

from pathlib import Path

import pytest

from finefcace import metrics
from finefcace.course import ablations, training
from finefcace.course import session as course
from finefcace.course.parameters import ParameterError
from tests.course_fixtures import course_dir, namespace  # noqa: F401  (course_dir: a fixture)


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


def test_cli_command_names_the_same_run():
    """A command that runs as printed: the quick profile's file, then only what differs from it."""
    import yaml

    quick = yaml.safe_load((course.project_root() / "configs" / "quick.yaml").read_text())
    command = course.cli_command(quick, "gender-baseline", method="baseline")
    assert command == ("python -m finefcace train --profile configs/quick.yaml "
                       "--set run_dir=runs/quick/gender-baseline --set method=baseline")
    changed = course.cli_command({**quick, "epochs": 2, "overrides": {"descriptor_dim": 8}}, "gender-finefcace")
    assert changed.endswith("--set run_dir=runs/quick/gender-finefcace --set 'overrides={\"descriptor_dim\": 8}' "
                            "--set epochs=2")


def test_a_notebook_run_is_configured_and_checked_once(monkeypatch):
    """course.trained_run -> train_config -> the library's train_or_load -> train: one TrainConfig,
    checked once, passed on typed (not rebuilt, not re-validated at each hand-over)."""
    from finefcace.training import trainer
    from finefcace.training.config import TrainConfig

    checks, received = [], []
    validate = TrainConfig.validate
    monkeypatch.setattr(TrainConfig, "validate", lambda self: (checks.append(self), validate(self))[1])
    monkeypatch.setattr(trainer, "train", lambda config: received.append(config) or "trained")
    params = {"epochs": 2, "run_dir": "runs/none-here", "dataset": "synthetic", "n_bootstrap": 10}
    assert course.trained_run(params, "gender-baseline", method="baseline") == "trained"
    assert len(checks) == 1 and received == checks
    assert received[0].run_dir == "runs/none-here/gender-baseline" and received[0].method == "baseline"


@pytest.mark.slow
def test_trained_runs_feed_the_evaluation_helpers(tmp_path, monkeypatch):
    """A tiny FineFACE on tiny synthetic data: trained once, loaded the second time, and every
    chapter 03-06 helper that reads a run works on it."""
    monkeypatch.chdir(tmp_path)
    params = {"root": "syn", "synthetic": {"n_train": 24, "n_val": 8, "n_test": 16, "size": 64, "seed": 0},
              "backbone": "resnet18", "input_size": 64, "batch_size": 8, "epochs": 1,
              "overrides": {"descriptor_dim": 16}, "run_dir": "runs", "device": "cpu", "dataset": "synthetic"}
    first = course.trained_run(params, "gender-finefcace", method="finefcace")
    assert first.run_dir == Path("runs/gender-finefcace") and first.finished
    stamp = (first.run_dir / "best.pt").stat().st_mtime_ns
    second = course.trained_run(params, "gender-finefcace", method="finefcace")
    assert (second.run_dir / "best.pt").stat().st_mtime_ns == stamp, "a finished run must be loaded, not retrained"
    assert "synthetic" in course.describe_run(second) and "resnet18" in course.describe_run(second)
    images, labels, rows = course.figure_batch(second, per_group=1)
    assert images.shape == (8, 3, 64, 64) and len(rows) == 8  # one image per tone x gender
    table, _ = course.run_table(second)
    scores = ablations.fusion_scores(second.model, course.split_loader(second))
    assert scores["raw"].shape == (4, 16, 2)
    fusion = ablations.fusion_table(scores, table)
    assert ("raw+oval", "all") in fusion.index and "DoB" in fusion.columns
    thresholds = ablations.threshold_table(second.model, course.split_loader(second), table, [0.3, 0.9])
    assert list(thresholds.index) == [0.3, 0.9]
    report = metrics.task_report(second.predictions, "gender", n_bootstrap=20)
    assert "degree_of_bias" in set(report["metric"])
    summary = training.run_summary({"FineFACE": second})
    assert summary.loc["FineFACE", "epochs run"] == 1
    # the cross-dataset path of chapter 5: the run evaluated on a table given by path
    cross = course.evaluate_on(second, "syn/labels.csv", "syn")
    assert len(cross) == 16 and {"y_true", "y_pred", "tone", "gender"} <= set(cross.columns)


def test_a_profile_without_attribute_labels_says_the_attribute_task_is_skipped():
    from finefcace.course.session import profile_notes

    notes = profile_notes({"dataset": "utkface", "attributes": []}, ["dataset", "attributes"])
    assert notes == ["Note: UTKFace has no attribute labels: the attribute task (the paper's Tables 6-8) is skipped "
                     "under this profile."]
    assert profile_notes({"dataset": "synthetic", "attributes": ["Smiling"]}, ["dataset", "attributes"]) == []
    assert profile_notes({"dataset": "utkface", "attributes": []}, ["dataset"]) == []  # a chapter without the task


def test_trained_runs_are_noted_in_the_ledger_as_trained_or_loaded(tmp_path, monkeypatch):
    """scripts/course.py names a ledger; each run a notebook asks for is noted there."""
    import json

    from finefcace.training import trainer

    def fake_train_or_load(config):
        summary = Path(config.run_dir) / "summary.json"
        if not summary.is_file():  # "trains": writes the run's summary; a second call only reads it
            summary.parent.mkdir(parents=True)
            summary.write_text("{}")
        return "result"

    monkeypatch.setattr(trainer, "train_or_load", fake_train_or_load)
    ledger = tmp_path / "ledger.jsonl"
    monkeypatch.setenv(course.RUN_LEDGER_VARIABLE, str(ledger))
    params = {"run_dir": str(tmp_path / "runs"), "epochs": 1}
    assert course.trained_run(params, "gender-baseline", method="baseline") == "result"
    assert course.trained_run(params, "gender-baseline", method="baseline") == "result"
    entries = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert [e["action"] for e in entries] == ["trained", "loaded"]
    assert entries[0]["run"] == f"{tmp_path}/runs/gender-baseline"


def test_table_label_is_short_and_says_synthetic():
    from types import SimpleNamespace

    synthetic = SimpleNamespace(config=SimpleNamespace(synthetic={"n_train": 8}))
    real = SimpleNamespace(config=SimpleNamespace(synthetic=None))
    assert course.table_label(synthetic) == "ours (synthetic)" and course.table_label(real) == "ours"


def test_a_caption_says_where_the_backbone_weights_came_from():
    from finefcace.course.session import _initialisation

    assert _initialisation(None) == "from scratch"
    assert _initialisation("imagenet") == "pretrained on ImageNet"
    # chapter 3 fine-tunes chapter 4's model from its saved backbone: not an ImageNet model
    assert _initialisation("runs/quick/gender-finefcace/backbone.pt") == "initialised from run gender-finefcace"
    assert _initialisation("/weights/resnet50-0676ba61.pth") == "initialised from resnet50-0676ba61.pth"
