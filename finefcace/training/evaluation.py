"""Evaluating a model on a split: fused scores, the predictions table, a saved run on any table.

Introduced in ``notebooks/05_evaluation.ipynb``. FineFACE is scored with fused inference
(paper §3.3 "Inference Phase", :func:`finefcace.predict.fused_logits`; ``book/method.md``
§10), the baseline with its one head. :func:`predictions_table` is the one table every
fairness metric reads (:mod:`finefcace.metrics`, paper §4.3): one row per image with the
true and predicted class, the class probabilities and the protected attributes.
:func:`evaluate_split` serves validation during training (model selection, never on the
test split) and the predictions a run writes; :func:`evaluate_run` scores a saved run on
its own test split or on another dataset's table (cross-dataset tests, paper Tables 3-4).
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from finefcace import outputs, predict
from finefcace.errors import DataError, ModelOutputError, check_output
from finefcace.metrics import protected_columns
from finefcace.model import FineFACE
from finefcace.precision import amp_dtype_for, autocast
from finefcace.sources.dataset import FaceTableDataset
from finefcace.sources.duplicates import CrossDatasetLeakWarning, overlap
from finefcace.sources.table import folder_table, load_table
from finefcace.sources.transforms import test_transform
from finefcace.training import distributed
from finefcace.training.config import ConfigError, TrainConfig
from finefcace.training.loaders import TrainingDataError, cache_folder, decoded_images, eval_loader
from finefcace.training.recipe import fusion_options
from finefcace.training.run_directory import (BEST_CHECKPOINT, CONFIG_FILE, RUN_FILES, load_best_model,
                                              read_run_config)

logger = logging.getLogger(__name__)

__all__ = ["EXTRA_COLUMNS", "copied_columns", "evaluate_split", "predictions_table", "evaluate_run",
           "training_overlap"]

#: Columns copied into the predictions table beside the protected ones, when the dataset
#: table has them: age (FairFace, UTKFace) and CelebA's ``Male`` flag, for breakdowns beyond
#: the paper's groups (``python -m finefcace evaluate`` prints accuracy by each).
EXTRA_COLUMNS: tuple[str, ...] = ("Male", "age")


def copied_columns(table: pd.DataFrame) -> list[str]:
    """The columns of ``table`` a predictions table carries by default: the protected ones
    (:func:`finefcace.metrics.protected_columns`), then :data:`EXTRA_COLUMNS`."""
    return protected_columns(table) + [c for c in EXTRA_COLUMNS if c in table.columns]


def evaluate_split(
    model: nn.Module,
    loader: DataLoader,
    *,
    config: TrainConfig,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    channels_last: bool,
    context: distributed.DistributedContext,
    max_batches: int | None = None,
) -> dict[str, Any]:
    """Scores of every image of a split (fused inference for FineFACE, as ``config`` sets it:
    :func:`finefcace.training.recipe.fusion_options`), gathered across ranks.

    Returns ``row_index``, ``y_true``, ``probabilities`` (numpy), ``accuracy`` and ``loss``.
    Outputs that are not finite raise :class:`~finefcace.errors.ModelOutputError` (never an
    accuracy computed from NaN scores, whose arg-max is class 0).
    """
    fusion = predict.seeded_fusion(fusion_options(config))
    rows, labels, probabilities = [], [], []
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for batch_index, (images, y, index) in enumerate(loader):
            if max_batches is not None and batch_index >= max_batches:
                break
            images = images.to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp_dtype):
                if isinstance(model, FineFACE):
                    scores = predict.fused_logits(model, images, **fusion).float()
                    probs = scores if fusion["combine"] == "probabilities" else scores.softmax(dim=1)
                else:
                    probs = model(images).float().softmax(dim=1)
            probabilities.append(probs.cpu())
            labels.append(torch.as_tensor(y))
            rows.append(torch.as_tensor(index))
    model.train(was_training)
    local = {
        "row_index": torch.cat(rows).numpy() if rows else np.zeros(0, dtype=np.int64),
        "y_true": torch.cat(labels).numpy() if labels else np.zeros(0, dtype=np.int64),
        "probabilities": torch.cat(probabilities).numpy() if probabilities else np.zeros((0, 0), dtype=np.float32),
    }
    gathered = distributed.all_gather_objects(local, context)
    parts = [g for g in gathered if len(g["row_index"])]
    if not parts:
        raise TrainingDataError("evaluation saw no images (empty split, or max_eval_batches too small)")
    result = {key: np.concatenate([g[key] for g in parts]) for key in ("row_index", "y_true", "probabilities")}
    order = np.argsort(result["row_index"], kind="stable")
    result = {key: value[order] for key, value in result.items()}
    broken = ~np.isfinite(result["probabilities"]).all(axis=1)
    if broken.any():
        rows = result["row_index"][broken][:8].tolist()
        raise ModelOutputError(
            f"the model's outputs are not finite (NaN or inf) for {int(broken.sum())} of {len(broken)} images "
            f"(table rows {rows}{'...' if broken.sum() > 8 else ''}): its weights hold NaN or inf (a training that "
            "diverged) or its activations overflow, and every prediction it makes is meaningless. Use a checkpoint "
            "saved before the divergence, or train again with lower learning rates (overrides: head_lr, backbone_lr) "
            "or amp: false")
    y_pred = result["probabilities"].argmax(axis=1)
    result["y_pred"] = y_pred
    result["accuracy"] = float((y_pred == result["y_true"]).mean())
    picked = result["probabilities"][np.arange(len(y_pred)), result["y_true"]]
    result["loss"] = float(-np.log(np.clip(picked, 1e-12, None)).mean())
    return result


def predictions_table(
    table: pd.DataFrame,
    evaluation: dict[str, Any],
    *,
    target: str,
    classes: Sequence,
    protected: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The predictions table (one row per image): ``path, split, target, y_true, y_pred,
    prob_0..prob_{K-1}, label_true, label_pred`` and the protected columns copied from the
    dataset table. What ``finefcace.metrics`` and ``notebooks/05_evaluation.ipynb`` read."""
    rows = table.loc[evaluation["row_index"]]
    out = pd.DataFrame({
        "path": rows["path"].to_numpy(),
        "split": rows["split"].to_numpy(),
        "target": target,
        "y_true": evaluation["y_true"].astype(int),
        "y_pred": evaluation["y_pred"].astype(int),
    })
    for k in range(evaluation["probabilities"].shape[1]):
        out[f"prob_{k}"] = evaluation["probabilities"][:, k].astype(float)
    out["label_true"] = [classes[i] for i in out["y_true"]]
    out["label_pred"] = [classes[i] for i in out["y_pred"]]
    columns = list(protected) if protected is not None else copied_columns(table)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ConfigError(f"config key 'protected': column(s) {missing} are not in the dataset table")
    for column in columns:
        out[column] = rows[column].to_numpy()
    return out


