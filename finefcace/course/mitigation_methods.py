"""Chapter 07: FineFACE beside four bias-mitigation methods, trained under identical conditions.

Introduced in ``notebooks/07_mitigation_methods.ipynb``. The paper's comparison with published
mitigation methods (Tables 5 and 7, supplementary Fig. 4) copies every competitor's number from
another paper — other splits, backbones, budgets. Here every method is trained by the same
engine on the same data, backbone, optimiser, schedule, epochs and early stopping, and scored
with the same metrics (paper §4.3, bootstrap intervals), over several seeds: a study
(:mod:`finefcace.training.study`) with one arm per method (:data:`ARMS`), run by
``experiments/mitigation_methods.py``. This module holds the arms, the tables and figures the
chapter shows, and the comparison text, generated from the numbers.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finefcace.mitigation import MITIGATIONS, uses_protected_labels
from finefcace.training.study import BETTER, Arm, StudyResults

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

    from finefcace.course.reproduction import Reproduction

__all__ = ["ARMS", "RESULTS", "REGENERATE", "COST_RESULTS", "PAPER_COUNTERPARTS", "methods_table", "profile_note",
           "load_results", "conditions_table",
           "summary_table", "differences_table", "tradeoff_figure", "paper_rows", "paper_figure", "comparison_text",
           "results_markdown", "cost_table", "live_check", "live_check_in_words"]

#: The study's results, committed (regenerate with :data:`REGENERATE`).
RESULTS = "experiments/results/mitigation_methods.json"
#: The command that (re)makes :data:`RESULTS` and its Markdown table.
REGENERATE = "python experiments/mitigation_methods.py"


def _arm(method: str, description: str, **options: Any) -> Arm:
    changes: dict[str, Any] = {"method": method}
    if options:
        changes["method_options"] = options
    return Arm(method if not options else f"{method}-{'-'.join(map(str, options.values()))}", changes, description)


#: One arm per method: the baseline and FineFACE (no protected labels), then the four
#: mitigation methods of :mod:`finefcace.mitigation` (protected labels in training) — group
#: balancing both ways, its loss reweighting being the main one.
ARMS: tuple[Arm, ...] = (
    _arm("baseline", "Baseline"),
    _arm("finefcace", "FineFACE"),
    _arm("group_balanced", f"{MITIGATIONS['group_balanced'].title}, reweighted loss"),
    _arm("group_balanced", f"{MITIGATIONS['group_balanced'].title}, resampled", balance="resample"),
    _arm("domain_independent", f"{MITIGATIONS['domain_independent'].title} ({MITIGATIONS['domain_independent'].source})"),
    _arm("adversarial", f"{MITIGATIONS['adversarial'].title} ({MITIGATIONS['adversarial'].source})"),
    _arm("group_dro", f"{MITIGATIONS['group_dro'].title} ({MITIGATIONS['group_dro'].source})"),
)


#: The cost benchmark of every training method (``python benchmarks/run.py --methods``).
COST_RESULTS = "benchmarks/results/methods/cpu-small.json"

#: The rows of the paper's comparison tables that are the same kind of method as an arm here
#: (every one of them reported by its own paper, under its own conditions).
PAPER_COUNTERPARTS: dict[str, tuple[tuple[str, str], ...]] = {
    "baseline": (("table7", "Baseline single task"),),
    "finefcace": (("table5", "FineFACE"), ("table7", "FineFACE [ours]")),
    "group_balanced": (("table7", "Weighting*"),),
    "domain_independent": (("table7", "Domain Indep.*"),),
    "adversarial": (("table5", "B"),),
}
#: Per task: the accuracy (y axis) and the two fairness measures (x axes) of the figures and text.
ACCURACY = {"gender": "overall_accuracy", "attribute": "accuracy"}
FAIRNESS = {"gender": ("degree_of_bias", "min_group_accuracy"), "attribute": ("deodds", "min_group_accuracy")}
_NAMES = {"overall_accuracy": "overall accuracy", "accuracy": "accuracy", "min_group_accuracy": "worst-group accuracy",
          "degree_of_bias": "DoB", "max_min_ratio": "Max/Min", "deodds": "DEOdds", "deo": "DEO"}


def options_in_words(options: Any) -> str:
    """A method's options as a table cell: ``balance = reweight``, or ``none`` — not a dict repr."""
    return ", ".join(f"{key} = {value}" for key, value in dict(options or {}).items()) or "none"


