"""finefcace.course.findings: sentences generated from paired differences whose direction is
known — FineFACE better, FineFACE worse, and no clear difference — and the claim they add up to."""

from __future__ import annotations

import pandas as pd
import pytest

from finefcace.course import findings


def difference(metric: str, mean: float, low: float, high: float, *, higher_is_better: bool, n: int = 3,
               favour: int = 3, arm: str = "finefcace", reference: str = "baseline") -> dict:
    return {"metric": metric, "arm": arm, "reference": reference, "mean": mean, "std": 1.0,
            "ci_low": low, "ci_high": high, "n_seeds": n, "seeds_favouring_arm": favour,
            "seeds_favouring_reference": n - favour, "higher_is_better": higher_is_better}


NAMES = {"finefcace": "FineFACE", "baseline": "the baseline"}


def test_a_clear_gain_is_worded_as_better_with_its_size_and_interval():
    row = difference("overall_accuracy", 7.66, 3.2, 12.1, higher_is_better=True)
    assert findings.effect_verdict(row) == "better"
    text = findings.effect_sentence(row, NAMES)
    assert text.startswith("Overall accuracy (higher is better): FineFACE is higher than the baseline by 7.7 points")
    assert "+3.2 to +12.1 points" in text and "3 of 3 seeds favour FineFACE" in text and "**better** for FineFACE" in text


def test_a_higher_bias_is_worded_as_worse():
    row = difference("degree_of_bias", 4.6, 1.04, 8.2, higher_is_better=False, favour=0)
    assert findings.effect_verdict(row) == "worse"
    text = findings.effect_sentence(row, NAMES)
    assert "FineFACE is higher than the baseline by 4.6 points" in text and "**worse** for FineFACE" in text
    lower = difference("max_min_ratio", -0.2, -0.31, -0.09, higher_is_better=False)
    assert findings.effect_verdict(lower) == "better"
    assert "FineFACE is lower than the baseline by 0.200" in findings.effect_sentence(lower, NAMES)


def test_an_interval_holding_zero_is_no_clear_difference_whichever_sign_the_mean_has():
    for mean in (1.5, -1.5):
        row = difference("min_group_accuracy", mean, -4.0, 5.0, higher_is_better=True, favour=2)
        assert findings.effect_verdict(row) == "unclear"
        text = findings.effect_sentence(row, NAMES)
        assert "no clear difference" in text and "better" not in text.replace("higher is better", "")
        assert f"FineFACE − the baseline = {mean:+.1f}".replace("-", "−") in text


def test_one_seed_gives_no_interval_and_no_conclusion():
    row = difference("overall_accuracy", 7.7, float("nan"), float("nan"), higher_is_better=True, n=1, favour=1)
    assert findings.effect_verdict(row) == "unclear"
    assert "no interval, so no conclusion" in findings.effect_sentence(row, NAMES)


@pytest.mark.parametrize(("accuracy", "bias", "expected"), [
    ((5, 2, 8), (-3, -5, -1), "more accurate and fairer"),
    ((5, 2, 8), (3, 1, 5), "more accurate but less fair"),
    ((5, 2, 8), (1, -2, 4), "more accurate, with no clear change in fairness"),
    ((-5, -8, -2), (-3, -5, -1), "fairer but less accurate"),
    ((1, -2, 4), (1, -2, 4), "no clear difference in accuracy or fairness"),
    ((1, -2, 4), (3, 1, 5), "less fair, with no clear change in accuracy"),
])
def test_the_claim_verdict_combines_accuracy_and_fairness(accuracy, bias, expected):
    rows = pd.DataFrame([difference("overall_accuracy", *accuracy, higher_is_better=True),
                         difference("degree_of_bias", *bias, higher_is_better=False)])
    assert findings.claim_verdict(rows).startswith(expected)


def test_fairness_measures_that_disagree_are_not_called_fairer():
    rows = pd.DataFrame([difference("overall_accuracy", 5, 2, 8, higher_is_better=True),
                         difference("min_group_accuracy", 4, 1, 7, higher_is_better=True),
                         difference("degree_of_bias", 3, 1, 5, higher_is_better=False)])
    assert findings.claim_verdict(rows).startswith("more accurate, with no clear change in fairness")
