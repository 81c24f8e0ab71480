"""finefcace.course.verdict: the three verdict sentences and the summary figure of book/results.md.

The sentences are checked on hand-made paired differences, one for each direction of each kind
of metric and for the cannot-tell case (an interval that holds zero); the committed
``experiments/results/verdict.md`` and ``verdict.svg`` are checked to be what
``experiments/verdict.py`` writes from the committed studies today."""

from __future__ import annotations

from pathlib import Path

import pytest

from finefcace.course import verdict
from finefcace.course.verdict import MITIGATION, REAL, SYNTHETIC, Comparison

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results"


def row(metric: str, mean: float, low: float, high: float, n: int = 3) -> dict:
    """A hand-made row of StudyResults.differences (FineFACE minus the other arm)."""
    return {"metric": metric, "mean": mean, "ci_low": low, "ci_high": high, "n_seeds": n,
            "higher_is_better": metric in ("overall_accuracy", "accuracy")}


def pair(setting, label, against, accuracy, fairness) -> Comparison:
    return Comparison(setting, label, against, accuracy, fairness)


def test_accuracy_clause_says_higher_lower_and_cannot_tell_with_sizes():
    clause = verdict.setting_clause([
        ("up", row("overall_accuracy", 4.0, 1.5, 6.5)),
        ("down", row("overall_accuracy", -3.0, -5.0, -1.0)),
        ("unsure", row("overall_accuracy", 2.0, -1.0, 5.0)),
    ], "accuracy")
    assert clause == ("higher for *up* (+4.0 points [+1.5, +6.5]), lower for *down* (−3.0 points [−5.0, −1.0]), "
                      "cannot tell for *unsure* (+2.0 points [−1.0, +5.0])")


def test_fairness_clause_reads_a_lower_gap_as_fairer():
    """DoB and DEO: lower is fairer, so a negative difference whose interval excludes zero is
    "fairer", a positive one "less fair", and one whose interval holds zero "cannot tell" —
    however large its mean."""
    clause = verdict.setting_clause([
        ("smaller gap", row("degree_of_bias", -2.0, -3.0, -1.0)),
        ("larger gap", row("deo", 5.0, 0.5, 9.5)),
        ("wide", row("degree_of_bias", -9.0, -20.0, 2.0)),
    ], "fairness")
    assert clause.startswith("fairer for *smaller gap* (DoB −2.0 points [−3.0, −1.0])")
    assert "less fair for *larger gap* (DEO +5.0 points [+0.5, +9.5])" in clause
    assert clause.endswith("cannot tell for *wide* (DoB −9.0 points [−20.0, +2.0])")


def test_an_interval_touching_zero_is_cannot_tell():
    assert verdict.setting_clause([("edge", row("accuracy", 1.0, 0.0, 2.0))], "accuracy").startswith("cannot tell")


def test_synthetic_sentence_covers_both_baselines_and_labels_the_data_synthetic():
    comparisons = [
        pair(SYNTHETIC, "gender", "baseline", row("overall_accuracy", 10.0, 7.0, 13.0), row("degree_of_bias", 1.0, -2.0, 4.0)),
        pair(SYNTHETIC, "gender", "equal updates", row("overall_accuracy", -3.0, -5.0, -1.0),
             row("degree_of_bias", 4.0, 1.0, 7.0)),
    ]
    sentence = verdict.synthetic_sentence(comparisons)
    assert "synthetic" in sentence and sentence.count(".") >= 1 and sentence.endswith(".")
    same, equal = sentence.split("optimizer updates")
    assert "higher for *gender* (+10.0 points [+7.0, +13.0])" in same
    assert "cannot tell for *gender* (DoB +1.0 points [−2.0, +4.0])" in same
    assert "lower for *gender* (−3.0 points [−5.0, −1.0])" in equal
    assert "less fair for *gender* (DoB +4.0 points [+1.0, +7.0])" in equal


def test_real_sentence_without_a_control_has_no_equal_updates_part():
    sentence = verdict.real_sentence([pair(REAL, "64 px", "baseline", row("overall_accuracy", -11.0, -20.0, -2.0),
                                           row("degree_of_bias", -3.0, -6.0, -0.5))])
    assert "UTKFace" in sentence and "optimizer updates" not in sentence
    assert "lower for *64 px* (−11.0 points" in sentence and "fairer for *64 px* (DoB −3.0 points" in sentence


def test_mitigation_sentence_counts_the_methods_and_words_each():
    comparisons = [
        pair(MITIGATION, "Group DRO", "method", row("overall_accuracy", 9.0, 2.0, 16.0), row("degree_of_bias", 3.0, 1.0, 5.0)),
        pair(MITIGATION, "Adversarial (GRL)", "method", row("overall_accuracy", 1.0, -9.0, 11.0),
             row("degree_of_bias", -2.0, -3.0, -1.0)),
    ]
    sentence = verdict.mitigation_sentence(comparisons)
    assert sentence.startswith("Against 2 mitigation methods that use the protected label")
    assert "higher for *Group DRO*" in sentence and "cannot tell for *Adversarial (GRL)*" in sentence
    assert "fairer for *Adversarial (GRL)*" in sentence and "less fair for *Group DRO*" in sentence
    assert verdict.mitigation_sentence([]).startswith("No committed study")


def test_alt_text_counts_what_the_figure_shows():
    comparisons = [
        pair(SYNTHETIC, "a", "baseline", row("accuracy", 2.0, 1.0, 3.0), row("deo", 2.0, 1.0, 3.0)),
        pair(REAL, "b", "baseline", row("overall_accuracy", -2.0, -3.0, -1.0), row("degree_of_bias", 0.0, -1.0, 1.0)),
    ]
    alt = verdict.figure_alt_text(comparisons)
    assert "Forest plot of 2 comparisons" in alt
    assert "Accuracy: 1 favour FineFACE, 1 favour the other arm and 0 cannot tell" in alt
    assert "Fairness: 0 favour FineFACE, 1 favour the other arm and 1 cannot tell" in alt


def test_the_comparisons_come_from_every_committed_setting():
    comparisons = verdict.comparison_rows(RESULTS)
    settings = {c.setting for c in comparisons}
    assert settings == set(verdict.SETTINGS)
    assert all(c.accuracy["metric"] in ("overall_accuracy", "accuracy") for c in comparisons)
    assert all(c.fairness["metric"] in ("degree_of_bias", "deo") for c in comparisons)
    # the mitigation comparisons are exactly the arms that trained with protected labels
    mitigation = [c.label for c in comparisons if c.setting == MITIGATION]
    assert len(mitigation) == 5 and "Group DRO" in mitigation


@pytest.mark.slow
def test_the_committed_verdict_is_what_the_script_writes(tmp_path):
    """experiments/results/verdict.md and verdict.svg are regenerated from the committed studies
    byte for byte (rerun `python experiments/verdict.py` after a study changes)."""
    from experiments import verdict as script

    markdown, svg = script.write(RESULTS, tmp_path)
    assert markdown.read_text() == (RESULTS / "verdict.md").read_text(), "verdict.md is stale: rerun the script"
    assert svg.read_bytes() == (RESULTS / "verdict.svg").read_bytes(), "verdict.svg is stale: rerun the script"
    drawn = svg.read_text()
    for comparison in verdict.comparison_rows(RESULTS):  # text kept as text (svg.fonttype none)
        assert verdict.row_label(comparison).replace("&", "&amp;") in drawn
