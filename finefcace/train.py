"""Training: FineFACE's multi-step mutual learning (paper §3.3, Algorithm 1) and the baseline.

Introduced in ``notebooks/04_training.ipynb``; the paper-vs-code switches it reads
(λ, which heads run in steps 2..N, one region draw per batch or per sample) are explained
in ``book/decisions.md`` and set in :mod:`finefcace.presets`.

Two layers:

- :func:`finefcace_iteration` and :func:`baseline_iteration`: what happens to **one
  mini-batch** (callable on their own, e.g. by the benchmarks).
- :func:`train_finefcace`, :func:`train_baseline` (or :func:`train`, which dispatches on
  ``config.method``) and :func:`train_or_load`: whole runs from a :class:`TrainConfig`,
  with the same data pipeline, optimizer, schedule and early stopping for both methods, a
  run directory (``config.json``, ``last.pt``/``best.pt``, ``history.csv``/``.json``,
  ``predictions_test.csv``), exact resume, signals, mixed precision and multi-process
  training (:mod:`finefcace.distributed`).

Algorithm 1, for a batch (images, labels) and N experts — N+2 optimizer steps, the gradients
reset to ``None`` before each, so each step updates exactly the parameters its loss reaches:

1. the deepest expert e_N on the raw batch, ``CE(p_N)``; from that same forward (detached,
   the shallower heads under ``no_grad``, before the step changes any weight) every
   expert's CAM, then A_1..A_N and A_oval — computed once per batch;
2. for n = N−1 … 1: expert e_n alone on an input drawn uniformly from
   {raw} ∪ {A_m : m ≠ n}, ``CE(p_n)``;
3. step N+1: all experts and the concatenation on A_oval, ``Σ_n CE(p_n) + λ·CE(p_oval)``;
4. step N+2: the concatenation on the raw batch, ``λ·CE(p_oval)``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import logging
import math
import os
import random
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler

from finefcace import attention, data, distributed, predict
from finefcace.checkpoint import atomic_save, load_checkpoint, rng_state, set_rng_state
from finefcace.config import ConfigError, TrainConfig, load_config
from finefcace.model import Baseline, FineFACE, FineFACEOutput

__all__ = [
    "NonFiniteLossError",
    "TrainingDataError",
    "TrainingInterrupted",
    "TrainResult",
    "finefcace_iteration",
    "baseline_iteration",
    "step_names",
    "build_model",
    "build_optimizer",
    "train",
    "train_finefcace",
    "train_baseline",
    "train_or_load",
    "load_run",
    "evaluate_run",
    "predictions_table",
    "seed_everything",
]

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
HISTORY_CSV = "history.csv"
HISTORY_JSON = "history.json"
SUMMARY_FILE = "summary.json"
CHECKPOINT_FORMAT = 1
#: Columns copied from the dataset table into the predictions table when present.
DEFAULT_PROTECTED = ("race", "tone", "gender", "Male", "age")


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN/inf; the message names the step, the batch and the last good checkpoint."""


class TrainingDataError(ValueError):
    """The dataset cannot be trained on (empty split, one class, too few images, ...)."""


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM arrived: ``last.pt`` was saved at a batch boundary; rerun to resume."""


# ======================================================================================
# One mini-batch
# ======================================================================================

def _classification_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """L_cls of Algorithm 1: cross-entropy, computed in float32 (also under bf16 autocast)."""
    return F.cross_entropy(logits.float(), labels)


def step_names(num_experts: int) -> list[str]:
    """Names of the N+2 steps of one FineFACE iteration, in the order they run:
    ``expert_N, ..., expert_1`` (1-based as in the paper), ``overall_region`` (step N+1),
    ``concat_raw`` (step N+2). They key the losses and the history columns."""
    return [f"expert_{n}" for n in range(num_experts, 0, -1)] + ["overall_region", "concat_raw"]


def _loss_column(kind: str) -> str:
    """History column of a step kind: ``loss_expert_3``, ..., ``loss_concat_raw``; the baseline's ``loss``."""
    return kind if kind == "loss" else f"loss_{kind}"


def _autocast(device: torch.device, amp_dtype: torch.dtype | None):
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype)


def _draw_inputs(
    candidates: Sequence[Tensor],
    names: Sequence[str],
    region_draw: str,
    generator: torch.Generator | None,
) -> tuple[Tensor, str, list[int] | int]:
    """Pick the step-2..N input uniformly from ``candidates``: one draw for the whole batch
    (published code) or one per sample. Draws use a CPU generator: no device sync."""
    if region_draw == "batch":
        choice = int(torch.randint(len(candidates), (1,), generator=generator).item())
        return candidates[choice], names[choice], choice
    if region_draw != "sample":
        raise ValueError(f"region_draw must be 'batch' or 'sample', got {region_draw!r}")
    batch = candidates[0].shape[0]
    choices = torch.randint(len(candidates), (batch,), generator=generator)
    mixed = candidates[0].clone()
    device_choices = choices.to(mixed.device)
    for index in range(1, len(candidates)):
        mask = (device_choices == index)[:, None, None, None]
        mixed = torch.where(mask, candidates[index], mixed)
    return mixed, "per_sample", choices.tolist()


