"""FineFACE: experts cut from a CNN backbone, their descriptor blocks and classifiers; the baseline.

Paper §3.1 (expert construction, eq. 1; what the paper leaves open: ``book/decisions.md``); introduced in
``notebooks/02_experts.ipynb`` and ``book/method.md``. The paper-vs-code switches
(activation, head, pooling, BatchNorm momentum) are explained in ``book/decisions.md`` and
their values live in :mod:`finefcace.presets`.

Shapes: expert ``e_n`` covers backbone stages 1..m_n and gives ``x_n`` (B, C_n, h_n, w_n);
its descriptor block ``F_n`` gives ``x''_n`` (B, C_v, h_n, w_n) and the pooled descriptor
``v_n`` (B, D); its classifier ``f_n`` gives ``p_n`` (B, K). The concatenation classifier
``f_oval`` maps ``v_oval = [v_1, ..., v_N]`` (B, N·D) to ``p_oval``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from finefcace.backbones import cut_into_stages, final_classifier, load_torchvision_backbone, pooled_feature_norm
from finefcace.presets import MODEL_KEYS, get_preset

ACTIVATIONS = ("elu", "relu")
HEADS = ("mlp", "linear")
POOLINGS = ("gmp", "gap", "bilinear", "covariance")
#: Smallest input side accepted (global pooling makes any larger size work).
MIN_INPUT_SIZE = 64
#: Hidden width of the MLP classifier (published code).
MLP_HIDDEN = 512


class FineFACEOutput(NamedTuple):
    """What :meth:`FineFACE.forward` returns (paper §3.1)."""

    expert_logits: list[Tensor]  # p_1..p_N, shallow -> deep, each (B, K)
    concat_logits: Tensor        # p_oval (B, K)
    maps: list[Tensor]           # x''_n, each (B, C_v, h_n, w_n), before pooling
    descriptors: list[Tensor]    # v_n, each (B, D)


# --------------------------------------------------------------------------- pooling


class GlobalPool(nn.Module):
    """Global max (GMP, eq. 1) or average (GAP) pooling of ``x''_n``.

    CAM (paper §3.2): ``Ω(a, b) = w_k · x''(a, b)``. With GAP and a linear head this is the
    classic CAM exactly (the logit is the mean of Ω plus the bias); with GMP the logit is
    ``w_k · max_ab x''(a, b)``, and Ω is the paper's definition.
    """

    def __init__(self, channels: int, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.out_dim = channels

    def forward(self, maps: Tensor) -> Tensor:
        return maps.amax(dim=(2, 3)) if self.kind == "gmp" else maps.mean(dim=(2, 3))

    def activation_map(self, maps: Tensor, weights: Tensor) -> Tensor:
        """Ω for one weight vector per sample: maps (B, C, h, w), weights (B, C) -> (B, h, w)."""
        return torch.einsum("bchw,bc->bhw", maps, weights)


class SecondOrderPool(nn.Module):
    """Bilinear pooling (BP, Lin et al.) or global covariance pooling (GCP, Wang et al.).

    Used in the paper's pooling ablation (supp. B). To keep the descriptor length at C_v,
    ``x''`` is first reduced by a 1×1 conv to ``r = isqrt(C_v)`` channels ``z`` (32 for
    C_v = 1024); the descriptor is the flattened r×r matrix (D = r²):

    - bilinear: ``M = mean_ab z z^T``, then signed square root and L2 normalisation;
    - covariance: ``M = mean_ab (z - μ)(z - μ)^T``, then the matrix square root by
      Newton–Schulz iterations (iSQRT-COV).

    CAM: a linear classifier with (reshaped) weights ``W_k`` scores ``M`` as
    ``Σ_ij W_k[i, j] M[i, j] = mean_ab z(a,b)^T W_k z(a,b)``, so each location's share is
    ``Ω(a, b) = z(a,b)^T W_k z(a,b)`` (centred ``z`` for covariance). This is exact before
    the normalisation (signed sqrt / matrix sqrt), which we ignore, as the MLP
    linearisation ignores BatchNorm and ELU. The CAM recomputes ``z`` from ``x''`` without
    recording BatchNorm statistics (see :meth:`activation_map`).
    """

    def __init__(self, channels: int, kind: str, newton_schulz_iterations: int = 5) -> None:
        super().__init__()
        self.kind = kind
        self.rank = max(2, math.isqrt(channels))
        self.out_dim = self.rank * self.rank
        self.iterations = newton_schulz_iterations
        self.reduce = nn.Sequential(
            nn.Conv2d(channels, self.rank, kernel_size=1, bias=False), nn.BatchNorm2d(self.rank)
        )

    def _reduced(self, maps: Tensor) -> Tensor:
        z = self.reduce(maps)
        if self.kind == "covariance":
            z = z - z.mean(dim=(2, 3), keepdim=True)
        return z

    def forward(self, maps: Tensor) -> Tensor:
        z = self._reduced(maps).flatten(2)  # (B, r, hw)
        matrix = z @ z.transpose(1, 2) / z.shape[-1]  # (B, r, r)
        if self.kind == "bilinear":
            v = matrix.flatten(1)
            v = torch.sign(v) * torch.sqrt(v.abs() + 1e-8)
            return F.normalize(v, dim=1)
        return _matrix_sqrt(matrix, self.iterations).flatten(1)

    def activation_map(self, maps: Tensor, weights: Tensor) -> Tensor:
        """Ω for one weight vector per sample: maps (B, C, h, w), weights (B, r²) -> (B, h, w).

        The CAM explains the prediction the forward made (paper §3.2: the CAM of the expert's
        own predicted class), so ``z`` is recomputed exactly as that forward computed it: the
        reduction's BatchNorm normalises as the module's mode says (batch statistics in
        training — the same batch, so the same ``z`` — running statistics in evaluation). It
        records nothing: the CAM is no training step (Algorithm 1 trains nothing between the
        steps), so the running statistics stay as they are (:func:`batchnorm_statistics_unchanged`).
        """
        with batchnorm_statistics_unchanged(self.reduce):
            z = self._reduced(maps)
        w = weights.reshape(-1, self.rank, self.rank)
        return torch.einsum("bihw,bij,bjhw->bhw", z, w, z)


def _matrix_sqrt(matrix: Tensor, iterations: int) -> Tensor:
    """Approximate square root of SPD matrices (B, r, r) by Newton–Schulz (iSQRT-COV)."""
    eye = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device).expand_as(matrix)
    trace = matrix.diagonal(dim1=-2, dim2=-1).sum(-1).clamp_min(1e-8)[:, None, None]
    y, z = matrix / trace, eye
    for _ in range(iterations):
        t = 0.5 * (3.0 * eye - z @ y)
        y, z = y @ t, t @ z
    return y * trace.sqrt()


@contextlib.contextmanager
def batchnorm_statistics_unchanged(module: nn.Module) -> Iterator[None]:
    """Run ``module`` without recording BatchNorm statistics, whatever its mode.

    Inside, every BatchNorm of ``module`` normalises as its mode says — batch statistics in
    training mode, running statistics in evaluation mode — so outputs are exactly those of
    an ordinary forward, but ``running_mean``, ``running_var`` and ``num_batches_tracked``
    do not change. Algorithm 1 (paper supp. C) uses it where a forward only serves the
    attention regions (the shallower experts' heads in step 1, the CAM of bilinear and
    covariance pooling): a BatchNorm's statistics move only in the steps that train it.
    Introduced in ``book/decisions.md`` (what each step forwards).
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    for norm in norms:
        # With track_running_stats off, a training-mode BatchNorm uses the batch statistics
        # and updates nothing; an evaluation-mode one still uses its running statistics.
        norm.track_running_stats = False
    try:
        yield
    finally:
        for norm in norms:
            norm.track_running_stats = True


