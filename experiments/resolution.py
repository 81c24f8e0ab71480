"""Experiment: when does FineFACE help? The input-size study on real photographs.

FineFACE's mechanism is the attention crop (paper §3.2): each expert's class activation map
picks a box the other experts then train on. With ResNet-18's stride of 32, a 64 px input gives
the deepest expert a 2 × 2 map, whose box is nearly the whole image; the paper works at 448 px
(14 × 14). This script trains FineFACE and the baseline on the same real UTKFace photographs at
several input sizes (``--sizes``, default 64 96 128: deepest maps 2 × 2, 3 × 3, 4 × 4), several
seeds each, with the same data, epochs, early stopping and batch size for every run — through
``experiments/real_photographs.py``'s ``run`` (the same split, duplicate check, study engine and
attention-crop measurement) — and reports per size: the deepest map's side, the mean share of
the image kept by A_1..A_N and A_oval, overall and worst-group accuracy, Max/Min and DoB with
bootstrap intervals and the seed spread, the training time; a figure of accuracy and DoB
against input size for both methods; and a statement, generated from the numbers, of whether
FineFACE's fairness effect (its DoB minus the baseline's) changes with the input size within
the range measured (a least-squares trend over every paired difference, with its interval).

Run (from the repository root)::

    python experiments/resolution.py --utkface data/utkface --fairface none --celeba none \\
        --max-train 1500 --epochs 4

Writes ``experiments/results/<name>.json`` (every run's reports), ``<name>.md`` (tables and the
statement, generated, never typed) and ``<name>.png`` (the figure); ``--report-only``
regenerates the Markdown and the figure from the JSON. On a GPU the same command runs at the
paper's sizes: ``--sizes 224 448 --device cuda``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from experiments import real_photographs as study_script  # noqa: E402

SCRIPT = "experiments/resolution.py"
SUMMARIES = study_script.SUMMARIES
LABELS = study_script.LABELS
METHOD_LABELS = dict(study_script.METHODS)
#: The panels of the figure, left to right.
TREND_METRICS = ("overall_accuracy", "min_group_accuracy", "degree_of_bias")


# ---------------------------------------------------------------------------- numbers
def seed_values(results, metric: str, test_set: str = "test") -> pd.DataFrame:
    """One row per run: arm, method, size, seed and the run's ``metric`` on ``test_set``."""
    rows = results.reports[(results.reports["test_set"] == test_set) & (results.reports["group"] == "all")
                           & (results.reports["metric"] == metric)]
    arms = {a["name"]: a["changes"] for a in results.meta["arms"]}
    out = rows[["arm", "seed", "value"]].copy()
    out["method"] = out["arm"].map(lambda arm: arms[arm]["method"])
    out["size"] = out["arm"].map(lambda arm: int(arms[arm]["input_size"]))
    return out.reset_index(drop=True)


def paired_differences(results, metric: str, test_set: str = "test") -> pd.DataFrame:
    """FineFACE minus the baseline, seed by seed, at every size: columns size, seed, difference."""
    values = seed_values(results, metric, test_set)
    wide = values.pivot_table(index=["size", "seed"], columns="method", values="value", aggfunc="first")
    wide = wide.dropna(subset=[c for c in ("finefcace", "baseline") if c in wide.columns])
    diff = (wide["finefcace"] - wide["baseline"]).rename("difference").reset_index()
    return diff[np.isfinite(diff["difference"])].reset_index(drop=True)


def size_trend(results, metric: str, confidence: float = 0.95) -> dict:
    """How FineFACE's difference from the baseline in ``metric`` changes with the input size: the
    least-squares slope over every (size, seed) paired difference, expressed as the change from
    the smallest to the largest size, with its Student-t interval (n − 2 degrees of freedom)."""
    from scipy import stats as scipy_stats

    diff = paired_differences(results, metric)
    sizes = sorted(diff["size"].unique())
    span = float(sizes[-1] - sizes[0]) if len(sizes) > 1 else math.nan
    record = {"metric": metric, "points": len(diff), "sizes": sizes, "span_px": span,
              "change": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    if len(sizes) < 2 or len(diff) < 3:
        return record
    fit = scipy_stats.linregress(diff["size"].astype(float), diff["difference"].astype(float))
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, len(diff) - 2) * fit.stderr) if len(diff) > 2 else math.nan
    record.update(change=float(fit.slope * span), ci_low=float((fit.slope * span) - half * span),
                  ci_high=float((fit.slope * span) + half * span))
    return record