def finefcace_iteration(
    model: FineFACE,
    optimizer: torch.optim.Optimizer,
    images: Tensor,
    labels: Tensor,
    *,
    concat_loss_weight: float = 1.0,
    threshold: float = 0.5,
    pad: float = 0.1,
    region_draw: str = "batch",
    steps_forward: str = "expert_only",
    generator: torch.Generator | None = None,
    amp_dtype: torch.dtype | None = None,
    after_backward: Callable[[], Any] | None = None,
    on_step: Callable[[dict[str, Any]], Any] | None = None,
    stats: dict[str, Any] | None = None,
) -> dict[str, Tensor]:
    """One FineFACE training iteration: the N+2 optimizer steps of Algorithm 1 on one batch.

    Paper §3.3 and supplementary Algorithm 1; book ``notebooks/04_training.ipynb``.

    Args:
        model: a :class:`~finefcace.model.FineFACE` in train mode.
        optimizer: steps over the model's parameters (e.g. :func:`build_optimizer`).
        images, labels: the raw batch (on the model's device) and its class indices.
        concat_loss_weight: λ (preset ``paper`` 1, ``official_code`` 2).
        threshold, pad: attention-region threshold t and box padding (paper §3.2).
        region_draw: ``"batch"`` (one draw of the step-n input per batch) or ``"sample"``.
        steps_forward: ``"expert_only"`` (paper: step n forwards only e_n, step 1 runs the
            shallower heads under ``no_grad``) or ``"all_heads"`` (published code: every step
            forwards the whole model and uses the head it trains).
        generator: CPU generator for the region draws (the trainer's, checkpointed).
        amp_dtype: autocast dtype (``torch.bfloat16``) or ``None``.
        after_backward: called after every backward, before the step (multi-process
            gradient averaging, :func:`finefcace.distributed.average_gradients`).
        on_step: called after every optimizer step with ``{"step", "name", "input_name",
            "input", "loss"}`` (instrumentation, tests).
        stats: if given, receives ``"correct"`` (correct predictions of p_oval on the raw
            batch, from step N+2's forward, a tensor), ``"inputs"`` (the input name of each
            step) and ``"regions"`` (A_1..A_N) and ``"overall_region"`` (A_oval).

    Returns:
        ``{step name: detached loss}`` for the N+2 steps, in order (see :func:`step_names`).
        Losses stay on the device (no host synchronisation here).
    """
    if steps_forward not in ("expert_only", "all_heads"):
        raise ValueError(f"steps_forward must be 'expert_only' or 'all_heads', got {steps_forward!r}")
    num_experts = model.num_experts
    names = step_names(num_experts)
    device = images.device
    losses: dict[str, Tensor] = {}
    inputs_seen: dict[str, str] = {}

    def finish_step(index: int, loss: Tensor, input_name: str, input_tensor: Tensor) -> None:
        loss.backward()
        if after_backward is not None:
            after_backward()
        optimizer.step()
        name = names[index]
        losses[name] = loss.detach()
        inputs_seen[name] = input_name
        if on_step is not None:
            on_step({"step": index + 1, "name": name, "input_name": input_name,
                     "input": input_tensor, "loss": losses[name]})

    # ---- step 1: the deepest expert on the raw batch; CAMs and regions from this forward
    optimizer.zero_grad(set_to_none=True)
    with _autocast(device, amp_dtype):
        if steps_forward == "all_heads":
            full = model(images)
            deepest_logits = full.expert_logits[-1]
            cam_output = FineFACEOutput(
                expert_logits=[p.detach() for p in full.expert_logits],
                concat_logits=full.concat_logits.detach(),
                maps=[m.detach().float() for m in full.maps],
                descriptors=[v.detach() for v in full.descriptors],
            )
        else:
            features = model.backbone_features(images)  # x_1..x_N, stages 1..m_N
            deepest_logits, deepest_map, deepest_descriptor = model.expert_head(num_experts - 1, features[-1])
            with torch.no_grad():  # shallower heads only feed the CAMs
                shallow = [model.expert_head(n, features[n].detach()) for n in range(num_experts - 1)]
            cam_output = FineFACEOutput(
                expert_logits=[h[0].detach() for h in shallow] + [deepest_logits.detach()],
                concat_logits=deepest_logits.detach(),  # unused by the CAMs; p_oval is not computed here
                maps=[h[1].detach().float() for h in shallow] + [deepest_map.detach().float()],
                descriptors=[h[2].detach() for h in shallow] + [deepest_descriptor.detach()],
            )
        loss = _classification_loss(deepest_logits, labels)
    # Before the step changes any weight: the CAMs use the classifiers that made p_n.
    with torch.no_grad():
        cams = attention.class_activation_maps(model, cam_output)
        regions = attention.attention_regions(images, cams, threshold, pad)  # A_1..A_N
        overall = attention.overall_region(images, cams, threshold, pad)      # A_oval
        if images.dim() == 4 and images.is_contiguous(memory_format=torch.channels_last):
            regions = [r.contiguous(memory_format=torch.channels_last) for r in regions]
            overall = overall.contiguous(memory_format=torch.channels_last)
    del cam_output
    finish_step(0, loss, "raw", images)

    # ---- steps 2..N: expert n (deep to shallow) on raw or another expert's region
    for step, n in enumerate(range(num_experts - 2, -1, -1), start=1):
        pool = [images] + [regions[m] for m in range(num_experts) if m != n]
        pool_names = ["raw"] + [f"A_{m + 1}" for m in range(num_experts) if m != n]
        chosen, chosen_name, _ = _draw_inputs(pool, pool_names, region_draw, generator)
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, amp_dtype):
            if steps_forward == "all_heads":
                logits = model(chosen).expert_logits[n]
            else:
                logits = model.forward_expert(chosen, n)[0]
            loss = _classification_loss(logits, labels)
        finish_step(step, loss, chosen_name, chosen)

    # ---- step N+1: every expert and the concatenation on A_oval
    optimizer.zero_grad(set_to_none=True)
    with _autocast(device, amp_dtype):
        out = model(overall)
        loss = sum(_classification_loss(p, labels) for p in out.expert_logits)
        loss = loss + concat_loss_weight * _classification_loss(out.concat_logits, labels)
    finish_step(num_experts, loss, "A_oval", overall)

    # ---- step N+2: the concatenation on the raw batch
    optimizer.zero_grad(set_to_none=True)
    with _autocast(device, amp_dtype):
        out = model(images)
        loss = concat_loss_weight * _classification_loss(out.concat_logits, labels)
    correct = (out.concat_logits.detach().argmax(dim=1) == labels).sum()
    finish_step(num_experts + 1, loss, "raw", images)

    if stats is not None:
        stats["correct"] = correct
        stats["inputs"] = inputs_seen
        stats["regions"] = regions
        stats["overall_region"] = overall
    return losses


