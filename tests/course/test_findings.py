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
    ((1, -2, 4), (1, -2, 4), "not clearly different in accuracy or fairness"),
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


def hand_made_study(values: dict[str, dict[str, list[float]]], descriptions: dict[str, str], *,
                    seconds: dict[str, float] | None = None, updates: dict[str, float] | None = None):
    """A StudyResults with chosen summary values per arm (metric -> one value per seed)."""
    from finefcace.training.study import StudyResults

    reports, runs = [], []
    for arm, by_metric in values.items():
        n_seeds = len(next(iter(by_metric.values())))
        for seed in range(n_seeds):
            for metric, per_seed in by_metric.items():
                reports.append({"arm": arm, "seed": seed, "test_set": "test", "metric": metric, "group": "all",
                                "n": 640, "value": per_seed[seed], "ci_low": float("nan"), "ci_high": float("nan"),
                                "unit": "ratio" if metric == "max_min_ratio" else "%"})
            runs.append({"arm": arm, "seed": seed, "train_seconds": (seconds or {}).get(arm, 60.0),
                         "optimizer_updates": (updates or {}).get(arm, 200.0), "epochs_run": 4})
    meta = {"task": "gender", "target": "gender", "seeds": list(range(n_seeds)),
            "arms": [{"name": a, "changes": {}, "description": d} for a, d in descriptions.items()],
            "data": "SYNTHETIC faces (hand-made numbers)", "model": "resnet18 (from scratch), 64 px",
            "hardware": "no hardware", "date": "2026-11-30T00:00:00", "wall_seconds": 0.0, "command": "none"}
    return StudyResults(name="hand-made", reports=pd.DataFrame(reports), runs=pd.DataFrame(runs), meta=meta)


ARMS = {"finefcace": "FineFACE", "baseline": "Baseline", "baseline-equal-updates": "Baseline ×5 epochs"}


def test_what_we_found_when_finefcace_is_more_accurate_but_less_fair_and_more_training_explains_it():
    study = hand_made_study({
        "finefcace": {"overall_accuracy": [88, 87, 89], "degree_of_bias": [15, 16, 14]},
        "baseline": {"overall_accuracy": [80, 79, 81.5], "degree_of_bias": [11, 11.5, 10]},
        "baseline-equal-updates": {"overall_accuracy": [88.5, 86.5, 89.5], "degree_of_bias": [12, 13, 10.5]},
    }, ARMS, seconds={"finefcace": 210.0, "baseline": 40.0, "baseline-equal-updates": 200.0},
        updates={"finefcace": 1000.0, "baseline": 200.0, "baseline-equal-updates": 1000.0})
    text = findings.what_we_found(study, arm="finefcace", reference="baseline", control="baseline-equal-updates")
    assert "Overall accuracy (higher is better): FineFACE is higher than Baseline by 7.8 points" in text
    assert "Degree of bias, DoB (lower is better): FineFACE is higher than Baseline by 4.2 points" in text
    assert "In one line: FineFACE is more accurate but less fair" in text
    # against equal updates the accuracy gain is gone: no clear difference
    assert "Overall accuracy (higher is better): no clear difference — FineFACE − Baseline ×5 epochs = −0.2" in text
    assert "1,000 optimizer updates per run against 1,000 for FineFACE (100 %)" in text
    assert "3.3 min of training per run against 3.5 min (95 % of its wall time)" in text
    assert "What more training alone does (Baseline ×5 epochs against Baseline)" in text
    assert ("In one line: against a baseline given its optimizer updates, FineFACE is less fair, with no clear "
            "change in accuracy") in text
    assert "can neither confirm nor refute it there" in text


def test_what_we_found_when_finefcace_is_better_on_everything():
    study = hand_made_study({
        "finefcace": {"overall_accuracy": [90, 91, 92], "min_group_accuracy": [85, 86, 88]},
        "baseline": {"overall_accuracy": [85, 85.5, 86], "min_group_accuracy": [70, 72, 71]},
    }, {"finefcace": "FineFACE", "baseline": "Baseline"})
    text = findings.what_we_found(study, arm="finefcace", reference="baseline")
    assert "In one line: FineFACE is more accurate and fairer: what the paper claims, on this data." in text
    assert "Worst group's accuracy (higher is better): FineFACE is higher than Baseline by 15.3 points" in text
    assert "equal-compute" not in text


