"""A study: one experiment trained for several arms and seeds, and compared side by side.

An *arm* is a named set of configuration changes on top of one base configuration (another
``method``, more ``epochs``, another ``input_size`` ...). :func:`run_study` trains every arm
for every seed with :func:`~finefcace.training.trainer.train_or_load` under
``<runs_root>/<arm>/seed<k>`` (so a second call loads instead of training), evaluates each run
on its own test split and on any cross-dataset tables, and reports each with the paper's
fairness metrics (§4.3, bootstrap intervals: :func:`finefcace.metrics.task_report`).
:class:`StudyResults` holds every run's report, aggregates over seeds (mean ± standard
deviation) and pairs two arms seed by seed (:meth:`StudyResults.differences`): the same seed
means the same data order and initialisation, so the paired difference removes much of the
run-to-run noise. Results are saved as JSON and rendered as Markdown, like the benchmarks:
measured, never typed.

The experiments under ``experiments/`` are studies; the book shows their results beside the
single runs the notebooks train (``book/results.md``).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from finefcace import metrics, outputs
from finefcace.training.config import ConfigError, TrainConfig, load_config
from finefcace.training.evaluation import evaluate_run
from finefcace.training.run_directory import BEST_CHECKPOINT, SUMMARY_FILE
from finefcace.training.trainer import train_or_load

__all__ = ["Arm", "CrossDataset", "RunMeasure", "StudyResults", "grouped_name", "run_study", "SUMMARY_METRICS"]

#: The summaries a study table shows for each task, in column order.
SUMMARY_METRICS: dict[str, tuple[str, ...]] = {
    "gender": ("overall_accuracy", "min_group_accuracy", "max_min_ratio", "degree_of_bias"),
    "attribute": ("accuracy", "max_group_accuracy", "min_group_accuracy", "deo", "deodds"),
}
#: Which way is better for each summary (+1: higher, -1: lower), used to word differences.
BETTER: dict[str, int] = {
    "overall_accuracy": 1, "accuracy": 1, "min_group_accuracy": 1, "max_group_accuracy": 1, "tpr": 1,
    "max_min_ratio": -1, "degree_of_bias": -1, "deo": -1, "deodds": -1,
}
_LABELS = {
    "overall_accuracy": "Overall ↑", "accuracy": "Accuracy ↑", "min_group_accuracy": "Worst group ↑",
    "max_group_accuracy": "Best group", "max_min_ratio": "Max/Min ↓", "degree_of_bias": "DoB ↓",
    "deo": "DEO ↓", "deodds": "DEOdds ↓",
}
OWN_TEST = "test"  # the name of a run's own test split among a study's test sets

def grouped_name(test_set: str, grouping: str) -> str:
    """The name of ``test_set`` reported over the groups of ``grouping`` (e.g. "test by race")."""
    return f"{test_set} by {grouping}"


#: Extra measurements of a finished run: ``measure(config, run_dir) -> {name: number}``.
RunMeasure = Callable[[TrainConfig, Path], Mapping[str, float]]


@dataclass(frozen=True)
class Arm:
    """One arm of a study: a name (a folder name too), the configuration keys it changes,
    and one line saying what it is for the tables."""

    name: str
    changes: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name or os.sep in self.name or self.name.startswith("."):
            raise ValueError(f"arm name {self.name!r} must be a plain folder name (it names <runs_root>/<arm>)")
        for key in ("seed", "run_dir"):
            if key in self.changes:
                raise ValueError(f"arm {self.name!r} sets {key!r}: the study sets it for every run")


@dataclass(frozen=True)
class CrossDataset:
    """A cross-dataset test set: a dataset table (and its image root) with the run's target."""

    table: str
    root: str | None = None
    split: str = "test"


