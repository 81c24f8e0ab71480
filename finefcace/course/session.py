"""The chapters' entry point: :func:`start`, and the runs chapters 03-06 share.

Every notebook of ``notebooks/`` opens with one typed ``parameters`` cell (papermill) and,
right after it, ``course.start(globals())`` (``from finefcace.course import session as course``):
the parameter check of :mod:`finefcace.course.parameters` plus the course's rules for paths, then
the notebook works from the project root. Chapters 03-06 share trained runs by
train-or-load under ``<run_dir>/<name>`` (:func:`trained_run`, introduced in
``notebooks/04_training.ipynb``): a run trained with the paper's recipe (§4.2) and
Algorithm 1 (§3.3) once, then read back — its data as a figure batch or a loader, its
predictions on another dataset's table (cross-dataset tests, Tables 3-4).

Each chapter's own helpers live in a module named for the chapter:
:mod:`finefcace.course.dataset_preparation` (01), :mod:`finefcace.course.experts` (02),
:mod:`finefcace.course.attention_crop` (03), :mod:`finefcace.course.training` (04),
:mod:`finefcace.course.evaluation` (05), :mod:`finefcace.course.ablations` (06) and
:mod:`finefcace.course.mitigation_methods` (07).
Profiles are in ``configs/``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finefcace.course.parameters import ParameterError, check_parameters, project_root
from finefcace.metrics import protected_columns

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from finefcace.training.config import TrainConfig
    from finefcace.training.run_directory import TrainResult

__all__ = [
    "DATASET_NAMES",
    "cli_command",
    "describe_run",
    "table_label",
    "evaluate_on",
    "figure_batch",
    "profile_notes",
    "run_table",
    "split_loader",
    "start",
    "train_config",
    "trained_run",
]


def start(
    namespace: Mapping[str, Any],
    *,
    makes_table: bool = False,
    existing_paths: Iterable[str] | Mapping[str, str] = (),
    notebooks_dir: str | Path | None = None,
) -> dict[str, Any]:
    """The first cell after the parameters: bad input shown as one line (from here on, a
    :class:`finefcace.errors.UserError` in any cell shows ``error: <message>`` instead of a
    traceback; ``FINEFCACE_DEBUG=1`` shows it), :func:`check_parameters` with the course's rules
    for paths, then work from the project root (relative paths in the profiles — ``data/...``,
    ``runs/...`` — mean the same as for ``python -m finefcace`` run from there), show the
    trainer's per-epoch log lines, show figures inline (also the ``Figure`` objects of
    :mod:`finefcace.plots`, which pyplot does not track) as images with alt text
    (:mod:`finefcace.course.display`) and keep tables readable: one header row, cells whole. Returns
    the checked parameters. Book: every notebook.

    The rules: ``dataset`` and ``synthetic`` must agree (synthetic data needs the ``synthetic``
    options; a real dataset needs ``synthetic: null``); with a real dataset ``root`` (its
    official layout) must exist, and ``table`` too unless this chapter makes it
    (``makes_table``, chapter 1); a ``weights`` value that names a file must exist; the
    folders of ``cross_datasets`` must exist.
    """
    _show_user_errors_as_one_line()
    fixes = dict(existing_paths) if isinstance(existing_paths, Mapping) else dict.fromkeys(existing_paths, "")
    declared = namespace.get("__annotations__", {})
    dataset, synthetic = namespace.get("dataset"), namespace.get("synthetic")
    if "dataset" in declared and "synthetic" in declared:
        if dataset == "synthetic" and synthetic is None:
            raise ParameterError("parameter 'dataset' is 'synthetic' but 'synthetic' is null: give the synthetic "
                                 "options (e.g. synthetic: {n_train: 1600, n_val: 320, n_test: 640, size: 64, seed: 0})")
        if dataset != "synthetic" and synthetic is not None:
            raise ParameterError(f"parameter 'dataset' is {dataset!r} but 'synthetic' is set: with a real dataset "
                                 "set synthetic: null (the paper profiles in configs/ do)")
    if synthetic is None and "root" in declared:
        fixes.setdefault("root", f"Put the {dataset or 'dataset'} download there in its official layout "
                                 "(book/reproduce.md), or point root at it")
        if "table" in declared and not makes_table:
            fixes.setdefault("table", "Run notebooks/01_dataset_preparation.ipynb with this profile first: "
                                      "it writes the table")
    weights = namespace.get("weights")
    if "weights" in declared and isinstance(weights, str) and (
            Path(weights).suffix in (".pth", ".pt", ".bin", ".ckpt", ".tar") or "/" in weights):
        fixes.setdefault("weights", "Point weights at a state-dict file of the torchvision backbone, "
                                    "or use a torchvision weights name such as IMAGENET1K_V1, or null")
    if "cross_datasets" in declared:
        fixes.setdefault("cross_datasets", "Put that dataset there in its official layout, or remove it "
                                           "from cross_datasets")
    import logging
    import os
    import sys

    values = check_parameters(namespace, existing_paths=fixes, notebooks_dir=notebooks_dir)
    for note in profile_notes(values, declared):
        print(note)
    os.chdir(project_root())
    log = logging.getLogger("finefcace")
    if not any(getattr(h, "_finefcace_course", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._finefcace_course = True  # type: ignore[attr-defined]
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    try:  # figures that are not pyplot's (finefcace.plots) render as images only once inline is on
        from IPython import get_ipython

        from finefcace.course import display

        shell = get_ipython()
        if shell is not None and getattr(shell, "kernel", None) is not None:
            shell.run_line_magic("matplotlib", "inline")
            # figures as images with alt text and their text size, tables with one header row
            display.show_in_notebook(shell)
    except ImportError:  # pragma: no cover - outside Jupyter nothing is displayed anyway
        pass
    try:
        import pandas as pd

        pd.set_option("display.width", 160)
        pd.set_option("display.max_columns", 40)
        pd.set_option("display.precision", 3)
        pd.set_option("display.max_colwidth", None)  # a cell is shown whole, never cut to "one linear c..."
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    return values


def _show_user_errors_as_one_line() -> None:
    """In a kernel, show a :class:`~finefcace.errors.UserError` as its message only
    (:func:`finefcace.errors.notebook_handler`); outside IPython nothing changes."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with Jupyter
        return
    shell = get_ipython()
    if shell is not None:
        from finefcace.errors import UserError, notebook_handler

        shell.set_custom_exc((UserError,), notebook_handler)
