"""Fairness metrics of the paper (Sec. 4.3), with bootstrap intervals and seed aggregation.

Introduced in the book chapter ``notebooks/05_evaluation.ipynb``; the definitions, each checked
against the paper's own tables (``tests/test_metrics.py`` recomputes them):

* gender task (protected: race x gender, tone x gender on synthetic data, gender on CelebA):
  per-group accuracy, overall (sample-weighted) accuracy, Max/Min = max_g acc_g / min_g acc_g,
  Degree of Bias (DoB) = standard deviation of the group accuracies (``ddof=1``, Tables 2, 3, 5, 9;
  Table 4 matches ``ddof=0``);
* attribute task (protected: gender, the 13 CelebA attributes, Tables 6-8): accuracy,
  max/min group accuracy, TPR, max/min group TPR, DEO = |dTPR|, DEOdds = |dTPR| + |dFPR| (a sum,
  "summed over all possible outcomes"; fairlearn's ``equalized_odds_difference`` is the max of
  the two gaps, so it is not used).

Per-group rates come from fairlearn's ``MetricFrame``. Bootstrap replicates are computed from
resampled per-group confusion counts with numpy (vectorised: B=1000 on 10k samples takes well
under a second); ``tests/test_metrics.py`` checks the count formulas equal ``MetricFrame``.

All reports are tidy long DataFrames, one row per (attribute,) metric and group, with columns
``[attribute,] metric, group, <group columns>, n, value, ci_low, ci_high, unit``. Rates are in
percent (the paper's unit); Max/Min is a ratio.
"""

from __future__ import annotations

import functools
import itertools
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from finefcace.errors import DataError

__all__ = [
    "SuspiciousResultWarning",
    "UndefinedMetricWarning",
    "max_min_ratio",
    "degree_of_bias",
    "group_rates",
    "gender_task_report",
    "attribute_task_report",
    "task_report",
    "aggregate_seeds",
    "PROTECTED_ATTRIBUTES",
    "protected_columns",
    "MIN_GROUP_SIZE",
    "SmallGroupWarning",
    "intersectional_report",
    "intersectional_grid",
]

PERCENT = "%"
RATIO = "ratio"
ALL_GROUPS = "all"
MEAN_OVER_ATTRIBUTES = "mean"
VALUE_COLUMNS = ("n", "value", "ci_low", "ci_high", "unit")
# the summary metrics of the attribute task, in the column order of Tables 6 and 7
ATTRIBUTE_SUMMARY_METRICS = (
    "accuracy", "max_group_accuracy", "min_group_accuracy",
    "tpr", "max_group_tpr", "min_group_tpr", "deo", "deodds",
)


class UndefinedMetricWarning(UserWarning):
    """A group's metric is undefined (no samples, no positives or no negatives): it is NaN and
    left out of Max/Min, DoB, DEO and DEOdds."""


class SuspiciousResultWarning(UserWarning):
    """The figures are computed but say more about the model than about fairness: a group whose
    accuracy is 0 (Max/Min is then infinite, as its definition gives) or one class predicted for
    every image (what a model whose outputs are NaN does)."""


# --------------------------------------------------------------------------------------------
# the two scalar fairness summaries of the gender task


def _as_group_series(group_accuracies: Any) -> pd.Series:
    if isinstance(group_accuracies, pd.Series):
        series = group_accuracies
    elif isinstance(group_accuracies, Mapping):
        series = pd.Series(dict(group_accuracies))
    else:
        series = pd.Series(np.asarray(group_accuracies).ravel())
    try:
        series = series.astype(float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"group accuracies must be numbers, got {list(series)!r}") from err
    infinite = series.index[np.isinf(series.to_numpy())]
    if len(infinite):
        raise DataError(f"group accuracies must be finite (NaN marks an undefined group), got inf for group(s) "
                        f"{', '.join(map(str, infinite))}: {list(series)!r}; they come from a broken computation")
    return series


def _warn_zero_groups(accuracies: Mapping[str, float], caller: str) -> None:
    """Max/Min of group accuracies with a 0 among them is infinite: say which group, and why it may be."""
    zero = [str(name) for name, value in accuracies.items() if value == 0]
    if zero:
        warnings.warn(f"{caller}: group(s) {', '.join(zero)} have accuracy 0, so Max/Min is infinite. A model that "
                      "predicts one class for every image (one whose outputs are NaN, say) does this; check the "
                      "predictions before reading the fairness figures", SuspiciousResultWarning, stacklevel=3)


def _defined(group_accuracies: Any, what: str) -> np.ndarray:
    series = _as_group_series(group_accuracies)
    missing = series.index[series.isna()]
    if len(missing):
        warnings.warn(
            f"{what}: group(s) {', '.join(map(str, missing))} are NaN (undefined) and left out",
            UndefinedMetricWarning, stacklevel=3)
    return series.dropna().to_numpy()


def max_min_ratio(group_accuracies: Any) -> float:
    """Max/Min accuracy ratio of the paper (Sec. 4.3): ``max_g acc_g / min_g acc_g``; fair -> 1.

    Accepts a sequence, a dict or a Series (its index names the groups). NaN groups are left
    out with a warning naming them; fewer than two defined groups gives NaN; a minimum of 0
    gives ``inf``, as the definition does, with a :class:`SuspiciousResultWarning` naming the
    group; an infinite accuracy is refused (:class:`~finefcace.errors.DataError`).
    Book: ``notebooks/05_evaluation.ipynb``.
    """
    series = _as_group_series(group_accuracies)
    _warn_zero_groups(series.dropna().to_dict(), "max_min_ratio")
    values = _defined(series, "max_min_ratio")
    return float(_max_min(values[None, :])[0])


def degree_of_bias(group_accuracies: Any, ddof: int = 1) -> float:
    """Degree of Bias (DoB, Sec. 4.3): standard deviation of the group accuracies; fair -> 0.

    ``ddof=1`` (sample std) reproduces Tables 2, 3, 5 and 9; Table 4 (two groups) matches
    ``ddof=0`` instead (``tests/test_metrics.py`` recomputes both). NaN groups are left out with a warning;
    fewer than two defined groups gives NaN. Book: ``notebooks/05_evaluation.ipynb``.
    """
    values = _defined(group_accuracies, "degree_of_bias")
    return float(_std(values[None, :], ddof)[0])


# vectorised forms over the last axis (groups), NaN = undefined group, no warnings: these also
# run on (B, G) bootstrap replicates.


def _n_defined(values: np.ndarray) -> np.ndarray:
    return np.sum(~np.isnan(values), axis=-1)


def _group_max(values: np.ndarray) -> np.ndarray:
    """Max over the defined groups (last axis); NaN where fewer than two groups are defined."""
    enough = _n_defined(values) >= 2
    if values.shape[-1] == 0:
        return np.full(values.shape[:-1], np.nan)
    return np.where(enough, np.max(np.where(np.isnan(values), -np.inf, values), axis=-1), np.nan)


def _group_min(values: np.ndarray) -> np.ndarray:
    """Min over the defined groups (last axis); NaN where fewer than two groups are defined."""
    enough = _n_defined(values) >= 2
    if values.shape[-1] == 0:
        return np.full(values.shape[:-1], np.nan)
    return np.where(enough, np.min(np.where(np.isnan(values), np.inf, values), axis=-1), np.nan)


