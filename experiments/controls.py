"""Experiment: what makes FineFACE fairer at 96 px? Three controls on real photographs.

The input-size study (``experiments/resolution.py``) found FineFACE fairer than the baseline on
real UTKFace photographs at 96 and 128 px. Three other explanations fit that finding, and this
study trains one arm against each, at the size where the effect appeared, beside FineFACE and
the baseline — same split, duplicate handling, data, stopping rule, batch and seeds:

1. **Extra updates.** Algorithm 1 takes N + 2 optimizer steps per batch, the baseline one: the
   baseline given FineFACE's number of updates ((N + 2)× the epochs, no early stopping, the best
   validation epoch kept; as ``experiments/seeds.py``'s control).
2. **The ensemble.** Fused inference averages 2(N + 1) heads over shallow-to-deep stages; deep
   supervision with an ensemble of heads helps on its own. FineFACE with **no regions**: the same
   experts, N + 2 steps and losses, every step on the raw image, the raw view's heads fused
   (``TrainConfig.regions = "none"``).
3. **The crop itself.** FineFACE with **placebo regions**: every region, A_oval included, a box
   of the CAM box's size at a uniformly random position, drawn from the run's seeded generator
   (``regions = "placebo"``): does it matter that the CAM chose the box?

Run (from the repository root; the runs go to ``--runs-root``, a second call loads them)::

    python experiments/controls.py --utkface data/utkface --fairface data/fairface --jobs 2

The defaults are the input-size study's budget at 96 px (1,500 training images, 4 epochs, the
same split) with seeds 0 1 2. Writes ``experiments/results/<name>.json`` (every run's reports),
``<name>.md`` (the tables and the answers to the three questions, generated from the numbers)
and ``<name>.png`` (one panel per metric, the five arms side by side, seeds as points);
``--report-only`` regenerates the Markdown and the figure from the JSON.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from experiments import real_photographs as study_script  # noqa: E402

SCRIPT = "experiments/controls.py"
SUMMARIES = study_script.SUMMARIES
LABELS = study_script.LABELS
#: The arms (folder stem, label), in the order the tables show them.
BASELINE, FINEFACE, UPDATES, NO_REGIONS, PLACEBO = "baseline", "finefcace", "baseline-updates", "no-regions", "placebo"
#: Relative training cost of each arm, from the input-size study's measured times at 96 px
#: (baseline 3.7 min, FineFACE 15.5 min per run): how ``--jobs`` deals the runs to its workers.
COSTS = {BASELINE: 1.0, FINEFACE: 4.2, UPDATES: 5.0, NO_REGIONS: 3.8, PLACEBO: 4.2}


def control_arms(args, base: dict) -> list:
    """The five arms at ``--sizes[0]``: the baseline, FineFACE, the baseline with FineFACE's
    optimizer updates, FineFACE with no regions and with placebo regions."""
    from experiments.seeds import updates_per_batch
    from finefcace.training.config import load_config
    from finefcace.training.study import Arm

    size = args.sizes[0]
    factor = updates_per_batch(load_config(base, method="finefcace"))
    arms = [
        (BASELINE, {"method": "baseline"}, "Baseline"),
        (FINEFACE, {"method": "finefcace"}, "FineFACE"),
        (UPDATES, {"method": "baseline", "epochs": factor * args.epochs, "patience": None},
         f"Baseline, FineFACE's updates (×{factor} epochs)"),
        (NO_REGIONS, {"method": "finefcace", "regions": "none"}, "FineFACE, no regions"),
        (PLACEBO, {"method": "finefcace", "regions": "placebo"}, "FineFACE, placebo regions"),
    ]
    return [Arm(arm_folder(name, size), {**changes, "input_size": size}, label) for name, changes, label in arms]


def arm_folder(name: str, size: int) -> str:
    """``placebo-96px``: an arm's folder under the runs root."""
    return f"{name}-{size}px"


# ---------------------------------------------------------------------------- comparisons
def _arm(results, name: str) -> str:
    return arm_folder(name, results.meta["sizes"][0])


def _label(results, name: str) -> str:
    return {a["name"]: a["description"] for a in results.meta["arms"]}[_arm(results, name)]


def difference(results, arm: str, reference: str, test_set: str = "test") -> pd.DataFrame:
    """``arm`` minus ``reference`` (short names), seed by seed, indexed by metric."""
    return results.differences(_arm(results, arm), _arm(results, reference), test_set, SUMMARIES).set_index("metric")


def verdict(row: pd.Series) -> str:
    """``"arm"``, ``"reference"`` or ``"cannot tell"``: which of the two a paired difference
    favours, when its interval over seeds excludes zero."""
    if not study_script._clear(row):
        return "cannot tell"
    return "arm" if study_script._better(row) else "reference"


