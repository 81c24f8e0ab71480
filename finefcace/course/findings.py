"""What we found: a study's results as plain sentences, generated from the numbers.

The paper's claim (abstract, §5.1, Table 2) is that FineFACE is *Pareto efficient*: more
accurate **and** fairer than a standard classifier — higher overall accuracy, a better worst
group, a smaller spread between groups (Max/Min, DoB; DEO and DEOdds for the attributes).
This module words what a study of :mod:`finefcace.training.study` measured against that
claim — the direction and size of each effect with its interval, whichever way it falls, "no
clear difference" when the interval holds zero — plus the confounds and what the result does
and does not say. Nothing here is typed by hand: every number comes from the study's paired
differences (:meth:`~finefcace.training.study.StudyResults.differences`).

Introduced in ``notebooks/05_evaluation.ipynb`` ("What we found") and used by
``notebooks/06_ablations.ipynb`` and ``book/results.md`` (through
``experiments/seeds.py``, which writes the same text beside its table).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "ABLATION_REFERENCE",
    "BASELINE_ARM",
    "CONTROL_ARM",
    "FINEFACE_ARM",
    "METRIC_WORDS",
    "RESULTS_DIR",
    "ablation_findings",
    "claim_verdict",
    "committed_study",
    "effect_sentence",
    "effect_verdict",
    "report",
    "reproduction_note",
    "study_report",
    "what_we_found",
]

#: The arms of a comparison study (``experiments/seeds.py``): FineFACE, the baseline, and the
#: baseline given FineFACE's optimizer updates; and the reference arm of an ablation study.
FINEFACE_ARM, BASELINE_ARM, CONTROL_ARM = "finefcace", "baseline", "baseline-equal-updates"
ABLATION_REFERENCE = "reference"
#: Where the committed studies live, relative to the project root.
RESULTS_DIR = "experiments/results"
#: The script that makes them (``--profile`` names the profile file; the quick one by default).
STUDY_SCRIPT = "experiments/seeds.py"

#: How each summary metric is named in a sentence, its unit, and its decimals.
METRIC_WORDS: dict[str, tuple[str, str, int]] = {
    "overall_accuracy": ("overall accuracy", "points", 1),
    "accuracy": ("accuracy", "points", 1),
    "min_group_accuracy": ("worst group's accuracy", "points", 1),
    "max_group_accuracy": ("best group's accuracy", "points", 1),
    "max_min_ratio": ("Max/Min ratio", "", 3),
    "degree_of_bias": ("degree of bias, DoB", "points", 1),
    "tpr": ("true-positive rate", "points", 1),
    "deo": ("DEO", "points", 1),
    "deodds": ("DEOdds", "points", 1),
    "min_group_tpr": ("worst group's true-positive rate", "points", 1),
    "max_group_tpr": ("best group's true-positive rate", "points", 1),
}
#: The metric that stands for "accuracy" in the paper's claim, per task, and those that stand
#: for fairness. The best group's accuracy is neither — a model can raise it while the worst
#: group falls — so the sentences leave it out (book/results.md, "levelling down").
ACCURACY_METRICS = ("overall_accuracy", "accuracy")
FAIRNESS_METRICS = ("min_group_accuracy", "max_min_ratio", "degree_of_bias", "min_group_tpr", "deo", "deodds")
BETTER, WORSE, UNCLEAR = "better", "worse", "unclear"
#: Chance accuracy of the paper's tasks, all binary (gender; each CelebA attribute), in percent.
CHANCE = 50.0
#: How far from chance (points) a worst group still counts as "near chance".
NEAR_CHANCE = 15.0


def worst_group_standing(worst: float, spread_high: float | None = None) -> str:
    """Where a worst-group accuracy stands against chance on a two-class task: ``"below"`` (the
    group's images get the wrong class more often than a coin would give it — a systematic error,
    e.g. a model that says one class to everyone, not an unlearned guess), ``"near"`` (within
    :data:`NEAR_CHANCE` points, the upper end of its interval or spread included) or ``"above"``.
    ``spread_high``: the upper end of the value's interval (or mean + sd) when known."""
    high = worst if spread_high is None or spread_high != spread_high else spread_high
    if high < CHANCE - NEAR_CHANCE / 3:
        return "below"
    return "near" if high < CHANCE + NEAR_CHANCE else "above"