def methods_table() -> "pd.DataFrame":
    """The training methods the engine knows: what each changes, the work it follows, its
    options (defaults) and whether it trains with the protected label."""
    import pandas as pd

    rows = {"baseline": {"what it does": "backbone, global average pooling, one linear classifier; cross-entropy",
                         "source": "paper §4.2", "options": options_in_words({})},
            "finefcace": {"what it does": "experts, attention regions, multi-step mutual learning, fused inference",
                          "source": "Manzoor & Rattani (this course)", "options": options_in_words({})}}
    what = {"group_balanced": "every (protected group × class) cell weighs the same: inverse-frequency loss "
                              "weights, or balanced sampling",
            "domain_independent": "one classifier per protected group on a shared backbone; the heads' logits "
                                  "summed at inference",
            "adversarial": "an adversary predicts the protected group from the features through a "
                           "gradient-reversal layer",
            "group_dro": "minimises the worst group's loss: exponentiated-gradient weights on the groups"}
    for name, method in MITIGATIONS.items():
        rows[name] = {"what it does": what[name], "source": method.source, "options": options_in_words(method.options)}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame["protected labels in training"] = ["YES" if uses_protected_labels(m) else "no" for m in frame.index]
    return frame


def profile_note(results: StudyResults, config: Any) -> str:
    """Whether the study was run with the training keys of this profile (``config``: the
    chapter's :class:`~finefcace.training.config.TrainConfig`), and if not, which keys differ."""
    from finefcace.training.config import TrainConfig
    from finefcace.training.run_directory import identity_differences

    base = TrainConfig.from_dict(results.meta["base_config"])
    here = config.replace(method=base.method, method_options=base.method_options)  # the arms change only these
    differences = identity_differences(base.identity(), here.identity())
    if not differences:
        return "These results were produced with this profile's training keys."
    return (f"These results were produced with OTHER training keys than this profile's (they differ in: "
            f"{', '.join(differences)}). To make this profile's: `{REGENERATE} --profile <this profile> --out <file>`, "
            "then set the parameter mitigation_results to that file.")


def load_results(path: str | Path = RESULTS) -> StudyResults:
    """The committed study (``experiments/results/mitigation_methods.json``)."""
    return StudyResults.from_json(path)


def _descriptions(results: StudyResults) -> dict[str, str]:
    return {arm["name"]: arm.get("description") or arm["name"] for arm in results.meta["arms"]}


def _method(results: StudyResults, arm: str) -> str:
    return next(a["changes"].get("method", results.meta["base_config"]["method"]) for a in results.meta["arms"]
                if a["name"] == arm)


def conditions_table(results: StudyResults) -> "pd.DataFrame":
    """What every arm shares and what it changes: one row per arm with its method, options,
    whether it trains with protected labels, the epochs it ran and its training time per run."""
    import pandas as pd

    rows = []
    for arm in results.meta["arms"]:
        runs = results.runs[results.runs["arm"] == arm["name"]]
        method = _method(results, arm["name"])
        rows.append({"arm": arm.get("description") or arm["name"], "method": method,
                     "options": options_in_words(arm["changes"].get("method_options", {})),
                     "protected labels in training": "YES" if uses_protected_labels(method) else "no",
                     "epochs run (mean)": float(runs["epochs_run"].mean()),
                     "training time per run (s)": float(runs["train_seconds"].mean())})
    return pd.DataFrame(rows).set_index("arm")


def summary_table(results: StudyResults, decimals: int = 2) -> "pd.DataFrame":
    """Mean ± standard deviation over seeds of each summary metric, one row per arm."""
    import pandas as pd

    summary = results.summary()
    names = _descriptions(results)
    table = {}
    for arm in results.arms:
        part = summary[summary["arm"] == arm].set_index("metric")
        row = {}
        for metric in part.index:
            mean, std = part.loc[metric, "mean"], part.loc[metric, "std"]
            digits = 3 if metric == "max_min_ratio" else decimals
            row[_NAMES.get(str(metric), str(metric))] = (f"{mean:.{digits}f} ± {std:.{digits}f}" if math.isfinite(std)
                                                         else f"{mean:.{digits}f}")
        row["protected labels in training"] = "YES" if uses_protected_labels(_method(results, arm)) else "no"
        table[names[arm]] = row
    return pd.DataFrame.from_dict(table, orient="index")


