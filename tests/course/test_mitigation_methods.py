"""finefcace.course.mitigation_methods: the chapter's tables, figure and words follow the numbers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from finefcace import plots
from finefcace.course import mitigation_methods as M
from finefcace.training.config import load_config
from finefcace.training.study import StudyResults

ARMS = ["baseline", "finefcace", "group_dro"]
BASE = {"synthetic": {"n_train": 16, "n_val": 8, "n_test": 8, "size": 64, "seed": 0}, "backbone": "resnet18",
        "input_size": 64, "epochs": 2}


def fake_study(per_arm: dict[str, tuple[float, float, float]], seeds=(0, 1, 2)) -> StudyResults:
    """A study whose per-run summaries are given: arm -> (overall, worst group, DoB); seed s
    adds 0.1·s to each, so the seed-to-seed spread is the same for every arm."""
    rows, runs = [], []
    for arm, (overall, worst, dob) in per_arm.items():
        for seed in seeds:
            for metric, value in (("overall_accuracy", overall), ("min_group_accuracy", worst),
                                  ("max_min_ratio", 1.1), ("degree_of_bias", dob)):
                value = value + 0.1 * seed
                rows.append({"arm": arm, "seed": seed, "test_set": "test", "metric": metric, "group": "all",
                             "n": 640, "value": value, "ci_low": value - 2, "ci_high": value + 2, "unit": "%"})
            runs.append({"arm": arm, "seed": seed, "epochs_run": 2, "train_seconds": 30.0, "method": arm,
                         "uses_protected_labels": arm == "group_dro"})
    meta = {"task": "gender", "target": "gender", "seeds": list(seeds), "data": "SYNTHETIC faces (fixture)",
            "model": "resnet18", "hardware": "CPU", "date": "2026-11-30T00:00:00+00:00", "wall_seconds": 60.0,
            "n_bootstrap": 10, "command": "python experiments/mitigation_methods.py",
            "arms": [{"name": a, "changes": {"method": a}, "description": a.upper()} for a in per_arm],
            "base_config": load_config(BASE).to_dict()}
    return StudyResults("fixture", pd.DataFrame(rows), pd.DataFrame(runs), meta)


def test_the_arms_cover_every_method_once_with_the_main_balancing_first():
    methods = [arm.changes["method"] for arm in M.ARMS]
    assert methods[:2] == ["baseline", "finefcace"]
    assert set(methods) == {"baseline", "finefcace", "group_balanced", "domain_independent", "adversarial", "group_dro"}
    balanced = [arm for arm in M.ARMS if arm.changes["method"] == "group_balanced"]
    assert [arm.changes.get("method_options", {}).get("balance") for arm in balanced] == [None, "resample"]
    assert len({arm.name for arm in M.ARMS}) == len(M.ARMS)


@pytest.mark.parametrize("sign", [1, -1])
def test_the_words_follow_the_numbers_whichever_way_they_fall(sign):
    """The same study with group DRO 3 points ahead of / behind the baseline and FineFACE:
    the generated text says "higher"/"lower" and better/worse accordingly, and names the
    Pareto front from the means."""
    study = fake_study({"baseline": (90.0, 80.0, 4.0), "finefcace": (91.0, 82.0, 3.0),
                        "group_dro": (90.0 + 3 * sign, 80.0 + 3 * sign, 4.0 - 1.5 * sign)})
    text = M.comparison_text(study)
    dro_line = next(line for line in text.splitlines() if line.startswith("- GROUP_DRO vs BASELINE:"))
    if sign > 0:
        assert "overall accuracy higher by 3.00 points (better), 95 % interval [+3.00, +3.00], 3 of 3 seeds agree " \
               "— clear" in dro_line
        assert "DoB lower by 1.50 points (better)" in dro_line
        assert "the Pareto front (no other method better on both) is GROUP_DRO" in text
        assert "is better than the methods that use them in 0 of 1 on overall accuracy" in text
    else:
        assert "overall accuracy lower by 3.00 points (worse)" in dro_line
        assert "DoB higher by 1.50 points (worse)" in dro_line
        assert "the Pareto front (no other method better on both) is FINEFCACE;" in text
        assert "is better than the methods that use them in 1 of 1 on overall accuracy" in text
    assert "generated from the study's numbers" in text and "SYNTHETIC" in text


def test_a_difference_the_seeds_cannot_resolve_is_said_to_be_unresolved():
    study = fake_study({"baseline": (90.0, 80.0, 4.0), "finefcace": (90.0, 80.0, 4.0), "group_dro": (90.0, 80.0, 4.0)})
    noisy = study.reports.copy()
    jitter = {0: 0.5, 1: -0.4, 2: 0.0}
    mask = noisy["arm"] == "group_dro"
    noisy.loc[mask, "value"] += noisy.loc[mask, "seed"].map(jitter)
    study = StudyResults("fixture", noisy, study.runs, study.meta)
    text = M.comparison_text(study)
    assert "not resolved by these seeds (the interval includes 0)" in text


def test_tables_and_figures_of_a_study(tmp_path):
    study = fake_study({"baseline": (90.0, 80.0, 4.0), "finefcace": (91.0, 82.0, 3.0), "group_dro": (92.0, 84.0, 2.0)})
    summary = M.summary_table(study)
    assert list(summary.index) == ["BASELINE", "FINEFCACE", "GROUP_DRO"]
    assert summary.loc["GROUP_DRO", "overall accuracy"] == "92.10 ± 0.10"
    assert list(summary["protected labels in training"]) == ["no", "no", "YES"]
    differences = M.differences_table(study, "baseline")
    row = differences[(differences["arm vs BASELINE"] == "GROUP_DRO") & (differences["metric"] == "DoB")].iloc[0]
    assert row["mean"] == "-2.00" and row["seeds for arm"] == "3 of 3"
    assert list(differences.columns) == ["arm vs BASELINE", "metric", "mean", "95 % interval", "seeds for arm"]
    conditions = M.conditions_table(study)
    assert list(conditions["protected labels in training"]) == ["no", "no", "YES"]
    assert set(conditions["options"]) == {"none"}  # in words, never "{}"
    figure = M.tradeoff_figure(study)
    assert len(figure.axes) == 2 and "worst-group" in figure.axes[1].get_xlabel()
    path = study.to_json(tmp_path / "study.json")
    markdown = M.results_markdown(StudyResults.from_json(path))
    assert markdown.startswith("<!-- Generated by `python experiments/mitigation_methods.py`")
    assert "| Protected labels in training |" in markdown and "What the numbers say" in markdown


def test_method_options_are_said_in_words():
    assert M.options_in_words({"balance": "resample"}) == "balance = resample"
    assert M.options_in_words({}) == "none"
    table = M.methods_table()
    assert not table["options"].str.contains("[{}]").any()
    assert table.loc["baseline", "options"] == "none"


def test_the_profile_note_names_the_keys_that_differ():
    study = fake_study({"baseline": (90.0, 80.0, 4.0)})
    assert M.profile_note(study, load_config(BASE, method="group_dro")) == \
        "These results were produced with this profile's training keys."
    note = M.profile_note(study, load_config(BASE, epochs=5))
    assert "OTHER training keys" in note and "epochs" in note and "--profile" in note


def test_the_papers_rows_are_its_printed_numbers_labelled_as_reported_elsewhere():
    rows = M.paper_rows().set_index("paper")
    adversarial = rows.loc["Table 5: Adversarial debiasing (Zhang et al. 2018) [33]"]
    assert (adversarial["accuracy"], adversarial["worst-group accuracy"], adversarial["DoB"]) == (92.69, 87.66, 2.62)
    weighting = rows[rows["our arm"] == "group_balanced"].iloc[0]
    assert (weighting["accuracy"], weighting["worst-group accuracy"], weighting["DEOdds"]) == (91.45, 89.06, 9.0)
    # a measure a table does not print is said so, never NaN
    assert (adversarial["DEOdds"], weighting["DoB"]) == ("not in Table 5", "not in Table 7")
    assert not rows.isna().any().any()
    assert rows["conditions"].str.startswith("reported elsewhere, under other conditions").all()
    assert set(rows["our arm"]) == set(M.PAPER_COUNTERPARTS)
    figure = M.paper_figure()
    assert "Reported elsewhere, under other conditions" in figure.texts[0].get_text()
    assert plots.smallest_text_as_shown(figure)[0] >= plots.MIN_TEXT_PT  # legible at the book's width


def test_the_papers_figure_prints_no_method_name_over_another():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = M.paper_figure()
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    for ax in figure.axes:
        boxes = [t.get_window_extent(renderer) for t in ax.texts if t.get_gid() == plots.POINT_LABEL]
        assert len(boxes) >= 5
        clashes = [(i, j) for i in range(len(boxes)) for j in range(i) if boxes[i].overlaps(boxes[j])]
        assert not clashes, [ax.texts[i].get_text() for pair in clashes for i in pair]


def test_the_cost_table_reads_the_benchmark_and_names_a_missing_file(tmp_path):
    results = {"config": {"backbone": "resnet18", "input_size": 112, "batch": 8, "repetitions": 3},
               "environment": {"device": "cpu", "threads": 2, "date": "2026-11-30T00:00:00"},
               "workloads": {"baseline_train": {"seconds": {"median": 0.1}}, "group_dro_train": {"seconds": {"median": 0.11}}},
               "comparisons": {"group_dro_train": {"time_ratio": {"median": 1.1, "q1": 1.0, "q3": 1.2}, "flop_ratio": 1.0}},
               "protected_labels": {"baseline_train": False, "group_dro_train": True}}
    (tmp_path / "r.json").write_text(json.dumps(results))
    table = M.cost_table(tmp_path / "r.json")
    assert table.loc["group_dro", "time / baseline (median)"] == 1.1 and table.loc["baseline", "FLOPs / baseline"] == 1.0
    assert list(table["protected labels in training"]) == ["no", "YES"] and "resnet18, 112 px" in table.attrs["caption"]
    with pytest.raises(FileNotFoundError, match="benchmarks/run.py --methods"):
        M.cost_table(tmp_path / "missing.json")
    assert np.isfinite(table["median ms"]).all()
