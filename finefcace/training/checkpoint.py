"""Checkpoints that survive a crash and load safely.

Introduced in ``notebooks/04_training.ipynb`` ("Checkpoints, resume, train-or-load").

- Written **atomically**: to a temporary file in the same folder, flushed and fsynced, then
  ``os.replace``-d over the target, so a run killed mid-write leaves the previous checkpoint
  intact (never a truncated one).
- Loaded with ``torch.load(weights_only=True)``: a checkpoint holds only tensors and
  primitive containers (dicts, lists, tuples, numbers, strings). The NumPy RNG state is
  stored as a list for that reason.
- A checkpoint holds everything a run needs to continue exactly: model, optimizer and
  scheduler state, the RNG states (Python, NumPy, torch CPU, CUDA, the trainer's own region
  draw generator), the position (epoch, batch within it, global step), the per-epoch history,
  the best validation metric and the early-stopping counter.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from finefcace.errors import UserError
from finefcace.outputs import atomic_output

__all__ = [
    "CheckpointError",
    "CheckpointWriteError",
    "atomic_save",
    "load_checkpoint",
    "rng_state",
    "set_rng_state",
]


class CheckpointError(UserError):
    """A checkpoint is missing, unreadable or does not fit the model it is loaded into."""


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` atomically (temporary file + ``os.replace``).

    Book: ``notebooks/04_training.ipynb``.
    """
    path = Path(path)
    try:
        with atomic_output(path) as temporary, open(temporary, "wb") as stream:  # finefcace.outputs' one way
            torch.save(obj, stream)
    except BaseException as error:
        failure = _write_failure(error)
        if failure is not None:  # disk full, read-only, ...: say so, and that nothing is lost
            free = shutil.disk_usage(path.parent).free / 2**20
            raise CheckpointWriteError(
                f"could not write the checkpoint {path}: {failure} ({free:,.0f} MiB free there). The run's "
                f"last complete checkpoint is untouched: free some space (or point run_dir elsewhere), then run "
                f"the same command again; training resumes from it.") from error
        raise
    return path


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written (a full disk, a read-only folder); the previous one stands."""


def _write_failure(error: BaseException) -> str | None:
    """The operating system's reason when ``error`` (or what caused it: torch wraps the failed
    write of its zip writer in a RuntimeError) is a failed write, else None."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            return seen.strerror or str(seen)
        seen = seen.__cause__ or seen.__context__
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", *,
                    advice: str | None = None) -> dict[str, Any]:
    """Read a checkpoint written by the trainer, with ``torch.load(weights_only=True)``.

    Book: ``notebooks/04_training.ipynb``. Raises :class:`CheckpointError` naming the file
    when it is missing or unreadable; ``advice`` is what the message tells the reader to do
    about an unreadable one (each caller knows what works for its file).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - re-raised with the file named
        raise CheckpointError(
            f"checkpoint {str(path)!r} could not be read ({type(error).__name__}: {str(error).split('. ')[0][:160]}); "
            "it is truncated "
            f"or not a finefcace checkpoint: {advice or 'replace it with a good copy'}"
        ) from error
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {str(path)!r} holds a {type(state).__name__}, not a finefcace checkpoint: "
                              f"{advice or 'replace it with a good copy'}")
    return state


def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """The state of every random number generator a run uses, as weights-only-safe values."""
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": [python_state[0], list(python_state[1]), python_state[2]],
        "numpy": {
            "kind": str(numpy_state[0]),
            "keys": numpy_state[1].tolist(),
            "pos": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "cached_gaussian": float(numpy_state[4]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
    }
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Restore what :func:`rng_state` captured."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            np.asarray(numpy_state["keys"], dtype=np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])