def _clause(results, arm: str, reference: str, metric: str, test_set: str = "test") -> str:
    """``FineFACE minus Baseline: DoB −4.1 [−6.0, −2.2], 3 of 3 seeds favour FineFACE``."""
    row = difference(results, arm, reference, test_set).loc[metric]
    digits = study_script.metric_digits(metric)
    if not np.isfinite(row["mean"]):
        return f"{study_script._PLAIN[metric]} undefined in some run"
    interval = (f" [{row['ci_low']:+.{digits}f}, {row['ci_high']:+.{digits}f}]" if np.isfinite(row["ci_low"])
                else " (one seed: no interval)")
    return (f"{study_script._PLAIN[metric]} {row['mean']:+.{digits}f}{interval}, {int(row['seeds_favouring_arm'])} "
            f"of {int(row['n_seeds'])} seeds favour {_label(results, arm)}")


def _comparison(results, arm: str, reference: str) -> str:
    """The paired differences in DoB and worst-group accuracy of ``arm`` minus ``reference``."""
    return (f"{_label(results, arm)} minus {_label(results, reference)}: "
            f"{_clause(results, arm, reference, 'degree_of_bias')}; "
            f"{_clause(results, arm, reference, 'min_group_accuracy')}")


def _say(results, arm: str, reference: str, arm_fairer: str, reference_fairer: str, cannot_tell: str) -> str:
    """One of three sentences, chosen by which of ``arm`` and ``reference`` is fairer by DoB
    (:func:`verdict`: its interval over seeds excludes zero) or that the seeds cannot tell."""
    which = verdict(difference(results, arm, reference).loc["degree_of_bias"])
    return {"arm": arm_fairer, "reference": reference_fairer, "cannot tell": cannot_tell}[which]


def answers(results) -> list[str]:
    """The finding and the three questions, each answered in plain words from the paired
    differences on UTKFace's test split (DoB decides "fairer"; an interval over seeds that
    includes zero is "cannot tell")."""
    n = len(results.meta["seeds"])
    size = results.meta["sizes"][0]
    finding = _say(results, FINEFACE, BASELINE,
                   "FineFACE is fairer than the baseline: the finding holds in this study's seeds.",
                   "The baseline is fairer than FineFACE here: the finding does not hold in this study's seeds.",
                   "The interval over seeds includes zero: with these seeds the measurement cannot tell FineFACE and "
                   "the baseline apart on DoB.")
    updates = _say(results, FINEFACE, UPDATES,
                   "No: given FineFACE's number of optimizer updates the baseline is still less fair than FineFACE.",
                   "The baseline given FineFACE's updates is fairer than FineFACE: more training alone does at least "
                   "as much as FineFACE's mechanism here.",
                   "Cannot tell: the interval over seeds includes zero, so the extra updates may explain part or all "
                   "of the difference, or none of it.")
    alone = _say(results, NO_REGIONS, BASELINE,
                 "The experts without any region are fairer than the baseline",
                 "The experts without any region are less fair than the baseline",
                 "Whether the experts without any region are fairer than the baseline cannot be told")
    ensemble = _say(results, FINEFACE, NO_REGIONS,
                    "the regions add fairness beyond the ensemble.",
                    "the ensemble without regions is fairer than FineFACE: the regions do not help here.",
                    "whether the regions add anything beyond the ensemble cannot be told (the interval includes zero).")
    crop = _say(results, FINEFACE, PLACEBO,
                "Yes: boxes of the same sizes at random places are less fair than the CAM's.",
                "Random boxes of the same sizes are fairer than the CAM's: the CAM's choice does not help here.",
                "Cannot tell: the interval includes zero, so a random box of the same size may do as well as the "
                "CAM's.")
    return [
        f"**The finding, again ({n} seeds, {size} px).** {_comparison(results, FINEFACE, BASELINE)}. {finding}",
        f"**1. Is it the extra updates?** {_comparison(results, FINEFACE, UPDATES)}. {updates} (Against the plain "
        f"baseline: {_comparison(results, UPDATES, BASELINE)}.)",
        f"**2. Is it the ensemble of experts?** {_comparison(results, NO_REGIONS, BASELINE)}; "
        f"{_comparison(results, FINEFACE, NO_REGIONS)}. {alone}; {ensemble}",
        f"**3. Does it matter that the CAM chose the region?** {_comparison(results, FINEFACE, PLACEBO)}. {crop} "
        f"(Placebo against no regions: {_comparison(results, PLACEBO, NO_REGIONS)}.)",
    ]


# ---------------------------------------------------------------------------- tables
def difference_table(results, reference: str) -> list[str]:
    """Every other arm minus ``reference``: mean over seeds and the t interval, each metric."""
    lines = [f"| Arm − {_label(results, reference)} | " + " | ".join(f"Δ {LABELS[m]}" for m in SUMMARIES)
             + " | Seeds |", "|---|" + "---|" * (len(SUMMARIES) + 1)]
    for arm in (BASELINE, FINEFACE, UPDATES, NO_REGIONS, PLACEBO):
        if arm == reference:
            continue
        diff = difference(results, arm, reference)
        cells = study_script.difference_cells(diff)
        lines.append(f"| {_label(results, arm)} | " + " | ".join(cells) + f" | {int(diff['n_seeds'].iloc[0])} |")
    return lines


