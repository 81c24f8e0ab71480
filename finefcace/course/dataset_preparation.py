"""The course's dataset table: made once, reused by every chapter, counted by group.

Paper §4.1 (datasets and training protocol). Introduced in
``notebooks/01_dataset_preparation.ipynb``: the synthetic faces are rendered once
(:mod:`finefcace.sources.synthetic`), a real dataset's official layout is read by its adapter
(:mod:`finefcace.sources.adapters`; ``python -m data_prep`` checks a download) and its table written
once; the group counts show what the fairness metrics will break results down by.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finefcace.course.parameters import ParameterError
from finefcace.metrics import protected_columns
from finefcace.plots import new_figure

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "SYNTHETIC_ROOT",
    "TABLES_DIR",
    "group_counts",
    "prepare_dataset",
    "table_location",
    "table_montage",
]


SYNTHETIC_ROOT = "data/synthetic"


TABLES_DIR = "data/tables"


def table_location(dataset: str, root: str | None, table: str | None) -> Path:
    """Where a dataset's table lives: ``table`` if given; ``<root>/labels.csv`` for synthetic
    data (as the trainer reads it); ``data/tables/<dataset>.csv`` for a real dataset."""
    if table is not None:
        return Path(table)
    if dataset == "synthetic":
        return Path(root or SYNTHETIC_ROOT) / "labels.csv"
    return Path(TABLES_DIR) / f"{dataset}.csv"


def _synthetic_is_current(root: Path, options: Mapping[str, Any]) -> bool:
    """Does ``root`` hold the synthetic set ``options`` describes (split sizes, image size,
    seed, bias knobs)? Compared with the ``bias.json`` and ``labels.csv`` the generator wrote."""
    import dataclasses

    import pandas as pd

    from finefcace.sources.synthetic import resolve_bias

    recorded_file, table_file = root / "bias.json", root / "labels.csv"
    if not (recorded_file.is_file() and table_file.is_file()):
        return False
    recorded = json.loads(recorded_file.read_text())
    counts = pd.read_csv(table_file, usecols=["split"])["split"].value_counts().to_dict()
    if any(counts.get(split, 0) != int(options.get(f"n_{split}", 0)) for split in ("train", "val", "test")):
        return False
    knobs = {k: v for k, v in options.items() if k not in ("n_train", "n_val", "n_test", "size", "seed", "workers", "bias")}
    expected = {"size": int(options.get("size", 64)), "seed": int(options.get("seed", 0)),
                **dataclasses.asdict(resolve_bias(options.get("bias"), **knobs))}
    plain = lambda v: [float(x) for x in v] if isinstance(v, (list, tuple)) else v  # noqa: E731
    return all(plain(recorded.get(key)) == plain(value) for key, value in expected.items())


def prepare_dataset(dataset: str, root: str | None, table: str | None = None,
                    synthetic: Mapping[str, Any] | None = None, *,
                    input_size: int | None = None) -> tuple["pd.DataFrame", Path]:
    """The course's dataset table, made once and reused (chapter 01). Returns (table, path).

    - ``dataset="synthetic"``: render :func:`finefcace.sources.synthetic.generate_synthetic` into
      ``root`` with the ``synthetic`` options, unless ``root`` already holds exactly that set
      (same split sizes, image size, seed and bias knobs): then it is read back. The image
      size defaults to ``input_size``, as in the trainer.
    - a real dataset (``fairface``, ``utkface``, ``lfwa``, ``celeba``): its adapter
      (:func:`finefcace.sources.adapters.dataset_table`) reads the official layout under ``root`` and
      the table is written to ``table`` (default ``data/tables/<dataset>.csv``); an existing
      table is read back.

    Book: ``notebooks/01_dataset_preparation.ipynb``.
    """
    from finefcace.sources.table import load_table, save_table

    path = table_location(dataset, root, table)
    if dataset == "synthetic":
        if synthetic is None:
            raise ParameterError("dataset 'synthetic' needs the 'synthetic' parameter "
                                 "(e.g. synthetic: {n_train: 1600, n_val: 320, n_test: 640, size: 64, seed: 0})")
        folder = Path(root or SYNTHETIC_ROOT)
        if path != folder / "labels.csv":
            raise ParameterError(f"for synthetic data the table is <root>/labels.csv ({folder / 'labels.csv'}); "
                                 f"leave 'table' unset (got {str(path)!r})")
        options = dict(synthetic)
        if input_size is not None:
            options.setdefault("size", input_size)
        if not _synthetic_is_current(folder, options):
            from finefcace.sources.synthetic import generate_synthetic

            generate_synthetic(folder, **options)
        return load_table(path), path
    if path.is_file():
        return load_table(path), path
    if root is None:
        raise ParameterError(f"dataset {dataset!r} needs 'root': the folder holding its official layout")
    from finefcace.sources.adapters import dataset_table

    frame = dataset_table(dataset, root)
    save_table(frame, path)
    return frame, path


def group_counts(table: "pd.DataFrame", columns: Iterable[str] | None = None) -> "pd.DataFrame":
    """Images per split (rows) and protected group (columns), with totals.
    Book: ``notebooks/01_dataset_preparation.ipynb``."""
    import pandas as pd

    columns = list(columns) if columns is not None else protected_columns(table)
    counts = pd.crosstab(table["split"], [table[c] for c in columns], margins=True, margins_name="total")
    order = [s for s in ("train", "val", "test") if s in counts.index] + ["total"]
    return counts.reindex(order)


def table_montage(table: "pd.DataFrame", root: str | Path, *, columns: Iterable[str] | None = None,
                  per_group: int = 4, split: str = "test", size: int = 96, title: str | None = None):
    """A grid of a table's images: one row per protected group, the first ``per_group``
    images of ``split`` in each (for real datasets; synthetic data has
    :func:`finefcace.sources.synthetic.synthetic_montage`). Book: ``notebooks/01_dataset_preparation.ipynb``."""
    from finefcace.sources.images import read_image

    columns = list(columns) if columns is not None else protected_columns(table)
    rows = table[table["split"] == split]
    groups = list(rows.groupby(columns, sort=True)) if columns else [("all", rows)]
    fig = new_figure(per_group * 1.2, len(groups) * 1.25, layout=None)
    axes = fig.subplots(len(groups), per_group, squeeze=False)
    for r, (group, frame) in enumerate(groups):
        paths = frame["path"].tolist()[:per_group]
        for k in range(per_group):
            ax = axes[r, k]
            ax.set_xticks([])
            ax.set_yticks([])
            if k < len(paths):
                ax.imshow(read_image(Path(root) / paths[k]).resize((size, size)))
        label = " / ".join(map(str, group)) if isinstance(group, tuple) else str(group)
        axes[r, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