def make_pooling(kind: str, channels: int) -> GlobalPool | SecondOrderPool:
    if kind in ("gmp", "gap"):
        return GlobalPool(channels, kind)
    return SecondOrderPool(channels, kind)


# --------------------------------------------------------------------------- heads


def descriptor_block(in_channels: int, descriptor_dim: int, activation: str, bn_momentum: float) -> nn.Sequential:
    """``F_n`` before pooling (eq. 1): 1×1 conv → BN → act → 3×3 conv → BN → act, giving ``x''_n``."""
    act = nn.ELU if activation == "elu" else nn.ReLU
    half = descriptor_dim // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, half, kernel_size=1, bias=False),
        nn.BatchNorm2d(half, momentum=bn_momentum),
        act(),
        nn.Conv2d(half, descriptor_dim, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(descriptor_dim, momentum=bn_momentum),
        act(),
    )


def make_classifier(kind: str, in_dim: int, num_classes: int) -> nn.Module:
    """``f_n`` / ``f_oval``: the published MLP (BN1d → Linear(512) → BN1d → ELU → Linear(K)) or one Linear."""
    if kind == "linear":
        return nn.Linear(in_dim, num_classes)
    return nn.Sequential(
        nn.BatchNorm1d(in_dim),
        nn.Linear(in_dim, MLP_HIDDEN),
        nn.BatchNorm1d(MLP_HIDDEN),
        nn.ELU(),
        nn.Linear(MLP_HIDDEN, num_classes),
    )


