"""Torchvision backbones cut into stages, and their weights.

Paper §3.1 and §4.2: "the layers ... are grouped into 5 stages where each stage is a group
of layers operating on feature maps of the same spatial size". :func:`cut_into_stages` does
exactly that for any torchvision ResNet / ResNeXt / Wide-ResNet / DenseNet: it runs one
small probe image through the backbone's top-level layers and groups consecutive layers by
their output stride. No table per model name. Introduced in ``notebooks/02_experts.ipynb``.

Weights (:func:`load_torchvision_backbone`): ``None`` (random init), a torchvision weights
name such as ``"IMAGENET1K_V1"``, ``"DEFAULT"`` or ``"ResNet50_Weights.IMAGENET1K_V2"``
(downloaded by torchvision when online, read from ``$TORCH_HOME/hub/checkpoints`` when
cached), or the path of a local state-dict file of the torchvision model.
"""

from __future__ import annotations

import copy
import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

#: Backbone families whose stage cut is tested (name prefixes of torchvision model names).
SUPPORTED_FAMILIES: tuple[str, ...] = ("resnet", "resnext", "wide_resnet", "densenet")

#: Side of the probe image used to measure each layer's output stride.
PROBE_SIZE = 128

# Layers that end the convolutional trunk: global pooling and the classifier.
_HEAD_TYPES = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten, nn.Linear, nn.Dropout)
_CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar")
# Old DenseNet checkpoints (torchvision's own files) name layers "norm.1"; modules now "norm1".
_OLD_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)


@dataclass
class Stage:
    """One backbone stage: consecutive layers whose outputs share a spatial size."""

    module: nn.Sequential  # the layers, keeping their torchvision names
    stride: int            # output stride (input side / output side)
    channels: int          # output channels


def supported_backbones() -> list[str]:
    """Torchvision model names of the supported families (ResNet, ResNeXt, Wide-ResNet, DenseNet)."""
    names = torchvision.models.list_models(module=torchvision.models)
    return sorted(n for n in names if n.startswith(SUPPORTED_FAMILIES))


def check_backbone_name(name: str) -> None:
    """Raise ``ValueError`` naming the supported families when ``name`` is not one of them."""
    if not isinstance(name, str) or name not in supported_backbones():
        raise ValueError(
            f"unsupported backbone {name!r}: finefcace supports the torchvision families "
            f"{', '.join(SUPPORTED_FAMILIES)} (e.g. resnet18, resnet50, resnet101, densenet121); "
            f"available here: {', '.join(supported_backbones())}"
        )


def _is_path_like(weights: Any) -> bool:
    if isinstance(weights, os.PathLike):
        return True
    return isinstance(weights, str) and (
        os.sep in weights or "/" in weights or weights.lower().endswith(_CHECKPOINT_SUFFIXES)
        or os.path.exists(weights)
    )


def resolve_weights_name(name: str, weights: str) -> torchvision.models.WeightsEnum:
    """The torchvision weights enum for ``weights`` (``"DEFAULT"``, ``"IMAGENET1K_V1"``,
    ``"ResNet50_Weights.IMAGENET1K_V2"``...) of backbone ``name``."""
    enum = torchvision.models.get_model_weights(name)
    member = weights.split(".", 1)[1] if weights.startswith(enum.__name__ + ".") else weights
    if member not in enum.__members__:
        raise ValueError(
            f"unknown weights {weights!r} for backbone {name!r}: use None, one of "
            f"{list(enum.__members__)} (torchvision {enum.__name__}), or the path of an "
            f"existing state-dict file"
        )
    return enum[member]


def load_torchvision_backbone(name: str, weights: Any = None) -> nn.Module:
    """Build torchvision model ``name`` (1000-class ImageNet head) with ``weights``.

    ``weights``: ``None``; a torchvision weights enum or its name (the normal torchvision
    path: ``$TORCH_HOME/hub/checkpoints`` first, then a download); or a local file holding
    the torchvision model's state dict (the classifier keys ``fc.*``/``classifier.*`` may
    be absent or of another class count: they are never used). A file whose other keys do
    not match fails with the missing and unexpected keys named.
    """
    check_backbone_name(name)
    if weights is None:
        return torchvision.models.get_model(name, weights=None)
    if _is_path_like(weights):
        model = torchvision.models.get_model(name, weights=None)
        load_backbone_file(model, Path(weights))
        return model
    if isinstance(weights, str):
        weights = resolve_weights_name(name, weights)
    try:
        return torchvision.models.get_model(name, weights=weights)
    except (OSError, RuntimeError) as error:  # URLError is an OSError
        cache = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
        raise RuntimeError(
            f"could not load torchvision weights {weights} for {name!r} ({error}). Offline? "
            f"Place the file at {cache} (torchvision's cache, under $TORCH_HOME) or pass "
            f"weights=<path to a state-dict file>."
        ) from error


def _classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    return tuple(n + "." for n, m in model.named_children() if isinstance(m, (nn.Linear, nn.Sequential))
                 and any(isinstance(x, nn.Linear) for x in m.modules()))


