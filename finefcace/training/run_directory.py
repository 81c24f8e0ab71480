"""The run directory: what a training run writes, and reading a finished run back.

Introduced in ``notebooks/04_training.ipynb`` ("Checkpoints, resume, train-or-load"). A run
directory holds ``config.json`` (the configuration and its identity: what decides whether
two runs are the same run), ``last.pt`` (the position, for an exact resume) and ``best.pt``
(the weights of the best validation epoch, :mod:`finefcace.training.checkpoint`), ``history.csv`` /
``history.json`` (one row per epoch: every step's loss of Algorithm 1, paper §3.3, and the
validation scores), ``summary.json`` and ``predictions_val.csv`` / ``predictions_test.csv``
(:func:`finefcace.training.evaluation.predictions_table`, read by ``notebooks/05_evaluation.ipynb``)
and, once the run has finished, ``model_card.md`` (:mod:`finefcace.training.model_card`).
Every file is replaced atomically, so a killed run never leaves a half-written one.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from finefcace import outputs
from finefcace.training.checkpoint import load_checkpoint
from finefcace.training.config import ConfigError, TrainConfig
from finefcace.training.recipe import build_model

__all__ = ["TrainResult", "load_run", "load_best_model", "read_run_config", "write_text_atomic", "write_history",
           "identity_differences"]

#: The files of a run directory.
CONFIG_FILE = "config.json"
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
HISTORY_CSV = "history.csv"
HISTORY_JSON = "history.json"
SUMMARY_FILE = "summary.json"
MODEL_CARD_FILE = "model_card.md"
#: The files that make a run (what evaluate/predict read, never write over).
RUN_FILES: tuple[str, ...] = (CONFIG_FILE, LAST_CHECKPOINT, BEST_CHECKPOINT, HISTORY_CSV, HISTORY_JSON, SUMMARY_FILE,
                              MODEL_CARD_FILE)
#: Version of the layout of ``last.pt`` and ``best.pt``.
CHECKPOINT_FORMAT = 1


@dataclasses.dataclass
class TrainResult:
    """What a run leaves: the model with the best validation weights, its history and the
    test predictions. Book: ``notebooks/04_training.ipynb``."""

    run_dir: Path
    config: TrainConfig
    model: nn.Module
    classes: list
    history: pd.DataFrame
    summary: dict[str, Any]
    predictions: pd.DataFrame | None

    @property
    def finished(self) -> bool:
        return bool(self.summary.get("finished"))


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (:func:`finefcace.outputs.write_text`)."""
    outputs.write_text(path, text)


def write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """``history.json`` and ``history.csv`` (one row per epoch; columns in order of first appearance)."""
    write_text_atomic(run_dir / HISTORY_JSON, json.dumps(history, indent=1))
    if history:
        columns = list(dict.fromkeys(k for row in history for k in row))
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)
        write_text_atomic(run_dir / HISTORY_CSV, text.getvalue())


def identity_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The identity keys (:meth:`finefcace.training.config.TrainConfig.identity`) whose values
    differ, sorted; inside a mapping (``overrides``, ``resolved``) the keys that differ there
    (``resolved.head_lr``)."""
    differences = []
    for key in sorted(set(saved) | set(current)):
        old, new = saved.get(key), current.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            differences += [f"{key}.{k}" for k in sorted(set(old) | set(new), key=str) if old.get(k) != new.get(k)]
        else:
            differences.append(key)
    return differences


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """The document a run's ``config.json`` holds (``{}`` when there is none); a file that is
    not that document is refused naming it and the fix."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        return {}
    try:
        document = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path} is not valid JSON ({error}); it is not the config.json a run writes. Restore "
                          f"it, or start the run over: move {run_dir} away (or delete it) and train again") from error
    if not isinstance(document, dict) or not isinstance(document.get("identity", {}), dict):
        raise ConfigError(f"{path} does not hold a run's configuration (a JSON object with 'config' and 'identity'); "
                          f"restore it, or move {run_dir} away and train again")
    return document


def load_best_model(run_dir: Path, device: torch.device | str = "cpu") -> tuple[nn.Module, TrainConfig, list, dict]:
    """(model in eval mode with the ``best.pt`` weights, its config, its classes, the checkpoint)."""
    best = load_checkpoint(run_dir / BEST_CHECKPOINT, map_location=device, advice=(
        "train this run again: rerun its train command with --set resume=false (resume: false in a notebook), "
        "which starts it over in the same run_dir"))
    config = TrainConfig.from_dict(best["config"])
    domains = best.get("domains")  # the protected domains of a mitigation method's model
    model = build_model(config.replace(weights=None), len(best["classes"]), len(domains) if domains else None)
    model.load_state_dict(best["model"])
    model.to(device).eval()
    return model, config, list(best["classes"]), best


def load_run(run_dir: str | Path, device: torch.device | str = "cpu") -> TrainResult:
    """A finished run, read back from its directory (best weights, history, test predictions).

    Book: ``notebooks/04_training.ipynb``, ``notebooks/05_evaluation.ipynb``.
    """
    run_dir = Path(run_dir)
    model, config, classes, _ = load_best_model(run_dir, device)
    history = pd.read_json(run_dir / HISTORY_JSON) if (run_dir / HISTORY_JSON).is_file() else pd.DataFrame()
    summary = json.loads((run_dir / SUMMARY_FILE).read_text()) if (run_dir / SUMMARY_FILE).is_file() else {}
    predictions_file = run_dir / "predictions_test.csv"
    predictions = pd.read_csv(predictions_file) if predictions_file.is_file() else None
    return TrainResult(run_dir, config, model, classes, history, summary, predictions)
