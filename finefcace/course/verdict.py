"""The verdict across the committed studies: three sentences and one figure, from the numbers.

The paper's claim (abstract, §5, Tables 2 and 5) is that FineFACE is more accurate *and* fairer
than a standard classifier, and ahead of published mitigation methods. The committed studies of
``experiments/results/`` test that claim in three settings — synthetic faces (the quick
profile's seeds studies), real photographs (UTKFace, the real-photograph and controls studies)
and the mitigation methods of chapter 7 (synthetic faces). This module reduces each setting
to one sentence and all of them to one forest plot. Every direction and size comes from the
studies' paired differences over seeds
(:meth:`~finefcace.training.study.StudyResults.differences`); a difference whose 95 % interval
holds zero is reported as "cannot tell" (:func:`finefcace.course.findings.effect_verdict`).

Book: ``book/results.md`` ("The verdict"), through ``experiments/verdict.py``, which writes
``experiments/results/verdict.md`` and ``verdict.svg``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finefcace.course.findings import BETTER, UNCLEAR, WORSE, effect_verdict

__all__ = [
    "Comparison",
    "SETTINGS",
    "comparison_rows",
    "figure_alt_text",
    "mitigation_sentence",
    "real_sentence",
    "setting_clause",
    "summary_figure",
    "synthetic_sentence",
    "verdict_markdown",
]

#: The accuracy and the fairness metric a sentence reports, per task: overall accuracy and the
#: degree of bias for gender (paper Table 2), accuracy and DEO for an attribute (Table 6).
ACCURACY_METRIC = {"gender": "overall_accuracy", "attribute": "accuracy"}
FAIRNESS_METRIC = {"gender": "degree_of_bias", "attribute": "deo"}
METRIC_NAMES = {"overall_accuracy": "overall accuracy", "accuracy": "accuracy", "degree_of_bias": "DoB",
                "deo": "DEO"}
#: The words for each verdict of one kind of metric.
WORDS = {
    "accuracy": {BETTER: "higher", WORSE: "lower", UNCLEAR: "cannot tell"},
    "fairness": {BETTER: "fairer", WORSE: "less fair", UNCLEAR: "cannot tell"},
}
SYNTHETIC, REAL, MITIGATION = "synthetic faces", "real photographs", "mitigation methods (synthetic faces)"
SETTINGS = (SYNTHETIC, REAL, MITIGATION)


@dataclass(frozen=True)
class Comparison:
    """One paired comparison of a committed study: FineFACE (``arm``) against ``reference``,
    in ``setting``, on one accuracy and one fairness metric, each a row of
    ``StudyResults.differences`` (mean, ci_low, ci_high, n_seeds, higher_is_better, metric)."""

    setting: str
    label: str
    against: str
    accuracy: Mapping[str, Any]
    fairness: Mapping[str, Any]


def _number(value: float, decimals: int = 1) -> str:
    return f"{value:+.{decimals}f}".replace("-", "−")


def _size(row: Mapping[str, Any], with_metric: bool) -> str:
    """``DoB −1.8 points [−5.7, +2.0]``: FineFACE minus the other arm, its 95 % interval."""
    name = METRIC_NAMES.get(row["metric"], row["metric"]) + " " if with_metric else ""
    return (f"{name}{_number(float(row['mean']))} points [{_number(float(row['ci_low']))}, "
            f"{_number(float(row['ci_high']))}]")


def setting_clause(items: Sequence[tuple[str, Mapping[str, Any]]], kind: str) -> str:
    """One metric over several comparisons, grouped by verdict, e.g. ``higher for gender
    (+10.4 points [+7.3, +13.5]), cannot tell for blond hair (−0.4 points [−9.5, +8.8])``.
    ``items``: (label, a row of ``StudyResults.differences``); ``kind``: ``"accuracy"`` or
    ``"fairness"`` (whose rows name their metric, DoB or DEO). The verdict of each row is
    :func:`~finefcace.course.findings.effect_verdict`'s: "cannot tell" when its interval holds
    zero. Verdicts come in the order better, worse, cannot tell."""
    by_verdict: dict[str, list[str]] = {BETTER: [], WORSE: [], UNCLEAR: []}
    for label, row in items:
        by_verdict[effect_verdict(row)].append(f"*{label}* ({_size(row, kind == 'fairness')})")
    parts = []
    for verdict in (BETTER, WORSE, UNCLEAR):
        listed = by_verdict[verdict]
        if listed:
            joined = listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + " and " + listed[-1]
            parts.append(f"{WORDS[kind][verdict]} for {joined}")
    return ", ".join(parts)


def _seeds(comparisons: Iterable[Comparison]) -> str:
    counts = sorted({int(c.accuracy["n_seeds"]) for c in comparisons})
    return (f"{counts[0]} seeds" if len(counts) == 1 else f"{counts[0]} to {counts[-1]} seeds") if counts else "no seeds"


def _two_clauses(comparisons: Sequence[Comparison]) -> str:
    return ("accuracy: " + setting_clause([(c.label, c.accuracy) for c in comparisons], "accuracy")
            + "; fairness: " + setting_clause([(c.label, c.fairness) for c in comparisons], "fairness"))


def _against(comparisons: Sequence[Comparison], against: str) -> list[Comparison]:
    return [c for c in comparisons if c.against == against]


INTERVALS = "FineFACE minus the other arm, mean over seeds [95 % interval]"


def synthetic_sentence(comparisons: Sequence[Comparison]) -> str:
    """The verdict on the synthetic faces: FineFACE against the baseline trained for the same
    epochs (``against="baseline"``) and against the baseline given FineFACE's optimizer
    updates (``against="equal updates"``), per task. Accuracy: overall accuracy (gender) or
    accuracy (attributes); fairness: DoB (gender, Table 2) or DEO (attributes, Table 6)."""
    same_epochs, equal_updates = _against(comparisons, "baseline"), _against(comparisons, "equal updates")
    if not same_epochs:
        return "On the synthetic faces, no committed study compares FineFACE with the baseline."
    text = (f"On the synthetic faces (rendered, not photographs of people; {_seeds(same_epochs)} per task; "
            f"{INTERVALS}), FineFACE against a baseline trained for the same epochs — {_two_clauses(same_epochs)}")
    if equal_updates:
        text += f" — and against a baseline given the same number of optimizer updates — {_two_clauses(equal_updates)}"
    return text + "."


def real_sentence(comparisons: Sequence[Comparison]) -> str:
    """The verdict on real photographs (UTKFace test split, gender, race × gender groups):
    FineFACE against the baseline at each input size studied, and against the baseline given
    its optimizer updates where the controls study trained one."""
    baseline, equal_updates = _against(comparisons, "baseline"), _against(comparisons, "equal updates")
    if not baseline:
        return "On real photographs, no committed study compares FineFACE with the baseline."
    text = (f"On real UTKFace photographs (gender, race × gender groups; {_seeds(baseline)} per input size; "
            f"{INTERVALS}), "
            f"FineFACE against the baseline — {_two_clauses(baseline)}")
    if equal_updates:
        text += f" — and against a baseline given its optimizer updates — {_two_clauses(equal_updates)}"
    return text + "."


def mitigation_sentence(comparisons: Sequence[Comparison]) -> str:
    """The verdict of chapter 7's study (synthetic faces): FineFACE, which uses no protected
    label, against each mitigation method that uses them, trained under identical conditions
    (the paper's Table 5 claim: FineFACE ahead of every such method)."""
    if not comparisons:
        return "No committed study compares FineFACE with the mitigation methods."
    return (f"Against {len(comparisons)} mitigation method{'s' if len(comparisons) != 1 else ''} that use the "
            f"protected label in training, on the synthetic faces ({_seeds(comparisons)}; {INTERVALS}), "
            f"FineFACE, which uses none — {_two_clauses(comparisons)}.")


# ---------------------------------------------------------------------------------- from studies


def _pair(study: Any, arm: str, reference: str, setting: str, label: str, against: str,
          test_set: str = "test") -> Comparison:
    accuracy, fairness = ACCURACY_METRIC[study.task], FAIRNESS_METRIC[study.task]
    rows = {row["metric"]: row for row in
            study.differences(arm, reference, test_set=test_set, metrics_=[accuracy, fairness]).to_dict("records")}
    return Comparison(setting, label, against, rows[accuracy], rows[fairness])


def _task_label(study: Any) -> str:
    return "gender" if study.task == "gender" else study.meta["target"].replace("_", " ").lower()


def _short(description: str) -> str:
    """A method's name without its citation: ``Group DRO (Sagawa et al., ICLR 2020)`` → ``Group DRO``."""
    return re.sub(r"\s*\([^()]*\b(?:19|20)\d\d\)$", "", description)


def comparison_rows(results_dir: str | Path) -> list[Comparison]:
    """Every comparison the verdict reports, from the committed studies of ``results_dir``:
    ``quick_*.json`` (not the ablations) for the synthetic faces, ``real_photographs.json``
    and ``controls.json`` for real photographs, ``mitigation_methods.json`` for chapter 7.
    A study that is not there is left out (its sentence says so when none is left)."""
    from finefcace.course.findings import BASELINE_ARM, CONTROL_ARM, FINEFACE_ARM
    from finefcace.training.study import StudyResults

    root = Path(results_dir)
    out: list[Comparison] = []
    for path in sorted(root.glob("quick_*.json")):
        study = StudyResults.from_json(path)
        if FINEFACE_ARM not in study.arms or BASELINE_ARM not in study.arms:
            continue  # the ablation study compares variants with a reference, not with the baseline
        label = _task_label(study)
        out.append(_pair(study, FINEFACE_ARM, BASELINE_ARM, SYNTHETIC, label, "baseline"))
        if CONTROL_ARM in study.arms:
            out.append(_pair(study, FINEFACE_ARM, CONTROL_ARM, SYNTHETIC, label, "equal updates"))
    for name in ("real_photographs", "controls"):
        if not (root / f"{name}.json").is_file():
            continue
        study = StudyResults.from_json(root / f"{name}.json")
        for arm in study.arms:
            if not arm.startswith("finefcace-"):
                continue
            size = arm.removeprefix("finefcace-")
            if f"baseline-{size}" in study.arms:
                out.append(_pair(study, arm, f"baseline-{size}", REAL, f"{size.replace('px', ' px')}", "baseline"))
            if f"baseline-updates-{size}" in study.arms:
                out.append(_pair(study, arm, f"baseline-updates-{size}", REAL, f"{size.replace('px', ' px')}",
                                 "equal updates"))
    if (root / "mitigation_methods.json").is_file():
        study = StudyResults.from_json(root / "mitigation_methods.json")
        protected = study.runs.groupby("arm")["uses_protected_labels"].any() if "uses_protected_labels" in study.runs else {}
        described = {arm["name"]: arm.get("description") or arm["name"] for arm in study.meta["arms"]}
        for arm in study.arms:
            if arm not in (FINEFACE_ARM, BASELINE_ARM) and bool(protected.get(arm, False)):
                out.append(_pair(study, FINEFACE_ARM, arm, MITIGATION, _short(described[arm]), "method"))
    return out


# ---------------------------------------------------------------------------------- the figure


def _oriented(row: Mapping[str, Any]) -> tuple[float, float, float]:
    """Mean and interval turned so that positive favours FineFACE (lower DoB/DEO is better)."""
    sign = 1.0 if row["higher_is_better"] else -1.0
    ends = sorted((sign * float(row["ci_low"]), sign * float(row["ci_high"])))
    return sign * float(row["mean"]), ends[0], ends[1]


def row_label(comparison: Comparison) -> str:
    """The figure's label of one comparison: setting, what FineFACE is compared with."""
    against = {"baseline": "baseline", "equal updates": "baseline, equal updates"}.get(comparison.against,
                                                                                      comparison.against)
    setting = {SYNTHETIC: "synthetic", REAL: "real", MITIGATION: "synthetic"}[comparison.setting]
    return f"{setting} · {comparison.label} · vs {against}" if comparison.setting != MITIGATION \
        else f"{setting} · vs {comparison.label}"


def summary_figure(comparisons: Sequence[Comparison]) -> Any:
    """A forest plot of every comparison: one row each, two panels (accuracy; fairness: DoB,
    or DEO for an attribute), the mean paired difference over seeds with its 95 % interval,
    oriented so that right of zero favours FineFACE. Filled markers: the interval excludes
    zero; open: cannot tell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from finefcace.plots import FIGURE_WIDTH

    labels = [row_label(c) for c in comparisons]
    height = 1.0 + 0.22 * len(comparisons)
    # The page's column width, the two panels stacked: text drawn at 8-9 pt reads at that size.
    fig, axes = plt.subplots(2, 1, figsize=(FIGURE_WIDTH, 2 * height + 0.6), sharey=True)
    colours = {SYNTHETIC: "#1f77b4", REAL: "#d62728", MITIGATION: "#2ca02c"}
    for ax, kind, title in ((axes[0], "accuracy", "Accuracy (points): FineFACE − other"),
                            (axes[1], "fairness", "Fairness, DoB or DEO (points): other − FineFACE")):
        for y, comparison in enumerate(comparisons):
            row = comparison.accuracy if kind == "accuracy" else comparison.fairness
            mean, low, high = _oriented(row)
            clear = effect_verdict(row) != UNCLEAR
            colour = colours[comparison.setting]
            ax.plot([low, high], [y, y], color=colour, lw=1.6)
            ax.plot([mean], [y], "o", color=colour, markerfacecolor=colour if clear else "white", markersize=6)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("← favours the other arm · favours FineFACE →", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.set_yticks(range(len(comparisons)), labels, fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
    axes[0].invert_yaxis()
    fig.suptitle("FineFACE against each comparison arm: mean paired difference over seeds, 95 % interval\n"
                 "(filled: the interval excludes zero; open: cannot tell)", fontsize=9)
    fig.tight_layout()
    return fig


def _tally(comparisons: Sequence[Comparison], kind: str) -> str:
    verdicts = [effect_verdict(c.accuracy if kind == "accuracy" else c.fairness) for c in comparisons]
    return (f"{verdicts.count(BETTER)} favour FineFACE, {verdicts.count(WORSE)} favour the other arm and "
            f"{verdicts.count(UNCLEAR)} cannot tell")


def figure_alt_text(comparisons: Sequence[Comparison]) -> str:
    """What the figure shows, in words, with its counts (for the image's alt text)."""
    return (f"Forest plot of {len(comparisons)} comparisons, one row each (synthetic faces, real photographs, "
            f"mitigation methods), two panels: accuracy difference and fairness difference, oriented so that "
            f"right of zero favours FineFACE, each a mean over seeds with its 95 % interval. Accuracy: "
            f"{_tally(comparisons, 'accuracy')}. Fairness: {_tally(comparisons, 'fairness')}.")


def verdict_markdown(comparisons: Sequence[Comparison], figure_name: str = "verdict.svg",
                     command: str = "python experiments/verdict.py") -> str:
    """The verdict section's Markdown: the three sentences (synthetic faces, real photographs,
    mitigation methods) as a list, then the figure with its generated alt text."""
    by_setting = {s: [c for c in comparisons if c.setting == s] for s in SETTINGS}
    return "\n".join([
        f"<!-- Generated by `{command}` from experiments/results/*.json; do not edit by hand. -->",
        "",
        f"- **Synthetic faces.** {synthetic_sentence(by_setting[SYNTHETIC])}",
        f"- **Real photographs.** {real_sentence(by_setting[REAL])}",
        f"- **The mitigation methods.** {mitigation_sentence(by_setting[MITIGATION])}",
        "",
        f"![{figure_alt_text(comparisons)}]({figure_name})",
        "",
        f"*Every comparison of the three sentences, as a forest plot (blue: synthetic faces against the baseline; "
        f"red: real photographs; green: the mitigation methods, synthetic faces). Regenerate: `{command}`.*",
        "",
    ])