@dataclass
class StudyResults:
    """Everything a study measured: one report row per (arm, seed, test set, metric, group),
    one row per run, and what produced them (:attr:`meta`)."""

    name: str
    reports: pd.DataFrame
    runs: pd.DataFrame
    meta: dict[str, Any]

    # ------------------------------------------------------------------ aggregation
    @property
    def arms(self) -> list[str]:
        return [arm["name"] for arm in self.meta["arms"]]

    @property
    def task(self) -> str:
        return self.meta["task"]

    @property
    def data(self) -> str:
        """The data the study trained on, in words (:func:`data_in_words`)."""
        return data_in_words(self.meta["data"])

    @property
    def hardware(self) -> str:
        """The machine, in words (:func:`hardware_in_words`)."""
        return hardware_in_words(self.meta["hardware"])

    def summary(self, test_set: str = OWN_TEST, metrics_: Sequence[str] | None = None) -> pd.DataFrame:
        """Mean, standard deviation (ddof=1) and number of seeds of each summary metric, one row
        per arm (in the study's order), on ``test_set``."""
        wanted = list(metrics_ or SUMMARY_METRICS[self.task])
        rows = self._summary_rows(test_set)
        rows = rows[rows["metric"].isin(wanted)]
        stats = rows.groupby(["arm", "metric"], sort=False)["value"].agg(["mean", "std", "count"])
        out = stats.rename(columns={"count": "n_seeds"}).reset_index()
        out["arm"] = pd.Categorical(out["arm"], self.arms, ordered=True)
        out["metric"] = pd.Categorical(out["metric"], wanted, ordered=True)
        return out.sort_values(["arm", "metric"]).reset_index(drop=True)

    def group_summary(self, test_set: str = OWN_TEST) -> pd.DataFrame:
        """Mean and standard deviation over seeds of each group's accuracy, one row per arm and
        group (gender task; for the attribute task, the per-gender accuracy of the mean row)."""
        rows = self._rows(test_set)
        rows = rows[(rows["metric"] == "accuracy") & (rows["group"] != metrics.ALL_GROUPS)]
        stats = rows.groupby(["arm", "group"], sort=False)["value"].agg(["mean", "std", "count"])
        out = stats.rename(columns={"count": "n_seeds"}).reset_index()
        out["arm"] = pd.Categorical(out["arm"], self.arms, ordered=True)
        return out.sort_values(["arm"], kind="stable").reset_index(drop=True)

    def differences(self, arm: str, reference: str, test_set: str = OWN_TEST,
                    metrics_: Sequence[str] | None = None, confidence: float = 0.95) -> pd.DataFrame:
        """``arm`` minus ``reference``, seed by seed, for each summary metric: the mean
        difference, its standard deviation, a ``confidence`` interval of the mean over seeds
        (Student's t, NaN with one seed), the number of seeds and how many of them favour
        ``arm`` (the direction in which the metric is better: :data:`BETTER`)."""
        from scipy import stats as scipy_stats

        for name in (arm, reference):
            if name not in self.arms:
                raise KeyError(f"study {self.name!r} has no arm {name!r}; its arms: {self.arms}")
        wanted = list(metrics_ or SUMMARY_METRICS[self.task])
        rows = self._summary_rows(test_set)
        wide = rows[rows["metric"].isin(wanted)].pivot_table(index=["metric", "seed"], columns="arm",
                                                             values="value", aggfunc="first")
        records = []
        for metric in wanted:
            if metric not in wide.index.get_level_values("metric"):
                continue
            pair = wide.loc[metric][[arm, reference]].dropna()
            diff = (pair[arm] - pair[reference]).to_numpy(dtype=float)
            n = len(diff)
            mean = float(diff.mean()) if n else math.nan
            std = float(diff.std(ddof=1)) if n > 1 else math.nan
            half = float(scipy_stats.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)) if n > 1 else math.nan
            better = BETTER.get(metric, 1)
            records.append({
                "metric": metric, "arm": arm, "reference": reference, "mean": mean, "std": std,
                "ci_low": mean - half, "ci_high": mean + half, "n_seeds": n,
                "seeds_favouring_arm": int(np.sum(better * diff > 0)),
                "seeds_favouring_reference": int(np.sum(better * diff < 0)),
                "higher_is_better": better > 0,
            })
        return pd.DataFrame.from_records(records)

    def _rows(self, test_set: str) -> pd.DataFrame:
        if test_set not in set(self.reports["test_set"]):
            raise KeyError(f"study {self.name!r} has no test set {test_set!r}; "
                           f"it has {sorted(set(self.reports['test_set']))}")
        return self.reports[self.reports["test_set"] == test_set]

    def _summary_rows(self, test_set: str) -> pd.DataFrame:
        rows = self._rows(test_set)
        return rows[rows["group"] == metrics.ALL_GROUPS]

    # ------------------------------------------------------------------ output
    def to_json(self, path: str | os.PathLike) -> Path:
        """Write the results (``reports``, ``runs``, ``meta``) as one JSON file, atomically
        (Python's JSON: an infinite Max/Min, from a group at 0 %, is kept as ``Infinity``)."""
        document = {
            "name": self.name, "meta": self.meta,
            "runs": self.runs.to_dict(orient="records"),
            "reports": self.reports.to_dict(orient="records"),
        }
        return outputs.write_json(path, document)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> StudyResults:
        """Read results written by :meth:`to_json`."""
        path = Path(path)
        try:
            document = json.loads(path.read_text())
            return cls(name=document["name"], meta=document["meta"], runs=pd.DataFrame(document["runs"]),
                       reports=pd.DataFrame(document["reports"]))
        except FileNotFoundError:
            raise FileNotFoundError(f"study results not found: {path} (run the study's script to make them)") from None
        except (json.JSONDecodeError, KeyError) as error:
            raise ValueError(f"{path} is not a study results file ({error}); regenerate it with its script") from None

    def markdown(self, test_set: str = OWN_TEST, decimals: int = 1) -> str:
        """The summary table (mean ± sd over seeds) of ``test_set``, one row per arm, with
        the training time per run and a caption saying what produced it."""
        summary = self.summary(test_set)
        wanted = [m for m in SUMMARY_METRICS[self.task] if m in set(summary["metric"])]
        # a column saying which arms trained with protected labels, when any did (finefcace.mitigation)
        protected = self.runs.get("uses_protected_labels", pd.Series(dtype=bool)).fillna(False).astype(bool)
        show_protected = bool(protected.any())
        header = ["Arm", *[_LABELS.get(m, m) for m in wanted], "Epochs run", "Training time per run", "Seeds"]
        header += ["Protected labels in training"] if show_protected else []
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        descriptions = {arm["name"]: arm.get("description") or arm["name"] for arm in self.meta["arms"]}
        for arm in self.arms:
            cells = [descriptions[arm]]
            for metric in wanted:
                row = summary[(summary["arm"] == arm) & (summary["metric"] == metric)]
                cells.append(_mean_sd(row, 3 if metric == "max_min_ratio" else decimals))
            runs = self.runs[self.runs["arm"] == arm]
            cells.append(f"{runs['epochs_run'].mean():.1f}" if len(runs) else "—")
            cells.append(_duration(runs["train_seconds"].mean()) if len(runs) else "—")
            cells.append(str(len(runs)))
            if show_protected:
                cells.append("**yes**" if protected[runs.index].any() else "no")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n\n" + self.caption(test_set) + "\n"

    def caption(self, test_set: str = OWN_TEST) -> str:
        """What produced the numbers: data, model, budget, hardware, date, and the command."""
        meta = self.meta
        base, _, grouping = test_set.partition(" by ")
        where = "its own test split" if base == OWN_TEST else f"the cross-dataset test set {base!r}"
        if grouping:
            where += f", groups by {grouping}"
        return (f"Study `{self.name}` on {where}: mean ± standard deviation over seeds {meta['seeds']} "
                f"({self.data}); {meta['model']}; {self.hardware}, {meta['date'][:10]}; "
                f"the whole study took {_duration(meta['wall_seconds'])}. Regenerate: `{meta['command']}`.")


