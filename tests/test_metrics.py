"""Tests for finefcace/metrics.py: the paper's check vectors, hand-computed cases, undefined
groups, agreement with fairlearn's MetricFrame, bootstrap intervals and seed aggregation."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from finefcace import metrics
from finefcace.metrics import (
    UndefinedMetricWarning,
    aggregate_seeds,
    attribute_task_report,
    degree_of_bias,
    gender_task_report,
    group_rates,
    max_min_ratio,
)

# ------------------------------------------------------------------------------------------
# check vectors of spec/metrics.md (group accuracies -> printed Max/Min and DoB)

SPEC_TABLE5 = {
    "A": ([91.26, 94.45, 95.05, 95.19, 97.35, 94.2, 94.96], 1.067, 1.81),
    "B": ([87.66, 91.93, 93.67, 93.8, 95.96, 91.81, 93.96], 1.095, 2.62),
    "C": ([90.83, 93.6, 94.48, 94.7, 95.94, 93.64, 94.57], 1.056, 1.59),
    "D": ([91.64, 95.29, 95.38, 95.32, 97.11, 93.5, 94.92], 1.06, 1.72),
}
SPEC_TABLE2 = {
    "Baseline": ([96.5, 89.9, 94.4, 82.4, 97.2, 88.9, 94.4, 91.5, 95.6, 92.2, 98.1, 93.3, 97.8, 92.4], 1.18, 4.2),
    "FineFACE": ([97.1, 97, 97.2, 96.2, 97, 96.2, 96.2, 97, 96, 96.3, 96.6, 95.9, 96.1, 95.1], 1.02, 0.6),
}


@pytest.mark.parametrize("row", sorted(SPEC_TABLE5))
def test_table5_rows_a_to_d_reproduce_printed_max_min_and_dob(row):
    accuracies, printed_ratio, printed_dob = SPEC_TABLE5[row]
    assert round(max_min_ratio(accuracies), 3) == pytest.approx(printed_ratio, abs=1e-12)
    assert round(degree_of_bias(accuracies), 2) == pytest.approx(printed_dob, abs=1e-12)


@pytest.mark.parametrize("row", sorted(SPEC_TABLE2))
def test_table2_within_the_papers_rounding(row):
    accuracies, printed_ratio, printed_dob = SPEC_TABLE2[row]
    # group accuracies are printed to 0.1: each may be off by 0.05; DoB to 0.1 (+-0.05)
    assert abs(degree_of_bias(accuracies) - printed_dob) <= 0.05 + 0.05 * np.sqrt(14 / 13)
    # Max/Min to 0.01; the baseline's printed 1.18 is 0.01 below its accuracies' 1.19 (spec note)
    assert abs(max_min_ratio(accuracies) - printed_ratio) <= 0.01 + 0.005


def test_table2_baseline_ratio_is_the_documented_rounding_slip():
    accuracies = SPEC_TABLE2["Baseline"][0]
    assert round(max_min_ratio(accuracies), 2) == 1.19  # printed 1.18


def test_dob_denominator_is_a_choice_table4_matches_population_std():
    # Table 4 (two groups) prints DoB 2.2 and 1.3: |M - F| / 2, i.e. ddof=0
    assert degree_of_bias([90.6, 94.9], ddof=0) == pytest.approx(2.15)
    assert degree_of_bias([96.4, 99.0], ddof=0) == pytest.approx(1.3)
    assert degree_of_bias([90.6, 94.9]) == pytest.approx(4.3 / np.sqrt(2))  # default ddof=1


def test_table6_deo_is_max_minus_min_group_tpr():
    # the spec's worked example: baseline 73.88 - 61.34 = 12.54; FineFACE 76.97 - 75.79 = 1.18
    assert 73.88 - 61.34 == pytest.approx(12.54)
    assert 76.97 - 75.79 == pytest.approx(1.18)


# ------------------------------------------------------------------------------------------
# hand-computed small cases


def test_max_min_and_dob_by_hand():
    assert max_min_ratio([90.0, 80.0, 72.0]) == pytest.approx(1.25)
    assert degree_of_bias([90.0, 80.0, 70.0]) == pytest.approx(10.0)
    assert degree_of_bias([90.0, 80.0, 70.0], ddof=0) == pytest.approx(np.sqrt(200 / 3))
    assert max_min_ratio({"a": 50.0, "b": 100.0}) == pytest.approx(2.0)
    assert max_min_ratio(pd.Series([1.0, 1.0])) == 1.0 and degree_of_bias([7.0, 7.0]) == 0.0


def test_max_min_and_dob_edge_cases():
    assert max_min_ratio([0.0, 50.0]) == np.inf
    with pytest.warns(UndefinedMetricWarning, match="b"):
        assert np.isnan(max_min_ratio(pd.Series({"a": 90.0, "b": np.nan})))  # one defined group
    with pytest.warns(UndefinedMetricWarning, match="Black / Female"):
        value = max_min_ratio(pd.Series({"White / Male": 90.0, "Black / Female": np.nan, "Asian / Male": 60.0}))
    assert value == pytest.approx(1.5)
    with pytest.warns(UndefinedMetricWarning):
        assert degree_of_bias([10.0, np.nan, 20.0]) == pytest.approx(np.std([10, 20], ddof=1))
    with pytest.raises(ValueError, match="numbers"):
        max_min_ratio(["a", "b"])


def _hand_table() -> pd.DataFrame:
    # group (A, F): 3 samples, 3 right; (A, M): 2 samples, 1 right; (B, F): 1 sample, 0 right;
    # (B, M): 4 samples, 3 right.  overall = 7/10 (the mean of group accuracies would be 0.5625)
    rows = [("A", "Female", 1, 1), ("A", "Female", 0, 0), ("A", "Female", 1, 1),
            ("A", "Male", 1, 0), ("A", "Male", 0, 0),
            ("B", "Female", 1, 0),
            ("B", "Male", 0, 0), ("B", "Male", 1, 1), ("B", "Male", 1, 1), ("B", "Male", 0, 1)]
    return pd.DataFrame(rows, columns=["race", "gender", "y_true", "y_pred"])


def _value(report: pd.DataFrame, metric: str, group: str = "all", attribute: str | None = None) -> float:
    rows = report[(report["metric"] == metric) & (report["group"] == group)]
    if attribute is not None:
        rows = rows[rows["attribute"] == attribute]
    assert len(rows) == 1, (metric, group, attribute)
    return float(rows["value"].iloc[0])


def test_gender_report_by_hand():
    report = gender_task_report(_hand_table(), n_bootstrap=0)
    assert list(report.columns) == ["metric", "group", "race", "gender", "n", "value", "ci_low", "ci_high", "unit"]
    expected = {"A / Female": 100.0, "A / Male": 50.0, "B / Female": 0.0, "B / Male": 75.0}
    for group, accuracy in expected.items():
        assert _value(report, "accuracy", group) == pytest.approx(accuracy)
    assert report.loc[report["group"] == "A / Female", "n"].item() == 3
    assert _value(report, "overall_accuracy") == pytest.approx(70.0)  # sample-weighted, not 56.25
    assert _value(report, "max_group_accuracy") == 100.0 and _value(report, "min_group_accuracy") == 0.0
    assert _value(report, "max_min_ratio") == np.inf  # a group at 0% accuracy
    assert _value(report, "degree_of_bias") == pytest.approx(np.std([100, 50, 0, 75], ddof=1))
    assert report.loc[report["metric"] == "max_min_ratio", "unit"].item() == "ratio"
    assert report["ci_low"].isna().all()  # n_bootstrap=0: no intervals


def test_gender_report_group_columns_and_array_input_agree():
    table = _hand_table()
    from_table = gender_task_report(table, group_columns=("gender",), n_bootstrap=0)
    from_arrays = gender_task_report(y_true=table["y_true"].to_numpy(), y_pred=table["y_pred"].to_numpy(),
                                     groups={"gender": table["gender"].to_numpy()}, n_bootstrap=0)
    pd.testing.assert_frame_equal(from_table, from_arrays)
    assert _value(from_table, "accuracy", "Female") == pytest.approx(75.0)  # 3 of 4
    assert _value(from_table, "accuracy", "Male") == pytest.approx(4 / 6 * 100)
    plain = gender_task_report(y_true=[1, 0, 1, 1], y_pred=[1, 0, 0, 1], groups=["x", "x", "y", "y"], n_bootstrap=0)
    assert _value(plain, "accuracy", "y") == 50.0 and "protected" in plain.columns


def test_protected_columns_one_rule_for_every_table():
    assert metrics.protected_columns(pd.DataFrame(columns=["race", "gender", "y_true"])) == ["race", "gender"]
    assert metrics.protected_columns(pd.DataFrame(columns=["gender", "tone", "age"])) == ["tone", "gender"]
    assert metrics.protected_columns(pd.DataFrame(columns=["gender"])) == ["gender"]
    assert metrics.protected_columns(pd.DataFrame(columns=["y_true", "y_pred"])) == []
    with pytest.raises(ValueError, match="group_columns"):
        gender_task_report(pd.DataFrame({"y_true": [0, 1], "y_pred": [0, 1]}), n_bootstrap=0)


def _attribute_table() -> pd.DataFrame:
    # Female: 4 positives (3 found), 2 negatives (1 false alarm) -> TPR 75, FPR 50, acc 4/6
    # Male:   2 positives (2 found), 4 negatives (0 false alarms) -> TPR 100, FPR 0, acc 6/6
    female = [(1, 1), (1, 1), (1, 1), (1, 0), (0, 1), (0, 0)]
    male = [(1, 1), (1, 1), (0, 0), (0, 0), (0, 0), (0, 0)]
    rows = [("Female", t, p) for t, p in female] + [("Male", t, p) for t, p in male]
    frame = pd.DataFrame(rows, columns=["gender", "y_true", "y_pred"])
    return frame.assign(path=[f"img_{i}.jpg" for i in range(len(frame))])


def test_attribute_report_by_hand_and_deodds_is_a_sum():
    report = attribute_task_report(_attribute_table(), attribute="Smiling", n_bootstrap=0)
    assert set(report["attribute"]) == {"Smiling"}
    assert _value(report, "tpr", "Female") == pytest.approx(75.0)
    assert _value(report, "tpr", "Male") == pytest.approx(100.0)
    assert _value(report, "fpr", "Female") == pytest.approx(50.0)
    assert _value(report, "fpr", "Male") == pytest.approx(0.0)
    assert _value(report, "accuracy") == pytest.approx(10 / 12 * 100)
    assert _value(report, "tpr") == pytest.approx(5 / 6 * 100)
    assert _value(report, "fpr") == pytest.approx(1 / 6 * 100)
    assert _value(report, "max_group_accuracy") == pytest.approx(100.0)
    assert _value(report, "min_group_accuracy") == pytest.approx(4 / 6 * 100)
    assert _value(report, "max_group_tpr") == 100.0 and _value(report, "min_group_tpr") == 75.0
    assert _value(report, "deo") == pytest.approx(25.0)  # |TPR_M - TPR_F|
    assert _value(report, "deodds") == pytest.approx(25.0 + 50.0)  # |dTPR| + |dFPR|: a sum
    from fairlearn.metrics import equalized_odds_difference

    table = _attribute_table()
    fairlearn_max = 100 * equalized_odds_difference(table["y_true"], table["y_pred"], sensitive_features=table["gender"])
    assert fairlearn_max == pytest.approx(50.0)  # the max of the two gaps: not the paper's DEOdds


def test_attribute_report_mean_over_attributes_and_deo_identity():
    table = _attribute_table()
    flipped = table.assign(y_pred=np.where(table.index % 3 == 0, 1 - table["y_pred"], table["y_pred"]))
    report = attribute_task_report({"Smiling": table, "Bangs": flipped}, n_bootstrap=0)
    assert set(report["attribute"]) == {"Smiling", "Bangs", "mean"}
    for metric in ("accuracy", "tpr", "max_group_tpr", "min_group_tpr", "deo", "deodds"):
        each = [_value(report, metric, attribute=a) for a in ("Smiling", "Bangs")]
        assert _value(report, metric, attribute="mean") == pytest.approx(np.mean(each))
    # the mean DEO equals mean max-group TPR minus mean min-group TPR (as in Tables 6 and 7)
    assert _value(report, "deo", attribute="mean") == pytest.approx(
        _value(report, "max_group_tpr", attribute="mean") - _value(report, "min_group_tpr", attribute="mean"))
    # one long table with a target column gives the same report as the dict
    long = pd.concat([table.assign(target="Smiling"), flipped.assign(target="Bangs")], ignore_index=True)
    pd.testing.assert_frame_equal(attribute_task_report(long, n_bootstrap=0), report)


def test_more_than_two_groups_deo_is_the_range():
    rng = np.random.default_rng(3)
    n = 600
    frame = pd.DataFrame({"tone": rng.choice(["tone_1", "tone_2", "tone_3"], n), "y_true": rng.integers(0, 2, n)})
    frame["y_pred"] = np.where(rng.random(n) < 0.8, frame["y_true"], 1 - frame["y_true"])
    report = attribute_task_report(frame, protected="tone", attribute="x", n_bootstrap=0)
    tprs = [_value(report, "tpr", g) for g in ("tone_1", "tone_2", "tone_3")]
    fprs = [_value(report, "fpr", g) for g in ("tone_1", "tone_2", "tone_3")]
    assert _value(report, "deo") == pytest.approx(max(tprs) - min(tprs))
    assert _value(report, "deodds") == pytest.approx(max(tprs) - min(tprs) + max(fprs) - min(fprs))


# ------------------------------------------------------------------------------------------
# undefined groups: NaN, a warning naming the group, left out of the summaries


def test_empty_group_is_nan_warned_and_excluded():
    table = _hand_table()
    table = table[~((table["race"] == "B") & (table["gender"] == "Female"))]
    with pytest.warns(UndefinedMetricWarning, match="race=B, gender=Female has no samples"):
        report = gender_task_report(table, n_bootstrap=0)
    assert np.isnan(_value(report, "accuracy", "B / Female"))
    assert report.loc[report["group"] == "B / Female", "n"].item() == 0
    assert _value(report, "min_group_accuracy") == 50.0
    assert _value(report, "max_min_ratio") == pytest.approx(2.0)
    assert _value(report, "degree_of_bias") == pytest.approx(np.std([100, 50, 75], ddof=1))


def test_expected_groups_and_categories_declare_empty_groups():
    table = _hand_table()
    with pytest.warns(UndefinedMetricWarning, match="race=C, gender=Male"):
        report = gender_task_report(table, expected_groups=[("A", "Female"), ("A", "Male"), ("B", "Female"),
                                                            ("B", "Male"), ("C", "Male")], n_bootstrap=0)
    assert np.isnan(_value(report, "accuracy", "C / Male"))
    categorical = table.assign(race=pd.Categorical(table["race"], categories=["A", "B", "C"]))
    with pytest.warns(UndefinedMetricWarning, match="race=C"):
        report = gender_task_report(categorical, n_bootstrap=0)
    assert report["group"].str.startswith("C").sum() == 2
    with pytest.raises(ValueError, match="not in expected_groups"):
        gender_task_report(table, expected_groups=[("A", "Female")], n_bootstrap=0)


def test_group_without_positives_or_negatives():
    table = _attribute_table()
    no_male_positive = table[~((table["gender"] == "Male") & (table["y_true"] == 1))]
    with pytest.warns(UndefinedMetricWarning, match="gender=Male has no positives"):
        report = attribute_task_report(no_male_positive, attribute="Chubby", n_bootstrap=0)
    assert np.isnan(_value(report, "tpr", "Male"))  # not fairlearn's silent 0
    assert _value(report, "tpr", "Female") == pytest.approx(75.0)
    assert np.isnan(_value(report, "deo")) and np.isnan(_value(report, "deodds"))  # one group left
    assert np.isnan(_value(report, "max_group_tpr"))
    assert _value(report, "fpr", "Male") == 0.0 and not np.isnan(_value(report, "max_group_accuracy"))
    no_female_negative = table[~((table["gender"] == "Female") & (table["y_true"] == 0))]
    with pytest.warns(UndefinedMetricWarning, match="gender=Female has no negatives"):
        report = attribute_task_report(no_female_negative, attribute="Chubby", n_bootstrap=0)
    assert np.isnan(_value(report, "fpr", "Female"))
    assert _value(report, "deo") == pytest.approx(25.0)
    assert np.isnan(_value(report, "deodds"))


def test_undefined_attribute_is_left_out_of_the_mean_with_a_warning():
    table = _attribute_table()
    no_positive = table.assign(y_true=0, y_pred=0)
    with pytest.warns(UndefinedMetricWarning) as caught:
        report = attribute_task_report({"Smiling": table, "Wearing_Hat": no_positive}, n_bootstrap=0)
    assert any("Wearing_Hat" in str(w.message) and "mean" in str(w.message) for w in caught)
    assert _value(report, "deo", attribute="mean") == pytest.approx(_value(report, "deo", attribute="Smiling"))


# ------------------------------------------------------------------------------------------
# MetricFrame and the vectorised count formulas agree


def test_count_formulas_equal_metricframe():
    rng = np.random.default_rng(0)
    n = 3000
    frame = pd.DataFrame({"race": rng.choice(["a", "b", "c"], n), "gender": rng.choice(["Female", "Male"], n),
                          "y_true": rng.integers(0, 2, n)})
    frame["y_pred"] = np.where(rng.random(n) < 0.7, frame["y_true"], 1 - frame["y_true"])
    rates = group_rates(frame)
    groups = list(rates.index)
    cells = np.zeros((len(groups), 2, 2))
    for (race, gender, truth, guess), count in frame.value_counts(["race", "gender", "y_true", "y_pred"]).items():
        cells[groups.index((race, gender)), truth, guess] = count
    from_counts = metrics._rates_from_counts(cells, positive=1)
    for rate in ("accuracy", "tpr", "fpr"):
        np.testing.assert_allclose(from_counts[rate], rates[rate].to_numpy(), rtol=0, atol=1e-12)
    assert from_counts["overall_accuracy"] == pytest.approx((frame["y_true"] == frame["y_pred"]).mean())


def test_group_rates_equal_metricframe_over_the_raw_samples():
    # group_rates feeds MetricFrame the distinct rows weighted by their counts: same numbers
    from fairlearn.metrics import MetricFrame, false_positive_rate, true_positive_rate
    from sklearn.metrics import accuracy_score

    rng = np.random.default_rng(1)
    n = 500
    frame = pd.DataFrame({"tone": rng.choice(["t1", "t2", "t3", "t4"], n), "gender": rng.choice(["Female", "Male"], n),
                          "y_true": rng.integers(0, 2, n)})
    frame["y_pred"] = np.where(rng.random(n) < 0.75, frame["y_true"], 1 - frame["y_true"])
    raw = MetricFrame(metrics={"accuracy": accuracy_score, "tpr": true_positive_rate, "fpr": false_positive_rate},
                      y_true=frame["y_true"], y_pred=frame["y_pred"], sensitive_features=frame[["tone", "gender"]])
    ours = group_rates(frame)
    pd.testing.assert_frame_equal(ours[["accuracy", "tpr", "fpr"]], raw.by_group.astype(float), check_names=False,
                                  rtol=0, atol=1e-12)
    assert ours["n"].tolist() == frame.value_counts(["tone", "gender"]).sort_index().tolist()
    assert (ours["n_positive"] + ours["n_negative"] == ours["n"]).all()


# ------------------------------------------------------------------------------------------
# bootstrap


def _biased_table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    race = rng.choice(["r1", "r2", "r3"], n)
    gender = rng.choice(["Female", "Male"], n)
    accuracy = np.select([race == "r1", race == "r2"], [0.95, 0.85], 0.75) - np.where(gender == "Female", 0.05, 0)
    truth = rng.integers(0, 2, n)
    guess = np.where(rng.random(n) < accuracy, truth, 1 - truth)
    return pd.DataFrame({"race": race, "gender": gender, "y_true": truth, "y_pred": guess})


def _width(report: pd.DataFrame, metric: str, group: str = "all") -> float:
    row = report[(report["metric"] == metric) & (report["group"] == group)].iloc[0]
    return float(row["ci_high"] - row["ci_low"])


def test_bootstrap_intervals_contain_the_estimate_and_shrink_with_more_samples():
    small = gender_task_report(_biased_table(600, 1), n_bootstrap=400, seed=0)
    large = gender_task_report(_biased_table(9600, 1), n_bootstrap=400, seed=0)
    for report in (small, large):
        assert (report["ci_low"] <= report["value"] + 1e-9).all(), report
        assert (report["value"] <= report["ci_high"] + 1e-9).all(), report
    for metric, group in [("accuracy", "r1 / Male"), ("accuracy", "r3 / Female"), ("overall_accuracy", "all"),
                          ("degree_of_bias", "all"), ("max_min_ratio", "all")]:
        # 16x the samples: about 4x narrower; assert at least 2x
        assert _width(large, metric, group) < 0.5 * _width(small, metric, group), (metric, group)


def test_attribute_bootstrap_intervals_contain_estimates_and_shrink():
    def table(n: int) -> pd.DataFrame:
        rng = np.random.default_rng(5)
        gender = rng.choice(["Female", "Male"], n)
        truth = rng.integers(0, 2, n)
        accuracy = np.where(gender == "Female", np.where(truth == 1, 0.6, 0.9), np.where(truth == 1, 0.85, 0.95))
        guess = np.where(rng.random(n) < accuracy, truth, 1 - truth)
        base = pd.DataFrame({"gender": gender, "y_true": truth, "y_pred": guess, "path": np.arange(n)})
        other = base.assign(y_pred=np.where(rng.random(n) < 0.9, truth, 1 - truth))
        return pd.concat([base.assign(target="a"), other.assign(target="b")], ignore_index=True)

    small = attribute_task_report(table(500), n_bootstrap=400, seed=1)
    large = attribute_task_report(table(8000), n_bootstrap=400, seed=1)
    means = large[large["attribute"] == "mean"]
    assert ((means["ci_low"] <= means["value"]) & (means["value"] <= means["ci_high"])).all()
    for metric in ("accuracy", "deo", "deodds", "min_group_tpr"):
        assert _width(large[large.attribute == "mean"], metric) < 0.5 * _width(small[small.attribute == "mean"], metric)


def test_bootstrap_is_reproducible_and_seeded():
    table = _biased_table(800, 2)
    first = gender_task_report(table, n_bootstrap=200, seed=7)
    pd.testing.assert_frame_equal(first, gender_task_report(table, n_bootstrap=200, seed=7))
    other = gender_task_report(table, n_bootstrap=200, seed=8)
    assert not np.allclose(first["ci_low"], other["ci_low"])
    pd.testing.assert_series_equal(first["value"], other["value"])  # point estimates do not depend on it


def test_bootstrap_interval_matches_binomial_theory_for_a_group_accuracy():
    # stratified resampling of a group of n samples with accuracy p: sd ~ sqrt(p(1-p)/n)
    table = _biased_table(6000, 4)
    report = gender_task_report(table, n_bootstrap=1000, seed=0, confidence=0.95)
    row = report[report["group"] == "r2 / Male"].iloc[0]
    p, n = row["value"] / 100, row["n"]
    expected = 2 * 1.96 * np.sqrt(p * (1 - p) / n) * 100
    assert (row["ci_high"] - row["ci_low"]) == pytest.approx(expected, rel=0.15)


@pytest.mark.filterwarnings("ignore::finefcace.metrics.UndefinedMetricWarning")  # 6 samples per group
def test_unstratified_bootstrap_and_independent_attribute_resampling():
    table = _biased_table(1000, 3)
    report = gender_task_report(table, n_bootstrap=100, stratified=False)
    assert report["ci_low"].notna().all()
    a = _attribute_table().drop(columns="path")
    with pytest.warns(UserWarning, match="resampled independently"):
        attribute_task_report({"x": a, "y": a}, n_bootstrap=50)


def test_rare_positives_warn_about_partly_undefined_resamples():
    table = _attribute_table()
    one_positive = pd.concat([table[table["gender"] == "Female"],
                              table[(table["gender"] == "Male")].assign(y_true=[1, 0, 0, 0, 0, 0])])
    with pytest.warns(UndefinedMetricWarning, match="bootstrap resamples"):
        report = attribute_task_report(one_positive, attribute="x", n_bootstrap=200, seed=0)
    assert report["ci_low"].notna().any()


def test_bootstrap_argument_errors():
    with pytest.raises(ValueError, match="n_bootstrap"):
        gender_task_report(_hand_table(), n_bootstrap=-1)
    with pytest.raises(ValueError, match="confidence"):
        gender_task_report(_hand_table(), confidence=95)


# ------------------------------------------------------------------------------------------
# seeds


def test_aggregate_seeds_mean_and_std():
    table = _hand_table()
    reports = {0: gender_task_report(table, n_bootstrap=0),
               1: gender_task_report(table.assign(y_pred=table["y_true"]), n_bootstrap=0)}
    combined = aggregate_seeds(reports)
    row = combined[combined["metric"] == "overall_accuracy"].iloc[0]
    assert row["value"] == pytest.approx(85.0)  # mean of 70 and 100
    assert row["std"] == pytest.approx(np.std([70, 100], ddof=1))
    assert row["n_seeds"] == 2
    assert combined.attrs["seeds"] == [0, 1]
    ratio = combined[combined["metric"] == "max_min_ratio"].iloc[0]
    assert ratio["value"] == 1.0 and ratio["n_seeds"] == 1  # inf (a 0% group) is left out
    with pytest.raises(ValueError, match="same rows"):
        aggregate_seeds([reports[0], gender_task_report(table, group_columns="gender", n_bootstrap=0)])


# ------------------------------------------------------------------------------------------
# bad input


def test_bad_input_messages():
    table = _hand_table()
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['y_pred'\]"):
        gender_task_report(table.drop(columns="y_pred"))
    with pytest.raises(ValueError, match="'race' has 1 missing value"):
        gender_task_report(table.assign(race=["A", None] + ["B"] * 8))
    with pytest.raises(ValueError, match="same length"):
        gender_task_report(y_true=[1, 0], y_pred=[1], groups=["a", "b"])
    with pytest.raises(ValueError, match="not both"):
        gender_task_report(table, y_true=[1])
    with pytest.raises(ValueError, match="empty"):
        gender_task_report(table.iloc[:0])
    with pytest.raises(ValueError, match="binary task"):
        attribute_task_report(table.assign(y_true=[0, 1, 2] * 3 + [0]), attribute="x")
    with pytest.raises(TypeError, match="DataFrame"):
        attribute_task_report([1, 2, 3])


# ------------------------------------------------------------------------------------------
# real FairFace labels (groups as the dataset names them)


def test_report_on_real_fairface_val_groups(realdata_dir):
    labels = pd.read_csv(realdata_dir / "fairface" / "fairface_label_val.csv")
    rng = np.random.default_rng(0)
    truth = (labels["gender"] == "Male").astype(int).to_numpy()
    guess = np.where(rng.random(len(labels)) < 0.93, truth, 1 - truth)
    predictions = labels.assign(y_true=truth, y_pred=guess)
    report = gender_task_report(predictions, n_bootstrap=200)
    groups = report[report["metric"] == "accuracy"]
    assert len(groups) == 14
    assert groups["n"].sum() == len(labels) == 10954
    counts = labels.value_counts(["race", "gender"])
    assert groups.set_index(["race", "gender"])["n"].sort_index().equals(counts.sort_index().rename("n"))
    assert groups["ci_low"].notna().all()


# ------------------------------------------------------------------------------------------
# intersectional report (crossed groups, the paper's future work §6)


def _crossed_table() -> pd.DataFrame:
    """race x gender x binary target, confusion counts chosen per cell (TP, FN, FP, TN):
    A/F (5, 1, 1, 3): acc 80, TPR 5/6, FPR 1/4;   A/M (5, 0, 0, 5): acc 100, TPR 100, FPR 0;
    B/F (2, 2, 2, 2): acc 50, TPR 50, FPR 50;     B/M (5, 1, 2, 4): acc 75, TPR 5/6, FPR 2/6."""
    counts = {("A", "F"): (5, 1, 1, 3), ("A", "M"): (5, 0, 0, 5), ("B", "F"): (2, 2, 2, 2), ("B", "M"): (5, 1, 2, 4)}
    rows = []
    for (race, gender), (tp, fn, fp, tn) in counts.items():
        rows += [(race, gender, 1, 1)] * tp + [(race, gender, 1, 0)] * fn
        rows += [(race, gender, 0, 1)] * fp + [(race, gender, 0, 0)] * tn
    table = pd.DataFrame(rows, columns=["race", "gender", "y_true", "y_pred"])
    return table.assign(label_true=table["y_true"].map({0: "not smiling", 1: "smiling"}))


def _row(report: pd.DataFrame, metric: str, group: str = "all") -> pd.Series:
    rows = report[(report["metric"] == metric) & (report["group"] == group)]
    assert len(rows) == 1, (metric, group)
    return rows.iloc[0]


def test_intersectional_report_by_hand():
    with pytest.warns(metrics.SmallGroupWarning, match="3 rate"):
        report = metrics.intersectional_report(_crossed_table(), group_columns=("race", "gender"), min_group_size=5,
                                               n_bootstrap=0)
    assert list(report.columns) == ["metric", "group", "race", "gender", "n", "value", "ci_low", "ci_high",
                                    "unit", "small"]
    expected = {  # cell: (accuracy, TPR, FPR) in %, and the denominators (n, positives, negatives)
        "A / F": ((80, 500 / 6, 25), (10, 6, 4)), "A / M": ((100, 100, 0), (10, 5, 5)),
        "B / F": ((50, 50, 50), (8, 4, 4)), "B / M": ((75, 500 / 6, 200 / 6), (12, 6, 6)),
    }
    for cell, (values, sizes) in expected.items():
        for metric, value, n in zip(("accuracy", "tpr", "fpr"), values, sizes):
            row = _row(report, metric, cell)
            assert row["value"] == pytest.approx(value) and row["n"] == n, (cell, metric)
            assert row["small"] == (n < 5), (cell, metric)  # B/F TPR, A/F and B/F FPR rest on 4 samples
    assert _row(report, "accuracy", "B / M")[["race", "gender"]].tolist() == ["B", "M"]
    assert _row(report, "overall_accuracy")["value"] == pytest.approx(100 * 31 / 40)  # sample-weighted
    worst, best = _row(report, "worst_group_accuracy", "B / F"), _row(report, "best_group_accuracy", "A / M")
    assert (worst["value"], best["value"]) == (50.0, 100.0) and (worst["race"], worst["gender"]) == ("B", "F")
    assert _row(report, "max_min_ratio")["value"] == pytest.approx(2.0)
    assert _row(report, "max_min_ratio")["unit"] == "ratio"
    assert _row(report, "degree_of_bias")["value"] == pytest.approx(np.std([80, 100, 50, 75], ddof=1))
    assert _row(report, "worst_group_tpr", "B / F")["value"] == pytest.approx(50.0)
    assert _row(report, "worst_group_fpr", "B / F")["value"] == pytest.approx(50.0)
    assert _row(report, "tpr_gap")["value"] == pytest.approx(50.0)  # 100 - 50
    assert _row(report, "fpr_gap")["value"] == pytest.approx(50.0)  # 50 - 0
    assert _row(report, "equalized_odds_gap")["value"] == pytest.approx(100.0)
    # summaries are flagged when they rest on a small rate
    assert not _row(report, "worst_group_accuracy", "B / F")["small"] and not _row(report, "degree_of_bias")["small"]
    assert _row(report, "worst_group_tpr", "B / F")["small"] and _row(report, "tpr_gap")["small"]
    assert report.attrs["kind"] == "intersectional" and not report.attrs["target_crossed"]


def test_intersectional_rates_are_metricframes_with_several_sensitive_features():
    from fairlearn.metrics import MetricFrame, true_positive_rate
    from sklearn.metrics import accuracy_score

    table = _crossed_table()
    report = metrics.intersectional_report(table, group_columns=["gender", "race"], n_bootstrap=0, min_group_size=1)
    frame = MetricFrame(metrics={"accuracy": accuracy_score, "tpr": true_positive_rate}, y_true=table["y_true"],
                        y_pred=table["y_pred"], sensitive_features=table[["gender", "race"]])
    for (gender, race), row in frame.by_group.iterrows():
        assert _row(report, "accuracy", f"{gender} / {race}")["value"] == pytest.approx(100 * row["accuracy"])
        assert _row(report, "tpr", f"{gender} / {race}")["value"] == pytest.approx(100 * row["tpr"])


def test_intersectional_small_group_flag_and_warning():
    """Cells of 8-12 images under the default minimum (30): every rate flagged, one warning naming
    them, values and intervals kept. A/M is error-free: its bootstrap interval collapses to
    [100, 100], the false certainty the flag warns about."""
    assert metrics.MIN_GROUP_SIZE == 30
    with pytest.warns(metrics.SmallGroupWarning, match=r"A / M accuracy \(n=10\)"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)  # FPR of 4 negatives: some resamples draw none
        report = metrics.intersectional_report(_crossed_table(), group_columns=("race", "gender"), n_bootstrap=300)
    cells = report[report["race"].notna() & report["metric"].isin(["accuracy", "tpr", "fpr"])]
    assert cells["small"].all() and cells["ci_low"].notna().all() and cells["value"].notna().all()
    perfect = _row(report, "accuracy", "A / M")
    assert (perfect["value"], perfect["ci_low"], perfect["ci_high"]) == (100.0, 100.0, 100.0)
    assert _row(report, "degree_of_bias")["small"] and _row(report, "max_min_ratio")["small"]
    # large cells and one small one: only the small one (and what rests on it) is flagged
    rng = np.random.default_rng(0)
    gender = np.concatenate([rng.choice(["F", "M"], 400), ["F"] * 12])  # no C / M image at all
    big = pd.DataFrame({"race": ["A"] * 200 + ["B"] * 200 + ["C"] * 12, "gender": gender,
                        "y_true": rng.integers(0, 2, 412)})
    big["y_pred"] = np.where(rng.random(412) < 0.9, big["y_true"], 1 - big["y_true"])
    with pytest.warns(metrics.SmallGroupWarning) as caught, \
            pytest.warns(UndefinedMetricWarning, match="race=C, gender=M has no samples"):
        report = metrics.intersectional_report(big, group_columns=("race", "gender"), n_bootstrap=0)
    accuracy = report[report["metric"] == "accuracy"].set_index("group")
    assert accuracy["small"].to_dict() == {"A / F": False, "A / M": False, "B / F": False, "B / M": False,
                                           "C / F": True, "C / M": True}
    assert accuracy.loc["C / M", "n"] == 0 and np.isnan(accuracy.loc["C / M", "value"])  # empty: NaN, flagged
    (small_warning,) = [str(w.message) for w in caught if issubclass(w.category, metrics.SmallGroupWarning)]
    assert "C / F accuracy (n=12)" in small_warning and "C / M" not in small_warning  # empty: warned elsewhere


def test_intersectional_gender_by_target_attribute():
    """Crossing with the target (label_true): the label is constant in every cell, so a cell's
    accuracy is its gender's TPR (positive cells) or 1 - FPR (negative cells); no TPR/FPR rows."""
    table = _crossed_table()
    crossed = metrics.intersectional_report(table, group_columns=("gender", "label_true"), n_bootstrap=0,
                                            min_group_size=1)
    assert crossed.attrs["target_crossed"] and set(crossed["metric"]) >= {"accuracy", "worst_group_accuracy"}
    assert not {"tpr", "fpr", "tpr_gap"} & set(crossed["metric"])
    by_gender = metrics.intersectional_report(table, group_columns="gender", n_bootstrap=0, min_group_size=1)
    for gender in ("F", "M"):
        assert _row(crossed, "accuracy", f"{gender} / smiling")["value"] == pytest.approx(_row(by_gender, "tpr", gender)["value"])
        assert _row(crossed, "accuracy", f"{gender} / not smiling")["value"] == \
            pytest.approx(100 - _row(by_gender, "fpr", gender)["value"])
    with pytest.raises(ValueError, match="label_true"):
        metrics.intersectional_report(table, group_columns=("gender", "y_true"))