def baseline_iteration(
    model: Baseline,
    optimizer: torch.optim.Optimizer,
    images: Tensor,
    labels: Tensor,
    *,
    amp_dtype: torch.dtype | None = None,
    after_backward: Callable[[], Any] | None = None,
    stats: dict[str, Any] | None = None,
    **_: Any,
) -> dict[str, Tensor]:
    """One baseline iteration: forward, ``CE``, backward, one step. Returns ``{"loss": ...}``.

    Book: ``notebooks/04_training.ipynb``. ``stats`` receives ``"correct"``.
    """
    optimizer.zero_grad(set_to_none=True)
    with _autocast(images.device, amp_dtype):
        logits = model(images)
        loss = _classification_loss(logits, labels)
    loss.backward()
    if after_backward is not None:
        after_backward()
    optimizer.step()
    if stats is not None:
        stats["correct"] = (logits.detach().argmax(dim=1) == labels).sum()
    return {"loss": loss.detach()}


# ======================================================================================
# Model, optimizer, schedule
# ======================================================================================

def build_model(config: TrainConfig, num_classes: int) -> FineFACE | Baseline:
    """The model a config describes (FineFACE from its preset, or the baseline).

    Book: ``notebooks/04_training.ipynb``.
    """
    resolved = config.resolved()
    if config.method == "baseline":
        return Baseline(resolved["backbone"], num_classes, weights=config.weights)
    model_keys = {k: resolved[k] for k in ("experts", "activation", "head", "pooling",
                                           "descriptor_dim", "descriptor_bn_momentum")}
    return FineFACE(resolved["backbone"], num_classes, weights=config.weights, **model_keys)


def build_optimizer(model: FineFACE | Baseline, resolved: dict[str, Any]) -> torch.optim.SGD:
    """SGD with two parameter groups (paper §4.2, published code): the pretrained backbone at
    ``backbone_lr`` (0.0002), the new layers at ``head_lr`` (0.002); momentum 0.9, weight decay
    5e-4 — all from the preset. Group 0 is the heads, group 1 the backbone."""
    if resolved.get("optimizer", "sgd") != "sgd":
        raise ConfigError(f"preset key 'optimizer' must be 'sgd', got {resolved['optimizer']!r}")
    return torch.optim.SGD(
        [
            {"params": model.head_parameters(), "lr": resolved["head_lr"], "name": "head"},
            {"params": model.backbone_parameters(), "lr": resolved["backbone_lr"], "name": "backbone"},
        ],
        lr=resolved["head_lr"],
        momentum=resolved["momentum"],
        weight_decay=resolved["weight_decay"],
    )


def build_scheduler(optimizer: torch.optim.Optimizer, resolved: dict[str, Any], epochs: int):
    """Cosine annealing over the epochs (stepped once per epoch), as the published code."""
    if resolved.get("lr_schedule", "cosine") != "cosine":
        raise ConfigError(f"preset key 'lr_schedule' must be 'cosine', got {resolved['lr_schedule']!r}")
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices); ``deterministic`` also asks torch for
    deterministic algorithms (``torch.use_deterministic_algorithms(True)``, cuDNN
    deterministic, no benchmark). Book: ``notebooks/04_training.ipynb``."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def _compile_in_place(model: nn.Module) -> None:
    """``torch.compile`` every top-level block in place (the trainer calls the blocks —
    ``backbone_features``, ``expert_head`` — not only ``forward``); state-dict keys unchanged.

    The blocks share one compiled entry point, guarded per block and per grad mode, so the
    recompile limit is raised to fit them all (otherwise dynamo falls back to eager after 8)."""
    modules = []
    for child in model.children():
        modules.extend(list(child) if isinstance(child, nn.ModuleList) else [child])
    import torch._dynamo

    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, max(getattr(torch._dynamo.config, name), 4 * len(modules) + 8))
    for module in modules:
        module.compile()


# ======================================================================================
# Data
# ======================================================================================

@dataclasses.dataclass
class _Data:
    table: pd.DataFrame
    root: Path
    table_path: Path
    classes: list
    train: data.FaceTableDataset
    val: data.FaceTableDataset
    test: data.FaceTableDataset | None


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _locate_table(config: TrainConfig, context: distributed.DistributedContext | None = None) -> tuple[Path, Path]:
    """(table path, image root) of a config; generates the synthetic set when asked (on
    rank 0 only; the other ranks wait for it)."""
    context = context or distributed.DistributedContext()
    table_path, root = _table_location(config)
    if config.synthetic is not None:
        if context.is_main and not table_path.is_file():
            _generate_synthetic(config, table_path.parent)
        distributed.barrier(context)
    return table_path, root


def _table_location(config: TrainConfig) -> tuple[Path, Path]:
    if config.table is not None:
        table_path = Path(config.table).expanduser()
        root = Path(config.root).expanduser() if config.root is not None else table_path.parent
        if not table_path.is_file() and config.synthetic is None:
            raise ConfigError(
                f"config key 'table': {str(table_path)!r} does not exist; point it at a dataset "
                "table CSV (see notebooks/01_dataset_preparation.ipynb) or set 'synthetic'"
            )
        return table_path, root
    if config.synthetic is not None:
        root = Path(config.root).expanduser() if config.root is not None else Path(config.run_dir) / "data"
        return root / "labels.csv", root
    raise ConfigError(
        "no data: set 'table' (a dataset table CSV, with 'root' its image folder) or "
        "'synthetic' (generate_synthetic arguments, e.g. synthetic: {n_train: 400, n_val: 100, n_test: 200})"
    )


def _generate_synthetic(config: TrainConfig, out_dir: Path) -> None:
    from finefcace import synthetic

    options = dict(config.synthetic or {})
    options.setdefault("size", config.resolved()["input_size"])
    logger.info("generating the synthetic dataset in %s (%s)", out_dir, options)
    synthetic.generate_synthetic(out_dir, **options)