def _mean_sd(row: pd.DataFrame, decimals: int) -> str:
    if row.empty or np.isnan(row["mean"].iloc[0]):
        return "—"
    if np.isinf(row["mean"].iloc[0]):
        return "∞ (a group at 0 %)"
    mean, std = float(row["mean"].iloc[0]), float(row["std"].iloc[0])
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}" if np.isfinite(std) else f"{mean:.{decimals}f}"


def _duration(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "—"
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _check_groupings(name: str, groupings: Mapping[str, Sequence[str]], columns: set[str]) -> None:
    unmatched = {label: list(wanted) for label, wanted in groupings.items() if not set(wanted) <= columns}
    if unmatched:
        raise ValueError(f"study {name!r}: no test set has the columns of grouping(s) {unmatched} "
                         f"(columns: {sorted(columns)})")


def code_version() -> str:
    """The commit of the checkout that runs (``git rev-parse HEAD``), marked ``+uncommitted`` when
    tracked files differ from it; ``"unknown (not a git checkout)"`` outside one. Every study's
    results record it, so a committed result names the code that made it."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=30, check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                 capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return commit + ("+uncommitted" if changed else "")


def machine_description() -> str:
    """This process's device in words (a CUDA device's name, or the CPU and torch's thread count), as
    every study records it: the same configuration and seed reproduce to the last digit only on the
    same device and thread count (:mod:`finefcace.course.reproduction`)."""
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    threads = torch.get_num_threads()
    return (f"CPU, {threads} thread{'s' if threads != 1 else ''} ({platform.processor() or platform.machine()}), "
            f"torch {torch.__version__}")


_SPLIT_WORDS = (("n_train", "training"), ("n_val", "validation"), ("n_test", "test"))


def _split_sizes(sizes: Mapping[str, int]) -> str:
    """``1,600 training, 320 validation and 640 test images``."""
    parts = [f"{int(sizes[key]):,} {word}" for key, word in _SPLIT_WORDS if key in sizes]
    return (", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else "".join(parts)) + " images"


def data_in_words(text: str) -> str:
    """A study's data description as a reader should see it: results written before the sizes
    were put in words (``SYNTHETIC faces {'n_train': 1600, ...}``) are reworded, others kept."""
    import ast
    import re

    match = re.search(r"\{[^{}]*'n_train'[^{}]*\}", text)
    if not match:
        return text
    return text[:match.start()] + f"({_split_sizes(ast.literal_eval(match.group(0)))})" + text[match.end():]


def hardware_in_words(text: str) -> str:
    """``CPU, 1 threads`` (results written before the plural was fixed) → ``CPU, 1 thread``."""
    return text.replace(", 1 threads", ", 1 thread")


def _describe_data(config: TrainConfig) -> str:
    """The data in words; synthetic faces (generated, or a table written by the generator,
    which leaves ``bias.json`` beside it) are labelled SYNTHETIC."""
    if config.synthetic is not None:
        sizes = {k: config.synthetic[k] for k in ("n_train", "n_val", "n_test") if k in config.synthetic}
        return f"SYNTHETIC faces ({_split_sizes(sizes)}), target {config.target}"
    table = Path(config.table or Path(config.root or ".") / "labels.csv")
    kind = "SYNTHETIC faces, " if (table.parent / "bias.json").is_file() else ""
    return f"{kind}table {table}, target {config.target}"


def _describe_model(config: TrainConfig, arms: Sequence[Arm]) -> str:
    resolved = config.resolved()
    weights = config.weights or "from scratch"
    varying = sorted({key for arm in arms for key in arm.changes})
    note = f" (arms change: {', '.join(varying)})" if varying else ""
    return (f"{resolved.get('backbone', config.backbone)} ({weights}), {resolved.get('input_size')} px, "
            f"batch {resolved.get('batch_size')}, {config.epochs} epochs, patience {config.patience}{note}")


def _modified(path: Path) -> float | None:
    return path.stat().st_mtime_ns if path.is_file() else None


def _training_seconds(run_dir: Path) -> float:
    """Training time of a finished run, summed from its history (so a loaded run keeps it)."""
    history = run_dir / "history.csv"
    if not history.is_file():
        return math.nan
    frame = pd.read_csv(history)
    return float(frame["epoch_seconds"].sum()) if "epoch_seconds" in frame.columns else math.nan


#: What :func:`train_study_runs` saves of ``measure(config, run_dir)`` in each run's folder.
MEASURES_FILE = "measures.json"
#: The key of :data:`MEASURES_FILE` naming the function that measured (a kept value is reused only by it).
MEASURED_BY = "measured_by"


def study_configs(name: str, base: TrainConfig | Mapping[str, Any] | str | os.PathLike, arms: Sequence[Arm],
                  seeds: Sequence[int], runs_root: str | os.PathLike
                  ) -> tuple[TrainConfig, dict[tuple[str, int], TrainConfig]]:
    """The base configuration and every arm × seed's, each checked before anything trains (an
    arm whose changes make an invalid configuration fails here, naming the arm); runs live in
    ``<runs_root>/<arm>/seed<k>``."""
    if not arms:
        raise ValueError(f"study {name!r}: give at least one arm")
    if len({arm.name for arm in arms}) != len(arms):
        raise ValueError(f"study {name!r}: arm names must be distinct, got {[arm.name for arm in arms]}")
    if not seeds:
        raise ValueError(f"study {name!r}: give at least one seed")
    base_config = load_config(base)
    configs: dict[tuple[str, int], TrainConfig] = {}
    for arm in arms:
        for seed in seeds:
            try:
                configs[arm.name, seed] = load_config(base_config, **dict(arm.changes), seed=seed,
                                                      run_dir=str(Path(runs_root) / arm.name / f"seed{seed}"))
            except ConfigError as error:
                raise ConfigError(f"study {name!r}, arm {arm.name!r}: {error}") from None
    return base_config, configs


def train_study_runs(name: str, base: TrainConfig | Mapping[str, Any] | str | os.PathLike, arms: Sequence[Arm],
                     seeds: Sequence[int], runs_root: str | os.PathLike, *,
                     cross_datasets: Mapping[str, CrossDataset] | None = None, measure: RunMeasure | None = None,
                     log: Callable[[str], Any] = print) -> None:
    """Train (or load) every arm × seed of a study without reporting it: what a parallel worker
    does, and a machine without the metrics packages (the GPU machine has no fairlearn).
    Each run is also evaluated on ``cross_datasets``; ``measure(config, run_dir)`` is saved in
    its :data:`MEASURES_FILE`; :func:`run_study` with ``saved_runs=True`` reports the runs from
    their files."""
    _, configs = study_configs(name, base, arms, seeds, runs_root)
    for (arm, seed), config in configs.items():
        log(f"[{name}] {arm}, seed {seed}: train or load {config.run_dir}")
        train_or_load(config)
        for test_name, cross in (cross_datasets or {}).items():
            _cross_predictions(config, test_name, cross)
        _measures(config, measure)


def _newer_than_model(path: Path, run_dir: Path) -> bool:
    """Was ``path`` written after the run's best model (so it describes that model)?"""
    return path.is_file() and path.stat().st_mtime >= (run_dir / BEST_CHECKPOINT).stat().st_mtime