def training_overlap(saved: dict[str, Any], config: TrainConfig, tested: pd.DataFrame,
                     tested_root: Path) -> pd.DataFrame | None:
    """Photos of a cross-dataset test table that are also in the run's training data (its
    ``train`` and ``val`` rows), by content hash (:func:`finefcace.sources.duplicates.overlap`):
    each is a leak, reported in a :class:`~finefcace.sources.duplicates.CrossDatasetLeakWarning`.
    ``None`` when the run's table cannot be read back (e.g. moved)."""
    table_path = saved.get("table") or config.table
    if not table_path or not Path(table_path).is_file():
        return None
    trained = load_table(table_path)
    trained = trained[trained["split"].isin(["train", "val"])]
    trained_root = Path(saved.get("root") or Path(table_path).parent)
    try:
        shared = overlap(trained, tested, first_root=trained_root, second_root=tested_root)
    except FileNotFoundError:
        return None
    shared = shared.rename(columns={"first_path": "training_path", "second_path": "test_path"})
    if len(shared):
        shown = "; ".join(f"{a} = {b}" for a, b in zip(shared["test_path"].head(3), shared["training_path"]))
        warnings.warn(f"{len(shared)} of {len(tested)} test images of this cross-dataset table are byte-identical to "
                      f"images the model was trained or validated on (a leak: their scores are not a test), e.g. "
                      f"{shown}. Leave them out of the test table.", CrossDatasetLeakWarning, stacklevel=3)
    return shared