def test_ablation_findings_start_with_whether_the_reference_learned():
    degenerate = hand_made_study({
        "reference": {"overall_accuracy": [66, 64, 68], "min_group_accuracy": [15, 30, 22]},
        "pooling-gap": {"overall_accuracy": [60, 70, 65], "min_group_accuracy": [10, 40, 20]},
    }, {"reference": "reference", "pooling-gap": "pooling gap"})
    text = findings.ablation_findings(degenerate, reference="reference")
    assert "reaches 66.0 ± 2.0 % overall and 22.3 ± 7.5 % on its worst group over 3 seeds (chance: 50 %)" in text
    assert "Read the comparisons below as a demonstration of the method, not as findings." in text
    assert "far below chance (22.3 %" in text and "close to chance" not in text  # 22 % on two classes: systematic
    assert "of 2 comparisons, 0 are clearly better than the reference, 0 clearly worse and 2 show no clear difference" in text
    learned = hand_made_study({
        "reference": {"overall_accuracy": [90, 91, 92], "min_group_accuracy": [84, 86, 85]},
        "pooling-gap": {"overall_accuracy": [85, 86, 86.5], "min_group_accuracy": [80, 81, 80]},
    }, {"reference": "reference", "pooling-gap": "pooling gap"})
    text = findings.ablation_findings(learned, reference="reference")
    assert "Every group is well above chance" in text and "2 clearly worse" in text


def test_a_higher_best_group_is_not_counted_as_fairer():
    rows = pd.DataFrame([difference("accuracy", 2, 1, 3, higher_is_better=True),
                         difference("max_group_accuracy", 4, 2, 6, higher_is_better=True),
                         difference("deodds", 1, -1, 3, higher_is_better=False)])
    assert findings.claim_verdict(rows).startswith("more accurate, with no clear change in fairness")


def test_worst_group_standing_tells_below_chance_from_near_chance():
    assert findings.worst_group_standing(18.0) == "below"        # two classes: worse than a coin, systematically
    assert findings.worst_group_standing(30.0, 41.0) == "below"
    assert findings.worst_group_standing(30.0, 50.0) == "near"   # its interval reaches chance
    assert findings.worst_group_standing(55.0) == "near"
    assert findings.worst_group_standing(80.0) == "above"


# ------------------------------------------------------------------ does the study reproduce?
def _live_run(seed: int):
    """A stand-in for a trained run: the note reads only its seed (check_runs is replaced below)."""
    import types

    return types.SimpleNamespace(config=types.SimpleNamespace(seed=seed))


def test_the_reproduction_note_compares_the_chapters_runs_with_the_studys_seed(monkeypatch):
    from finefcace.course import reproduction

    from finefcace.training.study import StudyResults

    study = StudyResults(name="quick_gender", reports=pd.DataFrame(), runs=pd.DataFrame(),
                         meta={"arms": [{"name": "finefcace", "description": "FineFACE"},
                                        {"name": "baseline", "description": "Baseline"}], "seeds": [0, 1, 2]})
    seen = {}

    def fake_check_runs(results, live):
        seen.update(live)
        return [reproduction.Reproduction(arm=arm, seed=0, verdict=reproduction.IDENTICAL, table=pd.DataFrame(),
                                          largest_difference=0.0, largest_metric="accuracy", study_hardware="CPU", here_hardware="CPU",
                                          study_code="abc") for arm in live]

    monkeypatch.setattr(reproduction, "check_runs", fake_check_runs)
    note = findings.reproduction_note(study, {"FineFACE": _live_run(0), "Baseline": _live_run(0)})
    assert set(seen) == {findings.FINEFACE_ARM, findings.BASELINE_ARM}  # the chapter's names mapped to arms
    assert note.startswith("**Reproduced.**")
    missing = findings.reproduction_note(study, {"FineFACE": _live_run(7)})
    assert "cannot check" in missing and "seed 7" in missing