def _cross_predictions(config: TrainConfig, test_name: str, cross: CrossDataset) -> pd.DataFrame:
    """The run's predictions on a cross-dataset test set, kept beside it
    (``predictions_cross_<name>.csv``): made once per trained model."""
    run_dir = Path(config.run_dir)
    kept = run_dir / f"predictions_cross_{test_name}.csv"
    if _newer_than_model(kept, run_dir):
        return pd.read_csv(kept)
    return evaluate_run(run_dir, split=cross.split, table=cross.table, root=cross.root, out=kept, overwrite=True,
                        device=config.device)


def _measures(config: TrainConfig, measure: RunMeasure | None) -> dict[str, float]:
    """``measure(config, run_dir)``, kept in the run's :data:`MEASURES_FILE` with the measure's
    name: made once per trained model (a ``--jobs`` worker's are reused by its parent)."""
    if measure is None:
        return {}
    run_dir = Path(config.run_dir)
    kept, which = run_dir / MEASURES_FILE, f"{measure.__module__}.{measure.__qualname__}"
    if _newer_than_model(kept, run_dir) and json.loads(kept.read_text()).get(MEASURED_BY) == which:
        return _kept_measures(run_dir)
    values = {key: float(value) for key, value in measure(config, run_dir).items()}
    outputs.write_json(kept, {MEASURED_BY: which, **values})
    return values


