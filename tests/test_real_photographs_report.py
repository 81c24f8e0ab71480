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
                                         "--report-only", "--celeba", "none"])
    assert command == ("python experiments/real_photographs.py --utkface <UTKFace folder> "
                       "--fairface <FairFace folder> --seeds 0 1 --celeba none")  # a skipped set stays skipped


def test_jobs_deal_the_seeds_to_one_thread_workers_and_a_failed_worker_stops_the_study(script, tmp_path, monkeypatch):
    worker = tmp_path / "worker.py"
    worker.write_text(
        "import json, os, sys\n"
        "last = len(sys.argv) - sys.argv[::-1].index('--seeds')  # the worker's own --seeds, appended\n"
        "seeds = sys.argv[last:sys.argv.index('--jobs', last)]\n"
        "open(os.path.join(os.path.dirname(__file__), 'seeds' + '-'.join(seeds) + '.json'), 'w').write(\n"
        "    json.dumps({'argv': sys.argv[1:], 'threads': os.environ.get('OMP_NUM_THREADS')}))\n"
        "sys.exit(3 if '2' in seeds else 0)\n")
    monkeypatch.setattr("sys.argv", ["resolution.py", "--utkface", "/data/u", "--seeds", "0", "1", "2", "--jobs", "2"])
    args = script.parse_args(None)
    with pytest.raises(SystemExit, match=r"seeds \[\[0, 2\]\] failed \(exit status \[3\]"):
        script.train_in_parallel(args, str(worker))  # an absolute path stands for the script
    import json
    calls = {p.name: json.loads(p.read_text()) for p in tmp_path.glob("seeds*.json")}
    assert sorted(calls) == ["seeds0-2.json", "seeds1.json"]  # dealt round-robin
    for call in calls.values():
        assert call["threads"] == "1" and call["argv"][-3:] == ["--jobs", "1", "--worker"]
    assert script.parse_args(calls["seeds1.json"]["argv"]).seeds == [1]  # the last --seeds wins
    assert "--worker" not in script.regenerate_command(calls["seeds1.json"]["argv"])


def test_an_infinite_max_min_difference_is_said_in_words_not_as_inf(script):
    """A seed in which FineFACE left a group at 0 % makes its Max/Min infinite and the paired
    mean +inf: the table says so in words (and the reverse names the baseline), never "+inf"."""
    zero_group = {**BASELINE, "min_group_accuracy": [0.0, 71.0, 72.0], "max_min_ratio": [float("inf"), 1.21, 1.22]}
    arms = {"baseline-64px": BASELINE, "finefcace-64px": zero_group}
    study = results(arms)
    table = "\n".join(script.difference_table(study, [("test", "UTKFace test")], 64))
    assert "inf" not in table.replace("infinite", "")
    assert "undefined: FineFACE left a group at 0 % in some seed" in table
    cells = script.difference_cells(script.difference_rows(study, "test", 64))
    assert cells[2].startswith("undefined: FineFACE") and cells[0].startswith("+")
    swapped = results({"baseline-64px": zero_group, "finefcace-64px": BASELINE})
    assert "undefined: the baseline left a group" in "\n".join(
        script.difference_table(swapped, [("test", "UTKFace test")], 64))