def test_intersectional_missing_column_names_the_available_ones():
    with pytest.raises(ValueError) as error:
        metrics.intersectional_report(_crossed_table(), group_columns=("race", "age"))
    message = str(error.value)
    assert "['age']" in message and "available columns" in message
    assert all(c in message for c in ("race", "gender", "y_true", "y_pred", "label_true"))
    with pytest.raises(ValueError, match="name the columns"):
        metrics.intersectional_report(_crossed_table(), group_columns=())


@pytest.mark.filterwarnings("ignore::finefcace.metrics.UndefinedMetricWarning")  # 4 negatives: some resamples have none
def test_intersectional_arrays_intervals_and_grid():
    table = _crossed_table()
    from_arrays = metrics.intersectional_report(y_true=table["y_true"], y_pred=table["y_pred"],
                                                groups={"race": table["race"], "gender": table["gender"]},
                                                group_columns=("race", "gender"), n_bootstrap=400, seed=1,
                                                min_group_size=1)
    from_table = metrics.intersectional_report(table, group_columns=("race", "gender"), n_bootstrap=400, seed=1,
                                               min_group_size=1)
    pd.testing.assert_frame_equal(from_arrays, from_table)
    defined = from_table.dropna(subset=["value"])
    assert ((defined["ci_low"] <= defined["value"] + 1e-9) & (defined["value"] <= defined["ci_high"] + 1e-9)).all()
    grid = metrics.intersectional_grid(from_table)
    assert grid.loc["A", "M"] == 100.0 and grid.loc["B", "F"] == 50.0 and list(grid.columns) == ["F", "M"]
    width = metrics.intersectional_grid(from_table, value="ci_width")
    assert width.loc["A", "M"] == 0.0 and width.loc["B", "F"] > width.loc["A", "F"] > 0
    assert metrics.intersectional_grid(from_table, "tpr", "n").loc["B", "F"] == 4
    with pytest.raises(ValueError, match="intersectional_report"):
        metrics.intersectional_grid(gender_task_report(table, n_bootstrap=0))