def differences_table(results: StudyResults, reference: str = "baseline") -> "pd.DataFrame":
    """Every other arm minus ``reference``, seed by seed (paired: same seed, same data order
    and initialisation): mean difference, 95 % interval over seeds, seeds favouring each."""
    import pandas as pd

    names = _descriptions(results)
    frames = []
    for arm in results.arms:
        if arm == reference:
            continue
        diff = results.differences(arm, reference, metrics_=[ACCURACY[results.task], *FAIRNESS[results.task]])
        diff.insert(0, "arm vs " + names[reference], names[arm])
        frames.append(diff)
    out = pd.concat(frames, ignore_index=True)
    out["metric"] = out["metric"].map(lambda m: _NAMES.get(m, m))
    digits = out["metric"].map(lambda m: 3 if "Max/Min" in str(m) else 2)

    def interval(row: "pd.Series", places: int) -> str:
        if not (pd.notna(row["ci_low"]) and pd.notna(row["ci_high"])):
            return "—"
        return f"[{row['ci_low']:+.{places}f}, {row['ci_high']:+.{places}f}]"

    # narrow enough for the book's column: the mean with its interval over seeds, and the seeds
    out["mean"] = [f"{m:+.{d}f}" for m, d in zip(out["mean"], digits)]
    out["95 % interval"] = [interval(row, d) for (_, row), d in zip(out.iterrows(), digits)]
    out["seeds for arm"] = [f"{f} of {n}" for f, n in zip(out["seeds_favouring_arm"], out["n_seeds"])]
    keep = [out.columns[0], "metric", "mean", "95 % interval", "seeds for arm"]
    return out[keep]


def _run_rows(results: StudyResults) -> "pd.DataFrame":
    rows = results.reports[(results.reports["test_set"] == "test") & (results.reports["group"] == "all")]
    names = _descriptions(results)
    return rows.assign(method=rows["arm"].map(names))[["method", "seed", "metric", "value", "ci_low", "ci_high"]]


def tradeoff_figure(results: StudyResults) -> "Figure":
    """Every arm and seed on the accuracy-vs-fairness plane: DoB (DEOdds for an attribute) and
    the worst group's accuracy, bootstrap intervals per run, the Pareto front of the means."""
    from finefcace import plots

    names = _descriptions(results)
    protected = {names[arm]: uses_protected_labels(_method(results, arm)) for arm in results.arms}
    return plots.method_tradeoffs(_run_rows(results), fairness_metrics=FAIRNESS[results.task],
                                  accuracy_metric=ACCURACY[results.task], protected=protected,
                                  title=f"Under identical conditions — {results.data}")


def paper_rows() -> "pd.DataFrame":
    """The paper's printed rows of the methods that have a counterpart here (Tables 5 and 7),
    labelled as what they are: reported elsewhere, under other conditions."""
    import pandas as pd

    from finefcace.course import paper_results

    rows = []
    for arm, places in PAPER_COUNTERPARTS.items():
        for table, method in places:
            spec = paper_results.paper_table(table)
            values = spec.values[spec.values["method"] == method]
            by_metric = dict(zip(values["metric"], values["value"]))  # per-group "accuracy" rows: only in Table 5
            # A measure the table does not print is said so, not left as NaN: Table 5 (gender)
            # has no DEOdds, Table 7 (attributes) no DoB.
            absent = f"not in Table {spec.number}"
            if spec.task == "gender":  # Table 5: the worst of the printed race accuracies
                worst = float(values.loc[values["metric"] == "accuracy", "value"].min())
                accuracy, dob, deodds = by_metric["overall_accuracy"], by_metric["degree_of_bias"], absent
            else:                      # Table 7: means over the 13 attributes
                worst, accuracy, dob, deodds = (by_metric["min_group_accuracy"], by_metric["accuracy"], absent,
                                                by_metric["deodds"])
            rows.append({"our arm": arm, "paper": f"Table {spec.number}: {spec.methods.get(method, method)}",
                         "accuracy": accuracy, "worst-group accuracy": worst, "DoB": dob, "DEOdds": deodds,
                         "conditions": "reported elsewhere, under other conditions: "
                                       + ("FairFace gender, ResNet-50, each method's own paper" if table == "table5"
                                          else "CelebA, 13 attributes (mean), each method's own paper")})
    return pd.DataFrame(rows)