def effective_weights(classifier: nn.Module) -> Tensor:
    """(K, D) linear weights a classifier applies to a descriptor, as CAM uses them (paper §3.2).

    A single Linear: its weight. The MLP: ``W2 @ W1`` (BatchNorms, ELU and biases ignored,
    the published code's linearisation).
    """
    if isinstance(classifier, nn.Linear):
        return classifier.weight
    linears = [m for m in classifier.modules() if isinstance(m, nn.Linear)]
    weights = linears[-1].weight
    for layer in reversed(linears[:-1]):
        weights = weights @ layer.weight
    return weights


def check_images(x: Tensor, min_size: int) -> None:
    """Clear errors for a batch that cannot go through the backbone."""
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"expected images of shape (batch, 3, height, width), got {shape}")
    if x.shape[1] != 3:
        raise ValueError(
            f"expected 3 image channels (RGB), got {x.shape[1]} (shape {tuple(x.shape)}); "
            f"convert grayscale/RGBA images to RGB"
        )
    if min(x.shape[-2:]) < min_size:
        raise ValueError(
            f"input {x.shape[-2]}×{x.shape[-1]} is too small: this model needs at least "
            f"{min_size}×{min_size} (at least {MIN_INPUT_SIZE} px and the deepest expert's stride)"
        )


# --------------------------------------------------------------------------- FineFACE


