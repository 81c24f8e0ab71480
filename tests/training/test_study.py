"""Tests of finefcace/training/study.py: arms × seeds trained or loaded, reported, compared."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finefcace.training.config import ConfigError
from finefcace.training.study import Arm, CrossDataset, StudyResults, run_study
from tests.training_fixtures import one_thread  # noqa: F401  (autouse: one intra-op thread)

SIZE = 64


@pytest.fixture(scope="module")
def tiny_synthetic(tmp_path_factory):
    from finefcace.sources.synthetic import generate_synthetic

    root = tmp_path_factory.mktemp("synthetic")
    generate_synthetic(root, n_train=24, n_val=8, n_test=16, size=SIZE, seed=0)
    return root


def base_config(root):
    return {"table": str(root / "labels.csv"), "target": "gender", "backbone": "resnet18", "input_size": SIZE,
            "batch_size": 8, "epochs": 1, "patience": 5, "overrides": {"descriptor_dim": 16},
            "device": "cpu", "progress": False, "max_batches": 1}


ARMS = [Arm("baseline", {"method": "baseline"}, "Baseline"), Arm("finefcace", {"method": "finefcace"}, "FineFACE")]


@pytest.fixture(scope="module")
def study(tiny_synthetic, tmp_path_factory):
    runs_root = tmp_path_factory.mktemp("runs")
    measured = []

    def measure(config, run_dir):
        measured.append((config.method, config.seed, run_dir.name))
        return {"seed_times_ten": 10.0 * config.seed}

    results = run_study("tiny", base_config(tiny_synthetic), ARMS, [0, 1], runs_root,
                        cross_datasets={"again": CrossDataset(str(tiny_synthetic / "labels.csv"), str(tiny_synthetic))},
                        n_bootstrap=20, measure=measure, command="python experiments/tiny.py", log=lambda _: None)
    return results, runs_root, measured


def test_every_arm_and_seed_trains_into_its_own_folder_and_is_reported(study):
    results, runs_root, measured = study
    for arm in ("baseline", "finefcace"):
        for seed in (0, 1):
            assert (runs_root / arm / f"seed{seed}" / "best.pt").is_file()
    assert sorted(measured) == [("baseline", 0, "seed0"), ("baseline", 1, "seed1"),
                                ("finefcace", 0, "seed0"), ("finefcace", 1, "seed1")]
    assert list(results.runs["arm"]) == ["baseline", "baseline", "finefcace", "finefcace"]
    assert results.runs["trained_now"].all()
    assert list(results.runs["seed_times_ten"]) == [0.0, 10.0, 0.0, 10.0]
    assert (results.runs["train_seconds"] > 0).all()
    assert set(results.reports["test_set"]) == {"test", "again"}
    own = results.reports[(results.reports["test_set"] == "test") & (results.reports["metric"] == "overall_accuracy")]
    assert len(own) == 4 and own["n"].eq(16).all()


def test_summary_is_the_mean_and_sd_over_seeds_of_the_per_run_reports(study):
    results, _, _ = study
    summary = results.summary()
    assert list(summary["arm"].astype(str).unique()) == ["baseline", "finefcace"]
    per_run = results.reports[(results.reports["test_set"] == "test") & (results.reports["group"] == "all")
                              & (results.reports["metric"] == "degree_of_bias") & (results.reports["arm"] == "finefcace")]
    row = summary[(summary["arm"] == "finefcace") & (summary["metric"] == "degree_of_bias")].iloc[0]
    assert row["mean"] == pytest.approx(per_run["value"].mean())
    assert row["std"] == pytest.approx(per_run["value"].std(ddof=1), nan_ok=True)
    assert row["n_seeds"] == 2


def test_differences_pair_seeds_and_count_the_better_direction(study):
    results, _, _ = study
    diff = results.differences("finefcace", "baseline").set_index("metric")
    values = results.reports[(results.reports["test_set"] == "test") & (results.reports["group"] == "all")]
    for metric in ("overall_accuracy", "degree_of_bias"):
        wide = values[values["metric"] == metric].pivot(index="seed", columns="arm", values="value")
        paired = (wide["finefcace"] - wide["baseline"]).to_numpy()
        assert diff.loc[metric, "mean"] == pytest.approx(paired.mean())
        better = 1 if metric == "overall_accuracy" else -1
        assert diff.loc[metric, "seeds_favouring_arm"] == int(np.sum(better * paired > 0))
        assert diff.loc[metric, "n_seeds"] == 2
        if np.isfinite(paired).all() and paired.std(ddof=1) > 0:
            assert diff.loc[metric, "ci_low"] < diff.loc[metric, "mean"] < diff.loc[metric, "ci_high"]


def test_a_second_call_loads_the_runs_and_gives_the_same_numbers(study, tiny_synthetic):
    results, runs_root, _ = study
    again = run_study("tiny", base_config(tiny_synthetic), ARMS, [0, 1], runs_root,
                      cross_datasets={"again": CrossDataset(str(tiny_synthetic / "labels.csv"), str(tiny_synthetic))},
                      n_bootstrap=20, log=lambda _: None)
    assert not again.runs["trained_now"].any()
    pd.testing.assert_frame_equal(again.reports, results.reports)


def test_groupings_report_every_test_set_over_other_groups(study, tiny_synthetic):
    results, runs_root, _ = study
    grouped = run_study("tiny", base_config(tiny_synthetic), ARMS, [0, 1], runs_root,
                        cross_datasets={"again": CrossDataset(str(tiny_synthetic / "labels.csv"), str(tiny_synthetic))},
                        n_bootstrap=20, groupings={"tone": ["tone"]}, log=lambda _: None)
    assert not grouped.runs["trained_now"].any()
    assert set(grouped.reports["test_set"]) == {"test", "again", "test by tone", "again by tone"}
    by_tone = grouped.reports[(grouped.reports["test_set"] == "test by tone") & (grouped.reports["metric"] == "accuracy")]
    assert set(by_tone["group"]) == {"tone_1", "tone_2", "tone_3", "tone_4"}  # 4 groups, not tone x gender
    overall = grouped.summary("test by tone", ["overall_accuracy"])["mean"].to_numpy()
    np.testing.assert_allclose(overall, results.summary("test", ["overall_accuracy"])["mean"].to_numpy())
    assert "own test split, groups by tone" in grouped.caption("test by tone")
    with pytest.raises(ValueError, match="no test set has the columns"):
        run_study("tiny", base_config(tiny_synthetic), ARMS, [0], runs_root, groupings={"race": ["race"]},
                  n_bootstrap=0, log=lambda _: None)


def test_results_round_trip_through_json_and_render_with_a_caption(study, tmp_path):
    results, _, _ = study
    path = results.to_json(tmp_path / "tiny.json")
    loaded = StudyResults.from_json(path)
    pd.testing.assert_frame_equal(loaded.summary(), results.summary(), check_dtype=False)
    table = loaded.markdown()
    assert table.splitlines()[0].startswith("| Arm | Overall ↑ | Worst group ↑ | Max/Min ↓ | DoB ↓")
    assert "| Baseline |" in table and "| FineFACE |" in table
    assert "SYNTHETIC" in table and "python experiments/tiny.py" in table
    assert "cross-dataset test set 'again'" in loaded.caption("again")


def test_bad_arms_fail_before_anything_trains(tiny_synthetic, tmp_path):
    with pytest.raises(ValueError, match="distinct"):
        run_study("x", base_config(tiny_synthetic), [Arm("a"), Arm("a")], [0], tmp_path)
    with pytest.raises(ValueError, match="the study sets it"):
        Arm("a", {"seed": 3})
    with pytest.raises(ConfigError, match="arm 'bad'"):
        run_study("x", base_config(tiny_synthetic), [Arm("good"), Arm("bad", {"epochs": "many"})], [0], tmp_path)
    assert not any(tmp_path.iterdir()), "nothing may be trained or written before every arm is checked"
    with pytest.raises(FileNotFoundError, match="run the study's script"):
        StudyResults.from_json(tmp_path / "missing.json")


def test_differences_name_unknown_arms(study):
    results, _, _ = study
    with pytest.raises(KeyError, match="no arm 'nope'"):
        results.differences("nope", "baseline")
    one = results.differences("finefcace", "baseline", metrics_=["overall_accuracy"])
    assert list(one["metric"]) == ["overall_accuracy"]


def test_arms_that_train_with_protected_labels_are_marked_in_the_runs_and_the_table(study, tiny_synthetic):
    results, runs_root, _ = study
    assert not results.runs["uses_protected_labels"].any()
    assert "Protected labels in training" not in results.markdown()
    mixed = run_study("mixed", base_config(tiny_synthetic), [ARMS[0], Arm("dro", {"method": "group_dro"}, "Group DRO")],
                      [0], runs_root, n_bootstrap=10, log=lambda _: None)
    assert list(mixed.runs["uses_protected_labels"]) == [False, True]
    assert not mixed.runs["trained_now"].iloc[0]  # the baseline of the first study, loaded
    table = mixed.markdown().splitlines()
    assert table[0].endswith("| Seeds | Protected labels in training |")
    assert table[2].startswith("| Baseline |") and table[2].endswith("| no |")
    assert table[3].startswith("| Group DRO |") and table[3].endswith("| **yes** |")


def test_runs_trained_without_reporting_are_reported_elsewhere_from_their_files(tiny_synthetic, tmp_path):
    """train_study_runs (a --jobs worker, a GPU machine without fairlearn) then run_study with
    saved_runs=True on a copy holding no model file: the same reports as a study that trained
    and reported in one go, its measures included."""
    import shutil

    from finefcace.training.study import train_study_runs

    cross = {"again": CrossDataset(str(tiny_synthetic / "labels.csv"), str(tiny_synthetic))}
    trained = tmp_path / "trained"
    train_study_runs("tiny", base_config(tiny_synthetic), ARMS, [0], trained, cross_datasets=cross,
                     measure=lambda config, run_dir: {"seed_plus_one": config.seed + 1.0}, log=lambda _: None)
    copied = tmp_path / "copied"
    shutil.copytree(trained, copied, ignore=shutil.ignore_patterns("*.pt"))
    saved = run_study("tiny", base_config(tiny_synthetic), ARMS, [0], copied, cross_datasets=cross,
                      n_bootstrap=20, saved_runs=True, log=lambda _: None)
    direct = run_study("tiny", base_config(tiny_synthetic), ARMS, [0], trained, cross_datasets=cross,
                       n_bootstrap=20, log=lambda _: None)  # loads the same runs
    columns = ["arm", "seed", "test_set", "metric", "group", "value"]
    pd.testing.assert_frame_equal(saved.reports[columns], direct.reports[columns])
    assert list(saved.runs["seed_plus_one"]) == [1.0, 1.0] and not list(copied.rglob("*.pt"))
    (copied / "finefcace" / "seed0" / "predictions_cross_again.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks .*predictions_cross_again.csv"):
        run_study("tiny", base_config(tiny_synthetic), ARMS, [0], copied, cross_datasets=cross, saved_runs=True,
                  log=lambda _: None)


def test_captions_say_the_data_and_machine_in_words_also_for_older_results():
    """No Python dict reprs or "1 threads" in the book: new results are written in words, older
    ones reworded where they are shown."""
    from finefcace.training.study import data_in_words, hardware_in_words

    old = "SYNTHETIC faces {'n_train': 1600, 'n_val': 320, 'n_test': 640}, target gender"
    assert data_in_words(old) == "SYNTHETIC faces (1,600 training, 320 validation and 640 test images), target gender"
    assert data_in_words("table data/utkface.csv, target gender") == "table data/utkface.csv, target gender"
    assert hardware_in_words("CPU, 1 threads (x86_64), torch 2") == "CPU, 1 thread (x86_64), torch 2"
    assert hardware_in_words("CPU, 2 threads (x86_64)") == "CPU, 2 threads (x86_64)"


def test_seeds_report_only_rewrites_the_markdown_from_the_json(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for path in (root / "experiments" / "results").glob("quick_gender.json"):
        (tmp_path / path.name).write_text(path.read_text())
    done = subprocess.run([sys.executable, str(root / "experiments" / "seeds.py"), "--report-only", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
    text = (tmp_path / "quick_gender.md").read_text()
    assert "Generated by `python experiments/seeds.py" in text and "'n_train'" not in text and "1 threads" not in text
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = subprocess.run([sys.executable, str(root / "experiments" / "seeds.py"), "--report-only", "--out",
                              str(empty)], capture_output=True, text=True, timeout=300, cwd=root)
    assert refused.returncode == 2 and refused.stderr.startswith("error: --report-only: no results")