#: Dataset names as the book writes them.
DATASET_NAMES = {"synthetic": "the synthetic faces", "fairface": "FairFace", "utkface": "UTKFace", "lfwa": "LFWA+",
                 "celeba": "CelebA"}


def profile_notes(values: Mapping[str, Any], declared: Iterable[str]) -> list[str]:
    """Notes on the parts of a chapter a profile skips, printed by :func:`start`: the
    attribute task (Tables 6-8) needs CelebA's (or the synthetic faces') attribute labels."""
    notes = []
    dataset = values.get("dataset")
    if "attributes" in declared and not values.get("attributes"):
        name = DATASET_NAMES.get(dataset, dataset)
        reason = (f"{name} has no attribute labels" if dataset not in ("celeba", "synthetic")
                  else "the profile lists no attributes")
        notes.append(f"Note: {reason}: the attribute task (the paper's Tables 6-8) is skipped under this profile.")
    return notes


def train_config(params: Mapping[str, Any], name: str | None = None, **changes: Any) -> "TrainConfig":
    """The :class:`finefcace.training.config.TrainConfig` of a notebook's parameters, checked once:
    the parameters that are training-config keys (same names), then ``changes``; with ``name``,
    the run lives in ``<run_dir>/<name>`` (e.g. ``runs/quick/gender-finefcace``). Progress bars
    are off in notebooks (the per-epoch log lines remain). Book: ``notebooks/04_training.ipynb``."""
    import dataclasses

    from finefcace.training.config import TrainConfig, load_config

    keys = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in params.items() if k in keys}
    values.setdefault("progress", False)
    values.update(changes)
    if name is not None:
        values["run_dir"] = _run_dir(params, name)
    return load_config(values)