# ---------------------------------------------------------------------------- figure
def figure(results):
    """One panel per metric: the five arms side by side, each seed a dot, the mean a bar across
    them (no bars from zero: the axes are cut to the data)."""
    import textwrap

    from finefcace.plots import new_figure

    reports = results.reports[(results.reports["test_set"] == "test") & (results.reports["group"] == "all")]
    labels = {a["name"]: a["description"] for a in results.meta["arms"]}
    fig = new_figure(11, 3.8)
    axes = fig.subplots(1, len(SUMMARIES))
    for ax, metric in zip(axes, SUMMARIES):
        part = reports[reports["metric"] == metric]
        for position, arm in enumerate(results.arms):
            values = part.loc[part["arm"] == arm, "value"].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            if len(values):
                ax.hlines(values.mean(), position - 0.3, position + 0.3, color="0.2", linewidth=2)
                ax.scatter(np.full(len(values), position), values, s=18, color="C0", zorder=3)
        ax.set_xticks(range(len(results.arms)), [textwrap.fill(labels[a], 16) for a in results.arms],
                      rotation=90, fontsize=8)
        ax.set_xlim(-0.6, len(results.arms) - 0.4)
        ax.set_title(LABELS[metric], fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"Real UTKFace photographs, {results.meta['sizes'][0]} px, ResNet-18 from scratch: "
                 f"bar = mean over seeds, dots = seeds", fontsize=9)
    return fig


# ---------------------------------------------------------------------------- report
def report(args) -> Path:
    from finefcace import outputs
    from finefcace.training.study import StudyResults, grouped_name

    results = StudyResults.from_json(args.results / f"{args.name}.json")
    meta = results.meta
    lines = [
        f"<!-- Generated by {SCRIPT} from {args.name}.json; do not edit by hand. -->",
        "",
        study_script.provenance(meta, results.runs),
        "",
        "**The answers, in plain words (generated from the numbers below; positive DoB differences mean the first "
        "arm less fair, positive worst-group differences the first arm better; \"fairer\" is decided on DoB).**",
        "",
        *[f"- {answer}" for answer in answers(results)],
        "",
        f"![The five arms on each metric, every seed a point]({args.name}.png)",
        "",
        "UTKFace test split, groups race × gender (the paper's 10 groups): mean ± standard deviation over seeds.",
        "",
        *study_script.summary_table(results, "test"),
        "",
        "Paired differences against FineFACE, seed by seed (mean over seeds; 95 % t interval over seeds):",
        "",
        *difference_table(results, FINEFACE),
        "",
        "Paired differences against the baseline:",
        "",
        *difference_table(results, BASELINE),
        "",
        f"Every run with 95 % bootstrap intervals over the test images ({meta['n_bootstrap']:,} resamples, "
        f"stratified by group):",
        "",
        *study_script.per_seed_table(results, "test"),
        "",
    ]
    if "fairface" in meta["tables"]:
        table = meta["tables"]["fairface"]
        lines += [f"Cross-dataset: the FairFace photographs used whole as a test set ({table['rows']:,} images, never "
                  f"trained on; {table['duplicates']}):", "", *study_script.summary_table(results, "fairface"), "",
                  "FairFace accuracy per race (mean ± sd over seeds):", "",
                  *study_script.group_table(results, grouped_name("fairface", "race")), ""]
    crops = study_script.crop_table(results)
    if crops:
        lines += ["The attention crop on the test split: the side of the deepest expert's map and the share of the "
                  "image each region keeps (mean over test images; ± sd over seeds). The placebo's boxes have the "
                  "CAM boxes' sizes, at random places; the no-regions arm crops nothing.", "", *crops, ""]
    path = args.results / f"{args.name}.md"
    outputs.write_text(path, "\n".join(lines))
    fig = figure(results)
    outputs.save_figure(fig, args.results / f"{args.name}.png", dpi=120)
    print(f"wrote {path} and {args.name}.png")
    return path


def parse_args(argv: list[str] | None):
    return study_script.parse_args(argv, description=__doc__.splitlines()[0], name="controls", sizes=[96],
                                   seeds=[0, 1, 2], max_train=1500, val_fraction=0.05, test_fraction=0.1,
                                   celeba=Path("none"), runs_root=Path("runs/controls"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    study_script.check_arguments(args, SCRIPT, one_size=True)
    if not args.report_only:
        tables = {"utkface": "<the UTKFace table>"}
        arms = control_arms(args, study_script.base_config(args, tables))
        study_script.run(args, SCRIPT, arms=arms, costs={arm.name: COSTS[arm.name.rsplit("-", 1)[0]] for arm in arms})
    if not (args.train_only or args.worker):
        report(args)
    return 0


if __name__ == "__main__":
    from finefcace.errors import run_script

    sys.exit(run_script(main))