def paper_figure() -> "Figure":
    """The paper's Tables 5 and 7 on the same kind of plane: numbers copied by the paper from
    each method's own publication — reported elsewhere, under other conditions."""
    from finefcace import plots
    from finefcace.course import paper_results

    figure = plots.new_figure(plots.FIGURE_WIDTH, 10.5)  # stacked: each panel the book column's width
    left, right = figure.subplots(2, 1)
    plots.accuracy_fairness_scatter(paper_results.tradeoff_points("table5"), ax=left,
                                    title="Paper Table 5 (FairFace gender, ResNet-50)")
    plots.accuracy_fairness_scatter(paper_results.tradeoff_points("table7", fairness="min_group_accuracy"), ax=right,
                                    title="Paper Table 7 (CelebA, mean of 13 attributes)")
    figure.suptitle("Reported elsewhere, under other conditions: the paper's printed numbers, most copied from "
                    "other publications — not comparable with the study above")
    plots.separate_point_labels(plots.wrap_wide_titles(figure))
    return plots.describe(figure,
                          "Two scatter plots of the paper's printed numbers, reported elsewhere under other "
                          "conditions: Table 5 (FairFace gender, ResNet-50), accuracy against degree of bias; "
                          "Table 7 (CelebA, mean of 13 attributes), accuracy against the worst group's accuracy; "
                          "one labelled point per method, the Pareto-optimal ones ringed")


# ----------------------------------------------------------------------------- the words


def _points(value: float) -> str:
    return f"{abs(value):.2f} point{'s' if round(abs(value), 2) != 1 else ''}"


def _difference_sentence(row: "pd.Series") -> str:
    """One paired difference in words: direction, size, interval over seeds, seeds that agree,
    and whether the interval excludes no difference."""
    metric, mean, low, high = row["metric"], row["mean"], row["ci_low"], row["ci_high"]
    name = _NAMES.get(metric, metric)
    if not math.isfinite(mean):
        return f"{name} not defined"
    if mean == 0:
        return f"{name} the same on every seed"
    better = BETTER.get(metric, 1) * mean > 0
    agree = int(row["seeds_favouring_arm"] if better else row["seeds_favouring_reference"])
    interval = f"95 % interval [{low:+.2f}, {high:+.2f}]" if math.isfinite(low) else "one seed, no interval"
    clear = math.isfinite(low) and (low > 0 or high < 0)
    verdict = "clear" if clear else "not resolved by these seeds (the interval includes 0)"
    return (f"{name} {'higher' if mean > 0 else 'lower'} by {_points(mean)} ({'better' if better else 'worse'}), "
            f"{interval}, {agree} of {int(row['n_seeds'])} seeds agree — {verdict}")


def comparison_text(results: StudyResults) -> str:
    """The chapter's comparison, in words generated from the numbers: each method against the
    baseline and against FineFACE (paired over seeds), and which methods are Pareto-optimal.
    Whatever direction the numbers take, the words follow them."""
    import numpy as np

    from finefcace import plots

    names = _descriptions(results)
    task = results.task
    metrics = (ACCURACY[task], *FAIRNESS[task])
    lines = [f"What the numbers say ({results.data}; seeds {results.meta['seeds']}; generated from the "
             "study's numbers, not written by hand):", ""]
    for reference in ("baseline", "finefcace"):
        if reference not in results.arms:
            continue
        lines.append(f"Against {names[reference]}:")
        for arm in results.arms:
            if arm == reference or (reference == "finefcace" and arm == "baseline"):
                continue
            diff = results.differences(arm, reference, metrics_=list(metrics))
            sentences = [_difference_sentence(row) for _, row in diff.iterrows()]
            lines.append(f"- {names[arm]} vs {names[reference]}: {'; '.join(sentences)}.")
        lines.append("")
    summary = results.summary(metrics_=list(metrics))
    means = summary.pivot(index="arm", columns="metric", values="mean").reindex(results.arms)
    accuracy = means[ACCURACY[task]].to_numpy(float)
    for metric in FAIRNESS[task]:
        x = means[metric].to_numpy(float)
        front = [results.arms[i] for i in plots._pareto_front(x, accuracy, metric not in plots.HIGHER_IS_FAIRER)]
        best = results.arms[int(np.nanargmax(x) if metric in plots.HIGHER_IS_FAIRER else np.nanargmin(x))]
        lines.append(f"- Mean {_NAMES[ACCURACY[task]]} against mean {_NAMES.get(metric, metric)}: the Pareto front "
                     f"(no other method better on both) is {', '.join(names[a] for a in front)}; the best "
                     f"{_NAMES.get(metric, metric)} is {names[best]}'s ({means.loc[best, metric]:.2f}).")
    if "finefcace" in results.arms:
        mitigations = [a for a in results.arms if uses_protected_labels(_method(results, a))]
        ahead = {m: [a for a in mitigations
                     if BETTER.get(m, 1) * (means.loc["finefcace", m] - means.loc[a, m]) > 0] for m in metrics}
        parts = [f"{len(ahead[m])} of {len(mitigations)} on {_NAMES.get(m, m)}" for m in metrics]
        lines.append(f"- On the means, FineFACE — which uses no protected label — is better than the methods that use "
                     f"them in {', '.join(parts)}. "
                     "The paper reports FineFACE ahead of every published method it lists (Tables 5, 7); "
                     "these runs test that claim under identical conditions, on this data only.")
    return "\n".join(lines) + "\n"