def _run_dir(params: Mapping[str, Any], name: str) -> str:
    """``<run_dir>/<name>``: where run ``name`` of a profile lives (run_dir as TrainConfig defaults it)."""
    from finefcace.training.config import TrainConfig

    return (Path(params.get("run_dir", TrainConfig.run_dir)) / name).as_posix()


#: Environment variable naming a file where :func:`trained_run` notes each run it trained or
#: loaded (one JSON line per run): ``scripts/course.py`` sets it, and the book's build page
#: lists the runs of the build from it.
RUN_LEDGER_VARIABLE = "FINEFCACE_RUN_LEDGER"


def trained_run(params: Mapping[str, Any], name: str, **changes: Any) -> "TrainResult":
    """Run ``name`` (``<run_dir>/<name>``) of a notebook's parameters with ``changes``, trained:
    a finished run of the same configuration is loaded, an unfinished one resumed, otherwise it
    trains (the library's :func:`finefcace.training.trainer.train_or_load`). Chapters 03-06 share
    runs this way, so only the first chapter that needs a run trains it. In a notebook the run's
    log is one block (:func:`finefcace.course.display.one_block_log`): its messages and, once done,
    a table of its epochs — the same whether the run was trained or loaded. When the environment
    names a run ledger (:data:`RUN_LEDGER_VARIABLE`), whether the run was trained or loaded,
    and how long that took, is appended to it. Book: ``notebooks/04_training.ipynb``."""
    import os
    import time

    from finefcace.training.run_directory import SUMMARY_FILE
    from finefcace.training.trainer import train_or_load

    from finefcace.course import display

    config = train_config(params, name, **changes)
    summary = Path(config.run_dir) / SUMMARY_FILE
    before = summary.stat().st_mtime_ns if summary.is_file() else None
    started = time.perf_counter()
    if display.in_kernel():  # the run's log as one block: its messages, then a table of its epochs
        with display.one_block_log(config.run_dir) as log:
            result = train_or_load(config)
            log.finish(getattr(result, "history", None))
    else:
        result = train_or_load(config)
    ledger = os.environ.get(RUN_LEDGER_VARIABLE)
    if ledger:
        after = summary.stat().st_mtime_ns if summary.is_file() else None
        entry = {"run": config.run_dir, "action": "loaded" if before is not None and before == after else "trained",
                 "seconds": round(time.perf_counter() - started, 1)}
        with open(ledger, "a") as handle:
            handle.write(json.dumps(entry) + "\n")
    return result


def cli_command(params: Mapping[str, Any], name: str, profile: str = "configs/quick.yaml", **changes: Any) -> str:
    """The command line that trains the same run as :func:`trained_run`: ``python -m finefcace
    train --profile <profile>`` (which reads a notebook profile's training keys) plus a ``--set``
    for the run folder, for every training key where ``params`` differ from the profile, and
    for ``changes``. Runnable as printed, from the project root (chapter 04)."""
    import dataclasses
    import shlex

    import yaml

    from finefcace.training.config import TrainConfig

    keys = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("run_dir", "progress")]
    profile_path = project_root() / profile
    written = (yaml.safe_load(profile_path.read_text()) or {}) if profile_path.is_file() else {}
    differ = {k: params[k] for k in keys if k in params and (k not in written or written[k] != params[k])}
    sets = [f"run_dir={_run_dir(params, name)}"]
    sets += [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in {**differ, **changes}.items()]
    return f"python -m finefcace train --profile {profile} " + " ".join(f"--set {shlex.quote(s)}" for s in sets)


def describe_run(result: "TrainResult", data: str | None = None) -> str:
    """What produced a run's numbers, for captions and table labels: data (marked
    **synthetic** when it is), backbone, input size, epochs, hardware.
    Book: ``notebooks/04_training.ipynb``, ``05_evaluation.ipynb``."""
    config = result.config
    resolved = config.resolved()
    if data is None:
        data = "synthetic faces" if config.synthetic is not None else Path(config.table or config.root or "?").stem
    elif config.synthetic is not None and "synthetic" not in data.lower():
        data = f"synthetic {data}"
    epochs = result.summary.get("epochs_run", config.epochs)
    limit = f" (<= {config.max_batches} batches each)" if config.max_batches else ""
    device = result.summary.get("device", config.device)
    return (f"{data}, {resolved['backbone']} {_initialisation(config.weights)}, "
            f"{resolved['input_size']} px, {epochs} epoch{'s' if epochs != 1 else ''}{limit}, {device}")


