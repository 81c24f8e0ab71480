"""Our results beside the paper's: which table to compare with, the report, our rows.

Paper §4.3 (evaluation metrics) and §5 (Tables 2-9). Introduced in
``notebooks/05_evaluation.ipynb``: the paper table a dataset and task sit beside, the task's
report (:func:`finefcace.metrics.task_report`), the paper's own summaries recomputed from its group
accuracies, and our rows picked out of :mod:`finefcace.course.paper_results`' side-by-side tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

#: One vocabulary in the book: "ours" is always this book's runs; the paper's own model is
#: "FineFACE (paper)" (Table 7 prints it as "FineFACE [ours]", the authors' "ours").
PAPER_FINEFACE = "FineFACE (paper)"
OURS = "ours"

__all__ = [
    "PAPER_FINEFACE",
    "decomposition_figure",
    "gender_by_true_class",
    "group_table",
    "our_rows",
    "paper_summaries_recomputed",
    "paper_summaries_in_words",
    "paper_table_key",
    "report_table",
    "summary_columns",
]


def paper_table_key(dataset: str, backbone: str | None = None, target: str = "gender") -> tuple[str, str | None]:
    """The paper table our results on ``dataset`` sit beside, and the dataset name it uses:
    gender — Table 2 (FairFace, ResNet-50; also the layout for the synthetic faces), Table 9
    (FairFace, DenseNet-121), Table 3 (UTKFace, LFWA+), Table 4 (CelebA); an attribute target —
    Table 6. Book: ``notebooks/05_evaluation.ipynb``."""
    if target != "gender":
        return "table6", None
    if dataset == "utkface":
        return "table3", "UTKFace"
    if dataset == "lfwa":
        return "table3", "LFWA+"
    if dataset == "celeba":
        return "table4", None
    return ("table9" if (backbone or "").startswith("densenet") else "table2"), None


def paper_summaries_recomputed(tables: Iterable[str] = ("table2", "table5", "table9")) -> "pd.DataFrame":
    """Max/Min and DoB recomputed by :mod:`finefcace.metrics` from the group accuracies the
    paper prints, beside the values it prints (the denominator that reproduces them: sample
    standard deviation, ``ddof=1``). Book: ``notebooks/05_evaluation.ipynb``."""
    import pandas as pd

    from finefcace import metrics
    from finefcace.course import paper_results

    rows = []
    for key in tables:
        values = paper_results.paper_values(key)
        for method, part in values.groupby("method", sort=False):
            accuracies = part.loc[part["metric"] == "accuracy", "value"].to_numpy(float)
            printed = dict(zip(part["metric"], part["value"]))
            rows.append({"table": key, "method": method, "groups": len(accuracies),
                         "Max/Min printed": printed.get("max_min_ratio"),
                         "Max/Min computed": round(metrics.max_min_ratio(accuracies), 3),
                         "DoB printed": printed.get("degree_of_bias"),
                         "DoB computed": round(metrics.degree_of_bias(accuracies), 2)})
    return pd.DataFrame(rows).set_index(["table", "method"])


def _printed_decimals(value: float) -> int:
    """Decimals the paper printed a summary with: at least two (its tables print Max/Min and DoB
    as ``1.18``, ``0.60``; the stored float loses a trailing zero), three where stored
    (``1.067``)."""
    text = repr(float(value))
    return max(2, len(text.split(".")[1]) if "." in text and "e" not in text else 0)


def paper_summaries_in_words(tables: Iterable[str] = ("table2", "table5", "table9"), close: float = 2.0) -> str:
    """How the paper's printed Max/Min and DoB compare with their recomputation from its printed
    group accuracies (:func:`paper_summaries_recomputed`), in one generated paragraph: how many
    agree to the printed digits, which differ by at most ``close`` units of the last printed
    digit (what rounding of the printed inputs can explain), and which differ by more — each
    named, a Max/Min below 1 called what it is (the best group's accuracy over the worst's
    cannot be below 1). Book: ``notebooks/05_evaluation.ipynb``."""
    from finefcace import metrics
    from finefcace.course import paper_results

    agree, near, far = 0, [], []
    for key in tables:
        values = paper_results.paper_values(key)
        number = paper_results.paper_table(key).number
        for method, part in values.groupby("method", sort=False):
            accuracies = part.loc[part["metric"] == "accuracy", "value"].to_numpy(float)
            printed = dict(zip(part["metric"], part["value"]))
            computed = {"max_min_ratio": metrics.max_min_ratio(accuracies),
                        "degree_of_bias": metrics.degree_of_bias(accuracies)}
            for metric, name in (("max_min_ratio", "Max/Min"), ("degree_of_bias", "DoB")):
                if printed.get(metric) is None:
                    continue
                decimals = _printed_decimals(printed[metric])
                units = abs(computed[metric] - printed[metric]) * 10 ** decimals
                where = (f"Table {number}'s {method} {name} (printed {printed[metric]:.{decimals}f}, computed "
                         f"{computed[metric]:.{decimals + 1}f})")
                if units <= 0.5:
                    agree += 1
                elif units <= close:
                    near.append(where)
                else:
                    typo = metric == "max_min_ratio" and printed[metric] < 1
                    far.append(where + (": a ratio of the best group to the worst cannot be below 1, so the printed "
                                        "value is a typo" if typo else ""))
    total = agree + len(near) + len(far)
    text = f"Of the paper's {total} printed summaries, {agree} agree with their recomputation to the printed digits"
    if near:
        text += (f"; {len(near)} differ by at most {close:g} in the last printed digit, small enough for the rounding "
                 f"of the printed values to explain — " + "; ".join(near))
    if far:
        text += f"; {len(far)} differ by more — " + "; ".join(far)
    return text + "."


def report_table(report: "pd.DataFrame", decimals: int = 2) -> "pd.DataFrame":
    """A task report of :mod:`finefcace.metrics` as the chapter shows it: rounded, and with words
    where the report has no value — a summary row (Max/Min, DoB, ...) is over every group, so its
    protected columns say "all groups"; an interval not computed (``n_bootstrap`` 0) says so.
    Book: ``notebooks/05_evaluation.ipynb``."""
    from finefcace.metrics import ALL_GROUPS

    table = report.round(decimals)
    summary = table["group"] == ALL_GROUPS
    columns = [c for c in table.columns if c not in ("metric", "group", "n", "value", "ci_low", "ci_high", "unit")]
    table = table.astype({c: object for c in columns})
    for column in columns:
        table.loc[summary & table[column].isna(), column] = "all groups"
    for column in ("ci_low", "ci_high"):
        if column in table.columns and table[column].isna().any():
            table[column] = table[column].astype(object).where(table[column].notna(), "not computed")
    return table


def gender_by_true_class(predictions: "pd.DataFrame", attribute: str, *, n_bootstrap: int = 1000) -> "pd.DataFrame":
    """The paper's suggested crossing for an attribute classifier (§6): gender × the image's
    true class, each cell's accuracy being that gender's TPR (true class "yes") or 1 − FPR
    ("no"). The true class is named in words (``Blond Hair: yes``), not as the label 0/1 the
    predictions hold, so the heatmap's axis reads as classes. Book: ``notebooks/05_evaluation.ipynb``."""
    from finefcace.metrics import intersectional_report

    words = attribute.replace("_", " ")
    names = {0: f"{words}: no", 1: f"{words}: yes"}

    def name(label) -> str:  # 0, 1, 0.0, "1": the attribute's labels; anything else is already a name
        try:
            number = float(label)
        except (TypeError, ValueError):
            return str(label)
        return names.get(int(number), str(label)) if number.is_integer() else str(label)

    true_class = [name(v) for v in predictions["label_true"]]
    frame = predictions.assign(**{"true class": true_class})
    return intersectional_report(frame, group_columns=("gender", "true class"), n_bootstrap=n_bootstrap)


