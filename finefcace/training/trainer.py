"""Training runs: FineFACE's multi-step mutual learning (paper §3.3, Algorithm 1), the baseline,
and the bias-mitigation methods of :mod:`finefcace.mitigation`.

Introduced in ``notebooks/04_training.ipynb`` (the mitigation methods in
``notebooks/07_mitigation_methods.ipynb``); the paper-vs-code switches a run reads (λ, which
heads run in steps 2..N, one region draw per batch or per sample) are explained in
``book/decisions.md`` and set in :mod:`finefcace.presets`.

:func:`train_finefcace`, :func:`train_baseline` (or :func:`train`, which dispatches on
``config.method``) and :func:`train_or_load` run whole trainings from a :class:`TrainConfig`,
with the same data pipeline, optimizer, schedule and early stopping for every method, exact
resume, signals, mixed precision and multi-process training (:mod:`finefcace.training.distributed`).
A mitigation method also receives each training image's protected domain (a fourth loader
item, for these methods only), keeps its training state (group DRO's weights) in the
checkpoint, and says that it trains with protected labels: a log line at the start,
``uses_protected_labels`` in ``config.json`` and ``summary.json``.
This module is the loop (epochs, validation, early stopping, checkpoints); its parts are

- :mod:`finefcace.mutual_learning`: what happens to **one mini-batch**
  (:func:`~finefcace.mutual_learning.finefcace_iteration`, Algorithm 1's N+2 steps, and
  :func:`~finefcace.mutual_learning.baseline_iteration`);
- :mod:`finefcace.training.recipe`: the model, optimizer and schedule a config describes (paper §4.2);
- :mod:`finefcace.training.loaders`: the checked table and the seeded, sharded loaders;
- :mod:`finefcace.training.evaluation`: validation scores and the predictions tables;
- :mod:`finefcace.training.run_directory`: what a run writes (``config.json``, ``last.pt``/``best.pt``,
  ``history.csv``/``.json``, ``summary.json``, ``predictions_test.csv``) and reading it back;
- :mod:`finefcace.training.run_lock`: one training at a time per run directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import signal
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from finefcace import outputs
from finefcace.backbones import _is_path_like
from finefcace.errors import ModelOutputError
from finefcace.mitigation import MITIGATIONS, cell_index, inverse_frequency_weights
from finefcace.mutual_learning import baseline_iteration, finefcace_iteration, step_names
from finefcace.precision import amp_dtype_for
from finefcace.training import distributed
from finefcace.training.checkpoint import atomic_save, load_checkpoint, rng_state, set_rng_state
from finefcace.training.config import ConfigError, TrainConfig, load_config
from finefcace.training.evaluation import evaluate_split, predictions_table
from finefcace.training.loaders import EpochShardSampler, eval_loader, mix_seed, prepare_data, train_loader
from finefcace.training.model_card import write_model_card
from finefcace.training.recipe import (build_model, build_optimizer, build_scheduler, compile_in_place,
                                       iteration_options, seed_everything)
from finefcace.training.run_directory import (BEST_CHECKPOINT, CHECKPOINT_FORMAT, CONFIG_FILE, HISTORY_CSV,
                                              HISTORY_JSON, LAST_CHECKPOINT, MODEL_CARD_FILE, RUN_FILES, SUMMARY_FILE,
                                              TrainResult,
                                              identity_differences, load_run, read_run_config, write_history,
                                              write_text_atomic)
from finefcace.training.run_lock import RunDirectoryLock

__all__ = [
    "NonFiniteLossError",
    "TrainingInterrupted",
    "train",
    "train_finefcace",
    "train_baseline",
    "train_or_load",
]

logger = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN/inf; the message names the step, the batch and the last good checkpoint."""


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM arrived: ``last.pt`` was saved at a batch boundary; rerun to resume."""


def _loss_column(kind: str) -> str:
    """History column of a step kind: ``loss_expert_3``, ..., ``loss_concat_raw``; the baseline's ``loss``."""
    return kind if kind == "loss" else f"loss_{kind}"


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


