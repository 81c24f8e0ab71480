"""What the official dataset releases share: their sizes, the warning for rows an adapter
leaves out, and how a refused row is reported.

Used by the adapters (:mod:`finefcace.sources.fairface`, :mod:`~finefcace.sources.utkface`,
:mod:`~finefcace.sources.lfwa`, :mod:`~finefcace.sources.celeba`) and the ``data_prep``
checks. Introduced in the book in ``notebooks/01_dataset_preparation.ipynb``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from finefcace.errors import DataError

__all__ = ["EXPECTED_COUNTS", "SkippedRowsWarning", "find_folder", "refuse_rows"]


class SkippedRowsWarning(UserWarning):
    """Rows (or files) that an adapter could not label and left out; the message lists them."""


#: Sizes of the official releases, used by the ``data_prep`` checks.
EXPECTED_COUNTS: dict[str, dict[str, int]] = {
    "fairface": {"train": 86_744, "val": 10_954},
    "utkface": {"files": 23_707, "malformed": 5},
    "lfwa": {"images": 13_143},
    "celeba": {"train": 162_770, "val": 19_867, "test": 19_962},
}


def refuse_rows(source: str, rows: list[tuple[int, object]], what: str, fix: str, total: int) -> None:
    """Raise :class:`~finefcace.errors.DataError` naming ``source``, the count and the first lines of the rows with ``what``."""
    shown = "; ".join(f"line {line}: {value!r}" for line, value in rows[:5])
    raise DataError(f"{source}: {total} row(s) with {what} (first: {shown}). {fix}")


def find_folder(root: Path, candidates: Iterable[str], marker: str) -> str | None:
    """The first of ``candidates`` that is a folder under ``root`` (holding ``marker``, when given)."""
    for name in candidates:
        if (root / name / marker).is_dir() if marker else (root / name).is_dir():
            return name
    return None