# ---------------------------------------------------------------------------- statement
def _effect_at(row: pd.Series, metric: str) -> str:
    """FineFACE's paired difference at one size, in words (``+11.7 (worse, clear)``)."""
    mean, digits = row["mean"], study_script.metric_digits(metric)
    if not np.isfinite(mean):
        return "undefined"
    if round(mean, digits) == 0:
        return f"{0:+.{digits}f} (equal)"
    verdict = "better" if study_script._better(row) else "worse"
    certainty = "seeds agree" if study_script._clear(row) else "within the seed spread"
    favour = f"{int(row['seeds_favouring_arm'])} of {int(row['n_seeds'])} seeds favour FineFACE"
    return f"{mean:+.{digits}f} ({verdict}; {certainty}; {favour})"


def _crop_span(results, size: int) -> str | None:
    """``76–90 %``: the smallest and largest mean share of the image an attention region kept
    in the FineFACE runs at ``size`` (None when not measured)."""
    columns = [c for c in results.runs.columns if c.startswith("crop_share_")]
    arm = study_script.arm_name("finefcace", size)
    shares = results.runs.loc[results.runs["arm"] == arm, columns].mean() if columns else pd.Series(dtype=float)
    shares = shares.dropna()
    return f"{shares.min():.0f}–{shares.max():.0f} %" if len(shares) else None


def statement(results) -> str:
    """Whether FineFACE's fairness effect changes with input size, generated from the numbers."""
    sizes = results.meta["sizes"]
    parts = []
    for metric in ("degree_of_bias", "overall_accuracy"):
        effects = []
        for size in sizes:
            diff = study_script.difference_rows(results, "test", size)
            effects.append(f"{_effect_at(diff.loc[metric], metric)} at {size} px")
        parts.append(f"FineFACE's {study_script._PLAIN[metric]} minus the baseline's: " + ", ".join(effects))
    trend = size_trend(results, "degree_of_bias")
    low, high = sizes[0], sizes[-1]
    crops = _crop_span(results, low), _crop_span(results, high)
    if all(crops):
        parts.append(f"the attention regions (A_1..A_N, A_oval) kept {crops[0]} of the image at {low} px and "
                     f"{crops[1]} at {high} px (means over the test images)")
    n_seeds = len(results.meta["seeds"])
    text = (f"Over {n_seeds} seeds per size (positive DoB differences are FineFACE less fair, positive accuracy "
            f"differences FineFACE more accurate). " + "; ".join(parts) + ". ")
    if not np.isfinite(trend["change"]):
        return text + "With fewer than two sizes or three paired runs, no trend with size can be estimated."
    change = (f"From {low} to {high} px the DoB difference changes by {trend['change']:+.1f} points (least-squares "
              f"trend over the {trend['points']} paired runs, 95 % interval [{trend['ci_low']:+.1f}, "
              f"{trend['ci_high']:+.1f}])")
    if study_script._clear(trend):  # the trend's interval excludes zero
        direction = "in FineFACE's favour" if trend["change"] < 0 else "against FineFACE"
        verdict = (f"{change}: within {low}–{high} px, FineFACE's fairness effect changes with resolution, "
                   f"{direction} as the input grows.")
    else:
        verdict = (f"{change}: the interval includes zero, so within {low}–{high} px this measurement does not show "
                   f"FineFACE's fairness effect changing with resolution (nor rules out a change of that size).")
    return text + verdict


# ---------------------------------------------------------------------------- tables
def difference_table(results) -> list[str]:
    """Per size: FineFACE minus the baseline (mean over seeds, t interval over seeds)."""
    lines = ["| Size | " + " | ".join(f"Δ {LABELS[m]}" for m in SUMMARIES) + " | Seeds |",
             "|---|" + "---|" * (len(SUMMARIES) + 1)]
    for size in results.meta["sizes"]:
        diff = study_script.difference_rows(results, "test", size)
        cells = study_script.difference_cells(diff)
        lines.append(f"| {size} px | " + " | ".join(cells) + f" | {int(diff.loc['overall_accuracy', 'n_seeds'])} |")
    return lines


