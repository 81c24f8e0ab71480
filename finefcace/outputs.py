"""Every output file written whole or not at all.

A table, report, results file, figure or prediction is written to a temporary file in the
same folder (``.<name>.<pid>.<random>.tmp``), flushed to disk, then renamed over the target in one
atomic step (``os.replace``): a command interrupted while writing — Ctrl-C, ``kill -9``, a full
disk — leaves the previous file or none, never a prefix that reads as a complete table. A
temporary file left by a process that died is removed (with a warning) the next time the same
output is written; one whose process still runs (the same output being written elsewhere) is
left alone. The training engine's checkpoints follow the same rule
(:func:`finefcace.training.checkpoint.atomic_save`).

This module uses only the standard library (pandas frames and matplotlib figures are passed
in), so a script that must run before the project's dependencies are known to import —
``scripts/gpu_check.py`` — can load it by its file path.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_output", "atomic_folder", "write_text", "write_json", "write_csv", "save_figure", "copy_file",
           "remove_stale_temporaries", "TEMPORARY_SUFFIX"]

TEMPORARY_SUFFIX = ".tmp"


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _temporary_prefix(path: Path) -> str:
    """``.<name>.<pid>.``: a temporary file names its target and the process writing it."""
    return f".{path.name}.{os.getpid()}."


def _writer_alive(leftover: Path, path: Path) -> bool:
    """Is the process that named ``leftover`` (``.<name>.<pid>.<random>.tmp``) still running? A
    name without a pid (an older writer's) counts as left by a dead one."""
    pid = leftover.name[len(path.name) + 2:].split(".", 1)[0]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the temporary files (or folders) an interrupted write of ``path`` left beside it
    (warning naming them); returns what was removed. A temporary of a process still running —
    a write of the same output under way elsewhere — is left alone."""
    found = sorted(path.parent.glob(f".{path.name}.*{TEMPORARY_SUFFIX}")) if path.parent.is_dir() else []
    stale = [leftover for leftover in found if not _writer_alive(leftover, path)]
    for leftover in stale:
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
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
    handle, name = tempfile.mkstemp(prefix=_temporary_prefix(path), suffix=TEMPORARY_SUFFIX, dir=path.parent)
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
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Flush the folder entry of a rename to disk (a power cut after it keeps the new file)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - a platform without folder handles
        return
    try:
        os.fsync(handle)
    except OSError:  # pragma: no cover - some file systems refuse fsync on a folder
        pass
    finally:
        os.close(handle)


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder beside ``path`` to fill; when the block ends without an error it is
    renamed to ``path`` (which must be missing or an empty folder), so a folder of many files
    appears whole or not at all; after an error it is removed. Stale temporaries first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    temporary = Path(tempfile.mkdtemp(prefix=_temporary_prefix(path), suffix=TEMPORARY_SUFFIX, dir=path.parent))
    try:
        yield temporary
        os.chmod(temporary, 0o777 & ~_umask())  # mkdtemp makes 0700 folders; use the usual mode
        if path.is_dir():
            path.rmdir()  # empty (or the rename below could not replace it): refused otherwise
        os.replace(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    _sync_folder(path.parent)


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


def copy_file(source: str | os.PathLike, path: str | os.PathLike) -> Path:
    """A copy of ``source`` (bytes and modification time) at ``path``, whole or not at all."""
    with atomic_output(path) as temporary:
        shutil.copy2(source, temporary)
    return Path(path)


def save_figure(figure: Any, path: str | os.PathLike, **options: Any) -> Path:
    """A matplotlib figure to ``path`` (format from its suffix), whole or not at all."""
    path = Path(path)
    options.setdefault("format", path.suffix.lstrip(".") or None)
    with atomic_output(path) as temporary:
        figure.savefig(temporary, **options)
    return path