def _max_min(values: np.ndarray) -> np.ndarray:
    high, low = _group_max(values), _group_min(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = high / low
    return np.where(low == 0, np.where(high > 0, np.inf, np.nan), ratio)


def _std(values: np.ndarray, ddof: int) -> np.ndarray:
    """Standard deviation over the defined groups (last axis); NaN with fewer than two."""
    count = _n_defined(values)
    filled = np.where(np.isnan(values), 0.0, values)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = filled.sum(axis=-1) / count
        squares = np.where(np.isnan(values), 0.0, (values - mean[..., None]) ** 2).sum(axis=-1)
        std = np.sqrt(squares / (count - ddof))
    return np.where((count >= 2) & (count > ddof), std, np.nan)


def _spread(values: np.ndarray) -> np.ndarray:
    """max - min over defined groups (= |difference| for two groups): DEO and DEOdds terms."""
    return _group_max(values) - _group_min(values)


# --------------------------------------------------------------------------------------------
# input handling


#: The protected attributes a table may carry, in report order: race (the real datasets) or
#: skin tone (the synthetic faces), then gender. The one rule for the group columns of every
#: report, figure, predictions table and course table.
PROTECTED_ATTRIBUTES: tuple[str, ...] = ("race", "tone", "gender")


def protected_columns(table: pd.DataFrame) -> list[str]:
    """The protected columns ``table`` carries, in report order (:data:`PROTECTED_ATTRIBUTES`):
    race x gender on real data, tone x gender on synthetic data, gender alone (CelebA).
    Book: ``notebooks/01_dataset_preparation.ipynb`` (group counts), ``05_evaluation.ipynb``."""
    return [c for c in PROTECTED_ATTRIBUTES if c in table.columns]


def _predictions_frame(predictions: pd.DataFrame | None, y_true: Any, y_pred: Any, groups: Any,
                       group_columns: Sequence[str] | str | None, caller: str) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """One table with y_true, y_pred and the protected columns, from a table or plain arrays."""
    if predictions is not None:
        if y_true is not None or y_pred is not None or groups is not None:
            raise ValueError(f"{caller}: pass either a predictions table or y_true/y_pred/groups, not both")
        if not isinstance(predictions, pd.DataFrame):
            raise TypeError(f"{caller}: predictions must be a pandas DataFrame (the predictions table), "
                            f"got {type(predictions).__name__}; or pass y_true=, y_pred=, groups=")
        frame = predictions
    else:
        if y_true is None or y_pred is None or groups is None:
            raise ValueError(f"{caller}: give a predictions table, or all of y_true=, y_pred= and groups=")
        if isinstance(groups, pd.DataFrame):
            group_frame = groups.reset_index(drop=True)
        elif isinstance(groups, Mapping):
            group_frame = pd.DataFrame({k: np.asarray(v) for k, v in groups.items()})
        elif isinstance(groups, pd.Series):
            group_frame = pd.DataFrame({groups.name or "protected": groups.to_numpy()})
        else:  # one unnamed protected attribute
            group_frame = pd.DataFrame({"protected": np.asarray(groups)})
        frame = group_frame.assign(y_true=np.asarray(y_true), y_pred=np.asarray(y_pred)) \
            if len(group_frame) == len(np.asarray(y_true)) == len(np.asarray(y_pred)) else None
        if frame is None:
            raise ValueError(f"{caller}: y_true ({len(np.asarray(y_true))}), y_pred ({len(np.asarray(y_pred))}) "
                             f"and groups ({len(group_frame)}) must have the same length")
        if group_columns is None:
            group_columns = tuple(group_frame.columns)
    if group_columns is None:
        group_columns = protected_columns(frame)
        if not group_columns:
            raise ValueError(
                f"{caller}: cannot tell the protected columns: the predictions table has none of "
                f"{', '.join(PROTECTED_ATTRIBUTES)} (columns: {list(frame.columns)}); pass group_columns=(...)")
    elif isinstance(group_columns, str):
        group_columns = (group_columns,)
    group_columns = tuple(group_columns)
    needed = ("y_true", "y_pred", *group_columns)
    absent = [c for c in needed if c not in frame.columns]
    if absent:
        raise ValueError(f"{caller}: the predictions table lacks column(s) {absent} "
                         f"(it has {list(frame.columns)}); the trainer writes y_true, y_pred and the "
                         "protected columns, or pass group_columns=")
    if len(frame) == 0:
        raise ValueError(f"{caller}: the predictions table is empty")
    for column in [c for c in frame.columns if str(c).startswith("prob_")]:
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        bad = frame.index[~np.isfinite(values)]
        if len(bad):
            raise DataError(f"the predictions table's {column} has {len(bad)} value(s) that are not finite numbers "
                            f"(rows {list(bad[:5])}{' ...' if len(bad) > 5 else ''}): it comes from a model whose "
                            f"outputs are NaN or inf, so its y_pred means nothing ({caller} refuses it). Predict again "
                            "with a working checkpoint")
    predicted = frame["y_pred"].dropna().unique()
    if len(predicted) == 1 and frame["y_true"].nunique() > 1:
        guess = predicted[0].item() if hasattr(predicted[0], "item") else predicted[0]
        warnings.warn(f"{caller}: every image is predicted as {guess!r}: the fairness figures describe a "
                      "constant guess", SuspiciousResultWarning, stacklevel=3)
    for column in needed:
        missing = frame.index[frame[column].isna()]
        if len(missing):
            raise ValueError(f"{caller}: column {column!r} has {len(missing)} missing value(s) (rows "
                             f"{list(missing[:5])}{' ...' if len(missing) > 5 else ''}); fill them "
                             "(e.g. race 'Undefined') or drop those rows first")
    return frame.loc[:, list(needed)].reset_index(drop=True), group_columns


def _levels(column: pd.Series) -> list:
    if isinstance(column.dtype, pd.CategoricalDtype):
        return list(column.cat.categories)
    return sorted(column.unique().tolist(), key=str)


def _expected_groups(frame: pd.DataFrame, group_columns: tuple[str, ...],
                     expected_groups: Sequence | None) -> list[tuple]:
    if expected_groups is not None:
        groups = [tuple(g) if isinstance(g, (tuple, list)) else (g,) for g in expected_groups]
        bad = [g for g in groups if len(g) != len(group_columns)]
        if bad:
            raise ValueError(f"expected_groups entries must have one value per group column "
                             f"{group_columns}; got {bad[:3]}")
        observed = set(map(tuple, frame.loc[:, list(group_columns)].drop_duplicates().itertuples(index=False)))
        unknown = observed - set(groups)
        if unknown:
            raise ValueError(f"the predictions contain group(s) {sorted(unknown, key=str)[:5]} not in "
                             "expected_groups; add them or drop those rows")
        return groups
    return list(itertools.product(*(_levels(frame[c]) for c in group_columns)))


def _group_label(group: tuple) -> str:
    return " / ".join(map(str, group))


def _encode(values: pd.Series, classes: list) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(classes)}
    return values.map(lookup).to_numpy(dtype=np.int64)


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


# --------------------------------------------------------------------------------------------
# per-group rates (fairlearn) and the same rates from confusion counts (numpy, for bootstrap)