def worst_group_phrase(worst: float, spread_high: float | None = None) -> str:
    """The standing of :func:`worst_group_standing` in words, for the generated sentences."""
    return {"below": f"far below chance ({worst:.1f} % on a two-class task, where a coin gets {CHANCE:.0f} %): the "
                     f"model gives that group's images the wrong class systematically — a shortcut that fails "
                     f"them, not a model that has learned nothing",
            "near": "near chance: the model has barely learned",
            "above": "clearly above chance"}[worst_group_standing(worst, spread_high)]


def _number(value: float, decimals: int, sign: bool = False) -> str:
    text = f"{value:+.{decimals}f}" if sign else f"{value:.{decimals}f}"
    return text.replace("-", "−")


def effect_verdict(row: Mapping[str, Any]) -> str:
    """``"better"``, ``"worse"`` or ``"unclear"`` for one paired difference (a row of
    ``StudyResults.differences``): better when the whole interval lies on the side where the
    metric is better (``higher_is_better``), worse when it lies on the other side, unclear
    when it holds zero or there is no interval (one seed)."""
    low, high = float(row["ci_low"]), float(row["ci_high"])
    if np.isnan(low) or np.isnan(high) or low <= 0 <= high:
        return UNCLEAR
    above = low > 0
    return BETTER if above == bool(row["higher_is_better"]) else WORSE


def effect_sentence(row: Mapping[str, Any], names: Mapping[str, str] | None = None) -> str:
    """One paired difference in words: which arm is higher or lower on the metric, by how
    much, with the interval and how many seeds agree — or "no clear difference" when the
    interval holds zero. ``names`` maps arm names to the words used for them."""
    names = dict(names or {})
    arm, reference = names.get(row["arm"], row["arm"]), names.get(row["reference"], row["reference"])
    words, unit, decimals = METRIC_WORDS.get(row["metric"], (row["metric"], "", 2))
    unit_text = f" {unit}" if unit else ""
    mean, n = float(row["mean"]), int(row["n_seeds"])
    favour = int(row.get("seeds_favouring_arm", 0))
    direction = "higher is better" if row["higher_is_better"] else "lower is better"
    verdict = effect_verdict(row)
    if np.isnan(float(row["ci_low"])):
        return (f"{words[0].upper() + words[1:]} ({direction}): {arm} − {reference} = "
                f"{_number(mean, decimals, sign=True)}{unit_text} from {n} seed{'s' if n != 1 else ''} — "
                "no interval, so no conclusion.")
    interval = (f"95 % interval of the paired difference {_number(float(row['ci_low']), decimals, sign=True)} to "
                f"{_number(float(row['ci_high']), decimals, sign=True)}{unit_text}; "
                f"{favour} of {n} seeds favour {arm}")
    if verdict == UNCLEAR:
        return (f"{words[0].upper() + words[1:]} ({direction}): no clear difference — {arm} − {reference} = "
                f"{_number(mean, decimals, sign=True)}{unit_text} on average over {n} seeds ({interval}).")
    side = "higher" if mean > 0 else "lower"
    return (f"{words[0].upper() + words[1:]} ({direction}): {arm} is {side} than {reference} by "
            f"{_number(abs(mean), decimals)}{unit_text} on average over {n} seeds ({interval}) — "
            f"**{verdict}** for {arm}.")


