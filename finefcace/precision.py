"""Mixed precision: the bf16 autocast that training and evaluation share, and the one rule
that turns config key ``amp`` into a dtype.

No paper section: the paper does not state its numeric precision. Config key ``amp``
(:class:`finefcace.training.config.TrainConfig`) switches it; used by
:mod:`finefcace.mutual_learning` and :mod:`finefcace.training.evaluation`.
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["amp_dtype_for", "autocast"]


def autocast(device: torch.device, amp_dtype: torch.dtype | None):
    """``torch.autocast`` to ``amp_dtype`` (bf16) on ``device``, or nothing when it is ``None``.
    Training (:mod:`finefcace.mutual_learning`) and evaluation
    (:mod:`finefcace.training.evaluation`) share it."""
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype)


def amp_dtype_for(amp: bool | None, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of config key ``amp``: bf16 when true, none when false; ``None``
    (the default) means bf16 on CUDA only."""
    return torch.bfloat16 if (amp if amp is not None else device.type == "cuda") else None
