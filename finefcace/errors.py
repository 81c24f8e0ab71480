"""The one family of errors that mean "bad input", and how an entry point shows them.

No paper section: this is the course's own machinery. A :class:`UserError` is a mistake in
what the user gave (a configuration key, a notebook parameter, a dataset table, a label file,
a checkpoint, a model whose outputs are not numbers): its message names the file, row or key
and the fix, and it is raised **before anything is written**. Every entry point turns it into
that one message and nothing else — ``python -m finefcace`` and ``python -m data_prep`` print
``error: <message>`` and exit with status 2 (``--debug`` adds the traceback), a notebook shows
the message as the cell's only output (:func:`finefcace.course.session.start` installs
:func:`notebook_handler`). Anything else that escapes is a bug and keeps its traceback.

The subclasses live where the input is checked: :class:`DataError` here (tables and label
files, :mod:`finefcace.sources`; model outputs and predictions tables, :mod:`finefcace.metrics`);
``ConfigError`` in :mod:`finefcace.training.config`, ``TrainingDataError`` in
:mod:`finefcace.training.loaders`, ``CheckpointError`` in :mod:`finefcace.training.checkpoint`,
``ParameterError`` in :mod:`finefcace.course.parameters`. All are ``ValueError``\\ s, so code
that caught ``ValueError`` before still does. Introduced in ``notebooks/01_dataset_preparation.ipynb``.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

__all__ = ["DataError", "ModelOutputError", "USER_ERROR_STATUS", "UserError", "check_output", "check_output_folder",
           "notebook_handler", "report", "run_script"]

#: The exit status of a command refused for bad input (argparse's usage errors use it too).
USER_ERROR_STATUS = 2

#: Set to 1 to see the full traceback of a user error in a notebook (the CLI has ``--debug``).
DEBUG_VARIABLE = "FINEFCACE_DEBUG"


class UserError(ValueError):
    """Bad input: the message names the file, row or key and the fix; nothing was written."""


class DataError(UserError):
    """A dataset table, label file or predictions table that cannot be used as it is."""


class ModelOutputError(UserError):
    """A model produced non-finite logits or probabilities (NaN or inf weights, an overflow)."""


#: What an entry point also reports as a user error: the operating system's refusals that name
#: the path (a missing file, a folder where a file was expected, no permission, a full disk).
ENVIRONMENT_ERRORS: tuple[type[BaseException], ...] = (OSError,)


def check_output(
    path: str | os.PathLike,
    *,
    inputs: Mapping[str | os.PathLike, str] | None = None,
    overwrite: bool = False,
    option: str = "--out",
    folder: bool = False,
    elsewhere: str = "choose another file",
) -> Path:
    """Refuse an output that would destroy something, before anything is computed: one of the
    command's ``inputs`` (``{path: what it is}``) — always, ``--overwrite`` or not — or, unless
    ``overwrite``, an existing file (``folder=False``) or a folder that already holds files
    (``folder=True``). A file where a folder is expected, or the reverse, is refused too.
    ``option`` names the option in the message, ``elsewhere`` the other way out. Returns ``path``."""
    path = Path(path)
    target = path.resolve()
    for source, what in (inputs or {}).items():
        if source is not None and Path(source).resolve() == target:
            raise UserError(f"{option} {path} is {what}: writing there would destroy it; write the output to "
                            "another file (--overwrite does not change this)")
    if folder:
        if path.exists() and not path.is_dir():
            raise UserError(f"{option} {path} is a file; give a folder (it is created when missing)")
        if path.is_dir() and any(path.iterdir()) and not overwrite:
            raise UserError(f"{option} {path} already holds files; choose a new or empty folder, or pass "
                            "--overwrite to write over them")
    else:
        if path.is_dir():
            raise UserError(f"{option} {path} is a folder; give the name of the file to write")
        if path.exists() and not overwrite:
            raise UserError(f"{option} {path} exists; {elsewhere}, or pass --overwrite to replace it")
    return path


def check_output_folder(path: str | os.PathLike, *, option: str = "--out") -> Path:
    """Refuse, before anything is computed, a folder the outputs cannot go into: a file, or a
    folder (or, when it is missing, the nearest folder above it) where no file can be created.
    The folder may hold files (a results folder gathers many). Returns ``path``."""
    import tempfile

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {path} is a file; give a folder (it is created when missing)")
    existing = next((p for p in (path, *path.absolute().parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        raise UserError(f"{option} {path} cannot be made: {existing} is a file; give another folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise UserError(f"{option} {path} cannot be written ({error.strerror or error} in {existing}); give a "
                        "folder you can write to") from None
    return path


def run_script(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run a script's ``main(argv)`` under the error policy: a :class:`UserError` or an
    operating-system refusal is shown as one line ``error: ...`` with exit status 2
    (``--debug`` among the arguments, or ``FINEFCACE_DEBUG=1``, adds the traceback); anything
    else keeps its traceback. Returns the exit status (``main``'s, 0 when it returns None)."""
    words = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in words or bool(os.environ.get(DEBUG_VARIABLE))
    try:
        status = main(argv)
    except (UserError, *ENVIRONMENT_ERRORS) as error:
        return report(error, debug=debug)
    return status if isinstance(status, int) else 0


def report(error: BaseException, *, debug: bool = False, stream: TextIO | None = None) -> int:
    """Print ``error: <message>`` (and, with ``debug``, the traceback first) to ``stream``
    (stderr); return :data:`USER_ERROR_STATUS`. The one place a command line shows a user error."""
    stream = stream or sys.stderr
    if debug:
        traceback.print_exception(type(error), error, error.__traceback__, file=stream)
    message = str(error) if isinstance(error, UserError) else _environment_message(error)
    print(f"error: {message}", file=stream)
    return USER_ERROR_STATUS


def _environment_message(error: BaseException) -> str:
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.strerror}: {error.filename}"
    return str(error) or type(error).__name__


def notebook_handler(shell, error_type, error, tb, tb_offset=None):  # noqa: ANN001 - IPython's signature
    """IPython's custom-exception hook for :class:`UserError`: the cell fails (papermill and
    nbval still stop on it: an error output is sent as for any exception) and shows only
    ``error: <message>`` instead of a traceback. With ``FINEFCACE_DEBUG=1`` in the environment
    the usual traceback is shown."""
    if os.environ.get(DEBUG_VARIABLE):
        shell.showtraceback((error_type, error, tb), tb_offset=tb_offset)
        return None
    lines = [f"error: {error}"]
    shell._showtraceback(error_type, error, lines)  # the kernel's error output: ename, evalue, these lines
    return lines