def summary_columns(table: "pd.DataFrame") -> list:
    """The Max/Min, Overall and DoB columns of a ``paper_results.side_by_side`` gender table."""
    return [c for c in table.columns if (c[0] if isinstance(c, tuple) else c) in ("Max/Min", "Overall", "DoB")]


def our_rows(table: "pd.DataFrame", label: str) -> "pd.DataFrame":
    """Our rows of a side-by-side table, without the columns we have no value for (e.g. the
    paper's FairFace groups on synthetic data)."""
    ours = table.loc[[label]]
    filled = ours.apply(lambda column: column.map(lambda v: v not in ("", None) and v == v)).any()
    return ours.loc[:, filled]


def group_table(table: "pd.DataFrame", label: str) -> "pd.DataFrame":
    """Our per-group results of a side-by-side gender table, as a tall table that fits the
    page: one row per summary (Max/Min, Overall, DoB — first) and per group ("tone_1 F"), one
    column per method. Book: ``notebooks/05_evaluation.ipynb``."""
    ours = our_rows(table, label)
    summaries = summary_columns(ours)
    ours = ours[summaries + [c for c in ours.columns if c not in summaries]]
    tall = ours.T
    tall.columns = [method for _, method in tall.columns] if tall.columns.nlevels > 1 else list(tall.columns)
    tall.index = [" ".join(str(part) for part in (c if isinstance(c, tuple) else (c,)) if part) for c in tall.index]
    tall.index.name = "group or summary"
    return tall


def decomposition_figure(attribute_reports: Mapping[str, "pd.DataFrame"], label: str, description: str = "") -> "Figure":
    """The paper's Fig. 4 with its Table 7 methods and our two models: each method's change from
    its own source's baseline (the paper's from its single-task baseline, ours from our
    baseline), named with one vocabulary — the paper's FineFACE is "FineFACE (paper)", this
    book's is "FineFACE (ours)". ``label`` names our rows in the table (``side_by_side``);
    ``description`` (what produced them) goes in the title. Book: ``notebooks/05_evaluation.ipynb``."""
    from finefcace import plots
    from finefcace.course import paper_results

    table7 = paper_results.side_by_side(attribute_reports, "table7", label=label)
    paper_name = next(m for m in paper_results.paper_table("table7").methods if m.startswith("FineFACE"))
    table7 = table7.rename(columns={label: OURS, paper_name: PAPER_FINEFACE})
    figure = plots.fairness_decomposition(table7, baseline=("Baseline single task", "Baseline"),
                                          highlight=(PAPER_FINEFACE, f"FineFACE ({OURS})"))
    figure.suptitle(f"Paper (Table 7) and ours{f' ({description})' if description else ''}: "
                    "each against its own baseline", fontsize=9)
    return figure
