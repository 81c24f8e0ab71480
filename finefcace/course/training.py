"""Training, shown as tables: the hyper-parameters in force, one iteration, the runs, and a
run's model card.

Paper §4.2 (implementation details: the recipe a profile changes) and §3.3 (Algorithm 1:
which parts of the model each of the N+2 optimizer steps of one iteration updates).
Introduced in ``notebooks/04_training.ipynb``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from finefcace.training.config import TrainConfig
    from finefcace.training.run_directory import TrainResult

__all__ = [
    "hyperparameter_table",
    "iteration_table",
    "model_card",
    "run_folders",
    "run_summary",
]


def hyperparameter_table(config: "TrainConfig", reference: str = "paper") -> "pd.DataFrame":
    """The hyper-parameters in force for a config beside the ``reference`` preset's, with the
    ones the profile changed marked. Book: ``notebooks/04_training.ipynb``."""
    import pandas as pd

    from finefcace.presets import get_preset

    paper, used = get_preset(reference), config.resolved()
    keys = list(dict.fromkeys([*paper, *used]))

    def plain(key: str, value: Any) -> str:  # in words: no Python None or list repr in the table
        if value is None:
            return _NONE_MEANS.get(key, "not set")
        if isinstance(value, (list, tuple)):
            return ", ".join(map(str, value))
        return str(value)

    return pd.DataFrame({f"preset {reference!r}": [plain(k, paper.get(k)) for k in keys],
                         "this run": [plain(k, used.get(k)) for k in keys],
                         "changed": ["yes" if plain(k, paper.get(k)) != plain(k, used.get(k)) else "" for k in keys]},
                        index=pd.Index(keys, name="key"))


#: What a key left at None means (finefcace.presets), for the hyper-parameter table.
_NONE_MEANS = {"experts": "the last three stages"}


def _parameter_groups(model: Any) -> dict[str, list[Any]]:
    groups = {f"stage {i + 1}": list(stage.parameters()) for i, stage in enumerate(model.stages)}
    for n in range(model.num_experts):
        groups[f"F_{n + 1}"] = list(model.descriptor_blocks[n].parameters()) + list(model.poolings[n].parameters())
        groups[f"f_{n + 1}"] = list(model.classifiers[n].parameters())
    groups["f_oval"] = list(model.concat_classifier.parameters())
    return groups


def _compress(names: list[str]) -> str:
    """["stage 1", "stage 2", "stage 3", "F_3"] -> "stages 1-3, F_3"."""
    stages = [int(n.split()[1]) for n in names if n.startswith("stage ")]
    others = [n for n in names if not n.startswith("stage ")]
    parts = [f"stages {stages[0]}-{stages[-1]}" if len(stages) > 1 else f"stage {stages[0]}"] if stages else []
    return ", ".join(parts + others) or "none"


def iteration_table(model: Any, optimizer: Any, images: Any, labels: Any, **options: Any) -> "pd.DataFrame":
    """Run one FineFACE iteration (:func:`finefcace.mutual_learning.finefcace_iteration`, Algorithm 1)
    and report each of its N+2 optimizer steps: its name, its input, which parts of the model
    it updated (parameters that changed), and its loss. Book: ``notebooks/04_training.ipynb``."""
    import pandas as pd
    import torch

    from finefcace.mutual_learning import finefcace_iteration

    groups = _parameter_groups(model)
    snapshot = {name: [p.detach().clone() for p in params] for name, params in groups.items()}
    rows = []

    def on_step(info: dict[str, Any]) -> None:
        changed = []
        for name, params in groups.items():
            if any(not torch.equal(p.detach(), old) for p, old in zip(params, snapshot[name])):
                changed.append(name)
                snapshot[name] = [p.detach().clone() for p in params]
        rows.append({"step": info["step"], "name": info["name"], "input": info["input_name"],
                     "updated": _compress(changed), "loss": float(info["loss"])})

    model.train()
    finefcace_iteration(model, optimizer, images, labels, on_step=on_step, **options)
    return pd.DataFrame(rows).set_index("step")


def run_summary(results: Mapping[str, "TrainResult"]) -> "pd.DataFrame":
    """One row per run: epochs run, best epoch, early stop, validation and test accuracy (%)."""
    import pandas as pd

    rows = {}
    for name, result in results.items():
        summary = result.summary
        rows[name] = {"epochs run": summary.get("epochs_run"), "best epoch": summary.get("best_epoch"),
                      "stopped early": {True: "yes", False: "no"}.get(summary.get("stopped_early"), "not recorded"),
                      "val accuracy (%)": 100 * summary.get("val_accuracy", float("nan")),
                      "test accuracy (%)": 100 * summary.get("test_accuracy", float("nan"))}
    return pd.DataFrame(rows).T


def run_folders(results: Mapping[str, "TrainResult"]) -> "pd.DataFrame":
    """One row per run: its folder and the files in it, named in a sentence-like list (a
    table cell wraps; a printed Python list does not). Book: ``notebooks/04_training.ipynb``."""
    import pandas as pd

    rows = {name: {"folder": result.run_dir.as_posix() + "/",
                   "files": ", ".join(sorted(p.name for p in result.run_dir.iterdir()))}
            for name, result in results.items()}
    return pd.DataFrame(rows).T


def model_card(result: "TrainResult") -> Any:
    """The run's model card (``model_card.md``, :mod:`finefcace.training.model_card`) for a
    notebook to display. A run trained before the engine wrote cards has none: its card is made
    from the run's files and shown, not written (a shared, read-only ``runs/`` folder stays as it
    is; ``python -m finefcace card`` writes it). The card's headings become bold lines, so that
    they do not enter the book's table of contents. Book: ``notebooks/04_training.ipynb``."""
    import re
    from pathlib import Path

    from IPython.display import Markdown

    from finefcace.training.model_card import MODEL_CARD_FILE, model_card_text

    path = Path(result.run_dir) / MODEL_CARD_FILE
    text = path.read_text() if path.is_file() else model_card_text(result.run_dir)
    return Markdown(re.sub(r"^#+ (.+)$", r"**\1**", text, flags=re.M))