def _metric_frame(collapsed: pd.DataFrame, group_columns: tuple[str, ...], positive_label: Any, binary: bool):
    """fairlearn's MetricFrame over the distinct (group, y_true, y_pred) rows weighted by their
    counts: the same rates as over the samples (tested), without fairlearn's per-sample Python
    loop (seconds for 13 attributes x 20k images otherwise)."""
    try:
        from fairlearn.metrics import MetricFrame, false_positive_rate, true_positive_rate
        from sklearn.metrics import accuracy_score
    except ImportError as err:  # the GPU machine has no fairlearn
        raise ImportError("finefcace.metrics needs fairlearn and scikit-learn: "
                          "pip install 'finefcace[metrics]' (or the pinned requirements.txt)") from err
    metrics: dict[str, Any] = {"accuracy": accuracy_score}
    if binary:
        metrics["tpr"] = functools.partial(true_positive_rate, pos_label=positive_label)
        metrics["fpr"] = functools.partial(false_positive_rate, pos_label=positive_label)
    weights = collapsed["weight"].to_numpy()
    return MetricFrame(metrics=metrics, y_true=collapsed["y_true"].to_numpy(), y_pred=collapsed["y_pred"].to_numpy(),
                       sensitive_features=collapsed.loc[:, list(group_columns)],
                       sample_params={name: {"sample_weight": weights} for name in metrics})


def group_rates(predictions: pd.DataFrame | None = None, *, y_true: Any = None, y_pred: Any = None,
                groups: Any = None, group_columns: Sequence[str] | str | None = None,
                positive_label: Any = 1, expected_groups: Sequence | None = None,
                rates: Sequence[str] = ("accuracy", "tpr", "fpr"), caller: str = "group_rates") -> pd.DataFrame:
    """Per-group sample counts, accuracy, TPR and FPR (fractions) from fairlearn's ``MetricFrame``.

    One row per group (index: the group columns; groups of ``expected_groups``, or of the
    product of the columns' levels, that have no sample appear as NaN rows). TPR/FPR are given
    for binary tasks only, and are NaN (not fairlearn's silent 0) where a group has no
    positives / no negatives. Each undefined value raises an ``UndefinedMetricWarning`` naming
    the group. Columns: n, n_positive, n_negative, accuracy, tpr, fpr (``rates`` chooses which
    rates are computed; the others are NaN, e.g. TPR is meaningless when the protected attribute
    is the target). ``groups`` as plain values become one column named "protected".
    Book: ``notebooks/05_evaluation.ipynb``.
    """
    frame, group_columns = _predictions_frame(predictions, y_true, y_pred, groups, group_columns, caller)
    labels = sorted(set(frame["y_true"].tolist()) | set(frame["y_pred"].tolist()), key=str)
    rates_wanted = tuple(rates)
    unknown = set(rates_wanted) - {"accuracy", "tpr", "fpr"}
    if unknown:
        raise ValueError(f"{caller}: unknown rate(s) {sorted(unknown)}; choose from accuracy, tpr, fpr")
    binary = len(labels) <= 2 and bool({"tpr", "fpr"} & set(rates_wanted))
    collapsed = frame.groupby([*group_columns, "y_true", "y_pred"], observed=True, sort=False).size() \
        .rename("weight").reset_index()
    mf = _metric_frame(collapsed, group_columns, positive_label, binary)
    by_group = mf.by_group
    if not isinstance(by_group.index, pd.MultiIndex):
        by_group.index = pd.MultiIndex.from_arrays([by_group.index], names=list(group_columns))
    wanted = _expected_groups(frame, group_columns, expected_groups)
    index = pd.MultiIndex.from_tuples(wanted, names=list(group_columns))
    rates = by_group.reindex(index).astype(float)

    def per_group(weights: pd.Series) -> pd.Series:
        summed = weights.groupby([collapsed[c] for c in group_columns], observed=True).sum()
        if not isinstance(summed.index, pd.MultiIndex):
            summed.index = pd.MultiIndex.from_arrays([summed.index], names=list(group_columns))
        return summed.reindex(index).fillna(0).astype(int)

    rates.insert(0, "n", per_group(collapsed["weight"]))
    rates.insert(1, "n_positive", per_group(collapsed["weight"].where(collapsed["y_true"] == positive_label, 0)))
    rates.insert(2, "n_negative", rates["n"] - rates["n_positive"])
    if not binary:
        rates["tpr"] = np.nan
        rates["fpr"] = np.nan
    else:
        rates.loc[rates["n_positive"] == 0, "tpr"] = np.nan
        rates.loc[rates["n_negative"] == 0, "fpr"] = np.nan
    for rate in {"tpr", "fpr"} - set(rates_wanted):
        rates[rate] = np.nan
    for group, row in rates.iterrows():
        name = ", ".join(f"{c}={v}" for c, v in zip(group_columns, group))
        if row["n"] == 0:
            warnings.warn(f"{caller}: group {name} has no samples; its metrics are NaN and it is left "
                          "out of Max/Min, DoB, DEO and DEOdds", UndefinedMetricWarning, stacklevel=2)
        elif binary and (("tpr" in rates_wanted and row["n_positive"] == 0)
                         or ("fpr" in rates_wanted and row["n_negative"] == 0)):
            kind, rate = ("positives", "TPR") if row["n_positive"] == 0 else ("negatives", "FPR")
            warnings.warn(f"{caller}: group {name} has no {kind} (y_true == {positive_label!r} "
                          f"{'never' if kind == 'positives' else 'always'}); its {rate} is NaN and it is "
                          "left out of the max/min and DEO/DEOdds of that rate",
                          UndefinedMetricWarning, stacklevel=2)
    return rates.loc[:, ["n", "n_positive", "n_negative", "accuracy", "tpr", "fpr"]]


def _rates_from_counts(cells: np.ndarray, positive: int | None) -> dict[str, np.ndarray]:
    """Accuracy/TPR/FPR (fractions) per group and overall from confusion counts
    ``cells[..., group, true, pred]``: the rates of ``group_rates`` (tested equal), vectorised over
    bootstrap replicates. 0/0 gives NaN (an undefined rate)."""
    n = cells.sum(axis=(-1, -2))
    correct = np.einsum("...kk->...", cells)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {"accuracy": correct / n, "overall_accuracy": correct.sum(axis=-1) / n.sum(axis=-1)}
        if positive is not None:
            n_pos = cells[..., positive, :].sum(axis=-1)
            true_pos = cells[..., positive, positive]
            false_pos = cells[..., :, positive].sum(axis=-1) - true_pos
            out["tpr"] = true_pos / n_pos
            out["fpr"] = false_pos / (n - n_pos)
            out["overall_tpr"] = true_pos.sum(axis=-1) / n_pos.sum(axis=-1)
            out["overall_fpr"] = false_pos.sum(axis=-1) / (n - n_pos).sum(axis=-1)
    return out


# --------------------------------------------------------------------------------------------
# bootstrap