def claim_verdict(differences: "pd.DataFrame") -> str:
    """What one arm-versus-reference comparison says about the paper's claim (more accurate
    *and* fairer): the accuracy verdict and the fairness verdicts of
    :func:`effect_verdict`, combined in one sentence."""
    verdicts = {row["metric"]: effect_verdict(row) for row in differences.to_dict("records")}
    accuracy = next((verdicts[m] for m in ACCURACY_METRICS if m in verdicts), UNCLEAR)
    fairness = [v for m, v in verdicts.items() if m in FAIRNESS_METRICS]
    fairer = BETTER in fairness and WORSE not in fairness
    less_fair = WORSE in fairness and BETTER not in fairness
    if accuracy == BETTER and fairer:
        return "more accurate and fairer: what the paper claims, on this data"
    if accuracy == BETTER and less_fair:
        return "more accurate but less fair: the accuracy half of the paper's claim holds here, the fairness half does not"
    if accuracy == BETTER:
        return "more accurate, with no clear change in fairness (or fairness measures that disagree): only the accuracy half of the claim holds here"
    if accuracy == WORSE and fairer:
        return "fairer but less accurate: a trade-off, the opposite of the Pareto improvement the paper claims"
    if accuracy == WORSE:
        return "less accurate and not fairer: against the paper's claim on this data"
    if fairer:
        return "fairer, with no clear change in accuracy: the fairness half of the claim holds here"
    if less_fair:
        return "less fair, with no clear change in accuracy: against the fairness half of the paper's claim"
    return "not clearly different in accuracy or fairness: this data cannot tell the two apart"


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _compute_sentence(study: Any, arm: str, control: str, names: Mapping[str, str]) -> str:
    """How closely the control matched the arm's compute: optimizer updates and wall time."""
    parts = []
    if "optimizer_updates" in study.runs.columns:
        updates = study.runs.groupby("arm")["optimizer_updates"].mean()
        parts.append(f"{updates[control]:,.0f} optimizer updates per run against {updates[arm]:,.0f} for "
                     f"{names.get(arm, arm)} ({100 * updates[control] / updates[arm]:.0f} %)")
    seconds = study.runs.groupby("arm")["train_seconds"].mean()
    if control in seconds and arm in seconds and np.isfinite(seconds[control]) and np.isfinite(seconds[arm]):
        parts.append(f"{_duration(seconds[control])} of training per run against {_duration(seconds[arm])} "
                     f"({100 * seconds[control] / seconds[arm]:.0f} % of its wall time)")
    return "; ".join(parts)


def _names(study: Any, names: Mapping[str, str] | None) -> dict[str, str]:
    """Each arm's words: its description in the study (``Arm.description``) unless given."""
    described = {arm["name"]: arm.get("description") or arm["name"] for arm in study.meta["arms"]}
    return {**described, **dict(names or {})}


def _mean_sd(study: Any, arm: str, metric: str, test_set: str = "test") -> tuple[float, float]:
    summary = study.summary(test_set, metrics_=[metric])
    row = summary[summary["arm"] == arm].iloc[0]
    return float(row["mean"]), float(row["std"])


def what_we_found(study: Any, *, arm: str, reference: str, control: str | None = None,
                  names: Mapping[str, str] | None = None, metrics: Sequence[str] | None = None,
                  test_set: str = "test") -> str:
    """"What we found", as Markdown, from a :class:`~finefcace.training.study.StudyResults`:
    ``arm`` (FineFACE) against ``reference`` (the baseline), effect by effect with intervals;
    then, with ``control`` (a baseline given FineFACE's compute), whether the gap survives
    equal compute; the confounds; and what this does and does not say about the paper's claim.
    Book: ``notebooks/05_evaluation.ipynb``, ``book/results.md``."""
    from finefcace.training.study import SUMMARY_METRICS

    names = _names(study, names)
    metrics = list(metrics or [m for m in SUMMARY_METRICS[study.task] if m in (*ACCURACY_METRICS, *FAIRNESS_METRICS)])
    main = study.differences(arm, reference, test_set=test_set, metrics_=metrics)
    n_seeds = int(main["n_seeds"].max()) if len(main) else 0
    lines = [f"*{names[arm]} against {names[reference]}* ({study.data}; mean of the paired differences "
             f"over {n_seeds} seeds — the same seed gives both the same data order and initialisation):", ""]
    lines += [f"- {effect_sentence(row, names)}" for row in main.to_dict("records")]
    lines += ["", f"In one line: {names[arm]} is {claim_verdict(main)}."]
    if control is not None:
        more_training = study.differences(control, reference, test_set=test_set, metrics_=metrics)
        against_control = study.differences(arm, control, test_set=test_set, metrics_=metrics)
        compute = _compute_sentence(study, arm, control, names)
        lines += ["", f"*The equal-compute control*, {names[control]}" + (f": {compute}" if compute else "") + ".",
                  "", f"What more training alone does ({names[control]} against {names[reference]}):", ""]
        lines += [f"- {effect_sentence(row, names)}" for row in more_training.to_dict("records")]
        lines += ["", f"{names[arm]} against the control:", ""]
        lines += [f"- {effect_sentence(row, names)}" for row in against_control.to_dict("records")]
        lines += ["", f"In one line: against a baseline given its optimizer updates, {names[arm]} is "
                      f"{claim_verdict(against_control)}."]
    lines += ["", "*What this does not say.* "
                  f"These are {n_seeds} seeds of {study.meta['model']} on {study.data} "
                  f"({study.hardware}). The intervals are over training seeds on one fixed test split: they "
                  "leave out the sampling noise of the test set itself (chapter 5's bootstrap intervals show it) "
                  "and of the one rendering of the data. If the data are synthetic, their groups are rendering "
                  "parameters, not people. The paper's claim is about ResNet-50 at 448 px on FairFace and CelebA; "
                  "a study of a small network with a short training can neither confirm nor refute it there — it "
                  "says what the method does in this setting. The paper profiles in `configs/` run the same "
                  "notebooks, and `experiments/seeds.py --profile` the same study, on the real data."]
    return "\n".join(lines) + "\n"