class _Run:
    """One training run (FineFACE or baseline); see :func:`train`."""

    def __init__(self, config: TrainConfig, *, progress_stream=None) -> None:
        self.config = config
        self.resolved = config.resolved()
        self.iteration_options = iteration_options(config)
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
        self.data = prepare_data(config, context)
        domains = self.data.domains  # the protected labels: mitigation methods only
        self.mitigation = MITIGATIONS.get(config.method)
        self.model = build_model(config, len(self.data.classes),
                                 len(domains.names) if domains is not None else None).to(self.device)
        self.method_state = (self.mitigation.build_state(domains.counts, self.resolved["method_options"])
                             if self.mitigation is not None else None)
        if self.method_state is not None:
            self.method_state = self.method_state.to(self.device)
        if config.sync_batchnorm and context.enabled:
            self.model = distributed.convert_sync_batchnorm(self.model, context)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        distributed.broadcast_module(self.model, context)
        self.optimizer = build_optimizer(self.model, self.resolved)
        self.scheduler = build_scheduler(self.optimizer, self.resolved, config.epochs)
        self.generator = torch.Generator()
        self.generator.manual_seed(mix_seed(config.seed, 0xA77E))
        self.amp_dtype = amp_dtype_for(config.amp, self.device)
        batch_size = self.resolved["batch_size"]
        sample_weights = None
        if self.mitigation is not None and self.mitigation.balanced_sampling(self.resolved["method_options"]):
            cells = cell_index(torch.tensor(domains.codes), torch.tensor(self.data.train.labels),
                               len(self.data.classes))
            sample_weights = inverse_frequency_weights(domains.counts)[cells]  # every group equally often
        self.sampler = EpochShardSampler(len(self.data.train), batch_size=batch_size, seed=config.seed,
                                         rank=context.rank, world_size=context.world_size, weights=sample_weights)
        self.train_loader = train_loader(self.data.train, self.sampler, config, batch_size, self.device,
                                         domains=domains.codes if domains is not None else None)
        self.val_loader = eval_loader(self.data.val, config, batch_size, context, self.device)
        self.test_loader = (eval_loader(self.data.test, config, batch_size, context, self.device)
                            if self.data.test is not None else None)
        if config.compile:
            compile_in_place(self.model)
        if config.method == "finefcace":
            self.step_kinds = step_names(self.model.num_experts)
        else:
            self.step_kinds = list(self.mitigation.loss_kinds) if self.mitigation is not None else ["loss"]
        if domains is not None and context.is_main:
            logger.info("method %s trains WITH PROTECTED LABELS (%s); inference does not use them",
                        config.method, domains.describe())
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
    def check_run(self) -> None:
        """What can be refused before anything is read or written: a ``run_dir`` that is a file,
        cannot be written or holds a ``config.json`` that is not one, a weights file that is not there."""
        config, run_dir = self.config, self.run_dir
        weights = config.weights
        if weights is not None and _is_path_like(weights) and not Path(weights).expanduser().is_file():
            raise ConfigError(f"config key 'weights': {weights!r} does not exist; point it at a state-dict file of "
                              "the torchvision backbone, use a torchvision weights name (IMAGENET1K_V1), or null")
        if run_dir.exists() and not run_dir.is_dir():
            raise ConfigError(f"config key 'run_dir': {str(run_dir)!r} is a file, not a folder; choose another "
                              "run_dir (it is created when missing)")
        saved = read_run_config(run_dir)  # a config.json that is not a run's is refused, naming it
        if saved:
            differences = identity_differences(saved.get("identity", {}), config.identity())
            if differences and not config.overwrite:
                raise ConfigError(
                    f"run directory {str(run_dir)!r} holds a run with a different configuration "
                    f"(keys that differ: {', '.join(differences)}); choose another 'run_dir', or set "
                    "overwrite: true to start this run over there"
                )
        else:
            checkpoints = [name for name in (LAST_CHECKPOINT, BEST_CHECKPOINT) if (run_dir / name).exists()]
            if checkpoints and not config.overwrite:
                raise ConfigError(
                    f"run directory {str(run_dir)!r} holds {' and '.join(checkpoints)} but no {CONFIG_FILE}: they "
                    "belong to a run whose configuration is unknown and would be replaced; move them away or "
                    "choose another 'run_dir', or set overwrite: true to start this run over there")
        existing = next(p for p in (run_dir, *run_dir.absolute().parents) if p.exists())
        try:
            if not existing.is_dir():
                raise NotADirectoryError(20, "not a folder", str(existing))
            with tempfile.TemporaryFile(dir=existing):
                pass
        except OSError as error:
            raise ConfigError(f"config key 'run_dir': {str(run_dir)!r} cannot be written ({error.strerror or error} "
                              f"in {existing}); choose a folder you can write to") from None

    def prepare_run_dir(self) -> bool:
        """Create or check the run directory; True when a checkpoint should be resumed."""
        config = self.config
        config_file = self.run_dir / CONFIG_FILE
        current = config.identity()
        resume = False
        self._resume_state = None
        if config_file.is_file():  # check_run refused a different configuration without overwrite
            differences = identity_differences(read_run_config(self.run_dir).get("identity", {}), current)
            if differences or not config.resume:
                self._clear_run_dir()
            else:
                resume = (self.run_dir / LAST_CHECKPOINT).is_file()
        if resume:
            self._resume_state = self._checked_last_checkpoint(current)
        elif config.overwrite and self.context.is_main:
            self._clear_run_dir()
        self._remove_orphaned_temporaries()
        distributed.barrier(self.context)
        if self.context.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            document = {"config": config.to_dict(), "resolved": json.loads(json.dumps(self.resolved)),
                        "identity": current, "classes": self.data.classes, **self._protected_record(),
                        "table": str(self.data.table_path), "root": str(self.data.root),
                        "world_size": self.context.world_size, "device": str(self.device)}
            write_text_atomic(config_file, json.dumps(document, indent=1, default=str))
        distributed.barrier(self.context)
        return resume

    def _checked_last_checkpoint(self, current: dict[str, Any]) -> dict[str, Any]:
        """``last.pt``, read, once it is known to be this run's (same identity as the config)."""
        path = self.run_dir / LAST_CHECKPOINT
        state = load_checkpoint(path, map_location=self.device, advice=(
            "delete it, or rerun with --set resume=false (resume: false): the run then starts over"))
        try:
            saved = TrainConfig.from_dict(state.get("config", {})).identity()
        except ConfigError as error:
            saved = {"config": f"unreadable ({error})"}
        differences = identity_differences(saved, current)
        if differences:
            raise ConfigError(
                f"{path} was saved by a run with another configuration (what differs: {', '.join(differences)}), "
                f"not the one {CONFIG_FILE} and this config describe; resuming it would mix two runs. Move it away, "
                "or rerun with --set resume=false (resume: false) to start this run over")
        return state

    def _remove_orphaned_temporaries(self) -> None:
        """Delete the temporary files an interrupted save left (``.last.pt.*.tmp``, ``.config.json.tmp``, ...)."""
        if not self.context.is_main or not self.run_dir.is_dir():
            return
        names = (LAST_CHECKPOINT, BEST_CHECKPOINT, *RUN_FILES, "predictions_test.csv", "predictions_val.csv")
        orphans = [p for p in self.run_dir.glob(".*.tmp")
                   if any(p.name == f".{n}.tmp" or p.name.startswith(f".{n}.") for n in names) and p.is_file()]
        if orphans:
            size = sum(p.stat().st_size for p in orphans)
            for path in orphans:
                path.unlink()
            logger.warning("removed %d temporary file(s) an interrupted save left in %s (%s; %.1f MB)", len(orphans),
                           self.run_dir, ", ".join(p.name for p in orphans), size / 1e6)
    def _protected_record(self) -> dict[str, Any]:
        """What config.json and summary.json say of the protected labels in training."""
        domains = self.data.domains
        return {"uses_protected_labels": domains is not None,
                "protected_training_columns": domains.columns if domains is not None else [],
                "domains": domains.names if domains is not None else None}

    def _clear_run_dir(self) -> None:
        if not self.context.is_main:
            return
        for name in (LAST_CHECKPOINT, BEST_CHECKPOINT, HISTORY_CSV, HISTORY_JSON, SUMMARY_FILE, MODEL_CARD_FILE,
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
            "domains": self._protected_record()["domains"],
            "model": self.model.state_dict(),
            "method_state": self.method_state.state_dict() if self.method_state is not None else None,
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
                "classes": list(self.data.classes), "domains": self._protected_record()["domains"],
                "model": self.model.state_dict(), "epoch": self.best_epoch, "metric": self.best_metric, "monitor": self.config.monitor,
            }, self.run_dir / BEST_CHECKPOINT)

    def restore(self) -> None:
        state = self._resume_state  # read and checked by prepare_run_dir
        self._resume_state = None
        self.model.load_state_dict(state["model"])
        if self.method_state is not None:
            self.method_state.load_state_dict(state["method_state"])
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
    def _iteration(self, images: Tensor, labels: Tensor, domains: Tensor | None,
                   stats: dict[str, Any]) -> dict[str, Tensor]:
        after_backward = None
        if self.context.enabled:
            parameters = list(self.model.parameters())
            after_backward = lambda: distributed.average_gradients(parameters, self.context)  # noqa: E731
        if self.mitigation is not None:
            return self.mitigation.iteration(self.model, self.optimizer, images, labels, domains, state=self.method_state,
                                             options=self.resolved["method_options"], amp_dtype=self.amp_dtype,
                                             after_backward=after_backward, stats=stats)
        if self.config.method == "baseline":
            return baseline_iteration(self.model, self.optimizer, images, labels, amp_dtype=self.amp_dtype,
                                      after_backward=after_backward, stats=stats)
        return finefcace_iteration(self.model, self.optimizer, images, labels, **self.iteration_options,
                                   generator=self.generator, amp_dtype=self.amp_dtype,
                                   after_backward=after_backward, stats=stats)

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
                images, labels, rows, *protected = next(iterator)  # a 4th item: mitigation methods only
                images = images.to(self.device, non_blocking=True)
                labels = labels.to(self.device, non_blocking=True)
                domains = protected[0].to(self.device, non_blocking=True) if protected else None
                if config.channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                stats: dict[str, Any] = {}
                losses = self._iteration(images, labels, domains, stats)
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

    def _evaluate(self, loader, when: str) -> dict[str, Any]:
        """Scores of a split (:func:`evaluate_split`); outputs that are not finite stop the run
        as a non-finite loss does (exit status 1: the training failed)."""
        try:
            return evaluate_split(self.model, loader, config=self.config, device=self.device,
                                  amp_dtype=self.amp_dtype, channels_last=self.config.channels_last,
                                  context=self.context, max_batches=self.config.max_eval_batches)
        except ModelOutputError as error:
            raise NonFiniteLossError(f"{when}: {error}") from error

    def _end_epoch(self) -> None:
        """Validate, record history, step the schedule, checkpoint, decide on early stopping."""
        config, context = self.config, self.context
        distributed.average_buffers(self.model, context)
        if self.method_state is not None:  # e.g. group DRO's q: one per process, averaged here
            distributed.average_buffers(self.method_state, context)
        learning_rates = {f"lr_{g.get('name', i)}": g["lr"] for i, g in enumerate(self.optimizer.param_groups)}
        evaluation = self._evaluate(self.val_loader, f"validation after epoch {self.epoch + 1}")
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
            write_history(self.run_dir, self.history)
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
            "world_size": context.world_size, "device": str(self.device), **self._protected_record(),
        }
        if self.data.overlaps:
            summary["split_overlap"] = self.data.overlaps  # image paths in two splits (warned at the start)
        splits = [("val", self.val_loader)] + ([("test", self.test_loader)] if self.test_loader is not None else [])
        for split, loader in splits:
            evaluation = self._evaluate(loader, f"the {split} predictions of the best model")
            summary[f"{split}_accuracy"] = evaluation["accuracy"]
            table = predictions_table(self.data.table, evaluation, target=config.target,
                                      classes=self.data.classes, protected=config.protected)
            if split == "test":
                predictions = table
            if context.is_main and config.save_predictions:
                outputs.write_csv(table, self.run_dir / f"predictions_{split}.csv")
        if context.is_main:
            write_text_atomic(self.run_dir / SUMMARY_FILE, json.dumps(summary, indent=1))
            write_model_card(self.run_dir)  # model_card.md: the finished run described for its readers
            logger.info("finished %s: best epoch %s (%s %.4f), val accuracy %.4f%s", self.run_dir,
                        self.best_epoch, config.monitor, self.best_metric, summary["val_accuracy"],
                        f", test accuracy {summary['test_accuracy']:.4f}" if "test_accuracy" in summary else "")
        distributed.barrier(context)
        return TrainResult(self.run_dir, config, self.model, list(self.data.classes),
                           pd.DataFrame(self.history), summary, predictions)

    def run(self) -> TrainResult:
        """Check the run directory, take its lock (one training per folder: a second process is
        refused naming this one's pid; rank 0 holds it for a distributed run), train, let it go."""
        self.check_run()
        lock = RunDirectoryLock(self.run_dir) if self.context.is_main else contextlib.nullcontext()
        with lock:
            return self._run_in_locked_folder()

    def _run_in_locked_folder(self) -> TrainResult:
        self.setup()
        resume = self.prepare_run_dir()
        self._last_saved: tuple[int, int] | None = None
        if resume:
            self.restore()
            self._last_saved = (self.epoch, self.batch)
            if _finished(self.run_dir / SUMMARY_FILE):
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


def _finished(summary_file: Path) -> bool:
    """Whether ``summary.json`` says the run finished (one that cannot be read says it did not)."""
    try:
        return bool(json.loads(summary_file.read_text()).get("finished"))
    except (OSError, ValueError, AttributeError):
        return False


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
    schedule and early stopping (paper §4.2; ``book/decisions.md``). Book: ``notebooks/04_training.ipynb``."""
    return train(config, **{**changes, "method": "baseline"})


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
        saved = read_run_config(run_dir).get("identity")
        if saved == config.identity() and _finished(summary_file):
            logger.info("loading the finished run in %s (same configuration)", run_dir)
            device = distributed.resolve_device(config.device)
            return load_run(run_dir, device=device)
    return train(config)