class FineFACE(nn.Module):
    """FineFACE (paper §3.1, Fig. 2): N experts on one backbone plus their concatenation.

    Args:
        backbone: a torchvision ResNet/ResNeXt/Wide-ResNet/DenseNet/ConvNeXt/Swin name
            (:func:`finefcace.backbones.supported_backbones`; a plain ViT is refused, see
            :data:`finefcace.backbones.PLAIN_VIT_REASON`).
        num_classes: K.
        experts: the stage (1-based, as the paper counts; negatives count from the end)
            each expert ends at, shallow to deep. Default: the last three stages.
        descriptor_dim: C_v.
        pooling: "gmp" (paper), "gap", "bilinear", "covariance".
        activation: "elu" (paper) or "relu" (published code), in the descriptor blocks.
        head: "mlp" (published) or "linear", for every f_n and f_oval.
        weights: None, a torchvision weights name, or a local state-dict file.
        descriptor_bn_momentum: BatchNorm momentum in the descriptor blocks (0.01, the
            published code's, in both presets; PyTorch's default is 0.1).

    Introduced in ``notebooks/02_experts.ipynb``.
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        num_classes: int = 2,
        *,
        experts: Sequence[int] | None = None,
        descriptor_dim: int = 1024,
        pooling: str = "gmp",
        activation: str = "elu",
        head: str = "mlp",
        weights: Any = None,
        descriptor_bn_momentum: float = 0.01,
    ) -> None:
        super().__init__()
        _check_choice("pooling", pooling, POOLINGS)
        _check_choice("activation", activation, ACTIVATIONS)
        _check_choice("head", head, HEADS)
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if descriptor_dim < 4 or descriptor_dim % 2:
            raise ValueError(f"descriptor_dim must be an even number >= 4, got {descriptor_dim}")

        stages = cut_into_stages(load_torchvision_backbone(backbone, weights))
        self.expert_stages = _resolve_experts(experts, len(stages))  # 1-based
        deepest = self.expert_stages[-1]
        self.backbone_name = backbone
        self.num_classes = num_classes
        self.num_experts = len(self.expert_stages)
        self.config = dict(backbone=backbone, num_classes=num_classes, experts=list(self.expert_stages),
                           descriptor_dim=descriptor_dim, pooling=pooling, activation=activation,
                           head=head, descriptor_bn_momentum=descriptor_bn_momentum)
        self.stage_strides = [s.stride for s in stages]
        self.stage_channels = [s.channels for s in stages]
        self.expert_channels = [stages[m - 1].channels for m in self.expert_stages]  # C_n
        self.expert_strides = [stages[m - 1].stride for m in self.expert_stages]
        self.min_input_size = max(MIN_INPUT_SIZE, self.expert_strides[-1])

        self.stages = nn.ModuleList(s.module for s in stages[:deepest])  # stages past e_N are unused
        self.descriptor_blocks = nn.ModuleList(
            descriptor_block(c, descriptor_dim, activation, descriptor_bn_momentum) for c in self.expert_channels
        )
        self.poolings = nn.ModuleList(make_pooling(pooling, descriptor_dim) for _ in self.expert_stages)
        self.descriptor_length = self.poolings[0].out_dim  # D (= C_v except for non-square C_v with BP/GCP)
        self.classifiers = nn.ModuleList(
            make_classifier(head, self.descriptor_length, num_classes) for _ in self.expert_stages
        )
        self.concat_classifier = make_classifier(head, self.num_experts * self.descriptor_length, num_classes)

    @classmethod
    def from_preset(cls, preset: str, backbone: str | None = None, num_classes: int = 2, **overrides: Any) -> FineFACE:
        """Build with the model switches of preset ``preset`` ("paper", "official_code"); keywords override."""
        config = get_preset(preset)
        kwargs = {k: config[k] for k in MODEL_KEYS}
        kwargs.update(overrides)
        return cls(backbone or config["backbone"], num_classes, **kwargs)

    # -- parameter groups (two learning rates, paper §4.2; book/decisions.md)
    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.stages.parameters())

    def head_parameters(self) -> list[nn.Parameter]:
        modules = [self.descriptor_blocks, self.poolings, self.classifiers, self.concat_classifier]
        return [p for m in modules for p in m.parameters()]

    # -- building blocks (the trainer composes these for the multi-step updates)
    def backbone_features(self, x: Tensor, upto: int | None = None) -> list[Tensor]:
        """``x_1..x_upto`` (0-based expert index ``upto``, default the deepest): runs only
        the stages those experts need."""
        check_images(x, self.min_input_size)
        last = self.num_experts - 1 if upto is None else upto
        features: list[Tensor] = []
        for index, stage in enumerate(self.stages[: self.expert_stages[last]]):
            x = stage(x)
            if index + 1 in self.expert_stages:
                features.append(x)
        return features

    def descriptor(self, n: int, features: Tensor) -> tuple[Tensor, Tensor]:
        """``F_n`` of expert n (0-based) on ``x_n``: returns (x''_n, v_n) (eq. 1–3)."""
        maps = self.descriptor_blocks[n](features)
        return maps, self.poolings[n](maps)

    def expert_head(self, n: int, features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``F_n`` and ``f_n`` of expert n (0-based) on ``x_n``: returns (p_n, x''_n, v_n)."""
        maps, descriptor = self.descriptor(n, features)
        return self.classifiers[n](descriptor), maps, descriptor

    def concat_head(self, descriptors: Sequence[Tensor]) -> Tensor:
        """``p_oval = f_oval([v_1, ..., v_N])`` (paper §3.1)."""
        return self.concat_classifier(torch.cat(list(descriptors), dim=1))

    def forward(self, x: Tensor) -> FineFACEOutput:
        features = self.backbone_features(x)
        heads = [self.expert_head(n, f) for n, f in enumerate(features)]
        descriptors = [h[2] for h in heads]
        return FineFACEOutput(
            expert_logits=[h[0] for h in heads],
            concat_logits=self.concat_head(descriptors),
            maps=[h[1] for h in heads],
            descriptors=descriptors,
        )

    def forward_expert(self, x: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor]:
        """Expert ``e_n`` alone (0-based n): stages 1..m_n, ``F_n``, ``f_n`` -> (p_n, x''_n, v_n).

        Algorithm 1, steps 2..N: deeper stages and other heads do not run.
        """
        if not -self.num_experts <= n < self.num_experts:
            raise IndexError(f"expert index {n} out of range for {self.num_experts} experts (0-based)")
        n %= self.num_experts
        return self.expert_head(n, self.backbone_features(x, upto=n)[n])

    def forward_concat(self, x: Tensor) -> Tensor:
        """``p_oval`` alone: stages 1..m_N, every ``F_n`` for ``v_n``, then ``f_oval``.

        Algorithm 1, step N+2 (paper supp. C): the expert classifiers ``f_n`` do not run, so
        their BatchNorm statistics do not move in a step that does not train them.
        """
        features = self.backbone_features(x)
        return self.concat_head([self.descriptor(n, f)[1] for n, f in enumerate(features)])

    # -- CAM (paper §3.2)
    def class_weights(self, n: int) -> Tensor:
        """(K, D) effective linear weights of expert n's classifier, used for its CAM."""
        return effective_weights(self.classifiers[n])

    def class_activation_map(self, n: int, maps: Tensor, classes: Tensor) -> Tensor:
        """Ω_n (B, h_n, w_n) of expert n for one class per sample (paper §3.2, batched)."""
        weights = self.class_weights(n)[classes]
        return self.poolings[n].activation_map(maps, weights.to(maps.dtype))


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {list(choices)} (see book/decisions.md)")


