"""Every paper-vs-published-code number and switch, in one place.

Two presets (``book/decisions.md`` explains each difference):

- ``paper`` (the default): what the FineFACE paper states (ELU in the descriptor blocks,
  λ = 1, each step forwards only what its loss needs).
- ``official_code``: what the authors' published training script does (ReLU, λ = 2, every
  head runs in every step).

Where the paper is silent, both presets take the published code's value (the MLP head, the
two learning rates, the 10 % box padding, one region draw per batch, BatchNorm momentum 0.01
in the descriptor blocks). Nothing here is typed twice elsewhere: the model
(:meth:`finefcace.model.FineFACE.from_preset`), the trainer and the fused inference read
these dictionaries.
"""

from __future__ import annotations

import copy
from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        # --- model (paper §3.1, eq. 1)
        "backbone": "resnet50",          # paper §4.2 (DenseNet-121 in supp. A.1)
        "experts": None,                 # None = the last three stages (e_1..e_3 = stages 3..5)
        "activation": "elu",             # eq. 1 says ELU; the published code uses ReLU
        "head": "mlp",                   # "fully connected layer-based classifier"; MLP as published
        "pooling": "gmp",                # eq. 1: global max pooling (supp. B ablates gap/bilinear/covariance)
        "descriptor_dim": 1024,          # C_v
        "descriptor_bn_momentum": 0.01,  # paper silent: published code (PyTorch's default is 0.1)
        # --- attention regions (paper §3.2)
        "threshold": 0.5,                # t in §4.2
        "pad": 0.1,                      # box growth per side, fraction of the image side (published code)
        # --- training (paper §3.3, Algorithm 1, §4.2)
        "concat_loss_weight": 1.0,       # λ
        "region_draw": "batch",          # one draw of the step-2..N input per batch
        "steps_forward": "expert_only",  # Algorithm 1: step n forwards only e_n
        "optimizer": "sgd",
        "head_lr": 0.002,                # §4.2
        "backbone_lr": 0.0002,           # published code (the paper states only 0.002)
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "batch_size": 16,
        "input_size": 448,
        "lr_schedule": "cosine",         # cosine annealing over epochs
        "checkpoint_selection": "val",   # early stopping on validation, never on test
        # --- inference (paper §3.3 "Inference Phase")
        "fusion_views": ["raw", "oval"],  # a list, so presets dump to YAML
        "fusion_heads": "all",
        "fusion_combine": "logits",      # mean of the 2(N+1) logit vectors
    },
}

PRESETS["official_code"] = {
    **PRESETS["paper"],
    "activation": "relu",
    "concat_loss_weight": 2.0,
    "steps_forward": "all_heads",
}


#: The paper preset's attention-region threshold t (§4.2) and box padding (published code):
#: the defaults of every function that draws regions (:mod:`finefcace.attention`,
#: :func:`finefcace.predict.fused_logits`, :func:`finefcace.mutual_learning.finefcace_iteration`
#: and the course's walkthrough and ablations), typed nowhere else.
REGION_THRESHOLD: float = PRESETS["paper"]["threshold"]
REGION_PAD: float = PRESETS["paper"]["pad"]


def get_preset(name: str) -> dict[str, Any]:
    """A deep copy of preset ``name`` (``"paper"`` or ``"official_code"``).

    Introduced in ``book/decisions.md``. Unknown names raise ``ValueError`` listing the
    valid ones.
    """
    if name not in PRESETS:
        raise ValueError(
            f"unknown preset {name!r}; choose one of {sorted(PRESETS)} (finefcace/presets.py)"
        )
    return copy.deepcopy(PRESETS[name])


#: The keys of a preset that configure :class:`finefcace.model.FineFACE` itself.
MODEL_KEYS: tuple[str, ...] = (
    "experts",
    "activation",
    "head",
    "pooling",
    "descriptor_dim",
    "descriptor_bn_momentum",
)
