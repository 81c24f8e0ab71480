"""The data side of a training run: the table checked, then seeded, sharded loaders.

Introduced in ``notebooks/04_training.ipynb``; the table format and the transforms (paper
§4.2, the published train/test transforms) are :mod:`finefcace.sources.table`'s, the splits
``notebooks/01_dataset_preparation.ipynb``'s. Here:

- :func:`prepare_data` finds the dataset table (or generates the synthetic set) and refuses,
  before anything trains, what cannot be trained on (:class:`TrainingDataError`): an empty
  train or validation split (model selection never uses the test split, ``book/decisions.md``),
  a single class, a class that only another split has (the training split fixes the classes),
  too few images per process, an image that cannot be decoded — every image is decoded once
  before the first batch (:func:`decoded_images`, the decoded-image cache of
  :mod:`finefcace.sources.image_cache`: the policy is *refuse before training*); image paths
  in two splits are reported (:func:`split_overlaps`);
- :class:`EpochShardSampler` and :func:`train_loader`: a training order that is a pure
  function of (seed, epoch), sharded over the processes of multi-process training
  (:mod:`finefcace.training.distributed`), each sample's random augmentation seeded by (seed, epoch,
  index) — so a resumed run sees exactly the images it would have seen;
- :func:`eval_loader`: a split in table order, every process taking every world_size-th image;
- :func:`protected_domains`: for the bias-mitigation methods only (:mod:`finefcace.mitigation`,
  ``notebooks/07_mitigation_methods.ipynb``), the protected label of every training image —
  the training loader then yields it as a fourth item. For every other method the loader
  never carries it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from finefcace.errors import DataError
from finefcace.metrics import protected_columns
from finefcace.mitigation import MITIGATIONS, cell_counts, uses_protected_labels
from finefcace.sources.dataset import FaceTableDataset, _label_key
from finefcace.sources.image_cache import DecodedImages, UnusableImagesError, decode_images
from finefcace.sources.table import SPLITS, classes_for, load_table, validate_table
from finefcace.sources.transforms import test_transform, train_transform
from finefcace.training import distributed
from finefcace.training.config import ConfigError, TrainConfig

__all__ = ["TrainingDataError", "TrainingData", "ProtectedDomains", "prepare_data", "protected_domains",
           "decoded_images", "mix_seed", "EpochShardSampler", "train_loader", "eval_loader"]

logger = logging.getLogger(__name__)


class TrainingDataError(DataError):
    """The dataset cannot be trained on (empty split, one class, too few images, ...)."""



@dataclasses.dataclass
class ProtectedDomains:
    """The protected label of the training images, for a method that trains with it: the
    columns it is read from, the domain names (sorted; several columns are crossed, e.g.
    "tone_1 / Female") and each training image's domain code, in the train dataset's order;
    ``counts`` are the training images per (domain, class) cell, shape (D, K)."""

    columns: list[str]
    names: list[str]
    codes: np.ndarray
    counts: torch.Tensor

    def describe(self) -> str:
        return (f"protected column(s) {', '.join(self.columns)}: {len(self.names)} domains "
                f"({', '.join(self.names)}), {int((self.counts > 0).sum())} non-empty (domain, class) groups")


@dataclasses.dataclass
class TrainingData:
    """A run's dataset table (and where it was read), its classes and its split datasets;
    ``domains`` only for a method that trains with protected labels."""

    table: pd.DataFrame
    root: Path
    table_path: Path
    classes: list
    train: FaceTableDataset
    val: FaceTableDataset
    test: FaceTableDataset | None
    overlaps: dict[str, int] = dataclasses.field(default_factory=dict)  # "train/test" -> paths in both
    domains: ProtectedDomains | None = None


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _locate_table(config: TrainConfig, context: distributed.DistributedContext | None = None) -> tuple[Path, Path]:
    """(table path, image root) of a config; generates the synthetic set when asked (on
    rank 0 only; the other ranks wait for it)."""
    context = context or distributed.DistributedContext()
    table_path, root = _table_location(config)
    if config.synthetic is not None:
        folder = table_path.parent
        if not table_path.is_file() and folder.is_dir() and any(folder.iterdir()):
            raise ConfigError(
                f"config key 'root': {str(folder)!r} holds files but no labels.csv, and 'synthetic' would generate "
                "its faces there, writing over files of the same names; point root at a new or empty folder "
                "(or at a folder the synthetic faces were generated in)")
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
    from finefcace.sources import synthetic

    options = dict(config.synthetic or {})
    options.setdefault("size", config.resolved()["input_size"])
    details = ", ".join(f"{key.removeprefix('n_')} {value:,}" if key.startswith("n_") else f"{key} {value}"
                        for key, value in options.items())
    logger.info("generating the synthetic dataset in %s (%s)", out_dir, details)
    synthetic.generate_synthetic(out_dir, **options)


def prepare_data(config: TrainConfig, context: distributed.DistributedContext | None = None) -> TrainingData:
    """Read and check the dataset table before anything trains."""
    context = context or distributed.DistributedContext()
    world_size = context.world_size
    resolved = config.resolved()
    table_path, root = _locate_table(config, context)
    table = load_table(table_path)
    try:
        validate_table(table, config.target)
    except ValueError as error:
        raise ConfigError(f"config key 'target': {error}") from error
    if config.protected is not None:
        absent = [c for c in config.protected if c not in table.columns]
        if absent:
            raise ConfigError(f"config key 'protected': column(s) {absent} are not in the dataset table "
                              f"{str(table_path)!r} (its columns: {list(table.columns)}); name columns it has, or "
                              "null for the default (race/tone and gender)")
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
    classes = [_plain(c) for c in classes_for(table[table["split"] == "train"], config.target)]
    _check_label_space(table, config.target, classes, table_path)
    overlaps = split_overlaps(table)
    for pair, paths in overlaps.items():
        logger.warning("dataset table %s: %d image path(s) are in both the %s and the %s split (first: %s): the "
                       "later split's scores are then not on unseen images; drop those rows from one of them",
                       table_path, len(paths), *pair.split("/"), paths[:3])
    share = splits["train"] // world_size
    if share < 2:
        raise TrainingDataError(
            f"the training split has {splits['train']} image(s) for {world_size} process(es): each "
            "process needs at least 2 (BatchNorm cannot train on one image); add training images"
        )
    size = resolved["input_size"]
    train = FaceTableDataset(table, root, config.target, split="train", classes=classes,
                             transform=train_transform(size))
    val = FaceTableDataset(table, root, config.target, split="val", classes=classes,
                           transform=test_transform(size))
    domains = protected_domains(config, table, table_path, train) if uses_protected_labels(config.method) else None
    test = None
    if splits.get("test", 0):
        test = FaceTableDataset(table, root, config.target, split="test", classes=classes,
                                transform=test_transform(size))
    else:
        logger.warning("table %s has no test split: no predictions_test.csv will be written", table_path)
    images = decoded_images(table, root, size, cache_folder(config.image_cache, table_path), context)
    for dataset in (train, val, test):
        if dataset is not None:
            dataset.images = images
    return TrainingData(table, root, table_path, classes, train, val, test,
                        {pair: len(paths) for pair, paths in overlaps.items()}, domains)


def _check_label_space(table: pd.DataFrame, target: str, classes: list, table_path: Path) -> None:
    """The training split fixes the classes (the model's outputs): a label met only in another
    split is an error naming it and the split, never an extra output class."""
    known = {_label_key(c) for c in classes}
    for split in SPLITS:
        rows = table[table["split"] == split]
        unknown = rows[[_label_key(v) not in known for v in rows[target].tolist()]]
        if len(unknown):
            value = _plain(unknown[target].iloc[0])
            where = ("is not one of the classes of target" if split == "train"
                     else "is not among the classes the training split fixes for target")
            raise TrainingDataError(
                f"class {value!r} in split {split!r} of {str(table_path)!r} (rows {unknown.index[:5].tolist()}, "
                f"{len(unknown)} in all) {where} {target!r} ({classes}): a model has one output per class of "
                "the training split and cannot learn one it never sees; fix or drop those rows, or give the "
                "training split examples of it")


def split_overlaps(table: pd.DataFrame) -> dict[str, list[str]]:
    """Image paths that are in two splits (``"train/test" -> paths``, normalised: ``./a/b`` is
    ``a/b``). Book: ``notebooks/01_dataset_preparation.ipynb`` (same images in two splits)."""
    import posixpath

    paths = {split: set(table.loc[table["split"] == split, "path"].map(lambda p: posixpath.normpath(str(p))))
             for split in SPLITS}
    found = {}
    for first, second in (("train", "val"), ("train", "test"), ("val", "test")):
        common = sorted(paths[first] & paths[second])
        if common:
            found[f"{first}/{second}"] = common
    return found


def cache_folder(image_cache: str | None, table_path: str | Path) -> Path:
    """Where a table's decoded images live: ``image_cache`` (a config key), by default
    ``image_cache/`` beside the table."""
    return Path(image_cache).expanduser() if image_cache is not None else Path(table_path).parent / "image_cache"


def decoded_images(table: pd.DataFrame, root: Path, size: int, folder: Path,
                   context: distributed.DistributedContext | None = None, *,
                   purpose: str = "training") -> DecodedImages | None:
    """Every image of ``table`` decoded once for input ``size``, before anything trains or is
    predicted (``purpose``: ``training`` or ``prediction``, as the refusal says;
    :func:`finefcace.sources.image_cache.decode_images`; the main process decodes, the others
    read its cache). An unusable image is a :class:`TrainingDataError` listing each one and the fix."""
    context = context or distributed.DistributedContext()
    threads = min(8, os.cpu_count() or 1)
    try:
        if context.is_main:
            images = decode_images(table, root, size, folder, threads=threads, purpose=purpose)
        distributed.barrier(context)
        if not context.is_main:
            images = decode_images(table, root, size, folder, threads=threads, purpose=purpose)
    except UnusableImagesError as error:
        raise TrainingDataError(str(error)) from None
    return images


def protected_domains(config: TrainConfig, table: pd.DataFrame, table_path: Path,
                      train: FaceTableDataset) -> ProtectedDomains:
    """The protected label of every training image, for a mitigation method
    (:mod:`finefcace.mitigation`). Its columns: the table's protected columns
    (:func:`finefcace.metrics.protected_columns`: race, tone, gender), restricted to config key
    ``protected`` when it is set, **without the target** (on the gender task the domain is the
    race or the tone; with race × gender the groups are the paper's subgroups). Several columns
    are crossed. Refuses, before anything trains, a table without such a column, a training
    image without a value, and a training split with a single domain."""
    method = config.method
    columns = [c for c in protected_columns(table)
               if c != config.target and (config.protected is None or c in config.protected)]
    if not columns:
        from finefcace.metrics import PROTECTED_ATTRIBUTES

        candidates = [c for c in PROTECTED_ATTRIBUTES if c != config.target]
        restricted = f" among config key 'protected' ({config.protected})" if config.protected is not None else ""
        raise TrainingDataError(
            f"method {method!r} trains with a protected label ({MITIGATIONS[method].source}), but table "
            f"{str(table_path)!r} has no protected column besides the target {config.target!r}{restricted}: it needs "
            f"a column {' or '.join(repr(c) for c in candidates)}. Add it to the table (python -m data_prep "
            f"writes race and gender for FairFace, UTKFace and LFWA+, gender for CelebA), or train a method that "
            f"needs no protected label: method: finefcace or method: baseline"
        )
    rows = table.loc[train.row_indices, columns]
    missing = rows.isna().any(axis=1)
    if missing.any():
        shown = rows.index[missing][:5].tolist()
        raise TrainingDataError(
            f"method {method!r} trains with the protected label ({', '.join(columns)}), but {int(missing.sum())} "
            f"training row(s) of {str(table_path)!r} have none (first rows {shown}); fill the column(s) or drop "
            f"those rows, or train method: finefcace or method: baseline, which need no protected label"
        )
    labels = rows.astype(str).agg(" / ".join, axis=1)
    names = sorted(labels.unique().tolist())
    if len(names) < 2:
        raise TrainingDataError(
            f"method {method!r} needs at least two protected domains in the training split, but column(s) "
            f"{columns} of {str(table_path)!r} hold only {names}: there is nothing to balance or to hide"
        )
    codes = labels.map({name: i for i, name in enumerate(names)}).to_numpy(dtype=np.int64)
    counts = cell_counts(torch.tensor(codes), torch.tensor(train.labels), len(names), len(train.classes))
    return ProtectedDomains(columns, names, codes, counts)


def mix_seed(*values: int) -> int:
    """A 63-bit seed from several integers (splitmix64 steps): distinct inputs, distinct seeds."""
    state = 0x9E3779B97F4A7C15
    for value in values:
        state = (state ^ (int(value) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        state ^= state >> 31
    return state & 0x7FFFFFFFFFFFFFFF


class _WithDomains(Dataset):
    """A training dataset whose items also carry the image's protected domain code (the
    mitigation methods only): ``(image, label, row_index, domain)``."""

    def __init__(self, dataset: Dataset, codes: np.ndarray) -> None:
        self.dataset = dataset
        self.codes = codes

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return (*self.dataset[index], int(self.codes[index]))


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
            torch.manual_seed(mix_seed(self.seed, epoch, index))
            return self.dataset[index]


class EpochShardSampler(Sampler):
    """Training order: a permutation seeded by (seed, epoch), sharded by rank (as
    ``DistributedSampler``: equal shares, rank r takes every world_size-th index), cut into
    whole batches (a last batch of one is dropped: BatchNorm cannot train on it), optionally
    starting at batch ``start_batch`` (resume). Yields ``(epoch, index)`` keys.

    With ``weights`` (one per training image) the epoch's ``size`` indices are instead drawn
    **with replacement**, image i with probability ∝ ``weights[i]`` — group-balanced sampling
    (:mod:`finefcace.mitigation.group_balance`, ``group_dro``) — still a pure function of
    (seed, epoch), so resuming stays exact."""

    def __init__(self, size: int, *, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 weights: torch.Tensor | None = None) -> None:
        if weights is not None and (len(weights) != size or not bool((torch.as_tensor(weights) >= 0).all())
                                    or not float(torch.as_tensor(weights).sum()) > 0):
            raise ValueError(f"EpochShardSampler: weights must be {size} non-negative numbers, not all 0")
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
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
        generator.manual_seed(mix_seed(self.seed, self.epoch, 0xD15C))
        if self.weights is None:
            order = torch.randperm(self.size, generator=generator)
        else:
            order = torch.multinomial(self.weights, self.size, replacement=True, generator=generator)
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


def train_loader(dataset: Dataset, sampler: EpochShardSampler, config: TrainConfig, batch_size: int, device,
                 domains: np.ndarray | None = None) -> DataLoader:
    """The training loader: items ``(image, label, row_index)``, and the protected domain code
    as a fourth item only when ``domains`` is given (a mitigation method)."""
    if domains is not None:
        dataset = _WithDomains(dataset, domains)
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


def eval_loader(dataset: Dataset, config: TrainConfig, batch_size: int, context: distributed.DistributedContext, device) -> DataLoader:
    indices = list(range(context.rank, len(dataset), context.world_size))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=indices,
        num_workers=config.workers,
        pin_memory=device.type == "cuda",
        worker_init_fn=_worker_init,
    )
