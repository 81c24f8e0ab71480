"""Byte-identical images: found by content hash, kept in one split, conflicting labels reported.

Real releases hold the same photograph under several names — UTKFace most of all, often with
labels that disagree (the same file filed as two genders, races or ages). Two copies of one
photo in the training and the test split make the test score a memory test (a *leak*); two
copies with different labels are label noise. So every dataset table the adapters make goes
through :func:`resolve_duplicates`:

- every file is hashed (SHA-256 of its bytes, column :data:`HASH_COLUMN`);
- files with equal hashes form a *group*; a group is *conflicting* when its copies disagree
  in any label column (every column but ``path``, ``split`` and the hash);
- conflicting groups are reported — count, per-column counts, examples — in a
  :class:`DuplicateImagesWarning` and in the report ``data_prep`` writes, and left out
  (``conflicting="drop"``, the default: no label can be trusted), or kept as one copy
  (``conflicting="keep_one"``: the copy whose path sorts first, with its labels);
- copies that agree are all kept; a seeded split (:mod:`finefcace.sources.splits`) then keeps
  every group inside one split (:func:`straddling_groups` is the proof: it must be empty).

Across datasets, :func:`overlap` finds photos that a training table and a cross-dataset
test table share (the same leak, between datasets; ``evaluate_run`` warns with
:class:`CrossDatasetLeakWarning`). Introduced in the book in
``notebooks/01_dataset_preparation.ipynb``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from finefcace.errors import UserError

__all__ = [
    "HASH_COLUMN",
    "CONFLICT_POLICIES",
    "CrossDatasetLeakWarning",
    "DuplicateImagesWarning",
    "DuplicateReport",
    "content_hashes",
    "duplicate_groups",
    "file_hash",
    "label_columns",
    "overlap",
    "resolve_duplicates",
    "straddling_groups",
    "with_hashes",
]

#: The table column holding each image's content hash (SHA-256 hex of the file's bytes).
HASH_COLUMN = "content_hash"
#: What :func:`resolve_duplicates` does with a conflicting group.
CONFLICT_POLICIES: tuple[str, ...] = ("drop", "keep_one")
_NOT_LABELS = ("path", "split", HASH_COLUMN)
_EXAMPLES = 5


class DuplicateImagesWarning(UserWarning):
    """A table holds byte-identical images with conflicting labels; the message counts them,
    shows examples and says what was done with them."""


class CrossDatasetLeakWarning(UserWarning):
    """A cross-dataset test table holds photos that are also in the model's training data."""