def _prepare_data(config: TrainConfig, context: distributed.DistributedContext | None = None) -> _Data:
    """Read and check the dataset table before anything trains."""
    context = context or distributed.DistributedContext()
    world_size = context.world_size
    resolved = config.resolved()
    table_path, root = _locate_table(config, context)
    table = data.load_table(table_path)
    try:
        data.validate_table(table, config.target)
    except ValueError as error:
        raise ConfigError(f"config key 'target': {error}") from error
    classes = [_plain(c) for c in data.classes_for(table, config.target)]
    splits = table["split"].value_counts().to_dict()
    if splits.get("train", 0) == 0:
        raise TrainingDataError(
            f"the training split is empty: table {str(table_path)!r} has no row with split == 'train' "
            f"(rows per split: {splits}); add training rows"
        )
    if splits.get("val", 0) == 0:
        raise TrainingDataError(
            f"the validation split is empty: table {str(table_path)!r} has no row with split == 'val' "
            f"(rows per split: {splits}). Early stopping and checkpoint selection use it (never the "
            "test split): move a seeded, stratified part of 'train' to 'val'"
        )
    train_labels = table.loc[table["split"] == "train", config.target]
    present = sorted({str(_plain(v)) for v in train_labels.dropna()})
    if len(present) < 2:
        raise TrainingDataError(
            f"target {config.target!r} has a single class ({present[0] if present else 'none'}) in the "
            f"training split of {str(table_path)!r}: a classifier needs at least two; check the "
            "'target' key or the table's labels"
        )
    share = splits["train"] // world_size
    if share < 2:
        raise TrainingDataError(
            f"the training split has {splits['train']} image(s) for {world_size} process(es): each "
            "process needs at least 2 (BatchNorm cannot train on one image); add training images"
        )
    size = resolved["input_size"]
    train = data.FaceTableDataset(table, root, config.target, split="train", classes=classes,
                                  transform=data.train_transform(size))
    val = data.FaceTableDataset(table, root, config.target, split="val", classes=classes,
                                transform=data.test_transform(size))
    test = None
    if splits.get("test", 0):
        test = data.FaceTableDataset(table, root, config.target, split="test", classes=classes,
                                     transform=data.test_transform(size))
    else:
        logger.warning("table %s has no test split: no predictions_test.csv will be written", table_path)
    return _Data(table, root, table_path, classes, train, val, test)


