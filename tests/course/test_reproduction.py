"""The build's staleness check (finefcace.course.reproduction): a live run beside the committed
study's run of the same arm and seed — identical, not reproduced, or made on other hardware."""

from __future__ import annotations

import pandas as pd
import pytest

from finefcace.course import reproduction
from finefcace.training.study import StudyResults

HERE = "CPU, 2 threads (x86_64), torch 2.14.1+cu130"


def _study(values: dict[tuple[str, int], dict[str, float]], hardware: str = HERE) -> StudyResults:
    rows = [{"arm": arm, "seed": seed, "test_set": "test", "group": "all", "metric": metric, "value": value}
            for (arm, seed), metrics in values.items() for metric, value in metrics.items()]
    rows.append({"arm": "baseline", "seed": 0, "test_set": "test", "group": "Female", "metric": "accuracy",
                 "value": 0.5})
    meta = {"arms": [{"name": "baseline"}, {"name": "finefcace"}], "task": "gender", "hardware": hardware,
            "code_version": "0123456789abcdef0123456789abcdef01234567"}
    return StudyResults(name="quick_gender", reports=pd.DataFrame(rows), runs=pd.DataFrame(), meta=meta)


# Accuracies and DoB in percent, as finefcace.metrics reports them.
STUDY = _study({("baseline", 0): {"overall_accuracy": 80.0, "degree_of_bias": 12.0},
                ("finefcace", 0): {"overall_accuracy": 83.0, "degree_of_bias": 10.0}})


def test_identical_runs_are_reproduced():
    check = reproduction.check_live_run({"overall_accuracy": 80.0, "degree_of_bias": 12.0}, STUDY, "baseline", 0,
                                        here_hardware=HERE)
    assert check.verdict == reproduction.IDENTICAL and check.largest_difference == 0.0
    assert list(check.table.columns) == ["trained here", "study, seed 0"]
    text = reproduction.reproduction_in_words([check], study="gender", regenerate="python experiments/seeds.py")
    assert text.startswith("**Reproduced.**") and "0123456" in text and "⚠" not in text


def test_a_different_number_on_the_same_machine_marks_the_study_stale():
    check = reproduction.check_live_run({"overall_accuracy": 80.0, "degree_of_bias": 14.5}, STUDY, "baseline", 0,
                                        here_hardware=HERE)
    assert check.verdict == reproduction.NOT_REPRODUCED
    assert check.largest_difference == pytest.approx(2.5) and check.largest_metric == "degree_of_bias"
    text = reproduction.reproduction_in_words([check], study="gender", regenerate="python experiments/seeds.py",
                                              names={"baseline": "Baseline"})
    assert "Not reproduced" in text and "2.5 points (degree of bias, DoB)" in text and "`python experiments/seeds.py`" in text
    assert "Baseline (seed 0)" in text


def test_one_stale_run_among_identical_ones_is_enough_to_warn():
    same = reproduction.check_live_run({"overall_accuracy": 83.0, "degree_of_bias": 10.0}, STUDY, "finefcace", 0,
                                       here_hardware=HERE)
    stale = reproduction.check_live_run({"overall_accuracy": 79.0}, STUDY, "baseline", 0, here_hardware=HERE)
    text = reproduction.reproduction_in_words([same, stale], study="gender", regenerate="cmd")
    assert "Not reproduced" in text and "baseline (seed 0)" in text and "finefcace (seed 0)" not in text


def test_other_hardware_says_why_the_last_digits_may_differ_without_calling_it_stale():
    study = _study({("baseline", 0): {"overall_accuracy": 80.0}}, hardware="CPU, 1 threads (x86_64), torch 2.14.1")
    check = reproduction.check_live_run({"overall_accuracy": 81.0}, study, "baseline", 0, here_hardware=HERE)
    assert check.verdict == reproduction.OTHER_HARDWARE
    assert check.study_hardware == "CPU, 1 thread (x86_64), torch 2.14.1"  # the old plural reworded
    text = reproduction.reproduction_in_words([check], study="gender", regenerate="cmd")
    assert "Not reproduced" not in text and "1.0 points (overall accuracy)" in text and "CPU, 1 thread" in text
    assert "different model" in text and "last digit" not in text


def test_a_difference_too_small_for_the_decimals_shown_is_not_printed_as_zero():
    check = reproduction.check_live_run({"overall_accuracy": 80.00001}, STUDY, "baseline", 0, here_hardware=HERE)
    text = reproduction.reproduction_in_words([check], study="gender", regenerate="cmd")
    assert check.verdict == reproduction.NOT_REPRODUCED and "1.0e-05 points" in text


def test_identical_numbers_on_other_hardware_are_still_reproduced():
    study = _study({("baseline", 0): {"overall_accuracy": 80.0}}, hardware="NVIDIA H100")
    check = reproduction.check_live_run({"overall_accuracy": 80.0}, study, "baseline", 0, here_hardware=HERE)
    assert check.verdict == reproduction.IDENTICAL


def test_a_missing_arm_or_seed_is_an_error_naming_what_the_study_has():
    with pytest.raises(ValueError, match=r"no test report for arm 'group_dro', seed 0.*arms: \['baseline', 'finefcace'\]"):
        reproduction.check_live_run({"overall_accuracy": 80.0}, STUDY, "group_dro", 0, here_hardware=HERE)
    with pytest.raises(ValueError, match="share no metric"):
        reproduction.compare_metrics({"accuracy": 0.8}, {"overall_accuracy": 0.8})
    with pytest.raises(ValueError, match="no live run"):
        reproduction.reproduction_in_words([], study="gender", regenerate="cmd")


def test_a_recorded_code_version_is_shortened_only_when_it_is_a_commit():
    commit = "abcdef0123456789abcdef0123456789abcdef01"
    assert reproduction.short_commit(commit) == "abcdef0"
    assert reproduction.short_commit(commit + "+local changes") == "abcdef0+local changes"
    assert reproduction.short_commit("not recorded (made before studies recorded it)") is None
    assert reproduction.short_commit(commit[:39] + "g") is None
