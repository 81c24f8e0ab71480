"""The course's dataset table: made once, reused by every chapter, counted by group.

Paper §4.1 (datasets and training protocol). Introduced in
``notebooks/01_dataset_preparation.ipynb``: the synthetic faces are rendered once
(:mod:`finefcace.sources.synthetic`), a real dataset's official layout is read by its adapter
(:mod:`finefcace.sources.adapters`; ``python -m data_prep`` checks a download) and its table written
once (split by the profile's ``dataset_options``: e.g. a seeded split of UTKFace, which has
none; byte-identical photos grouped and conflicting ones left out); the datasets of
``cross_datasets`` become whole test sets; the group counts show what the fairness metrics
will break results down by.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finefcace import outputs
from finefcace.course.parameters import ParameterError
from finefcace.metrics import protected_columns
from finefcace.plots import FIGURE_WIDTH, describe, new_figure

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "SYNTHETIC_ROOT",
    "TABLES_DIR",
    "cross_table_location",
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


def cross_table_location(dataset: str) -> Path:
    """Where the table of a cross-dataset test set lives (every row ``test``):
    ``data/tables/cross/<dataset>.csv``, apart from the tables a profile trains on."""
    return Path(TABLES_DIR) / "cross" / f"{dataset}.csv"


def _source_file(path: Path) -> Path:
    """The note beside a table the course made: which download and options it came from."""
    return path.with_name(path.stem + ".source.json")


def _real_table(dataset: str, root: str, path: Path, options: Mapping[str, Any]) -> "pd.DataFrame":
    """A real dataset's table at ``path``, made by its adapter unless ``path`` holds it already:
    made by the course from the same download and options (its ``.source.json`` says so), or by
    someone else (no note: ``python -m data_prep`` or by hand), which is read back as it is."""
    import warnings

    from finefcace.sources.adapters import dataset_table
    from finefcace.sources.table import load_table, save_table

    source = {"dataset": dataset, "root": str(Path(root).resolve()), "options": dict(options)}
    note = _source_file(path)
    if path.is_file() and (not note.is_file() or json.loads(note.read_text()) == source):
        return load_table(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = dataset_table(dataset, root, **options)
    for warning in caught:  # shown once, where the table is made: skipped names, duplicates
        print(f"{warning.category.__name__}: {warning.message}")
    save_table(frame, path)
    outputs.write_json(note, source, indent=2)
    return frame


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
                    input_size: int | None = None, options: Mapping[str, Any] | None = None,
                    target: str = "gender", cross: bool = False) -> tuple["pd.DataFrame", Path]:
    """The course's dataset table, made once and reused (chapter 01). Returns (table, path).

    - ``dataset="synthetic"``: render :func:`finefcace.sources.synthetic.generate_synthetic` into
      ``root`` with the ``synthetic`` options, unless ``root`` already holds exactly that set
      (same split sizes, image size, seed and bias knobs): then it is read back. The image
      size defaults to ``input_size``, as in the trainer.
    - a real dataset (``fairface``, ``utkface``, ``lfwa``, ``celeba``): its adapter
      (:func:`finefcace.sources.adapters.dataset_table`, with ``options`` — the profile's
      ``dataset_options``: ``splits``, ``seed``, ``val_fraction``, ``test_fraction``,
      ``max_train``, ``duplicates`` — and ``target``, which a seeded split is stratified by)
      reads the official layout under ``root`` and the table is written to ``table`` (default
      ``data/tables/<dataset>.csv``), with a note of its source beside it; a table made from
      the same download and options, or one the course did not make, is read back.
    - ``cross=True``: the dataset as a whole cross-dataset test set (``splits="test"``), at
      :func:`cross_table_location`.

    Book: ``notebooks/01_dataset_preparation.ipynb``.
    """
    from finefcace.sources.table import load_table

    path = table_location(dataset, root, table)
    if dataset == "synthetic":
        if synthetic is None:
            raise ParameterError("dataset 'synthetic' needs the 'synthetic' parameter "
                                 "(e.g. synthetic: {n_train: 1600, n_val: 320, n_test: 640, size: 64, seed: 0})")
        folder = Path(root or SYNTHETIC_ROOT)
        if path != folder / "labels.csv":
            raise ParameterError(f"for synthetic data the table is <root>/labels.csv ({folder / 'labels.csv'}); "
                                 f"leave 'table' unset (got {str(path)!r})")
        rendering = dict(synthetic)
        if input_size is not None:
            rendering.setdefault("size", input_size)
        if not _synthetic_is_current(folder, rendering):
            from finefcace.sources.synthetic import generate_synthetic

            generate_synthetic(folder, **rendering)
        return load_table(path), path
    if root is None:
        raise ParameterError(f"dataset {dataset!r} needs 'root': the folder holding its official layout")
    options = dict(options or {})
    if cross:
        path, options = cross_table_location(dataset), {**options, "splits": "test"}
    elif options.get("splits") == "seeded" or "max_train" in options:
        options.setdefault("target", target)
    return _real_table(dataset, root, path, options), path


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
    # the row labels sit left of the images: with them, the figure is the book column's width at most
    cell = min(1.2, (FIGURE_WIDTH - 1.4) / per_group)
    fig = new_figure(per_group * cell + 1.4, len(groups) * cell * 1.05, layout=None)
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
    return describe(fig, f"Photographs of the {split} split, {per_group} per protected group ("
                         f"{' × '.join(columns) if columns else 'all images'}), one group a row"
                         + (f": {title}" if title else ""))