def _mix_seed(*values: int) -> int:
    """A 63-bit seed from several integers (splitmix64 steps): distinct inputs, distinct seeds."""
    state = 0x9E3779B97F4A7C15
    for value in values:
        state = (state ^ (int(value) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        state ^= state >> 31
    return state & 0x7FFFFFFFFFFFFFFF


class _SeededItems(Dataset):
    """Items keyed ``(epoch, index)``: the random augmentation of a sample is seeded by
    (seed, epoch, index). So a run's data are a pure function of the seed, whatever the
    number of workers, and a resumed run sees exactly the images it would have seen."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_mix_seed(self.seed, epoch, index))
            return self.dataset[index]


class EpochShardSampler(Sampler):
    """Training order: a permutation seeded by (seed, epoch), sharded by rank (as
    ``DistributedSampler``: equal shares, rank r takes every world_size-th index), cut into
    whole batches (a last batch of one is dropped: BatchNorm cannot train on it), optionally
    starting at batch ``start_batch`` (resume). Yields ``(epoch, index)`` keys."""

    def __init__(self, size: int, *, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.size = size
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch = epoch
        self.start_batch = start_batch

    def _share(self) -> int:
        share = self.size // self.world_size
        if share % self.batch_size == 1:
            share -= 1
        return share

    def batches_per_epoch(self) -> int:
        return math.ceil(self._share() / self.batch_size)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator()
        generator.manual_seed(_mix_seed(self.seed, self.epoch, 0xD15C))
        order = torch.randperm(self.size, generator=generator)
        per_rank = self.size // self.world_size
        mine = order[: per_rank * self.world_size][self.rank :: self.world_size][: self._share()]
        for index in mine[self.start_batch * self.batch_size :].tolist():
            yield (self.epoch, index)

    def __len__(self) -> int:
        return max(0, self._share() - self.start_batch * self.batch_size)


def _worker_init(worker_id: int) -> None:
    seed = torch.initial_seed() % (2**32)
    random.seed(seed)
    np.random.seed(seed)


def _train_loader(dataset: Dataset, sampler: EpochShardSampler, config: TrainConfig, batch_size: int, device) -> DataLoader:
    generator = torch.Generator()
    generator.manual_seed(config.seed)
    options: dict[str, Any] = {}
    if config.workers > 0:
        options.update(persistent_workers=True, prefetch_factor=4)
    return DataLoader(
        _SeededItems(dataset, config.seed),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=config.workers,
        pin_memory=device.type == "cuda",
        worker_init_fn=_worker_init,
        generator=generator,
        **options,
    )


def _eval_loader(dataset: Dataset, config: TrainConfig, batch_size: int, context: distributed.DistributedContext, device) -> DataLoader:
    indices = list(range(context.rank, len(dataset), context.world_size))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=indices,
        num_workers=config.workers,
        pin_memory=device.type == "cuda",
        worker_init_fn=_worker_init,
    )


# ======================================================================================
# Evaluation and predictions
# ======================================================================================

def _fusion(resolved: dict[str, Any]) -> dict[str, Any]:
    return {
        "views": tuple(resolved["fusion_views"]),
        "heads": resolved["fusion_heads"],
        "combine": resolved["fusion_combine"],
        "threshold": resolved["threshold"],
        "pad": resolved["pad"],
    }


def _evaluate(
    model: nn.Module,
    loader: DataLoader,
    *,
    resolved: dict[str, Any],
    device: torch.device,
    amp_dtype: torch.dtype | None,
    channels_last: bool,
    context: distributed.DistributedContext,
    max_batches: int | None = None,
) -> dict[str, Any]:
    """Scores of every image of a split (fused inference for FineFACE), gathered across ranks.

    Returns ``row_index``, ``y_true``, ``probabilities`` (numpy), ``accuracy`` and ``loss``.
    """
    fusion = _fusion(resolved)
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
            with _autocast(device, amp_dtype):
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
    columns = list(protected) if protected is not None else [c for c in DEFAULT_PROTECTED if c in table.columns]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ConfigError(f"config key 'protected': column(s) {missing} are not in the dataset table")
    for column in columns:
        out[column] = rows[column].to_numpy()
    return out


# ======================================================================================
# Runs
# ======================================================================================

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


class _Signals:
    """SIGINT/SIGTERM -> a flag checked at batch boundaries (installed in the main thread only)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_Signals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    self._previous[sig] = signal.signal(sig, self._handle)
                except (ValueError, OSError):  # pragma: no cover - unusual embedding
                    pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        self.received = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _write_text_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    _write_text_atomic(run_dir / HISTORY_JSON, json.dumps(history, indent=1))
    if history:
        columns = list(dict.fromkeys(k for row in history for k in row))
        temporary = run_dir / f".{HISTORY_CSV}.tmp"
        with open(temporary, "w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=columns)
            writer.writeheader()
            writer.writerows(history)
        os.replace(temporary, run_dir / HISTORY_CSV)


def _identity_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    keys = sorted(set(saved) | set(current))
    return [k for k in keys if saved.get(k) != current.get(k)]


class _Run:
    """One training run (FineFACE or baseline); see :func:`train`."""

    def __init__(self, config: TrainConfig, *, progress_stream=None) -> None:
        self.config = config
        self.resolved = config.resolved()
        self.run_dir = Path(config.run_dir)
        self.context = distributed.init_distributed(config.device, config.dist_backend)
        self.device = self.context.device
        self.progress_stream = progress_stream

    # ---------------------------------------------------------------- setup
    def setup(self) -> None:
        config, context = self.config, self.context
        seed_everything(config.seed, config.deterministic)
        if config.sync_batchnorm and self.device.type != "cuda":
            raise ConfigError("config key 'sync_batchnorm' needs CUDA devices; set sync_batchnorm: false")
        self.data = _prepare_data(config, context)
        self.model = build_model(config, len(self.data.classes)).to(self.device)
        if config.sync_batchnorm and context.enabled:
            self.model = distributed.convert_sync_batchnorm(self.model, context)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        distributed.broadcast_module(self.model, context)
        self.optimizer = build_optimizer(self.model, self.resolved)
        self.scheduler = build_scheduler(self.optimizer, self.resolved, config.epochs)
        self.generator = torch.Generator()
        self.generator.manual_seed(_mix_seed(config.seed, 0xA77E))
        amp = config.amp if config.amp is not None else self.device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if amp else None
        batch_size = self.resolved["batch_size"]
        self.sampler = EpochShardSampler(len(self.data.train), batch_size=batch_size, seed=config.seed,
                                         rank=context.rank, world_size=context.world_size)
        self.train_loader = _train_loader(self.data.train, self.sampler, config, batch_size, self.device)
        self.val_loader = _eval_loader(self.data.val, config, batch_size, context, self.device)
        self.test_loader = (_eval_loader(self.data.test, config, batch_size, context, self.device)
                            if self.data.test is not None else None)
        if config.compile:
            _compile_in_place(self.model)
        self.step_kinds = (step_names(self.model.num_experts) if config.method == "finefcace" else ["loss"])
        # state that a checkpoint carries
        self.epoch = 0            # next epoch to run (0-based)
        self.batch = 0            # next batch within that epoch
        self.global_step = 0      # batches done in the whole run
        self.history: list[dict[str, Any]] = []
        self.best_metric: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.stopped_early = False
        self.sums = self._empty_sums()

    def _empty_sums(self) -> dict[str, float]:
        sums = {_loss_column(k): 0.0 for k in self.step_kinds}
        sums.update(correct=0.0, seen=0.0, batches=0.0, seconds=0.0)
        return sums

    # ---------------------------------------------------------------- run directory
    def prepare_run_dir(self) -> bool:
        """Create or check the run directory; True when a checkpoint should be resumed."""
        config = self.config
        config_file = self.run_dir / CONFIG_FILE
        current = config.identity()
        resume = False
        if config_file.is_file():
            saved = json.loads(config_file.read_text()).get("identity", {})
            differences = _identity_differences(saved, current)
            if differences and not config.overwrite:
                raise ConfigError(
                    f"run directory {str(self.run_dir)!r} holds a run with a different configuration "
                    f"(keys that differ: {', '.join(differences)}); choose another 'run_dir', or set "
                    "overwrite: true to start this run over there"
                )
            if differences or not config.resume:
                self._clear_run_dir()
            else:
                resume = (self.run_dir / LAST_CHECKPOINT).is_file()
        distributed.barrier(self.context)
        if self.context.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            document = {"config": config.to_dict(), "resolved": json.loads(json.dumps(self.resolved)),
                        "identity": current, "classes": self.data.classes,
                        "table": str(self.data.table_path), "root": str(self.data.root),
                        "world_size": self.context.world_size, "device": str(self.device)}
            _write_text_atomic(config_file, json.dumps(document, indent=1, default=str))
        distributed.barrier(self.context)
        return resume

    def _clear_run_dir(self) -> None:
        if not self.context.is_main:
            return
        for name in (LAST_CHECKPOINT, BEST_CHECKPOINT, HISTORY_CSV, HISTORY_JSON, SUMMARY_FILE,
                     "predictions_test.csv", "predictions_val.csv"):
            path = self.run_dir / name
            if path.exists():
                path.unlink()

    # ---------------------------------------------------------------- checkpoints
    def _checkpoint_state(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "method": self.config.method,
            "config": self.config.to_dict(),
            "classes": list(self.data.classes),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_state(self.generator),
            "position": {"epoch": self.epoch, "batch": self.batch, "step": self.global_step,
                         "world_size": self.context.world_size},
            "epoch_sums": distributed.all_gather_objects(dict(self.sums), self.context),  # one per rank
            "history": [dict(row) for row in self.history],
            "best": {"metric": self.best_metric, "epoch": self.best_epoch, "bad_epochs": self.bad_epochs},
            "stopped_early": self.stopped_early,
        }

    def save_last(self) -> None:
        state = self._checkpoint_state()  # a collective under multi-process training: every rank
        if self.context.is_main:
            atomic_save(state, self.run_dir / LAST_CHECKPOINT)
        distributed.barrier(self.context)

    def save_best(self) -> None:
        if self.context.is_main:
            atomic_save({
                "format": CHECKPOINT_FORMAT, "method": self.config.method, "config": self.config.to_dict(),
                "classes": list(self.data.classes), "model": self.model.state_dict(),
                "epoch": self.best_epoch, "metric": self.best_metric, "monitor": self.config.monitor,
            }, self.run_dir / BEST_CHECKPOINT)

    def restore(self) -> None:
        state = load_checkpoint(self.run_dir / LAST_CHECKPOINT, map_location=self.device)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"], self.generator)
        self.epoch = state["position"]["epoch"]
        self.batch = state["position"]["batch"]
        self.global_step = state["position"]["step"]
        saved_world = state["position"].get("world_size", 1)
        if self.batch and saved_world != self.context.world_size:
            raise ConfigError(
                f"{self.run_dir / LAST_CHECKPOINT} was saved mid-epoch by {saved_world} process(es); resume it "
                f"with the same number of processes (now {self.context.world_size}): the data shards differ"
            )
        sums = state["epoch_sums"]
        self.sums = dict(sums[self.context.rank] if len(sums) == self.context.world_size else self._empty_sums())
        self.history = [dict(row) for row in state["history"]]
        self.best_metric = state["best"]["metric"]
        self.best_epoch = state["best"]["epoch"]
        self.bad_epochs = state["best"]["bad_epochs"]
        self.stopped_early = state["stopped_early"]
        if self.context.is_main:
            logger.info("resuming %s from epoch %d, batch %d (step %d)", self.run_dir,
                        self.epoch + 1, self.batch, self.global_step)

    # ---------------------------------------------------------------- training
    def _iteration(self, images: Tensor, labels: Tensor, stats: dict[str, Any]) -> dict[str, Tensor]:
        after_backward = None
        if self.context.enabled:
            parameters = list(self.model.parameters())
            after_backward = lambda: distributed.average_gradients(parameters, self.context)  # noqa: E731
        if self.config.method == "baseline":
            return baseline_iteration(self.model, self.optimizer, images, labels, amp_dtype=self.amp_dtype,
                                      after_backward=after_backward, stats=stats)
        return finefcace_iteration(
            self.model, self.optimizer, images, labels,
            concat_loss_weight=self.resolved["concat_loss_weight"],
            threshold=self.resolved["threshold"], pad=self.resolved["pad"],
            region_draw=self.resolved["region_draw"], steps_forward=self.resolved["steps_forward"],
            generator=self.generator, amp_dtype=self.amp_dtype,
            after_backward=after_backward, stats=stats,
        )

    def _nonfinite_message(self, values: dict[str, float], rows: Tensor, batch_index: int) -> str:
        kinds = list(values)
        bad = next(k for k in kinds if not math.isfinite(values[k]))
        last = self.run_dir / LAST_CHECKPOINT
        where = (f"{last} (epoch {self._last_saved[0] + 1}, batch {self._last_saved[1]})"
                 if self._last_saved is not None else "none (no checkpoint was written yet)")
        shown = rows[:8].tolist()
        return (
            f"non-finite loss ({values[bad]}) in step {kinds.index(bad) + 1} of {len(kinds)} ('{bad}') "
            f"at epoch {self.epoch + 1}, batch {batch_index} (global step {self.global_step + 1}); "
            f"training stopped and nothing was saved after it. Last good checkpoint: {where}. "
            f"Try lower learning rates (overrides: head_lr / backbone_lr), amp: false, or check the "
            f"images of this batch (table rows {shown}{'...' if len(rows) > 8 else ''})"
        )

    def _epoch(self, signals: _Signals) -> str:
        """Train one epoch from ``self.batch``; returns "done", "stop" or "interrupt"."""
        from tqdm import tqdm

        config, context = self.config, self.context
        self.sampler.set_epoch(self.epoch, self.batch)
        total = self.sampler.batches_per_epoch()
        if config.max_batches is not None:
            total = min(total, config.max_batches)
        self.model.train()
        started = time.perf_counter()
        bar = tqdm(total=total, initial=self.batch, desc=f"epoch {self.epoch + 1}/{config.epochs}",
                   disable=not (config.progress and context.is_main), leave=False, dynamic_ncols=True,
                   file=self.progress_stream)
        outcome = "done"
        try:
            iterator = iter(self.train_loader) if self.batch < total else iter(())
            for batch_index in range(self.batch, total):
                images, labels, rows = next(iterator)
                images = images.to(self.device, non_blocking=True)
                labels = labels.to(self.device, non_blocking=True)
                if config.channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                stats: dict[str, Any] = {}
                losses = self._iteration(images, labels, stats)
                # one host synchronisation per batch: every loss and the correct count
                values_list = torch.stack([*losses.values(), stats["correct"].float()]).tolist()
                values = dict(zip(losses, values_list[:-1]))
                finite = all(math.isfinite(v) for v in values.values())
                nonfinite_anywhere, stop_anywhere = distributed.any_true(
                    [not finite, signals.received is not None], context)
                if nonfinite_anywhere:
                    if finite:
                        raise NonFiniteLossError(
                            f"non-finite loss on another process at epoch {self.epoch + 1}, batch "
                            f"{batch_index}; see rank 0's message. Last good checkpoint: {self.run_dir / LAST_CHECKPOINT}")
                    raise NonFiniteLossError(self._nonfinite_message(values, rows, batch_index))
                for kind, value in values.items():
                    self.sums[_loss_column(kind)] += value
                self.sums["correct"] += values_list[-1]
                self.sums["seen"] += len(labels)
                self.sums["batches"] += 1
                self.batch = batch_index + 1
                self.global_step += 1
                bar.update(1)
                if context.is_main and config.progress:
                    shown = {k[:14]: f"{v:.3f}" for k, v in values.items()}
                    shown["acc"] = f"{self.sums['correct'] / max(self.sums['seen'], 1.0):.3f}"
                    bar.set_postfix(shown, refresh=False)
                if stop_anywhere:
                    outcome = "interrupt"
                    break
                if config.stop_after_batches is not None and self.global_step >= config.stop_after_batches:
                    outcome = "stop"
                    break
                if config.checkpoint_every and self.global_step % config.checkpoint_every == 0 and self.batch < total:
                    self.sums["seconds"] += time.perf_counter() - started
                    started = time.perf_counter()
                    self.save_last()
                    self._last_saved = (self.epoch, self.batch)
        finally:
            bar.close()
            self.sums["seconds"] += time.perf_counter() - started
        return outcome

    def _end_epoch(self) -> None:
        """Validate, record history, step the schedule, checkpoint, decide on early stopping."""
        config, context = self.config, self.context
        distributed.average_buffers(self.model, context)
        learning_rates = {f"lr_{g.get('name', i)}": g["lr"] for i, g in enumerate(self.optimizer.param_groups)}
        evaluation = _evaluate(self.model, self.val_loader, resolved=self.resolved, device=self.device,
                               amp_dtype=self.amp_dtype, channels_last=config.channels_last,
                               context=context, max_batches=config.max_eval_batches)
        # every rank's sums: the history describes the whole data, identically on every rank
        every_rank = distributed.all_gather_objects(dict(self.sums), context)
        total = {key: sum(s[key] for s in every_rank) for key in self.sums}
        batches = max(total["batches"], 1.0)
        row: dict[str, Any] = {"epoch": self.epoch + 1, "step": self.global_step, "batches": int(self.sums["batches"])}
        for kind in self.step_kinds:
            row[_loss_column(kind)] = total[_loss_column(kind)] / batches
        row["train_accuracy"] = total["correct"] / max(total["seen"], 1.0)
        row["val_loss"] = evaluation["loss"]
        row["val_accuracy"] = evaluation["accuracy"]
        row.update(learning_rates)
        row["epoch_seconds"] = max(s["seconds"] for s in every_rank)
        metric = row[config.monitor]
        sign = 1.0 if config.monitor == "val_accuracy" else -1.0
        improved = self.best_metric is None or sign * (metric - self.best_metric) > config.min_delta
        row["best"] = bool(improved)
        self.history.append(row)
        if improved:
            self.best_metric, self.best_epoch, self.bad_epochs = metric, self.epoch + 1, 0
            self.save_best()
        else:
            self.bad_epochs += 1
        with warnings.catch_warnings():
            # After a resume at an epoch's end no optimizer step ran in this process yet.
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
            self.scheduler.step()
        self.epoch += 1
        self.batch = 0
        self.sums = self._empty_sums()
        if config.patience is not None and self.bad_epochs >= config.patience:
            self.stopped_early = True
        self.save_last()
        self._last_saved = (self.epoch, 0)
        if context.is_main:
            _write_history(self.run_dir, self.history)
            losses = "  ".join(f"{k}={row[_loss_column(k)]:.4f}" for k in self.step_kinds)
            logger.info(
                "epoch %d/%d  %s  train_acc=%.4f  val_acc=%.4f  val_loss=%.4f  lr=%s  %.1fs%s%s",
                row["epoch"], config.epochs, losses, row["train_accuracy"], row["val_accuracy"],
                row["val_loss"], "/".join(f"{v:.2e}" for v in learning_rates.values()), row["epoch_seconds"],
                "  *best*" if improved else "",
                f"  (early stop: {self.bad_epochs} epochs without improvement)" if self.stopped_early else "",
            )

    def finish(self) -> TrainResult:
        """Best weights back in the model, predictions written, summary written."""
        config, context = self.config, self.context
        best = load_checkpoint(self.run_dir / BEST_CHECKPOINT, map_location=self.device)
        self.model.load_state_dict(best["model"])
        predictions = None
        summary: dict[str, Any] = {
            "finished": True, "method": config.method, "epochs_run": self.epoch,
            "stopped_early": self.stopped_early, "best_epoch": self.best_epoch,
            "monitor": config.monitor, "best_metric": self.best_metric, "steps": self.global_step,
            "world_size": context.world_size, "device": str(self.device),
        }
        splits = [("val", self.val_loader)] + ([("test", self.test_loader)] if self.test_loader is not None else [])
        for split, loader in splits:
            evaluation = _evaluate(self.model, loader, resolved=self.resolved, device=self.device,
                                   amp_dtype=self.amp_dtype, channels_last=config.channels_last,
                                   context=context, max_batches=config.max_eval_batches)
            summary[f"{split}_accuracy"] = evaluation["accuracy"]
            table = predictions_table(self.data.table, evaluation, target=config.target,
                                      classes=self.data.classes, protected=config.protected)
            if split == "test":
                predictions = table
            if context.is_main and config.save_predictions:
                temporary = self.run_dir / f".predictions_{split}.csv.tmp"
                table.to_csv(temporary, index=False)
                os.replace(temporary, self.run_dir / f"predictions_{split}.csv")
        if context.is_main:
            _write_text_atomic(self.run_dir / SUMMARY_FILE, json.dumps(summary, indent=1))
            logger.info("finished %s: best epoch %s (%s %.4f), val accuracy %.4f%s", self.run_dir,
                        self.best_epoch, config.monitor, self.best_metric, summary["val_accuracy"],
                        f", test accuracy {summary['test_accuracy']:.4f}" if "test_accuracy" in summary else "")
        distributed.barrier(context)
        return TrainResult(self.run_dir, config, self.model, list(self.data.classes),
                           pd.DataFrame(self.history), summary, predictions)

    def run(self) -> TrainResult:
        self.setup()
        resume = self.prepare_run_dir()
        self._last_saved: tuple[int, int] | None = None
        if resume:
            self.restore()
            self._last_saved = (self.epoch, self.batch)
            if (self.run_dir / SUMMARY_FILE).is_file():
                summary = json.loads((self.run_dir / SUMMARY_FILE).read_text())
                if summary.get("finished"):
                    return load_run(self.run_dir, device=self.device)
        with _Signals() as signals:
            while self.epoch < self.config.epochs and not self.stopped_early:
                outcome = self._epoch(signals)
                if outcome == "interrupt":
                    self.save_last()
                    name = signal.Signals(signals.received).name if signals.received else "a signal"
                    raise TrainingInterrupted(
                        f"{name} received: saved {self.run_dir / LAST_CHECKPOINT} at epoch {self.epoch + 1}, "
                        f"batch {self.batch}; run the same command again to resume"
                    )
                if outcome == "stop":
                    self.save_last()
                    if self.context.is_main:
                        logger.info("stopped after %d batches (stop_after_batches); %s holds the position",
                                    self.global_step, self.run_dir / LAST_CHECKPOINT)
                    return TrainResult(self.run_dir, self.config, self.model, list(self.data.classes),
                                       pd.DataFrame(self.history), {"finished": False, "steps": self.global_step},
                                       None)
                self._end_epoch()
        return self.finish()


def train(config: TrainConfig | dict[str, Any] | str | Path, **changes: Any) -> TrainResult:
    """Train the model ``config.method`` names ("finefcace" or "baseline") — or resume it from
    ``run_dir/last.pt`` — and write its run directory. Book: ``notebooks/04_training.ipynb``.

    ``config``: a :class:`TrainConfig`, a dict or a YAML path; keyword ``changes`` override keys.
    Everything is checked (config keys and types, the dataset table, the splits, the classes)
    before the first batch.
    """
    config = load_config(config, **changes)
    run = _Run(config)
    try:
        return run.run()
    finally:
        distributed.shutdown(run.context)


def train_finefcace(config: TrainConfig | dict[str, Any] | str | Path, **changes: Any) -> TrainResult:
    """Train FineFACE with multi-step mutual learning (paper §3.3, Algorithm 1).

    Book: ``notebooks/04_training.ipynb``. Same as :func:`train` with ``method="finefcace"``.
    """
    return train(config, **{**changes, "method": "finefcace"})


def train_baseline(config: TrainConfig | dict[str, Any] | str | Path, **changes: Any) -> TrainResult:
    """Train the baseline (backbone + GAP + Linear) with the same data pipeline, optimizer,
    schedule and early stopping (spec/method.md §4). Book: ``notebooks/04_training.ipynb``."""
    return train(config, **{**changes, "method": "baseline"})


def _load_model_from(run_dir: Path, device: torch.device | str = "cpu") -> tuple[nn.Module, TrainConfig, list, dict]:
    best = load_checkpoint(run_dir / BEST_CHECKPOINT, map_location=device)
    config = TrainConfig.from_dict(best["config"])
    model = build_model(config.replace(weights=None), len(best["classes"]))
    model.load_state_dict(best["model"])
    model.to(device).eval()
    return model, config, list(best["classes"]), best


def load_run(run_dir: str | Path, device: torch.device | str = "cpu") -> TrainResult:
    """A finished run, read back from its directory (best weights, history, test predictions).

    Book: ``notebooks/04_training.ipynb``, ``notebooks/05_evaluation.ipynb``.
    """
    run_dir = Path(run_dir)
    model, config, classes, _ = _load_model_from(run_dir, device)
    history = pd.read_json(run_dir / HISTORY_JSON) if (run_dir / HISTORY_JSON).is_file() else pd.DataFrame()
    summary = json.loads((run_dir / SUMMARY_FILE).read_text()) if (run_dir / SUMMARY_FILE).is_file() else {}
    predictions_file = run_dir / "predictions_test.csv"
    predictions = pd.read_csv(predictions_file) if predictions_file.is_file() else None
    return TrainResult(run_dir, config, model, classes, history, summary, predictions)


def train_or_load(config: TrainConfig | dict[str, Any] | str | Path, **changes: Any) -> TrainResult:
    """Train-or-load for notebooks: when ``run_dir`` holds a *finished* run of the same
    configuration (same keys, up to where it is written and how progress shows), load it;
    otherwise train (resuming an unfinished run of the same configuration).

    Book: ``notebooks/04_training.ipynb``.
    """
    config = load_config(config, **changes)
    run_dir = Path(config.run_dir)
    summary_file, config_file = run_dir / SUMMARY_FILE, run_dir / CONFIG_FILE
    if summary_file.is_file() and config_file.is_file() and (run_dir / BEST_CHECKPOINT).is_file():
        saved = json.loads(config_file.read_text()).get("identity")
        if saved == config.identity() and json.loads(summary_file.read_text()).get("finished"):
            logger.info("loading the finished run in %s (same configuration)", run_dir)
            device = distributed.resolve_device(config.device)
            return load_run(run_dir, device=device)
    return train(config)


def evaluate_run(
    run_dir: str | Path,
    *,
    split: str = "test",
    table: str | Path | None = None,
    root: str | Path | None = None,
    out: str | Path | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Predictions of a run's best model on ``split`` of its own table, or of another table
    with the same target (cross-dataset tests: train on FairFace, test on UTKFace).

    Writes the predictions table to ``out`` when given. Book: ``notebooks/05_evaluation.ipynb``.
    """
    run_dir = Path(run_dir)
    resolved_device = distributed.resolve_device(device)
    model, config, classes, _ = _load_model_from(run_dir, resolved_device)
    saved = json.loads((run_dir / CONFIG_FILE).read_text()) if (run_dir / CONFIG_FILE).is_file() else {}
    table_path = Path(table) if table is not None else Path(saved.get("table") or config.table)
    image_root = Path(root) if root is not None else (
        Path(saved["root"]) if table is None and saved.get("root") else table_path.parent)
    frame = data.load_table(table_path)
    resolved = config.resolved()
    dataset = data.FaceTableDataset(frame, image_root, config.target, split=split, classes=classes,
                                    transform=data.test_transform(resolved["input_size"]))
    if len(dataset) == 0:
        raise TrainingDataError(f"table {str(table_path)!r} has no rows with split == {split!r}")
    context = distributed.DistributedContext(device=resolved_device)
    loader = _eval_loader(dataset, config, batch_size or resolved["batch_size"],
                          context, resolved_device)
    amp = config.amp if config.amp is not None else resolved_device.type == "cuda"
    evaluation = _evaluate(model, loader, resolved=resolved, device=resolved_device,
                           amp_dtype=torch.bfloat16 if amp else None, channels_last=False, context=context)
    predictions = predictions_table(frame, evaluation, target=config.target, classes=classes,
                                    protected=config.protected if table is None else None)
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        predictions.to_csv(out, index=False)
    return predictions