def evaluate_run(
    run_dir: str | Path,
    *,
    split: str = "test",
    table: str | Path | None = None,
    root: str | Path | None = None,
    images: str | Path | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    device: str = "auto",
    batch_size: int | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Predictions of a run's best model on ``split`` of its own table, of another table
    with the same target (cross-dataset tests: train on FairFace, test on UTKFace), or of the
    images in a folder (``images``). A table without the target column (or a folder) has no
    labels: its predictions table has no ``y_true``/``label_true`` (so no accuracy can be
    computed from it) and ``attrs["labelled"]`` is False; a table without ``split`` is all ``split``.

    Writes the predictions table to ``out`` when given: never over the table it reads or a
    file of the run, and over an existing file only with ``overwrite`` (checked before
    anything is computed, :func:`finefcace.errors.check_output`). Book: ``notebooks/05_evaluation.ipynb``.
    """
    run_dir = Path(run_dir)
    saved = read_run_config(run_dir)
    if images is not None and table is not None:
        raise ConfigError("give a table or a folder of images to predict on, not both")
    table_path = Path(table) if table is not None else Path(saved.get("table") or "")
    if out is not None:
        inputs = {table_path: "the table this command reads"} if table is not None or saved.get("table") else {}
        inputs.update({run_dir / name: f"part of the run in {run_dir}" for name in RUN_FILES})
        out = check_output(out, inputs=inputs, overwrite=overwrite)
    resolved_device = distributed.resolve_device(device)
    model, config, classes, _ = load_best_model(run_dir, resolved_device)
    if images is not None:
        frame, image_root = folder_table(images, split), Path(images)
        skipped = frame.attrs.get("skipped", [])
        if skipped:  # counted and named: a dangling link is not an image quietly left out
            logger.warning("skipped %d of %d image names under %s that cannot be read (dangling or looping links): %s",
                           len(skipped), len(skipped) + len(frame), images,
                           ", ".join(skipped[:10]) + (f", ... ({len(skipped) - 10} more)" if len(skipped) > 10 else ""))
    else:
        if table is None and not saved.get("table"):
            raise ConfigError(f"{run_dir / CONFIG_FILE} names no dataset table; pass the table to predict on")
        image_root = Path(root) if root is not None else (
            Path(saved["root"]) if table is None and saved.get("root") else table_path.parent)
        if not image_root.is_dir():
            raise DataError(f"image root {str(image_root)!r} of table {str(table_path)!r} is not a folder; give the "
                            "folder its paths are relative to")
        frame = load_table(table_path, default_split=split if table is not None else None)
    labelled = config.target in frame.columns
    if not labelled:  # a placeholder the loader needs; dropped from the predictions below
        frame = frame.assign(**{config.target: classes[0]})
    resolved = config.resolved()
    dataset = FaceTableDataset(frame, image_root, config.target, split=split, classes=classes,
                               transform=test_transform(resolved["input_size"]))
    if len(dataset) == 0:
        raise TrainingDataError(f"table {str(images or table_path)!r} has no rows with split == {split!r}")
    leaks = None
    if table is not None or images is not None:
        leaks = training_overlap(saved, config, dataset.table, image_root)
    dataset.images = decoded_images(dataset.table, image_root, resolved["input_size"],
                                    cache_folder(config.image_cache, table_path), purpose="prediction")
    context = distributed.DistributedContext(device=resolved_device)
    loader = eval_loader(dataset, config, batch_size or resolved["batch_size"], context, resolved_device)
    try:
        evaluation = evaluate_split(model, loader, config=config, device=resolved_device,
                                    amp_dtype=amp_dtype_for(config.amp, resolved_device), channels_last=False,
                                    context=context)
    except ModelOutputError as error:
        raise ModelOutputError(f"{run_dir / BEST_CHECKPOINT}: {error}") from error
    predictions = predictions_table(frame, evaluation, target=config.target, classes=classes,
                                    protected=config.protected if table is None and images is None else None)
    if not labelled:  # no true label, and not the placeholder copied as a protected column (gender)
        predictions = predictions.drop(columns=[c for c in ("y_true", "label_true", config.target)
                                                if c in predictions.columns])
    predictions.attrs["labelled"] = labelled
    if leaks is not None:
        predictions.attrs["training_overlap"] = leaks.to_dict("records")  # plain data: attrs are compared
    if out is not None:
        outputs.write_csv(predictions, out)
    return predictions