def results_markdown(results: StudyResults) -> str:
    """The Markdown written beside the study's JSON (``experiments/results/mitigation_methods.md``):
    the summary table with its caption, and the comparison text."""
    return ("<!-- Generated by `python experiments/mitigation_methods.py`; do not edit by hand. -->\n\n"
            + results.markdown() + "\n" + comparison_text(results))


def cost_table(path: str | Path = COST_RESULTS) -> "pd.DataFrame":
    """Each method's training iteration against the baseline's (``python benchmarks/run.py
    --methods``): time ratio (median and quartiles), FLOP ratio, protected labels. The benchmark's
    other workloads (FineFACE's region controls) are left to the cost chapter."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `python benchmarks/run.py --methods` (it writes it)")
    results = json.loads(path.read_text())
    rows = {}
    for name, workload in results["workloads"].items():
        entry = results["comparisons"].get(name)
        method = name.removesuffix("_train")
        if method not in ("baseline", "finefcace", *MITIGATIONS):  # e.g. FineFACE's region controls: not a method here
            continue
        rows[method] = {
            "time / baseline (median)": entry["time_ratio"]["median"] if entry else 1.0,
            "quartiles": f"{entry['time_ratio']['q1']:.2f}–{entry['time_ratio']['q3']:.2f}" if entry else "",
            "FLOPs / baseline": entry["flop_ratio"] if entry else 1.0,
            "median ms": workload["seconds"]["median"] * 1e3,
            "protected labels in training": "YES" if results["protected_labels"][name] else "no",
        }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    config, env = results["config"], results["environment"]
    frame.attrs["caption"] = (f"{config['backbone']}, {config['input_size']} px, batch {config['batch']}, "
                              f"{env['device']} ({env['threads']} threads), {config['repetitions']} interleaved "
                              f"repetitions, measured {env['date'][:10]}; random inputs")
    return frame


def live_check(live: Any, results: StudyResults, arm: str) -> "Reproduction":
    """A run trained live in the chapter beside the study's run of the same arm and seed (the same
    configuration up to where it is written): their summary metrics side by side in ``.table``, and
    whether they agree (:mod:`finefcace.course.reproduction`; :func:`live_check_in_words`)."""
    from finefcace.course import reproduction

    check = reproduction.check_runs(results, {arm: live})[0]
    wanted = [m for m in (ACCURACY[results.task], *FAIRNESS[results.task], "max_min_ratio") if m in check.table.index]
    table = check.table.loc[wanted].rename(index=lambda m: _NAMES.get(m, m)).round(2)  # shown; compared unrounded
    return dataclasses.replace(check, table=table)


def live_check_in_words(check: "Reproduction", results: StudyResults) -> str:
    """Whether the committed study reproduces, judged by the chapter's live run (Markdown)."""
    from finefcace.course import reproduction

    return reproduction.reproduction_in_words([check], study=results.name, regenerate=REGENERATE,
                                              names=_descriptions(results))