# --------------------------------------------------------------------------------------------
# inputs that are not finite, and results that say more about the model than about fairness


def _nan_model_predictions() -> pd.DataFrame:
    """What a model whose outputs are NaN leaves: NaN probabilities, class 0 everywhere."""
    return pd.DataFrame({"y_true": [0, 1] * 8, "y_pred": [0] * 16, "prob_0": [np.nan] * 16, "prob_1": [np.nan] * 16,
                         "tone": ["tone_1", "tone_2"] * 8, "gender": ["Female"] * 8 + ["Male"] * 8})


def test_predictions_of_a_model_with_non_finite_outputs_are_refused():
    from finefcace.errors import DataError

    with pytest.raises(DataError, match=r"prob_0 has 16 value\(s\) that are not finite.*gender_task_report"):
        gender_task_report(_nan_model_predictions(), n_bootstrap=0)
    with pytest.raises(DataError, match=r"prob_1 has 1 value"):
        frame = _nan_model_predictions().assign(prob_0=0.5, prob_1=0.5)
        frame.loc[3, "prob_1"] = np.inf
        gender_task_report(frame, n_bootstrap=0)


def test_a_zero_accuracy_group_gives_an_infinite_ratio_with_a_warning():
    from finefcace.metrics import SuspiciousResultWarning

    with pytest.warns(SuspiciousResultWarning, match="tone_1 have accuracy 0, so Max/Min is infinite"):
        assert max_min_ratio({"tone_1": 0.0, "tone_2": 0.9}) == np.inf
    frame = _nan_model_predictions().assign(prob_0=0.9, prob_1=0.1)  # a constant guess, finite
    with pytest.warns(SuspiciousResultWarning) as caught:
        report = gender_task_report(frame, n_bootstrap=0)
    messages = " ".join(str(w.message) for w in caught)
    assert "every image is predicted as 0" in messages and "have accuracy 0" in messages
    assert report.set_index("metric").loc["max_min_ratio", "value"] == np.inf


def test_infinite_group_accuracies_are_refused():
    from finefcace.errors import DataError

    with pytest.raises(DataError, match="group accuracies must be finite.*group\\(s\\) 0"):
        max_min_ratio([np.inf, 0.5])
    with pytest.raises(DataError, match="must be finite"):
        degree_of_bias({"a": 0.5, "b": -np.inf})