def _initialisation(weights: str | None) -> str:
    """Where a run's backbone weights came from, in a caption's words: ``from scratch``,
    ``pretrained on ImageNet``, ``initialised from run gender-finefcace`` (a run's saved backbone,
    as chapter 3 fine-tunes chapter 4's model), ``initialised from <file>``."""
    if not weights:
        return "from scratch"
    if weights == "imagenet":
        return "pretrained on ImageNet"
    path = Path(weights)
    return f"initialised from run {path.parent.name}" if path.name == "backbone.pt" else f"initialised from {path.name}"


def table_label(result: "TrainResult") -> str:
    """The short name of our rows or columns in a table: "ours (synthetic)" for a run on the
    synthetic faces, "ours" otherwise — tables stay narrow; :func:`describe_run`, printed once
    beside them, says what produced the numbers. Book: ``notebooks/05_evaluation.ipynb``."""
    return "ours (synthetic)" if result.config.synthetic is not None else "ours"


def run_table(result: "TrainResult") -> tuple["pd.DataFrame", Path]:
    """The dataset table and image root a run was trained on (from its ``config.json``)."""
    from finefcace.sources.table import load_table
    from finefcace.training.run_directory import CONFIG_FILE

    saved = json.loads((Path(result.run_dir) / CONFIG_FILE).read_text())
    return load_table(saved["table"]), Path(saved["root"])


def figure_batch(result: "TrainResult", *, split: str = "test", per_group: int = 1,
                 columns: Iterable[str] | None = None) -> tuple[Any, Any, "pd.DataFrame"]:
    """A small, deterministic batch for figures: the first ``per_group`` images of ``split``
    in each protected group (e.g. tone × gender), as the model sees them (test transform).
    Returns (images (B, 3, H, W), labels (B,), the table rows). Book: chapters 03 and 05."""
    import torch

    from finefcace.sources.dataset import FaceTableDataset
    from finefcace.sources.transforms import test_transform

    table, root = run_table(result)
    columns = list(columns) if columns is not None else protected_columns(table)
    rows = table[table["split"] == split]
    if columns:
        rows = rows.groupby(columns, sort=True, group_keys=False).head(per_group)
        rows = rows.sort_values(columns, kind="stable")
    else:
        rows = rows.head(per_group)
    size = result.config.resolved()["input_size"]
    dataset = FaceTableDataset(rows, root, result.config.target, classes=result.classes,
                               transform=test_transform(size))
    items = [dataset[i] for i in range(len(dataset))]
    images = torch.stack([item[0] for item in items])
    labels = torch.tensor([item[1] for item in items])
    return images, labels, rows


def split_loader(result: "TrainResult", *, split: str = "test", batch_size: int | None = None) -> Any:
    """An ordered DataLoader over ``split`` of the table a run was trained on (test transform)."""
    from finefcace.sources.dataset import FaceTableDataset, make_loader
    from finefcace.sources.transforms import test_transform

    table, root = run_table(result)
    resolved = result.config.resolved()
    dataset = FaceTableDataset(table, root, result.config.target, split=split, classes=result.classes,
                               transform=test_transform(resolved["input_size"]))
    return make_loader(dataset, batch_size=batch_size or resolved["batch_size"], train=False)


def evaluate_on(result: "TrainResult", table: str | Path, root: str | Path | None, split: str = "test") -> "pd.DataFrame":
    """Predictions of a run's best model on another dataset's table (cross-dataset tests,
    paper Tables 3-4), through :func:`finefcace.training.evaluation.evaluate_run`."""
    from finefcace.training.evaluation import evaluate_run

    return evaluate_run(result.run_dir, split=split, table=table, root=root, device=result.config.device)