def load_backbone_file(model: nn.Module, path: Path) -> None:
    """Load a local state-dict file into torchvision ``model``; see :func:`load_torchvision_backbone`."""
    if not path.is_file():
        raise FileNotFoundError(
            f"weights file {str(path)!r} does not exist: pass None, a torchvision weights "
            f"name (e.g. 'IMAGENET1K_V1') or the path of a state-dict file"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise ValueError(f"weights file {str(path)!r} holds a {type(state).__name__}, not a state dict")
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    state = {(_OLD_DENSENET_KEY.sub(r"\1\2", k)): v for k, v in state.items()}

    own = model.state_dict()
    head = _classifier_prefixes(model)
    # Files older than BatchNorm's num_batches_tracked (torchvision's own) lack it; BN fills it in.
    missing = [k for k in own if k not in state and not k.startswith(head)
               and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in state
                  if k in own and not k.startswith(head) and state[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        def listing(keys: list[str]) -> str:
            return ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
        problems = [f"missing keys: {listing(missing)}" if missing else "",
                    f"unexpected keys: {listing(unexpected)}" if unexpected else "",
                    f"shape mismatches: {listing(mismatched)}" if mismatched else ""]
        raise ValueError(
            f"weights file {str(path)!r} does not fit torchvision {type(model).__name__} "
            f"({'; '.join(p for p in problems if p)}). Is it the state dict of the same "
            f"torchvision architecture?"
        )
    kept = {k: v for k, v in state.items() if not (k.startswith(head) and v.shape != own[k].shape)}
    model.load_state_dict(kept, strict=False)


def save_backbone_file(model: nn.Module, path: Path) -> Path:
    """Write the trunk of a FineFACE or baseline ``model`` (its ``stages``) as a torchvision
    state-dict file — the format :func:`load_backbone_file` reads, so a run's ``weights`` can
    start from another run's backbone. Book: ``notebooks/03_attention_crop.ipynb`` (chapter 4's
    backbone, fine-tuned at a larger input size)."""
    # stage n holds torchvision's own top-level layers ("layer1.0.conv1.weight" ...): drop "n."
    state = {key.split(".", 1)[1]: value.detach().cpu() for key, value in model.stages.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)
    return path


def trunk_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The backbone's top-level convolutional layers in order, classifier and global pooling removed.

    Models with a ``features`` sequence (DenseNet) use its children; others (ResNet) use
    their own children up to the global pooling. When the trunk ends in a normalisation
    layer (DenseNet's ``norm5``, whose ReLU torchvision applies in ``forward``) a ReLU is
    appended so the last stage gives the same map torchvision pools.
    """
    features = getattr(model, "features", None)
    source = features if isinstance(features, nn.Sequential) else model
    layers: list[tuple[str, nn.Module]] = []
    for name, layer in source.named_children():
        if isinstance(layer, _HEAD_TYPES):
            break
        layers.append((name, layer))
    if layers and isinstance(layers[-1][1], (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
        layers.append((f"{layers[-1][0]}_relu", nn.ReLU(inplace=False)))
    return layers


def cut_into_stages(model: nn.Module, probe_size: int = PROBE_SIZE) -> list[Stage]:
    """Group the trunk layers of ``model`` into stages by output stride (paper §4.2).

    A probe image of ``probe_size``² runs once through the layers of a copy of the model on
    PyTorch's ``meta`` device (shapes only: no arithmetic, the model itself is untouched);
    a new stage starts whenever the stride changes. ResNet-50 gives 5 stages at strides 2,
    4, 8, 16, 32 (conv1+bn1+relu, maxpool+layer1, layer2, layer3, layer4). Introduced in
    ``notebooks/02_experts.ipynb``.
    """
    layers = trunk_layers(model)
    probe_layers = trunk_layers(_meta_copy(model).eval())
    strides: list[int] = []
    channels: list[int] = []
    with torch.no_grad():
        x = torch.zeros(1, 3, probe_size, probe_size, device="meta")
        for name, layer in probe_layers:
            x = layer(x)
            if x.dim() != 4:
                raise ValueError(f"layer {name!r} of {type(model).__name__} does not output a 2-D map")
            strides.append(round(probe_size / x.shape[-1]))
            channels.append(x.shape[1])

    stages: list[Stage] = []
    start = 0
    for i in range(1, len(layers) + 1):
        if i == len(layers) or strides[i] != strides[start]:
            group = nn.Sequential(OrderedDict(layers[start:i]))
            stages.append(Stage(module=group, stride=strides[i - 1], channels=channels[i - 1]))
            start = i
    return stages


def _meta_copy(model: nn.Module) -> nn.Module:
    """A structural copy of ``model`` whose parameters and buffers live on the meta device."""
    memo: dict[int, Any] = {}
    for tensor in [*model.parameters(), *model.buffers()]:
        meta = torch.empty_like(tensor, device="meta")
        memo[id(tensor)] = nn.Parameter(meta, tensor.requires_grad) if isinstance(tensor, nn.Parameter) else meta
    return copy.deepcopy(model, memo)


def final_classifier(model: nn.Module) -> tuple[str, nn.Linear]:
    """Name and module of the torchvision model's last ``nn.Linear`` (ResNet ``fc``, DenseNet ``classifier``)."""
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no Linear classifier")
    return linears[-1]
