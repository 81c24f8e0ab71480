"""experiments/real_photographs.py: the plain-words statement is generated from the paired
differences, whichever way they fall (no training here: hand-made study results)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from finefcace.training.study import StudyResults

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("real_photographs", ROOT / "experiments" / "real_photographs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def results(values: dict[str, dict[str, list[float]]]) -> StudyResults:
    """Study results with the summaries ``values[arm][metric]`` (one value per seed) on the test split."""
    rows = [{"arm": arm, "seed": seed, "test_set": "test", "metric": metric, "group": "all", "value": value,
             "ci_low": value - 1, "ci_high": value + 1, "n": 100}
            for arm, metrics in values.items() for metric, seeds in metrics.items() for seed, value in enumerate(seeds)]
    arms = [{"name": name, "changes": {}, "description": name} for name in values]
    return StudyResults("t", pd.DataFrame(rows), pd.DataFrame(), {"task": "gender", "arms": arms, "seeds": [0, 1, 2]})


BASELINE = {"overall_accuracy": [80.0, 81.0, 82.0], "min_group_accuracy": [70.0, 71.0, 72.0],
            "max_min_ratio": [1.20, 1.21, 1.22], "degree_of_bias": [6.0, 6.5, 7.0]}


def test_a_clear_loss_is_stated_as_one(script):
    worse = {"overall_accuracy": [77.0, 78.1, 78.9], "min_group_accuracy": [64.0, 65.2, 65.9],
             "max_min_ratio": [1.30, 1.31, 1.33], "degree_of_bias": [9.0, 9.4, 10.1]}
    text = script.statement(results({"baseline-64px": BASELINE, "finefcace-64px": worse}), 64)
    assert "overall accuracy 3.0 points lower (worse; the interval over seeds excludes zero)" in text
    assert "FineFACE is the worse of the two at this scale" in text
    assert "0 of 3 on overall accuracy, 0 of 3 on DoB" in text


def test_a_clear_gain_and_noise_are_stated_as_such(script):
    better = {"overall_accuracy": [82.0, 83.1, 83.9], "min_group_accuracy": [75.0, 76.0, 77.1],
              "max_min_ratio": [1.10, 1.11, 1.13], "degree_of_bias": [3.0, 3.6, 4.1]}
    text = script.statement(results({"baseline-64px": BASELINE, "finefcace-64px": better}), 64)
    assert "FineFACE is the better of the two at this scale" in text and "DoB 2.9 points lower (better" in text
    noisy = {"overall_accuracy": [83.0, 79.0, 82.5], "min_group_accuracy": [72.0, 68.0, 73.0],
             "max_min_ratio": [1.18, 1.25, 1.20], "degree_of_bias": [5.0, 8.0, 6.0]}
    text = script.statement(results({"baseline-64px": BASELINE, "finefcace-64px": noisy}), 64)
    assert "None of these differences is distinguishable from the variation between seeds" in text


def test_the_regenerate_command_names_data_folders_by_role(script):
    command = script.regenerate_command(["--utkface", "/data/u", "--fairface=/data/f", "--seeds", "0", "1",
                                         "--report-only"])
    assert command == ("python experiments/real_photographs.py --utkface <UTKFace folder> "
                       "--fairface <FairFace folder> --seeds 0 1")