def file_hash(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_hashes(table: pd.DataFrame, root: str | os.PathLike, *, threads: int = 4) -> pd.Series:
    """The content hash of every image of ``table`` (index aligned with the table). A missing
    file raises ``FileNotFoundError`` naming it (check the images first: ``data_prep``)."""
    root = Path(root)

    def one(relative: str) -> str:
        try:
            return file_hash(root / relative)
        except FileNotFoundError:
            raise FileNotFoundError(f"image file not found: {root / relative} (hashing the table's images to "
                                    f"find duplicates; drop rows of missing images first)") from None

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        hashes = list(pool.map(one, table["path"].tolist()))
    return pd.Series(hashes, index=table.index, name=HASH_COLUMN, dtype=object)


def with_hashes(table: pd.DataFrame, root: str | os.PathLike | None, *, threads: int = 4) -> pd.DataFrame:
    """``table`` with :data:`HASH_COLUMN` (computed from the files under ``root`` when the table
    lacks it; a table made by the adapters carries it already)."""
    if HASH_COLUMN in table.columns and table[HASH_COLUMN].notna().all():
        return table
    if root is None:
        raise ValueError(f"the table has no {HASH_COLUMN!r} column: give the image root to hash its files")
    out = table.copy()
    out[HASH_COLUMN] = content_hashes(table, root, threads=threads)
    return out


def label_columns(table: pd.DataFrame) -> list[str]:
    """The columns whose disagreement makes a group conflicting: all but path, split, hash."""
    return [c for c in table.columns if c not in _NOT_LABELS]


def duplicate_groups(table: pd.DataFrame, labels: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per group of byte-identical files (2 or more rows of ``table`` with the same
    :data:`HASH_COLUMN`): ``content_hash``, ``files``, ``paths`` (sorted), ``splits``,
    ``conflicting`` and ``differing`` (the label columns whose values disagree)."""
    if HASH_COLUMN not in table.columns:
        raise ValueError(f"duplicate_groups needs the {HASH_COLUMN!r} column (see with_hashes)")
    labels = list(labels) if labels is not None else label_columns(table)
    repeated = table[table[HASH_COLUMN].duplicated(keep=False)]
    rows = []
    for digest, part in repeated.groupby(HASH_COLUMN, sort=True):
        differing = [c for c in labels if part[c].astype(str).nunique(dropna=False) > 1]
        rows.append({HASH_COLUMN: digest, "files": len(part), "paths": sorted(part["path"].tolist()),
                     "splits": sorted(set(part["split"])) if "split" in part else [],
                     "conflicting": bool(differing), "differing": differing})
    columns = [HASH_COLUMN, "files", "paths", "splits", "conflicting", "differing"]
    return pd.DataFrame(rows, columns=columns)


def straddling_groups(table: pd.DataFrame) -> pd.DataFrame:
    """Content hashes that appear in more than one split of ``table`` (one row per hash, with
    its splits and paths). Empty for every table a seeded split made: the proof that no copy
    of a photo sits in two splits."""
    if HASH_COLUMN not in table.columns:
        raise ValueError(f"straddling_groups needs the {HASH_COLUMN!r} column (see with_hashes)")
    splits = table.groupby(HASH_COLUMN)["split"].nunique()
    leaking = splits.index[splits > 1]
    part = table[table[HASH_COLUMN].isin(leaking)]
    return (part.groupby(HASH_COLUMN).agg(splits=("split", lambda s: sorted(set(s))), paths=("path", sorted))
            .reset_index())


@dataclasses.dataclass
class DuplicateReport:
    """What :func:`resolve_duplicates` found and did (``data_prep`` writes it in its report)."""

    groups: int
    files_in_groups: int
    conflicting: int
    conflicting_by_column: dict[str, int]
    examples: list[dict[str, Any]]
    policy: str
    rows_left_out: int
    left_out: list[str]

    def message(self, source: str = "dataset") -> str:
        """One paragraph: counts, the columns that disagree, examples, what was done."""
        if not self.groups:
            return f"{source}: no byte-identical images"
        text = (f"{source}: {self.groups} groups of byte-identical images ({self.files_in_groups} files); "
                f"{self.conflicting} of them with conflicting labels")
        if self.conflicting:
            columns = ", ".join(f"{c}: {n}" for c, n in self.conflicting_by_column.items())
            shown = "; ".join(" = ".join(f"{p} ({v})" for p, v in zip(e["paths"], e["labels"]))
                              for e in self.examples[:3])
            done = ("left out (no label can be trusted; the option duplicates='keep_one', data_prep --duplicates "
                    "keep_one, keeps one copy instead)"
                    if self.policy == "drop" else "reduced to one copy each (the path that sorts first)")
            text += f" (groups differing in {columns}; e.g. {shown}): {self.rows_left_out} files {done}"
        return text + "; copies that agree are kept, in one split"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def resolve_duplicates(
    table: pd.DataFrame,
    root: str | os.PathLike | None = None,
    *,
    conflicting: Literal["drop", "keep_one"] = "drop",
    threads: int = 4,
    source: str | None = None,
    warn: bool = True,
) -> tuple[pd.DataFrame, DuplicateReport]:
    """``table`` with :data:`HASH_COLUMN` and its conflicting groups left out (``"drop"``) or
    reduced to one copy (``"keep_one"``), and the :class:`DuplicateReport`. Conflicts are
    reported in a :class:`DuplicateImagesWarning` (``warn``). ``root``: where the images are
    (needed unless the table carries the hashes). Book: ``notebooks/01_dataset_preparation.ipynb``."""
    if conflicting not in CONFLICT_POLICIES:
        raise UserError(f"conflicting must be one of {CONFLICT_POLICIES}, got {conflicting!r}")
    table = with_hashes(table, root, threads=threads)
    labels = label_columns(table)
    groups = duplicate_groups(table, labels)
    clashes = groups[groups["conflicting"]] if len(groups) else groups
    by_column = {c: int(sum(c in d for d in clashes["differing"])) for c in labels}
    examples = []
    for row in clashes.head(_EXAMPLES).itertuples(index=False):
        part = table[table[HASH_COLUMN] == getattr(row, HASH_COLUMN)].sort_values("path")
        examples.append({"paths": part["path"].tolist(),
                         "labels": [", ".join(f"{c}={v}" for c, v in zip(row.differing, values))
                                    for values in part[list(row.differing)].itertuples(index=False)]})
    conflicted = set(clashes[HASH_COLUMN]) if len(clashes) else set()
    in_conflict = table[HASH_COLUMN].isin(conflicted)
    if conflicting == "drop":
        leave_out = in_conflict
    else:
        first = table.sort_values("path").drop_duplicates(HASH_COLUMN).index
        leave_out = in_conflict & ~table.index.isin(first)
    report = DuplicateReport(
        groups=len(groups), files_in_groups=int(groups["files"].sum()) if len(groups) else 0,
        conflicting=len(clashes), conflicting_by_column={c: n for c, n in by_column.items() if n},
        examples=examples, policy=conflicting, rows_left_out=int(leave_out.sum()),
        left_out=sorted(table.loc[leave_out, "path"].tolist()),
    )
    if warn and report.conflicting:
        warnings.warn(report.message(source or table.attrs.get("dataset", "dataset")), DuplicateImagesWarning,
                      stacklevel=2)
    kept = table[~leave_out].copy()
    kept.attrs = dict(table.attrs)
    return kept, report


def overlap(first: pd.DataFrame, second: pd.DataFrame, *, first_root: str | os.PathLike | None = None,
            second_root: str | os.PathLike | None = None, threads: int = 4) -> pd.DataFrame:
    """Photos two tables share: one row per shared content hash with a path from each
    (``first_path``, ``second_path``). Used between a model's training data and a
    cross-dataset test table, where a shared photo is a leak."""
    first = with_hashes(first, first_root, threads=threads)
    second = with_hashes(second, second_root, threads=threads)
    left = first.drop_duplicates(HASH_COLUMN)[[HASH_COLUMN, "path"]].rename(columns={"path": "first_path"})
    right = second.drop_duplicates(HASH_COLUMN)[[HASH_COLUMN, "path"]].rename(columns={"path": "second_path"})
    return left.merge(right, on=HASH_COLUMN, how="inner").sort_values("second_path", ignore_index=True)