def ablation_findings(study: Any, *, reference: str, names: Mapping[str, str] | None = None,
                      metrics: Sequence[str] = ("overall_accuracy", "min_group_accuracy", "degree_of_bias"),
                      test_set: str = "test") -> str:
    """"What we found" for chapter 6's trained ablations, as Markdown: first how good the
    reference itself is (a near-chance reference makes every comparison meaningless), then each
    variant against it, seed by seed, and a count of clear and unclear effects.
    Book: ``notebooks/06_ablations.ipynb``, ``book/results.md``."""
    names = _names(study, names)
    accuracy, accuracy_sd = _mean_sd(study, reference, "overall_accuracy", test_set)
    worst, worst_sd = _mean_sd(study, reference, "min_group_accuracy", test_set)
    n_seeds = int(study.summary(test_set, metrics_=["overall_accuracy"])["n_seeds"].max())
    usable = worst - worst_sd > CHANCE + 10
    lines = [f"*The reference* ({names[reference]}, {study.meta['model']}) reaches {accuracy:.1f} ± {accuracy_sd:.1f} % "
             f"overall and {worst:.1f} ± {worst_sd:.1f} % on its worst group over {n_seeds} seeds (chance: "
             f"{CHANCE:.0f} %). "
             + ("Every group is well above chance, so a variant's difference from it says something about the "
                "design choice — at this budget, on this data." if usable else
                f"Its worst group is {worst_group_phrase(worst, worst + worst_sd)}; at this budget a variant's "
                "difference from it says more about which run got further in a few updates than about the design "
                "choice. Read the comparisons below as a demonstration of the method, not as findings."), ""]
    verdicts = []
    for arm in study.arms:
        if arm == reference:
            continue
        differences = study.differences(arm, reference, test_set=test_set, metrics_=list(metrics))
        lines.append(f"*{names[arm]}* against the reference:")
        lines += [f"- {effect_sentence(row, names)}" for row in differences.to_dict("records")]
        lines.append("")
        verdicts += [effect_verdict(row) for row in differences.to_dict("records")]
    counts = {v: verdicts.count(v) for v in (BETTER, WORSE, UNCLEAR)}
    lines += [f"In all, of {len(verdicts)} comparisons, {counts[BETTER]} are clearly better than the reference, "
              f"{counts[WORSE]} clearly worse and {counts[UNCLEAR]} show no clear difference. The paper's ablation "
              "claims (supplementary B) are about ResNet-50 on FairFace; this study neither confirms nor refutes "
              "them there."]
    return "\n".join(lines) + "\n"