def _resampled_counts(cell_codes: list[np.ndarray], n_cells: list[int], strata: np.ndarray | None,
                      n_bootstrap: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Cell counts of ``n_bootstrap`` resamples of the samples (with replacement).

    ``cell_codes[t][i]`` is sample i's cell in task t; all tasks share the resampled indices
    (a joint bootstrap over images). With ``strata`` the resampling is done within each stratum
    (each protected group keeps its test-set size). Chunked so memory stays ~tens of MB.
    """
    n = len(cell_codes[0])
    members = [np.flatnonzero(strata == s) for s in np.unique(strata)] if strata is not None else [np.arange(n)]
    out = [np.zeros((n_bootstrap, c), dtype=np.int64) for c in n_cells]
    chunk = max(1, 2_000_000 // max(n, 1))
    for start in range(0, n_bootstrap, chunk):
        size = min(chunk, n_bootstrap - start)
        idx = np.concatenate([m[rng.integers(0, len(m), size=(size, len(m)))] for m in members], axis=1)
        offsets = np.arange(size)[:, None]
        for t, (codes, c) in enumerate(zip(cell_codes, n_cells)):
            flat = (codes[idx] + offsets * c).ravel()
            out[t][start:start + size] = np.bincount(flat, minlength=size * c).reshape(size, c)
    return out


def _resampled_group_counts(frame: pd.DataFrame, group_columns: tuple[str, ...], groups: list[tuple],
                            classes: list, n_bootstrap: int, stratified: bool,
                            seed: int | np.random.Generator | None) -> np.ndarray:
    """Confusion counts ``(n_bootstrap, group, true, pred)`` of resampled test sets, resampling
    within each group when ``stratified`` (the gender-task and intersectional reports)."""
    k = len(classes)
    group_codes = pd.MultiIndex.from_tuples(groups, names=list(group_columns)).get_indexer(
        pd.MultiIndex.from_frame(frame.loc[:, list(group_columns)])).astype(np.int64)
    codes = (group_codes * k + _encode(frame["y_true"], classes)) * k + _encode(frame["y_pred"], classes)
    (counts,) = _resampled_counts([codes], [len(groups) * k * k], group_codes if stratified else None,
                                  n_bootstrap, _rng(seed))
    return counts.reshape(n_bootstrap, len(groups), k, k)


def _interval(replicates: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    alpha = 1.0 - confidence
    finite = np.where(np.isinf(replicates), np.nan, replicates)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns -> NaN interval
        low, high = np.nanpercentile(finite, [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=0)
    return low, high


def _check_bootstrap_args(n_bootstrap: int, confidence: float) -> None:
    if not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be a non-negative integer (0 = no intervals), got {n_bootstrap!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95; got {confidence!r}")


def _warn_partly_undefined(caller: str, what: str, replicates: np.ndarray, point: float, n_bootstrap: int) -> None:
    if np.isnan(point):
        return
    undefined = int(np.isnan(replicates).sum())
    if undefined:
        warnings.warn(f"{caller}: {what} is undefined in {undefined} of {n_bootstrap} bootstrap resamples "
                      "(no positives/negatives drawn); those resamples are left out of its interval",
                      UndefinedMetricWarning, stacklevel=3)


# --------------------------------------------------------------------------------------------
# gender task


def _gender_summaries(accuracy: np.ndarray, overall: np.ndarray, ddof: int) -> dict[str, np.ndarray]:
    percent = 100.0 * accuracy
    return {
        "overall_accuracy": 100.0 * overall,
        "max_group_accuracy": _group_max(percent),
        "min_group_accuracy": _group_min(percent),
        "max_min_ratio": _max_min(percent),
        "degree_of_bias": _std(percent, ddof),
    }


def gender_task_report(predictions: pd.DataFrame | None = None, *, y_true: Any = None, y_pred: Any = None,
                       groups: Any = None, group_columns: Sequence[str] | str | None = None, ddof: int = 1,
                       expected_groups: Sequence | None = None, n_bootstrap: int = 1000,
                       confidence: float = 0.95, stratified: bool = True,
                       seed: int | np.random.Generator | None = 0) -> pd.DataFrame:
    """Gender-task fairness report (Sec. 4.3; Tables 2-5, 9): tidy, with bootstrap intervals.

    Rows: ``accuracy`` of every group (``group`` = "White / Male", plus one column per protected
    column), then over all groups ``overall_accuracy`` (sample-weighted, not the mean of the
    groups), ``max_group_accuracy``, ``min_group_accuracy``, ``max_min_ratio`` and
    ``degree_of_bias`` (std of the group accuracies with ``ddof``). Values in percent except the
    ratio. ``group_columns`` defaults to race x gender, tone x gender or gender, whichever the
    table has. Undefined groups are NaN, warned about, and left out of the summaries. A table
    whose ``prob_*`` columns hold NaN or inf (a model with non-finite outputs) is refused
    (:class:`~finefcace.errors.DataError`); a group at accuracy 0 (Max/Min infinite) and a
    constant prediction are reported with a :class:`SuspiciousResultWarning`.

    Intervals: percentile bootstrap over test samples (``n_bootstrap`` resamples, ``seed``),
    resampling within each group when ``stratified`` (group sizes are fixed by the test set's
    design). ``n_bootstrap=0`` gives NaN intervals. Note that max/min-type statistics are biased
    upward under resampling, so for a nearly fair model the DoB interval can sit above the point
    estimate. Book: ``notebooks/05_evaluation.ipynb``.
    """
    caller = "gender_task_report"
    _check_bootstrap_args(n_bootstrap, confidence)
    frame, group_columns = _predictions_frame(predictions, y_true, y_pred, groups, group_columns, caller)
    rates = group_rates(frame, group_columns=group_columns, expected_groups=expected_groups,
                        rates=("accuracy",), caller=caller)
    wanted = list(rates.index)
    classes = sorted(set(frame["y_true"].tolist()) | set(frame["y_pred"].tolist()), key=str)
    accuracy = rates["accuracy"].to_numpy(dtype=float)
    n_total = len(frame)
    overall = float((frame["y_true"] == frame["y_pred"]).mean())
    summaries = _gender_summaries(accuracy[None, :], np.array([overall]), ddof)
    _warn_zero_groups({_group_label(g): accuracy[i] for i, g in enumerate(wanted)}, caller)
    group_low, group_high = np.full(len(wanted), np.nan), np.full(len(wanted), np.nan)
    summary_low = {m: np.nan for m in summaries}
    summary_high = {m: np.nan for m in summaries}
    if n_bootstrap:
        counts = _resampled_group_counts(frame, group_columns, wanted, classes, n_bootstrap, stratified, seed)
        reps = _rates_from_counts(counts, positive=None)
        group_low, group_high = _interval(100.0 * reps["accuracy"], confidence)
        for i, g in enumerate(wanted):
            _warn_partly_undefined(caller, f"accuracy of group {_group_label(g)}", reps["accuracy"][:, i],
                                   accuracy[i], n_bootstrap)
        rep_summaries = _gender_summaries(reps["accuracy"], reps["overall_accuracy"], ddof)
        for metric, values in rep_summaries.items():
            lo, hi = _interval(values, confidence)
            summary_low[metric], summary_high[metric] = float(lo), float(hi)
    rows = []
    for i, g in enumerate(wanted):
        rows.append({"metric": "accuracy", "group": _group_label(g), **dict(zip(group_columns, g)),
                     "n": int(rates["n"].iloc[i]), "value": 100.0 * accuracy[i],
                     "ci_low": group_low[i], "ci_high": group_high[i], "unit": PERCENT})
    for metric, value in summaries.items():
        rows.append({"metric": metric, "group": ALL_GROUPS, **{c: np.nan for c in group_columns},
                     "n": n_total, "value": float(value[0]), "ci_low": summary_low[metric],
                     "ci_high": summary_high[metric], "unit": RATIO if metric == "max_min_ratio" else PERCENT})
    report = pd.DataFrame(rows, columns=["metric", "group", *group_columns, *VALUE_COLUMNS])
    report.attrs.update(kind="gender", group_columns=group_columns, ddof=ddof, n_bootstrap=n_bootstrap,
                        confidence=confidence)
    return report


# --------------------------------------------------------------------------------------------
# attribute task


def _attribute_frames(predictions: Any, attribute: str | None) -> dict[str, pd.DataFrame]:
    if isinstance(predictions, Mapping):
        return {str(k): v for k, v in predictions.items()}
    if not isinstance(predictions, pd.DataFrame):
        raise TypeError("attribute_task_report: predictions must be a predictions DataFrame (with a "
                        f"'target' column naming each attribute) or a dict attribute -> DataFrame, got "
                        f"{type(predictions).__name__}")
    if "target" in predictions.columns:
        return {str(k): v for k, v in predictions.groupby("target", sort=False)}
    return {attribute or "attribute": predictions}


def _attribute_metrics(rates: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every attribute-task metric (percent) from group rates ``(..., G)`` and overall rates ``(...)``.

    Keys ``group_accuracy``/``group_tpr``/``group_fpr`` hold ``(..., G)``; the others ``(...)``.
    """
    accuracy, tpr, fpr = (100.0 * rates[r] for r in ("accuracy", "tpr", "fpr"))
    deo = _spread(tpr)  # |TPR_a - TPR_b|
    return {
        "group_accuracy": accuracy, "group_tpr": tpr, "group_fpr": fpr,
        "accuracy": 100.0 * rates["overall_accuracy"],
        "tpr": 100.0 * rates["overall_tpr"],
        "fpr": 100.0 * rates["overall_fpr"],
        "max_group_accuracy": _group_max(accuracy),
        "min_group_accuracy": _group_min(accuracy),
        "max_group_tpr": _group_max(tpr),
        "min_group_tpr": _group_min(tpr),
        "deo": deo,
        "deodds": deo + _spread(fpr),  # the paper's sum, not fairlearn's max
    }


def _overall_rates(frame: pd.DataFrame, positive_label: Any) -> dict[str, np.ndarray]:
    positives = (frame["y_true"] == positive_label).to_numpy()
    predicted = (frame["y_pred"] == positive_label).to_numpy()
    return {
        "overall_accuracy": np.array([(frame["y_true"] == frame["y_pred"]).mean()]),
        "overall_tpr": np.array([predicted[positives].mean() if positives.any() else np.nan]),
        "overall_fpr": np.array([predicted[~positives].mean() if (~positives).any() else np.nan]),
    }


def attribute_task_report(predictions: pd.DataFrame | Mapping[str, pd.DataFrame], *, protected: str = "gender",
                          positive_label: Any = 1, attribute: str | None = None, n_bootstrap: int = 1000,
                          confidence: float = 0.95, stratified: bool = True,
                          seed: int | np.random.Generator | None = 0) -> pd.DataFrame:
    """Attribute-task fairness report (Sec. 4.3; Tables 6-8), per attribute and mean over them.

    ``predictions``: the predictions of the binary attribute classifiers (the 13 CelebA
    attributes), one table with a ``target`` column naming each attribute, or a dict
    attribute -> table (columns y_true, y_pred and the protected column); a table without
    ``target`` is one attribute named ``attribute``. For each attribute: rows ``accuracy``,
    ``tpr`` and ``fpr`` per protected group (``group`` = "Female", ...) and over all samples
    (``group`` = "all"), then ``max_group_accuracy``, ``min_group_accuracy``, ``max_group_tpr``,
    ``min_group_tpr``, ``deo`` = |TPR_a - TPR_b| and ``deodds`` = |TPR_a - TPR_b| + |FPR_a - FPR_b|
    (the paper's sum; with more than two groups, the max - min of each rate). With several
    attributes, rows with ``attribute == "mean"`` average each metric over the attributes (what
    Tables 6 and 7 print); an attribute whose metric is undefined is left out of that mean,
    with a warning naming it.

    Bootstrap (percentile, ``n_bootstrap`` resamples, ``seed``; stratified by the protected
    group when ``stratified``): when every attribute's table has a ``path`` column over the same
    images, images are resampled jointly for all attributes, so the interval of the mean
    reflects errors correlated across attributes; otherwise each attribute is resampled on its
    own (warned). Book: ``notebooks/05_evaluation.ipynb``.
    """
    caller = "attribute_task_report"
    _check_bootstrap_args(n_bootstrap, confidence)
    frames = _attribute_frames(predictions, attribute)
    if not frames:
        raise ValueError(f"{caller}: no predictions given")
    prepared: dict[str, pd.DataFrame] = {}
    for name, table in frames.items():
        frame, _ = _predictions_frame(table, None, None, None, (protected,), f"{caller} ({name})")
        if "path" in table.columns:
            frame = frame.assign(path=table["path"].to_numpy())
        labels = set(frame["y_true"].tolist()) | set(frame["y_pred"].tolist())
        if len(labels - {positive_label}) > 1:
            raise ValueError(f"{caller} ({name}): a binary task is expected (positive label "
                             f"{positive_label!r}), but y_true/y_pred hold {sorted(labels, key=str)}")
        prepared[name] = frame
    names = list(prepared)
    levels = sorted(set().union(*(set(f[protected].tolist()) for f in prepared.values())), key=str)

    # point estimates: group rates from MetricFrame
    points: dict[str, dict[str, np.ndarray]] = {}
    group_sizes: dict[str, np.ndarray] = {}
    for name, frame in prepared.items():
        rates = group_rates(frame, group_columns=(protected,), positive_label=positive_label,
                            expected_groups=levels, caller=f"{caller} ({name})")
        group_sizes[name] = rates["n"].to_numpy()
        points[name] = _attribute_metrics({**{r: rates[r].to_numpy()[None] for r in ("accuracy", "tpr", "fpr")},
                                           **_overall_rates(frame, positive_label)})

    # bootstrap replicates: the same metrics from resampled confusion counts
    replicates: dict[str, dict[str, np.ndarray]] = {}
    if n_bootstrap:
        rng = _rng(seed)
        level_index = {v: i for i, v in enumerate(levels)}

        def cell_codes(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
            group = frame[protected].map(level_index).to_numpy(dtype=np.int64)
            truth = (frame["y_true"] == positive_label).to_numpy(dtype=np.int64)
            guess = (frame["y_pred"] == positive_label).to_numpy(dtype=np.int64)
            return (group * 2 + truth) * 2 + guess, group

        n_cells = len(levels) * 4
        joint = _joint_alignment(prepared, protected)
        if joint is None and len(names) > 1:
            warnings.warn(f"{caller}: the attribute tables do not share a 'path' column over the same "
                          "images, so each attribute is resampled independently; the interval of the "
                          "mean over attributes then ignores errors correlated across attributes",
                          UserWarning, stacklevel=2)
        counts: dict[str, np.ndarray] = {}
        if joint is not None:
            aligned = [cell_codes(prepared[name].iloc[joint[name]]) for name in names]
            drawn = _resampled_counts([code for code, _ in aligned], [n_cells] * len(names),
                                      aligned[0][1] if stratified else None, n_bootstrap, rng)
            counts = dict(zip(names, drawn))
        else:
            for name in names:
                code, group = cell_codes(prepared[name])
                (counts[name],) = _resampled_counts([code], [n_cells], group if stratified else None,
                                                    n_bootstrap, rng)
        for name in names:
            cells = counts[name].reshape(n_bootstrap, len(levels), 2, 2)
            replicates[name] = _attribute_metrics(_rates_from_counts(cells, positive=1))
            for metric, values in replicates[name].items():
                point = points[name][metric]
                if values.ndim == 1:
                    _warn_partly_undefined(caller, f"{metric} of {name}", values, float(point[0]), n_bootstrap)
                else:
                    for i, level in enumerate(levels):
                        _warn_partly_undefined(caller, f"{metric.removeprefix('group_')} of {name} for "
                                               f"{protected}={level}", values[:, i], float(point[0, i]),
                                               n_bootstrap)

    # the mean over attributes (Tables 6 and 7)
    if len(names) > 1:
        points[MEAN_OVER_ATTRIBUTES], replicates_mean = {}, {}
        for metric in points[names[0]]:
            stacked = np.stack([points[n][metric] for n in names])
            undefined = [n for n, v in zip(names, stacked) if np.isnan(v).all()]
            if undefined:
                warnings.warn(f"{caller}: {metric} is undefined for {', '.join(undefined)}; the mean over "
                              "attributes leaves them out", UndefinedMetricWarning, stacklevel=2)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN -> NaN
                points[MEAN_OVER_ATTRIBUTES][metric] = np.nanmean(stacked, axis=0)
                if n_bootstrap:
                    replicates_mean[metric] = np.nanmean(np.stack([replicates[n][metric] for n in names]), axis=0)
        if n_bootstrap:
            replicates[MEAN_OVER_ATTRIBUTES] = replicates_mean
        group_sizes[MEAN_OVER_ATTRIBUTES] = np.full(len(levels), -1)

    rows: list[dict] = []
    for name, point in points.items():
        bounds = {m: _interval(v, confidence) for m, v in replicates[name].items()} if n_bootstrap else {}
        nan_bounds = (np.full_like(point["group_accuracy"][0], np.nan),) * 2
        n_all = len(prepared[name]) if name in prepared else -1
        n_group = group_sizes[name]

        def row(metric: str, group: str, level: Any, n: int, value: float, low: float, high: float) -> dict:
            return {"attribute": name, "metric": metric, "group": group, protected: level, "n": int(n),
                    "value": float(value), "ci_low": float(low), "ci_high": float(high), "unit": PERCENT}

        for rate in ("accuracy", "tpr", "fpr"):
            low, high = bounds.get(f"group_{rate}", nan_bounds)
            low, high = np.ravel(low), np.ravel(high)
            for i, level in enumerate(levels):
                rows.append(row(rate, str(level), level, n_group[i], point[f"group_{rate}"][0, i], low[i], high[i]))
            low, high = bounds.get(rate, (np.nan, np.nan))
            rows.append(row(rate, ALL_GROUPS, np.nan, n_all, point[rate][0], low, high))
        for metric in ATTRIBUTE_SUMMARY_METRICS[1:]:
            if metric == "tpr":
                continue
            low, high = bounds.get(metric, (np.nan, np.nan))
            rows.append(row(metric, ALL_GROUPS, np.nan, n_all, point[metric][0], low, high))
    report = pd.DataFrame(rows, columns=["attribute", "metric", "group", protected, *VALUE_COLUMNS])
    # n is not meaningful for the mean over attributes: <NA>
    report["n"] = report["n"].astype("Int64").mask(report["n"] < 0)
    report.attrs.update(kind="attribute", group_columns=(protected,), n_bootstrap=n_bootstrap,
                        confidence=confidence)
    return report


def _joint_alignment(prepared: Mapping[str, pd.DataFrame], protected: str) -> dict[str, np.ndarray] | None:
    """Row orders aligning every attribute table on one image order, or None if impossible."""
    if not all("path" in f.columns for f in prepared.values()):
        return None
    reference = next(iter(prepared.values()))
    if reference["path"].duplicated().any():
        return None
    order = pd.Index(reference["path"])
    aligned = {}
    for name, frame in prepared.items():
        if len(frame) != len(order) or frame["path"].duplicated().any():
            return None
        position = pd.Index(frame["path"]).get_indexer(order)
        if (position < 0).any():
            return None
        if not np.array_equal(frame[protected].to_numpy()[position], reference[protected].to_numpy()):
            return None
        aligned[name] = position
    return aligned


# --------------------------------------------------------------------------------------------
# intersectional groups (the paper's future work, §6)

#: Smallest crossed group (cell) whose rate the intersectional report treats as estimated; a
#: rate over fewer samples (its denominator: the cell's images for accuracy, its positives for
#: TPR, its negatives for FPR) is flagged ``small``. Why 30: a rate p over n samples has a
#: binomial standard error sqrt(p (1 - p) / n), so at n = 30 the 95 % interval of an accuracy
#: near 90 % is already about ±11 points (±18 at 50 %) — as wide as the largest gap between
#: groups that the paper reports (FairFace baseline, Table 2: 82.4 vs 98.1). And a small cell
#: with no error fools the percentile bootstrap: every resample is error-free, so its interval
#: is [100, 100], while the "rule of three" says n error-free samples only bound the error rate
#: below 3 / n at 95 % (10 % for n = 30, 60 % for n = 5). Crossing attributes multiplies the
#: cells and divides their sizes, so this happens quickly (7 races x 2 genders x 2 labels = 28
#: cells). Flagged cells keep their value and interval: nothing is hidden.
MIN_GROUP_SIZE = 30


class SmallGroupWarning(UserWarning):
    """A crossed group has fewer than ``min_group_size`` samples behind one of its rates: the rate
    is reported, with its interval, and flagged ``small``."""


def _intersectional_summaries(rates: dict[str, np.ndarray], ddof: int) -> dict[str, np.ndarray]:
    """Summary metrics (percent, Max/Min a ratio) over the cells (last axis) of rates
    ``(..., G)``: the gender task's summaries plus, for binary tasks, TPR/FPR extremes and gaps."""
    accuracy = 100.0 * rates["accuracy"]
    out = {
        "overall_accuracy": 100.0 * rates["overall_accuracy"],
        "worst_group_accuracy": _group_min(accuracy),
        "best_group_accuracy": _group_max(accuracy),
        "max_min_ratio": _max_min(accuracy),
        "degree_of_bias": _std(accuracy, ddof),
    }
    if "tpr" in rates:
        tpr, fpr = 100.0 * rates["tpr"], 100.0 * rates["fpr"]
        out.update({
            "worst_group_tpr": _group_min(tpr),
            "worst_group_fpr": _group_max(fpr),
            "tpr_gap": _spread(tpr),  # DEO over the cells: max - min TPR
            "fpr_gap": _spread(fpr),
            "equalized_odds_gap": _spread(tpr) + _spread(fpr),  # the paper's DEOdds sum over the cells
        })
    return out


def _check_crossed_columns(predictions: Any, group_columns: Any, caller: str) -> tuple[str, ...]:
    if isinstance(group_columns, str):
        group_columns = (group_columns,)
    if group_columns is None or not len(group_columns):
        raise ValueError(f"{caller}: name the columns to cross, e.g. group_columns=('race', 'gender') or "
                         "('gender', 'y_true') for gender x target attribute")
    group_columns = tuple(group_columns)
    if len(set(group_columns)) != len(group_columns):
        raise ValueError(f"{caller}: group_columns {list(group_columns)} name a column twice")
    if {"y_true", "y_pred"} & set(group_columns):
        raise ValueError(f"{caller}: y_true/y_pred cannot be crossed group columns (they are the labels the "
                         "rates compare); to cross with the target attribute use 'label_true', the true "
                         "class name the trainer writes beside y_true")
    if isinstance(predictions, pd.DataFrame):
        absent = [c for c in group_columns if c not in predictions.columns]
        if absent:
            raise ValueError(f"{caller}: crossed group column(s) {absent} not in the predictions table; "
                             f"available columns: {list(predictions.columns)}")
    return group_columns


def intersectional_report(predictions: pd.DataFrame | None = None, *, group_columns: Sequence[str] | str,
                          y_true: Any = None, y_pred: Any = None, groups: Any = None, positive_label: Any = 1,
                          min_group_size: int = MIN_GROUP_SIZE, ddof: int = 1, n_bootstrap: int = 1000,
                          confidence: float = 0.95, stratified: bool = True,
                          seed: int | np.random.Generator | None = 0) -> pd.DataFrame:
    """Fairness over crossed groups (intersectional analysis, the paper's future work §6).

    The cells are every combination of the values of ``group_columns`` — race x gender;
    gender x target attribute (cross with ``"label_true"``, the true class name the trainer
    writes in the predictions table); any
    columns of the predictions table — and their rates come from fairlearn's ``MetricFrame``
    with several sensitive features (:func:`group_rates`). Rows, tidy like
    :func:`gender_task_report`'s:

    * per cell (``group`` = "Black / Female", one column per crossed column): ``accuracy``
      and, for a binary task (labels ``positive_label`` and one other), ``tpr`` and ``fpr``;
      ``n`` is the rate's denominator (the cell's images, its positives, its negatives);
    * over the cells: ``overall_accuracy`` (sample-weighted), ``worst_group_accuracy`` and
      ``best_group_accuracy`` (``group`` names the cell), ``max_min_ratio``, ``degree_of_bias``
      (std of the cell accuracies, ``ddof``), and for a binary task ``worst_group_tpr`` (lowest),
      ``worst_group_fpr`` (highest), ``tpr_gap`` and ``fpr_gap`` (max - min over the cells, DEO's
      generalisation) and ``equalized_odds_gap`` (their sum, as the paper's DEOdds).

    When the true label is constant within every cell (the target is one of the crossed columns,
    e.g. gender x Smiling on the Smiling task, or race x gender on the gender task), TPR and FPR
    are not reported per cell: each cell's accuracy already is the TPR (positive cells) or
    1 - FPR (negative cells) of its group; ``report.attrs["target_crossed"]`` says so.

    Small cells: a rate over fewer than ``min_group_size`` samples (:data:`MIN_GROUP_SIZE`, whose
    docstring gives the reasoning) is flagged in the ``small`` column, with its value and its
    interval still shown, and one :class:`SmallGroupWarning` lists them (an empty cell, n = 0, is
    flagged too; its rates are NaN and already warned about). A summary is flagged
    when it rests on a small cell (the worst/best cell itself; either extreme for Max/Min; any
    cell for DoB and the gaps). Empty cells are NaN, warned about and left out of the summaries.

    Intervals: percentile bootstrap (``n_bootstrap`` resamples, ``seed``), resampling within
    each cell when ``stratified``; the interval of ``worst_group_accuracy`` is that of the lowest
    cell accuracy of each resample, whichever cell it is. A crossed column the table lacks is an
    error naming the available columns. Book: ``notebooks/05_evaluation.ipynb``.
    """
    caller = "intersectional_report"
    _check_bootstrap_args(n_bootstrap, confidence)
    if not isinstance(min_group_size, (int, np.integer)) or min_group_size < 1:
        raise ValueError(f"{caller}: min_group_size must be a positive integer, got {min_group_size!r}")
    group_columns = _check_crossed_columns(predictions, group_columns, caller)
    frame, group_columns = _predictions_frame(predictions, y_true, y_pred, groups, group_columns, caller)
    classes = sorted(set(frame["y_true"].tolist()) | set(frame["y_pred"].tolist()), key=str)
    binary = len(set(classes) - {positive_label}) <= 1 and positive_label in classes
    cells = frame.groupby(list(group_columns), observed=True, sort=False)["y_true"].nunique()
    target_crossed = bool(binary and (cells <= 1).all())
    wanted_rates = ("accuracy", "tpr", "fpr") if binary and not target_crossed else ("accuracy",)
    rates = group_rates(frame, group_columns=group_columns, positive_label=positive_label,
                        rates=wanted_rates, caller=caller)
    cell_index = list(rates.index)
    point_rates = {r: rates[r].to_numpy(dtype=float)[None] for r in wanted_rates}
    point_rates["overall_accuracy"] = np.array([(frame["y_true"] == frame["y_pred"]).mean()])
    summaries = _intersectional_summaries(point_rates, ddof)
    denominators = {"accuracy": rates["n"].to_numpy(), "tpr": rates["n_positive"].to_numpy(),
                    "fpr": rates["n_negative"].to_numpy()}

    nan_cells = np.full(len(cell_index), np.nan)
    cell_bounds = {r: (nan_cells, nan_cells) for r in wanted_rates}
    summary_bounds = {m: (np.nan, np.nan) for m in summaries}
    if n_bootstrap:
        counts = _resampled_group_counts(frame, group_columns, cell_index, classes, n_bootstrap, stratified, seed)
        positive = classes.index(positive_label) if "tpr" in wanted_rates else None
        replicates = _rates_from_counts(counts, positive=positive)
        for rate in wanted_rates:
            cell_bounds[rate] = tuple(np.ravel(b) for b in _interval(100.0 * replicates[rate], confidence))
            for i, cell in enumerate(cell_index):
                _warn_partly_undefined(caller, f"{rate} of cell {_group_label(cell)}", replicates[rate][:, i],
                                       point_rates[rate][0, i], n_bootstrap)
        for metric, values in _intersectional_summaries(replicates, ddof).items():
            low, high = _interval(values, confidence)
            summary_bounds[metric] = (float(low), float(high))

    small = {r: denominators[r] < min_group_size for r in wanted_rates}
    flagged = sorted({(_group_label(cell), r, int(denominators[r][i])) for r in wanted_rates
                      for i, cell in enumerate(cell_index) if small[r][i] and denominators[r][i] > 0})
    if flagged:
        listing = "; ".join(f"{cell} {rate} (n={n})" for cell, rate, n in flagged[:8])
        warnings.warn(f"{caller}: {len(flagged)} rate(s) rest on fewer than min_group_size={min_group_size} "
                      f"samples and are flagged small: {listing}{' ...' if len(flagged) > 8 else ''}. "
                      "Their values and intervals are shown; read them as rough", SmallGroupWarning, stacklevel=2)

    rows = []
    for rate in wanted_rates:
        low, high = cell_bounds[rate]
        for i, cell in enumerate(cell_index):
            rows.append({"metric": rate, "group": _group_label(cell), **dict(zip(group_columns, cell)),
                         "n": int(denominators[rate][i]), "value": 100.0 * point_rates[rate][0, i],
                         "ci_low": float(low[i]), "ci_high": float(high[i]), "unit": PERCENT,
                         "small": bool(small[rate][i])})
    defined = {r: ~np.isnan(point_rates[r][0]) for r in wanted_rates}
    any_small = {r: bool((small[r] & defined[r]).any()) for r in wanted_rates}
    extremes = {"worst_group_accuracy": ("accuracy", np.nanargmin), "best_group_accuracy": ("accuracy", np.nanargmax),
                "worst_group_tpr": ("tpr", np.nanargmin), "worst_group_fpr": ("fpr", np.nanargmax)}
    n_total = len(frame)
    for metric, value in summaries.items():
        value = float(value[0])
        cell_values = {c: np.nan for c in group_columns}
        label, flag = ALL_GROUPS, False
        if metric in extremes and not np.isnan(value):
            rate, pick = extremes[metric]
            i = int(pick(point_rates[rate][0]))
            label, flag = _group_label(cell_index[i]), bool(small[rate][i])
            cell_values = dict(zip(group_columns, cell_index[i]))
        elif metric == "max_min_ratio" and not np.isnan(value):
            accuracy = point_rates["accuracy"][0]
            flag = bool(small["accuracy"][np.nanargmin(accuracy)] or small["accuracy"][np.nanargmax(accuracy)])
        elif metric in ("degree_of_bias",):
            flag = any_small["accuracy"]
        elif metric in ("tpr_gap", "fpr_gap", "equalized_odds_gap"):
            flag = any_small["tpr"] if metric == "tpr_gap" else (
                any_small["fpr"] if metric == "fpr_gap" else any_small["tpr"] or any_small["fpr"])
        low, high = summary_bounds[metric]
        rows.append({"metric": metric, "group": label, **cell_values, "n": n_total, "value": value,
                     "ci_low": low, "ci_high": high, "unit": RATIO if metric == "max_min_ratio" else PERCENT,
                     "small": flag})
    report = pd.DataFrame(rows, columns=["metric", "group", *group_columns, *VALUE_COLUMNS, "small"])
    report.attrs.update(kind="intersectional", group_columns=group_columns, min_group_size=int(min_group_size),
                        target_crossed=target_crossed, rates=wanted_rates, ddof=ddof, n_bootstrap=n_bootstrap,
                        confidence=confidence)
    return report


def intersectional_grid(report: pd.DataFrame, metric: str = "accuracy", value: str = "value") -> pd.DataFrame:
    """One per-cell metric of :func:`intersectional_report` as a grid: rows = the levels of the
    first crossed column, columns = those of the others (tuples when more than one).

    ``value``: "value", "ci_low", "ci_high", "ci_width" (= ci_high - ci_low), "n" or "small".
    Book: ``notebooks/05_evaluation.ipynb``; :func:`finefcace.plots.intersectional_heatmap` draws it.
    """
    if report.attrs.get("kind") != "intersectional":
        raise ValueError("intersectional_grid needs a report of intersectional_report (report.attrs['kind'] "
                         f"is {report.attrs.get('kind')!r})")
    columns = list(report.attrs["group_columns"])
    cells = report[(report["metric"] == metric) & (report["group"] != ALL_GROUPS)
                   & ~report["metric"].str.startswith(("worst_", "best_"))]
    if cells.empty:
        raise ValueError(f"intersectional_grid: the report has no per-cell {metric!r} rows; per-cell metrics: "
                         f"{list(report.attrs['rates'])}")
    choices = ("value", "ci_low", "ci_high", "ci_width", "n", "small")
    if value not in choices:
        raise ValueError(f"intersectional_grid: value={value!r} is not one of {list(choices)}")
    data = cells.assign(ci_width=cells["ci_high"] - cells["ci_low"])
    if len(columns) == 1:
        return data.set_index(columns[0])[[value]].rename(columns={value: metric})
    across = columns[1] if len(columns) == 2 else "cell"
    if len(columns) > 2:
        data = data.assign(cell=list(zip(*(data[c] for c in columns[1:]))))
    grid = data.pivot(index=columns[0], columns=across, values=value)
    return grid


# --------------------------------------------------------------------------------------------
# several training seeds


def task_report(predictions: pd.DataFrame, target: str, *, n_bootstrap: int = 1000, seed: int = 0,
                group_columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The paper's report for a task (§4.3): gender classification — accuracy per protected
    group, Max/Min, DoB (:func:`gender_task_report`; ``group_columns`` other than the default
    race × gender, e.g. race alone); an attribute — accuracy, TPR, DEO, DEOdds across genders
    (:func:`attribute_task_report`). Book: ``notebooks/05_evaluation.ipynb``."""
    if target == "gender":
        return gender_task_report(predictions, group_columns=group_columns, n_bootstrap=n_bootstrap, seed=seed)
    if group_columns is not None:
        raise ValueError(f"task_report: group_columns apply to the gender task; an attribute ({target!r}) is "
                         f"reported across genders")
    return attribute_task_report({target: predictions}, protected="gender", n_bootstrap=n_bootstrap, seed=seed)


def aggregate_seeds(reports: Sequence[pd.DataFrame] | Mapping[Any, pd.DataFrame]) -> pd.DataFrame:
    """Mean and standard deviation (ddof=1) of every metric over runs with different seeds.

    ``reports``: reports of the same kind and rows (a list, or a dict seed -> report). Returns the
    report's key columns plus ``value`` (the mean over seeds), ``std``, ``n_seeds`` (seeds where
    the metric is defined), ``n`` and ``unit``: print as ``value ± std``.
    Book: ``notebooks/05_evaluation.ipynb``.
    """
    items = list(reports.items()) if isinstance(reports, Mapping) else list(enumerate(reports))
    if not items:
        raise ValueError("aggregate_seeds: no reports given")
    keys = [c for c in items[0][1].columns if c not in VALUE_COLUMNS]
    first_keys = items[0][1].loc[:, keys].astype(str)
    for seed, report in items[1:]:
        if list(report.columns) != list(items[0][1].columns) or len(report) != len(items[0][1]) or \
                not report.loc[:, keys].astype(str).reset_index(drop=True).equals(first_keys.reset_index(drop=True)):
            raise ValueError(f"aggregate_seeds: the report of seed {seed!r} does not have the same rows/columns "
                             f"as the report of seed {items[0][0]!r}; build them with the same arguments")
    values = np.stack([r["value"].to_numpy(dtype=float) for _, r in items])
    finite = np.where(np.isinf(values), np.nan, values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(finite, axis=0)
        std = np.nanstd(finite, axis=0, ddof=1) if len(items) > 1 else np.full(len(mean), np.nan)
    out = items[0][1].loc[:, keys].copy()
    out["n"] = items[0][1]["n"].to_numpy()
    out["value"] = mean
    out["std"] = std
    out["n_seeds"] = np.sum(~np.isnan(finite), axis=0)
    out["unit"] = items[0][1]["unit"].to_numpy()
    out.attrs.update(items[0][1].attrs, seeds=[s for s, _ in items])
    return out.reset_index(drop=True)
