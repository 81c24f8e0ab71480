"""Multi-GPU (or multi-process CPU) data-parallel training under ``torchrun``.

Introduced in ``notebooks/04_training.ipynb`` ("Several GPUs"); the choice below is recorded
in ``book/decisions.md``.

**Why not ``DistributedDataParallel``?** One FineFACE mini-batch runs N+2 forward/backward/
step cycles, and each reaches a *different subset* of the parameters (step n reaches only
stages 1..m_n and expert n's head; step N+2 reaches no expert classifier); step 1 also runs
the shallower heads under ``no_grad`` for the CAMs, and steps 2..N call
``model.forward_expert`` rather than ``forward``. ``DistributedDataParallel`` only hooks
``forward``, must be told ``find_unused_parameters=True`` (a graph walk every step) and
broadcasts buffers at every forward. Instead, every process holds a full replica and, after
each backward, :func:`average_gradients` all-reduces — in one flat buffer per dtype — exactly
the gradients that exist (``grad is not None``). Which parameters get a gradient depends
only on the step kind, never on the data, so every rank reduces the same list in the same
order. Then every rank applies the same averaged gradient with the same optimizer: the
replicas stay identical, bit for bit (checked by ``tests/test_distributed.py``). The cost
is that communication does not overlap the backward pass.

BatchNorm: without SyncBatchNorm each replica normalises with its own batch statistics (as
DDP does) and keeps its own running statistics; :func:`average_buffers` averages the
floating-point buffers across ranks before each validation and checkpoint, so every replica
evaluates and saves the same model. ``sync_batchnorm`` (CUDA only) synchronises the batch
statistics themselves.

Launch: ``torchrun --nproc_per_node=4 -m finefcace train --config ...``. Logging, progress
bars and checkpoint writing happen on rank 0 only; the data are sharded by rank.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, Iterable

import torch
import torch.distributed as dist
from torch import nn

from finefcace.training.config import ConfigError

__all__ = [
    "DistributedContext",
    "init_distributed",
    "average_gradients",
    "average_buffers",
    "broadcast_module",
    "all_gather_objects",
    "any_true",
    "barrier",
    "resolve_device",
    "shutdown",
]


@dataclass
class DistributedContext:
    """Where this process stands: its rank among ``world_size`` processes and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    owns_process_group: bool = False

    @property
    def enabled(self) -> bool:
        """True when several processes train together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0: the process that logs, shows progress and writes files."""
        return self.rank == 0


def resolve_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:<local_rank>`` when CUDA is available, else CPU; any other string
    is passed to ``torch.device`` (``"cuda"`` becomes ``cuda:<local_rank>``)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("config key 'device' is 'cuda' but torch sees no CUDA GPU here "
                              "(torch.cuda.is_available() is False); use device: cpu or auto")
        return torch.device("cuda", local_rank)
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError) as error:
        raise ConfigError(f"config key 'device' is {device!r}, which torch does not know ({error}); use auto, cpu, "
                          "cuda or cuda:<index>") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"config key 'device' is {device!r} but torch sees no CUDA GPU here; use device: cpu or auto")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ConfigError(f"config key 'device' is {device!r} but this machine has {torch.cuda.device_count()} "
                          f"CUDA device(s) (cuda:0..cuda:{torch.cuda.device_count() - 1})")
    return resolved


def init_distributed(device: str = "auto", backend: str = "auto") -> DistributedContext:
    """Join the process group ``torchrun`` describes (``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``), or use one already initialised (e.g.
    by ``torch.multiprocessing.spawn`` in the tests), or run as a single process.

    Book: ``notebooks/04_training.ipynb``. ``backend="auto"``: NCCL on CUDA, gloo on CPU.
    """
    if dist.is_available() and dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        return DistributedContext(
            rank, world_size, local_rank, resolve_device(device, local_rank), dist.get_backend(), False
        )
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext(device=resolve_device(device, 0))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    resolved = resolve_device(device, local_rank)
    if backend == "auto":
        backend = "nccl" if resolved.type == "cuda" else "gloo"
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    return DistributedContext(rank, world_size, local_rank, resolved, backend, True)


def shutdown(context: DistributedContext) -> None:
    """Leave the process group if :func:`init_distributed` created it."""
    if context.owns_process_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(context: DistributedContext) -> None:
    """Wait for every rank (no-op for one process)."""
    if context.enabled:
        dist.barrier()


def _all_reduce_mean(tensors: list[torch.Tensor], world_size: int) -> None:
    """Average same-dtype tensors across ranks in place, through one flat buffer."""
    if not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat.div_(world_size)
    offset = 0
    for tensor in tensors:
        count = tensor.numel()
        tensor.copy_(flat[offset : offset + count].view_as(tensor))
        offset += count


def average_gradients(parameters: Iterable[nn.Parameter], context: DistributedContext) -> int:
    """All-reduce (mean) the gradients that exist, one flat buffer per dtype.

    Called after every backward of every step (see the module docstring for why this
    replaces ``DistributedDataParallel``). Returns how many gradients were averaged.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not context.enabled or not grads:
        return len(grads)
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for grad in grads:
        by_dtype.setdefault(grad.dtype, []).append(grad)
    for dtype in sorted(by_dtype, key=str):  # same order on every rank
        _all_reduce_mean(by_dtype[dtype], context.world_size)
    return len(grads)


def average_buffers(module: nn.Module, context: DistributedContext) -> None:
    """Average the floating-point buffers (BatchNorm running statistics) across ranks, so
    every replica evaluates and checkpoints the same model. Integer buffers
    (``num_batches_tracked``) are equal on every rank already."""
    if not context.enabled:
        return
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for buffer in module.buffers():
        if buffer.is_floating_point():
            by_dtype.setdefault(buffer.dtype, []).append(buffer)
    with torch.no_grad():
        for dtype in sorted(by_dtype, key=str):
            _all_reduce_mean(by_dtype[dtype], context.world_size)


def broadcast_module(module: nn.Module, context: DistributedContext, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers to every rank (identical start)."""
    if not context.enabled:
        return
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=src)


def all_gather_objects(obj: Any, context: DistributedContext) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` for one process."""
    if not context.enabled:
        return [obj]
    gathered: list[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def any_true(flags: list[bool], context: DistributedContext) -> list[bool]:
    """Element-wise OR of boolean flags across ranks (one small all-reduce): used so that
    every rank stops together when any of them saw a signal or a non-finite loss."""
    if not context.enabled:
        return list(flags)
    device = context.device if context.backend == "nccl" else torch.device("cpu")
    tensor = torch.tensor([1 if f else 0 for f in flags], dtype=torch.int32, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return [bool(v) for v in tensor.tolist()]


def convert_sync_batchnorm(module: nn.Module, context: DistributedContext) -> nn.Module:
    """Replace BatchNorm layers by ``SyncBatchNorm`` (CUDA only; PyTorch has no CPU version)."""
    if context.device.type != "cuda":
        raise RuntimeError(
            "sync_batchnorm needs CUDA devices (PyTorch's SyncBatchNorm has no CPU kernel); "
            "set sync_batchnorm: false"
        )
    return nn.SyncBatchNorm.convert_sync_batchnorm(module) if context.enabled else module
