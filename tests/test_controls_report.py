"""experiments/controls.py: the five arms, how ``--jobs`` deals their runs, and the answers to
the three questions (extra updates, the ensemble, the crop) generated from the numbers whichever
way they fall — "cannot tell" where the interval over seeds includes zero (no training here:
hand-made study results)."""

from __future__ import annotations

import argparse

import pandas as pd
import pytest

from experiments import controls, real_photographs
from finefcace.training.study import StudyResults

SIZE = 96
LABELS = {controls.BASELINE: "Baseline", controls.FINEFACE: "FineFACE",
          controls.UPDATES: "Baseline, FineFACE's updates (×5 epochs)", controls.NO_REGIONS: "FineFACE, no regions",
          controls.PLACEBO: "FineFACE, placebo regions"}


def study(dob: dict[str, list[float]], worst: dict[str, list[float]] | None = None) -> StudyResults:
    """Three seeds per arm; ``dob[arm]`` each seed's DoB (worst-group accuracy 60 unless given)."""
    rows, runs = [], []
    for arm, values in dob.items():
        folder = controls.arm_folder(arm, SIZE)
        for seed, value in enumerate(values):
            low = (worst or {}).get(arm, [60.0] * len(values))[seed]
            summaries = {"overall_accuracy": 80.0, "min_group_accuracy": low, "max_min_ratio": 1.3,
                         "degree_of_bias": value}
            rows += [{"arm": folder, "seed": seed, "test_set": "test", "metric": metric, "group": "all", "value": v,
                      "ci_low": v - 1, "ci_high": v + 1, "n": 100} for metric, v in summaries.items()]
            runs.append({"arm": folder, "seed": seed, "train_seconds": 300.0, "epochs_run": 4})
    arms = [{"name": controls.arm_folder(a, SIZE), "changes": {}, "description": LABELS[a]} for a in dob]
    meta = {"task": "gender", "arms": arms, "seeds": [0, 1, 2], "sizes": [SIZE], "n_bootstrap": 100, "split_seed": 0,
            "model": "resnet18 (from scratch)", "hardware": "CPU", "date": "2026-12-07T00:00:00", "wall_seconds": 60.0,
            "command": "python experiments/controls.py", "base_config": {"patience": 3}, "code_version": "abc123",
            "tables": {"utkface": {"rows": 1000, "rows_per_split": {"train": 700, "val": 100, "test": 200},
                                   "duplicates": "no byte-identical images", "groups_in_two_splits": 0}}}
    return StudyResults("controls", pd.DataFrame(rows), pd.DataFrame(runs), meta)


CLEAR_GAIN = {controls.BASELINE: [12.0, 13.0, 12.5], controls.FINEFACE: [8.0, 9.0, 8.4]}


def test_each_question_answered_when_the_seeds_agree():
    results = study({**CLEAR_GAIN, controls.UPDATES: [12.1, 13.2, 12.4], controls.NO_REGIONS: [8.1, 9.1, 8.3],
                     controls.PLACEBO: [11.9, 13.0, 12.6]})
    finding, updates, ensemble, crop = controls.answers(results)
    assert "FineFACE is fairer than the baseline: the finding holds" in finding
    assert "DoB -4.0 [" in finding and "3 of 3 seeds favour FineFACE" in finding
    assert "No: given FineFACE's number of optimizer updates the baseline is still less fair" in updates
    # the ensemble alone does what FineFACE does: the regions add nothing that can be seen
    assert "The experts without any region are fairer than the baseline" in ensemble
    assert "whether the regions add anything beyond the ensemble cannot be told" in ensemble
    assert "Yes: boxes of the same sizes at random places are less fair than the CAM's" in crop


def test_equal_updates_and_a_placebo_that_do_better_are_said_so():
    results = study({**CLEAR_GAIN, controls.UPDATES: [6.0, 7.1, 6.4], controls.NO_REGIONS: [12.2, 13.3, 12.7],
                     controls.PLACEBO: [5.0, 6.2, 5.5]})
    _, updates, ensemble, crop = controls.answers(results)
    assert "The baseline given FineFACE's updates is fairer than FineFACE" in updates
    assert "The experts without any region are less fair than the baseline" in ensemble  # +0.2, +0.3, +0.2
    assert "the regions add fairness beyond the ensemble" in ensemble
    assert "Random boxes of the same sizes are fairer than the CAM's" in crop


def test_noisy_seeds_give_cannot_tell_everywhere():
    noisy = {controls.BASELINE: [12.0, 6.0, 9.0], controls.FINEFACE: [8.0, 11.0, 7.5],
             controls.UPDATES: [5.0, 13.0, 9.0], controls.NO_REGIONS: [13.0, 6.0, 8.0],
             controls.PLACEBO: [6.0, 12.0, 9.5]}
    finding, updates, ensemble, crop = controls.answers(study(noisy))
    assert "cannot tell FineFACE and the baseline apart on DoB" in finding
    assert "Cannot tell: the interval over seeds includes zero" in updates
    assert "cannot be told" in ensemble
    assert "Cannot tell: the interval includes zero" in crop


def test_the_report_writes_tables_figure_and_the_code_version(tmp_path):
    results = study({**CLEAR_GAIN, controls.UPDATES: [12.1, 13.2, 12.4], controls.NO_REGIONS: [8.1, 9.1, 8.3],
                     controls.PLACEBO: [11.9, 13.0, 12.6]})
    results.to_json(tmp_path / "controls.json")
    text = controls.report(argparse.Namespace(results=tmp_path, name="controls")).read_text()
    assert "Generated by experiments/controls.py" in text and "(controls.png)" in text
    assert "| Arm − FineFACE |" in text and "| Arm − Baseline |" in text
    for label in LABELS.values():
        assert f"| {label} |" in text
    assert "Code: commit `abc123`." in text
    assert (tmp_path / "controls.png").stat().st_size > 10_000
    assert not list(tmp_path.glob(".*.tmp"))  # written whole: no temporary left


def test_arms_change_one_thing_each():
    args = controls.parse_args(["--utkface", "u", "--fairface", "none"])
    assert (args.sizes, args.seeds, args.max_train, args.epochs) == ([96], [0, 1, 2], 1500, 4)
    arms = {arm.name: dict(arm.changes) for arm in controls.control_arms(args, real_photographs.base_config(
        args, {"utkface": "table.csv"}))}
    assert arms == {
        "baseline-96px": {"method": "baseline", "input_size": 96},
        "finefcace-96px": {"method": "finefcace", "input_size": 96},
        "baseline-updates-96px": {"method": "baseline", "epochs": 20, "patience": None, "input_size": 96},
        "no-regions-96px": {"method": "finefcace", "regions": "none", "input_size": 96},
        "placebo-96px": {"method": "finefcace", "regions": "placebo", "input_size": 96},
    }


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_runs_are_dealt_by_cost_evenly(jobs):
    costs = {(arm, seed): controls.COSTS[arm] for arm in controls.COSTS for seed in (0, 1, 2)}
    shares = real_photographs.deal_runs(costs, jobs)
    assert sorted(u for share in shares for u in share) == sorted(costs)  # every run once
    loads = [sum(costs[u] for u in share) for share in shares]
    assert max(loads) - min(loads) <= max(costs.values())  # no worker left with more than one run's extra
