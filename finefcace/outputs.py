"""Every output file written whole or not at all.

A table, report, results file, figure or prediction is written to a temporary file in the
same folder (``.<name>.<random>.tmp``), flushed to disk, then renamed over the target in one
atomic step (``os.replace``): a command interrupted while writing — Ctrl-C, ``kill -9``, a full
disk — leaves the previous file or none, never a prefix that reads as a complete table. A
temporary file left by a process that died is removed (with a warning) the next time the same
output is written. The training engine's checkpoints follow the same rule
(:func:`finefcace.training.checkpoint.atomic_save`).
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_output", "write_text", "write_json", "write_csv", "save_figure", "TEMPORARY_SUFFIX"]

TEMPORARY_SUFFIX = ".tmp"


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the temporary files an interrupted write of ``path`` left beside it (warning
    naming them); returns what was removed."""
    stale = sorted(path.parent.glob(f".{path.name}.*{TEMPORARY_SUFFIX}")) if path.parent.is_dir() else []
    for leftover in stale:
        leftover.unlink(missing_ok=True)
    if stale:
        warnings.warn(f"removed {len(stale)} unfinished temporary file(s) of {path} left by an interrupted write: "
                      f"{', '.join(p.name for p in stale)}", stacklevel=3)
    return stale


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; when the block ends without an error it is
    flushed to disk and renamed over ``path``; after an error it is removed and ``path`` is
    untouched. Stale temporaries of ``path`` are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX, dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        with open(temporary, "rb") as stream:
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600 files; use the usual mode
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """``text`` to ``path``, whole or not at all."""
    with atomic_output(path) as temporary:
        temporary.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, document: Any, indent: int | None = 1) -> Path:
    """``document`` as JSON (with a final newline) to ``path``, whole or not at all."""
    return write_text(path, json.dumps(document, indent=indent) + "\n")


def write_csv(frame: Any, path: str | os.PathLike, **options: Any) -> Path:
    """A pandas frame as CSV (``index=False`` unless given) to ``path``, whole or not at all."""
    options.setdefault("index", False)
    with atomic_output(path) as temporary:
        frame.to_csv(temporary, **options)
    return Path(path)


def save_figure(figure: Any, path: str | os.PathLike, **options: Any) -> Path:
    """A matplotlib figure to ``path`` (format from its suffix), whole or not at all."""
    path = Path(path)
    options.setdefault("format", path.suffix.lstrip(".") or None)
    with atomic_output(path) as temporary:
        figure.savefig(temporary, **options)
    return path