# ---------------------------------------------------------------------------- figure
def figure(results):
    """Accuracy, worst-group accuracy and DoB against input size, both methods: the mean over
    seeds (line) and every seed (dots); the deepest map's side under each size."""
    from finefcace.plots import new_figure

    sizes = results.meta["sizes"]
    size_of = {a["name"]: int(a["changes"]["input_size"]) for a in results.meta["arms"]}
    sides = {}
    if "deepest_map_side" in results.runs.columns:  # measured on the FineFACE runs
        measured = results.runs.dropna(subset=["deepest_map_side"])
        sides = {size_of[arm]: int(side) for arm, side in zip(measured["arm"], measured["deepest_map_side"])}
    ticks = [f"{s}\n({sides[s]}×{sides[s]})" if s in sides else str(s) for s in sizes]
    fig = new_figure(10, 3.4)
    axes = fig.subplots(1, len(TREND_METRICS))
    for ax, metric in zip(axes, TREND_METRICS):
        values = seed_values(results, metric)
        for (method, label), marker in zip(study_script.METHODS, ("o", "s")):
            part = values[values["method"] == method]
            means = part.groupby("size")["value"].mean().reindex(sizes)
            line, = ax.plot(sizes, means.to_numpy(), marker=marker, label=label)
            ax.scatter(part["size"], part["value"], s=12, alpha=0.5, color=line.get_color())
        ax.set_xticks(sizes, ticks)
        ax.set_xlabel("input size, px (deepest map)")
        ax.set_title(LABELS[metric] + (" (points)" if metric == "degree_of_bias" else " (%)"))
        ax.grid(alpha=0.3)
    axes[0].legend(frameon=False)
    fig.suptitle("Real UTKFace photographs, ResNet-18 from scratch: line = mean over seeds, dots = seeds", fontsize=9)
    return fig


# ---------------------------------------------------------------------------- report
def report(args) -> Path:
    from finefcace import outputs
    from finefcace.training.study import StudyResults

    results = StudyResults.from_json(args.results / f"{args.name}.json")
    crops = study_script.crop_table(results)
    lines = [
        f"<!-- Generated by {SCRIPT} from {args.name}.json; do not edit by hand. -->",
        "",
        study_script.provenance(results.meta, results.runs),
        "",
        "**The result, in plain words (generated from the numbers below).** " + statement(results),
        "",
        f"![Accuracy, worst-group accuracy and DoB against input size]({args.name}.png)",
        "",
        "UTKFace test split, groups race × gender (the paper's 10 groups): mean ± standard deviation over seeds.",
        "",
        *study_script.summary_table(results, "test"),
        "",
        "FineFACE minus the baseline at each size, seed by seed (mean over seeds; 95 % t interval over seeds):",
        "",
        *difference_table(results),
        "",
        f"Every run with 95 % bootstrap intervals over the test images ({results.meta['n_bootstrap']:,} resamples, "
        f"stratified by group):",
        "",
        *study_script.per_seed_table(results, "test"),
        "",
    ]
    if crops:
        lines += ["The attention crop of each FineFACE run on the test split (paper §3.2): the side of the deepest "
                  "expert's map, and the share of the image each region keeps (mean over test images; ± sd over "
                  "seeds):", "", *crops, ""]
    path = outputs.write_text(args.results / f"{args.name}.md", "\n".join(lines))
    fig = figure(results)
    outputs.save_figure(fig, args.results / f"{args.name}.png", dpi=120)
    print(f"wrote {path} and {args.name}.png")
    return path


def parse_args(argv: list[str] | None):
    return study_script.parse_args(argv, description=__doc__.splitlines()[0], name="resolution",
                                   sizes=[64, 96, 128], seeds=[0, 1], runs_root=Path("runs/resolution"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    study_script.check_arguments(args, SCRIPT)
    if not args.report_only:
        study_script.run(args, SCRIPT)
    if not (args.train_only or args.worker):
        report(args)
    return 0


if __name__ == "__main__":
    from finefcace.errors import run_script

    sys.exit(run_script(main))