def _kept_measures(run_dir: Path) -> dict[str, float]:
    """The values of a run's :data:`MEASURES_FILE` (none when it has none)."""
    kept = run_dir / MEASURES_FILE
    record = json.loads(kept.read_text()) if kept.is_file() else {}
    return {key: value for key, value in record.items() if key != MEASURED_BY}


def _saved_run(run_dir: Path, cross_datasets: Mapping[str, CrossDataset]) -> tuple[dict, dict[str, pd.DataFrame]]:
    """A finished run's summary and predictions (own test split, cross-dataset sets) from its files."""
    needed = [run_dir / SUMMARY_FILE, run_dir / "predictions_test.csv",
              *(run_dir / f"predictions_cross_{name}.csv" for name in cross_datasets)]
    missing = [str(path) for path in needed if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"saved run {run_dir} lacks {missing}: copy the whole run folder back (model files "
                                f"excepted), or train the study here")
    test_sets = {OWN_TEST: pd.read_csv(run_dir / "predictions_test.csv")}
    test_sets.update({name: pd.read_csv(run_dir / f"predictions_cross_{name}.csv") for name in cross_datasets})
    return json.loads((run_dir / SUMMARY_FILE).read_text()), test_sets


def run_study(
    name: str,
    base: TrainConfig | Mapping[str, Any] | str | os.PathLike,
    arms: Sequence[Arm],
    seeds: Sequence[int],
    runs_root: str | os.PathLike,
    *,
    cross_datasets: Mapping[str, CrossDataset] | None = None,
    n_bootstrap: int = 1000,
    measure: RunMeasure | None = None,
    groupings: Mapping[str, Sequence[str]] | None = None,
    command: str = "",
    log: Callable[[str], Any] = print,
    saved_runs: bool = False,
) -> StudyResults:
    """Train (or load) every arm × seed and report each run on its test split and on
    ``cross_datasets`` (name → :class:`CrossDataset`).

    ``base`` is the configuration every arm starts from (a :class:`TrainConfig`, a dict or a
    YAML/JSON file; checked before anything trains: an arm whose changes make an invalid
    configuration fails here, naming the arm). Reports use
    :func:`finefcace.metrics.task_report` with bootstrap seed 0, so two calls on the same runs
    give the same numbers. ``measure(config, run_dir)`` adds numbers of its own to each run's
    row (e.g. attention-crop areas). ``groupings`` (gender task) adds reports over other
    groups: label → protected columns, e.g. ``{"race": ["race"], "gender": ["gender"]}`` gives
    every test set ``T`` the extra test sets ``"T by race"`` and ``"T by gender"``
    (:func:`grouped_name`), where ``T`` has those columns (CelebA has no race); a grouping no
    test set can take is an error. ``command`` is the command line that regenerates the study,
    printed in its caption. ``saved_runs=True`` reports runs trained elsewhere by
    :func:`train_study_runs` from the files they left (test and cross-dataset predictions,
    summary, history, ``measures.json``): no model is loaded or trained, so the runs of a
    machine without the metrics packages can be reported where they are installed.
    """
    base_config, configs = study_configs(name, base, arms, seeds, runs_root)
    runs_root = Path(runs_root)
    cross_datasets = dict(cross_datasets or {})
    if OWN_TEST in cross_datasets:
        raise ValueError(f"study {name!r}: {OWN_TEST!r} names the runs' own test split; call the cross-dataset set otherwise")
    task = "gender" if base_config.target == "gender" else "attribute"
    groupings = {label: list(columns) for label, columns in (groupings or {}).items()}
    if groupings and task != "gender":
        raise ValueError(f"study {name!r}: groupings apply to the gender task (target {base_config.target!r})")
    tables = [base_config.table, *(cross.table for cross in cross_datasets.values())]
    if groupings and all(table and Path(table).is_file() for table in tables):  # check before training
        _check_groupings(name, groupings, {c for table in tables for c in pd.read_csv(table, nrows=0).columns})
    started = time.perf_counter()
    reports, runs = [], []
    seen_columns: set[str] = set()
    for arm in arms:
        for seed in seeds:
            config = configs[arm.name, seed]
            run_dir = Path(config.run_dir)
            log(f"[{name}] {arm.name}, seed {seed}: {'read the saved run' if saved_runs else 'train or load'} {run_dir}")
            before = _modified(run_dir / SUMMARY_FILE)
            if saved_runs:
                summary, test_sets = _saved_run(run_dir, cross_datasets)
            else:
                result = train_or_load(config)
                summary = result.summary
                test_sets = {OWN_TEST: result.predictions if result.predictions is not None
                             else evaluate_run(run_dir, split="test", device=config.device)}
                test_sets.update({test_name: _cross_predictions(config, test_name, cross)
                                  for test_name, cross in cross_datasets.items()})
            for test_name, predictions in test_sets.items():
                seen_columns.update(predictions.columns)
                views = {test_name: None}
                views.update({grouped_name(test_name, label): columns for label, columns in groupings.items()})
                for view, columns in views.items():
                    if columns is not None and not set(columns) <= set(predictions.columns):
                        continue  # e.g. race on a test set without race labels (CelebA)
                    report = metrics.task_report(predictions, config.target, n_bootstrap=n_bootstrap, seed=0,
                                                 group_columns=columns)
                    report.insert(0, "test_set", view)
                    report.insert(0, "seed", seed)
                    report.insert(0, "arm", arm.name)
                    reports.append(report)
            row = {"arm": arm.name, "seed": seed, "run_dir": str(run_dir), "trained_now": _modified(run_dir / SUMMARY_FILE) != before,
                   "train_seconds": _training_seconds(run_dir), "epochs_run": summary.get("epochs_run"),
                   "best_epoch": summary.get("best_epoch"), "stopped_early": summary.get("stopped_early"),
                   "optimizer_steps": summary.get("steps"), "val_accuracy": summary.get("val_accuracy"),
                   "method": config.method,
                   "uses_protected_labels": bool(summary.get("uses_protected_labels", False))}
            row.update(_kept_measures(run_dir) if saved_runs else _measures(config, measure))
            runs.append(row)
    _check_groupings(name, groupings, seen_columns)
    meta = {
        "task": task, "target": base_config.target, "seeds": list(seeds),
        "arms": [{"name": arm.name, "changes": dict(arm.changes), "description": arm.description} for arm in arms],
        "cross_datasets": {k: dataclasses.asdict(v) for k, v in cross_datasets.items()},
        "groupings": groupings,
        "base_config": base_config.to_dict(), "data": _describe_data(base_config),
        "model": _describe_model(base_config, arms), "hardware": machine_description(), "code_version": code_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": time.perf_counter() - started, "n_bootstrap": n_bootstrap, "command": command,
    }
    return StudyResults(name=name, reports=pd.concat(reports, ignore_index=True), runs=pd.DataFrame(runs), meta=meta)
