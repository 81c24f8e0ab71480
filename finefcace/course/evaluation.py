"""Our results beside the paper's: which table to compare with, the report, our rows.

Paper §4.3 (evaluation metrics) and §5 (Tables 2-9). Introduced in
``notebooks/05_evaluation.ipynb``: the paper table a dataset and task sit beside, the task's
report (:func:`finefcace.metrics.task_report`), the paper's own summaries recomputed from its group
accuracies, and our rows picked out of :mod:`finefcace.course.paper_results`' side-by-side tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "our_rows",
    "paper_summaries_recomputed",
    "paper_table_key",
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
    paper prints, beside the values it prints (the check of ``spec/metrics.md``: sample
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


def summary_columns(table: "pd.DataFrame") -> list:
    """The Max/Min, Overall and DoB columns of a ``paper_results.side_by_side`` gender table."""
    return [c for c in table.columns if (c[0] if isinstance(c, tuple) else c) in ("Max/Min", "Overall", "DoB")]


def our_rows(table: "pd.DataFrame", label: str) -> "pd.DataFrame":
    """Our rows of a side-by-side table, without the columns we have no value for (e.g. the
    paper's FairFace groups on synthetic data)."""
    ours = table.loc[[label]]
    filled = ours.apply(lambda column: column.map(lambda v: v not in ("", None) and v == v)).any()
    return ours.loc[:, filled]