def _resolve_experts(experts: Sequence[int] | None, num_stages: int) -> list[int]:
    if experts is None:
        return list(range(max(1, num_stages - 2), num_stages + 1))
    if isinstance(experts, int):
        experts = [experts]
    resolved = []
    for stage in experts:
        if not isinstance(stage, int) or not (-num_stages <= stage <= num_stages) or stage == 0:
            raise ValueError(
                f"expert stage {stage!r} is not a stage of this backbone: use 1..{num_stages} "
                f"(1-based) or -1..-{num_stages}"
            )
        resolved.append(stage if stage > 0 else num_stages + 1 + stage)
    if not resolved or any(b <= a for a, b in zip(resolved, resolved[1:])):
        raise ValueError(f"experts must be stages in strictly increasing order, got {list(experts)}")
    return resolved


# --------------------------------------------------------------------------- baseline


class Baseline(nn.Module):
    """The plain backbone classifier: trunk → global average pooling → the backbone's usual
    head with K outputs (spec §4).

    The Linear has the shape of torchvision's ``fc``/``classifier``/``head`` with K outputs;
    ConvNeXt's head also normalises the pooled features first (its ``LayerNorm2d``, kept with
    its weights as ``pooled_norm``; Swin's final LayerNorm acts on every location before the
    pooling and is part of the last stage). :func:`finefcace.attention.baseline_class_activation_maps`
    gives its CAM (Ω_ori, paper Fig. 3). Introduced in ``notebooks/04_training.ipynb``.
    """

    def __init__(self, backbone: str = "resnet50", num_classes: int = 2, *, weights: Any = None) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        torchvision_model = load_torchvision_backbone(backbone, weights)
        _, fc = final_classifier(torchvision_model)
        stages = cut_into_stages(torchvision_model)
        self.backbone_name = backbone
        self.num_classes = num_classes
        self.config = dict(backbone=backbone, num_classes=num_classes)
        self.min_input_size = max(MIN_INPUT_SIZE, stages[-1].stride)
        self.stages = nn.ModuleList(s.module for s in stages)
        self.pooled_norm = pooled_feature_norm(torchvision_model)  # None except ConvNeXt
        self.classifier = nn.Linear(fc.in_features, num_classes)

    def backbone_parameters(self) -> list[nn.Parameter]:
        """The pretrained parameters: the stages and, for ConvNeXt, the pooled-feature LayerNorm."""
        extra = list(self.pooled_norm.parameters()) if self.pooled_norm is not None else []
        return list(self.stages.parameters()) + extra

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.classifier.parameters())

    def feature_map(self, x: Tensor) -> Tensor:
        """The last stage's map (B, C, h, w)."""
        check_images(x, self.min_input_size)
        for stage in self.stages:
            x = stage(x)
        return x

    def forward_with_map(self, x: Tensor) -> tuple[Tensor, Tensor]:
        maps = self.feature_map(x)
        pooled = maps.mean(dim=(2, 3), keepdim=True)
        if self.pooled_norm is not None:
            pooled = self.pooled_norm(pooled)
        return self.classifier(pooled.flatten(1)), maps

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with_map(x)[0]

    def class_weights(self) -> Tensor:
        """(K, C) weights of the classic CAM ``Ω(a, b) = w_k · x(a, b)`` (paper Fig. 3).

        Without ``pooled_norm``: the Linear's weight (the logit is the mean of Ω plus the bias).
        With ConvNeXt's LayerNorm (scale γ) on the pooled features v: the logit is
        ``(1/σ(v)) Σ_c (u_kc - mean_c u_kc) v_c + const`` with ``u_k = W_k ⊙ γ``, and v is the
        mean of x(a, b) over the locations, so ``w_k = u_k - mean(u_k)`` gives a CAM whose mean
        is the logit up to one positive factor and a constant per image, which the min-max
        normalisation of the attention step removes.
        """
        weights = self.classifier.weight
        if self.pooled_norm is None:
            return weights
        if self.pooled_norm.weight is not None:
            weights = weights * self.pooled_norm.weight
        return weights - weights.mean(dim=1, keepdim=True)