def report(study: Any) -> str:
    """A study's table (mean ± sd over seeds, :meth:`StudyResults.markdown`) and its "What we
    found" — :func:`ablation_findings` for an ablation study, :func:`what_we_found` (FineFACE
    against the baseline and the equal-compute control) otherwise — as Markdown.
    Book: chapters 5 and 6, ``book/results.md``."""
    if ABLATION_REFERENCE in study.arms:
        text = ablation_findings(study, reference=ABLATION_REFERENCE)
    else:
        control = CONTROL_ARM if CONTROL_ARM in study.arms else None
        text = what_we_found(study, arm=FINEFACE_ARM, reference=BASELINE_ARM, control=control)
    return f"{study.markdown()}\n**What we found.**\n\n{text}"


def _identity(config: Any, same_budget: bool) -> dict[str, Any]:
    identity = config.identity()
    if not same_budget:
        for key in ("epochs", "max_batches"):
            identity.pop(key, None)
    return identity


def committed_study(config: Any, study: str, *, same_budget: bool = True, root: str | None = None) -> Any:
    """The committed study ``<profile>_<study>.json`` of :data:`RESULTS_DIR` whose base
    configuration is ``config`` (the same identity as train-or-load uses; with ``same_budget``
    False, epochs and the batch cap may differ), or None when there is none — a profile whose
    studies were never run. Book: chapters 5 and 6."""
    from pathlib import Path

    from finefcace.course.parameters import project_root
    from finefcace.training.config import load_config
    from finefcace.training.study import StudyResults

    wanted = _identity(config, same_budget)
    for path in sorted((Path(root) if root else project_root() / RESULTS_DIR).glob(f"*_{study}.json")):
        results = StudyResults.from_json(path)
        if _identity(load_config(results.meta["base_config"]), same_budget) == wanted:
            return results
    return None


#: The chapters' names of a comparison's runs (chapter 5's ``runs``) and the study arms they are.
CHAPTER_ARMS = {"FineFACE": FINEFACE_ARM, "Baseline": BASELINE_ARM}


def reproduction_note(results: Any, live: Mapping[str, Any]) -> str:
    """Whether the committed study ``results`` reproduces: each live run of ``live`` (keyed by
    arm, or by the chapter's name of it, :data:`CHAPTER_ARMS`) beside the study's run of the same
    arm and seed (:mod:`finefcace.course.reproduction`). Runs whose seed the study lacks are named."""
    from finefcace.course import reproduction

    by_arm = {CHAPTER_ARMS.get(name, name): run for name, run in live.items()}
    seeds = set(results.meta.get("seeds", []))
    present = {arm: run for arm, run in by_arm.items() if arm in results.arms and run.config.seed in seeds}
    if not present:
        return (f"*This build's runs ({', '.join(sorted(by_arm))}, seed "
                f"{', '.join(sorted({str(r.config.seed) for r in by_arm.values()}))}) are not among the study's "
                f"arms and seeds ({', '.join(results.arms)}; seeds {sorted(seeds)}), so the build cannot check "
                "that the study reproduces.*")
    checks = reproduction.check_runs(results, present)
    return reproduction.reproduction_in_words(checks, study=results.name, regenerate=f"python {STUDY_SCRIPT}",
                                              names=_names(results, None))


def study_report(config: Any, study: str, *, same_budget: bool = True, live: Mapping[str, Any] | None = None) -> str:
    """:func:`report` of the committed study matching ``config``, or a sentence saying there is
    none and how to make it. With ``live`` (the chapter's runs of the study's arms, trained with
    ``config``), it opens with :func:`reproduction_note`: whether the study's numbers are this
    build's. Book: chapters 5 and 6."""
    results = committed_study(config, study, same_budget=same_budget)
    if results is None:
        return (f"*No committed `{study}` study matches this configuration.* Run `python {STUDY_SCRIPT}` "
                "with `--profile` set to the profile file this chapter ran with (GPU hours for a paper profile) "
                f"to make one; its results land in `{RESULTS_DIR}/`.")
    note = f"{reproduction_note(results, live)}\n\n" if live else ""
    return note + report(results)
