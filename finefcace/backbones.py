"""Torchvision backbones cut into stages, and their weights.

Paper §3.1 and §4.2: "the layers ... are grouped into 5 stages where each stage is a group
of layers operating on feature maps of the same spatial size". :func:`cut_into_stages` does
exactly that for any torchvision ResNet / ResNeXt / Wide-ResNet / DenseNet / ConvNeXt / Swin
Transformer: it runs small probe images through the backbone's top-level layers and groups
consecutive layers by their output stride. No table per model name. Introduced in
``notebooks/02_experts.ipynb``.

The paper's future work (§6) asks for "other backbone architectures such as Transformer".
ConvNeXt (Liu et al., CVPR 2022) and the Swin Transformer (Liu et al., ICCV 2021) are
hierarchical like ResNet: four stages at strides 4, 8, 16, 32, so the experts are cut from
them exactly as from a ResNet. Swin's layers work on channels-last token maps (N, H, W, C);
the probe detects that layout (the dimension that does not change with the input size holds
the channels) and each such stage is wrapped so that it takes and returns (N, C, H, W) maps:
the descriptor blocks, the CAMs, the crop and Algorithm 1 see the same layout for every
backbone. A plain Vision Transformer is refused (:data:`PLAIN_VIT_REASON`): all its blocks
work on one grid, so it has one stage and no shallow-to-deep pyramid to cut experts from.

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
from torchvision.ops.misc import Permute

from finefcace import outputs

#: Backbone families whose stage cut is tested (name prefixes of torchvision model names).
SUPPORTED_FAMILIES: tuple[str, ...] = ("resnet", "resnext", "wide_resnet", "densenet", "convnext", "swin")

#: Side of the probe image used to measure each layer's output stride.
PROBE_SIZE = 128
#: Side of the second probe image: the dimensions that change between the two probes are the
#: spatial ones, the one that does not is the channel dimension (first or last).
SECOND_PROBE_SIZE = 192

CHANNELS_FIRST = "channels_first"  # (N, C, H, W): convolutional networks
CHANNELS_LAST = "channels_last"    # (N, H, W, C): Swin's token maps

#: Why a plain Vision Transformer (torchvision ``vit_*``) has no FineFACE experts.
PLAIN_VIT_REASON = (
    "a plain Vision Transformer has no shallow-to-deep pyramid: after its 16x16 (or 32x32, 14x14) "
    "patch embedding every encoder block works on the same token grid (14x14 for vit_b_16 at "
    "224 px), so grouping its layers by output stride, as the paper defines stages (§4.2), gives a "
    "single stage. FineFACE's experts are stages of different resolution (ResNet-50 at 448 px: "
    "56x56, 28x28, 14x14); experts taken at several block depths of one 14x14 grid would all see "
    "the same coarse resolution, so the shallow, fine-grained expert the method is built on would "
    "not exist (it would be a different, depth-only ensemble). torchvision's ViT also accepts only "
    "the image size its position embedding was trained for (224 px), not the paper's 448 px. Use a "
    "hierarchical transformer instead: swin_t, swin_s, swin_b or swin_v2_* (stages at strides 4, "
    "8, 16, 32, like ResNet)"
)

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

    module: nn.Sequential  # the layers, keeping their torchvision names; (N, C, H, W) in and out
    stride: int            # output stride (input side / output side)
    channels: int          # output channels
    layout: str = CHANNELS_FIRST  # the layout the torchvision layers inside work in


def supported_backbones() -> list[str]:
    """Torchvision model names of the supported families (ResNet, ResNeXt, Wide-ResNet, DenseNet,
    ConvNeXt, Swin Transformer v1 and v2)."""
    names = torchvision.models.list_models(module=torchvision.models)
    return sorted(n for n in names if n.startswith(SUPPORTED_FAMILIES))


def check_backbone_name(name: str) -> None:
    """Raise ``ValueError`` naming the supported families when ``name`` is not one of them;
    a plain ViT (``vit_*``) is refused with the reason (:data:`PLAIN_VIT_REASON`)."""
    if isinstance(name, str) and name.startswith("vit_"):
        raise ValueError(f"unsupported backbone {name!r}: {PLAIN_VIT_REASON}")
    if not isinstance(name, str) or name not in supported_backbones():
        raise ValueError(
            f"unsupported backbone {name!r}: finefcace supports the torchvision families "
            f"{', '.join(SUPPORTED_FAMILIES)} (e.g. resnet18, resnet50, resnet101, densenet121, "
            f"convnext_tiny, swin_t); available here: {', '.join(supported_backbones())}"
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
    """The state-dict prefix of the top-level child holding the final classifier (``fc.``,
    ``classifier.``, ``head.``): keys a weights file may lack or size differently."""
    name, _ = final_classifier(model)
    return (name.split(".", 1)[0] + ".",)


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
    with outputs.atomic_output(path) as temporary:
        torch.save(state, temporary)
    return Path(path)


def trunk_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The backbone's top-level layers in order, classifier and global pooling removed.

    Models with a ``features`` sequence (DenseNet, ConvNeXt, Swin) use its children, then
    their own children after it up to the global pooling (Swin's final ``norm`` and its
    ``permute`` back to (N, C, H, W)); others (ResNet) use their own children up to the global
    pooling. When the trunk ends in a BatchNorm (DenseNet's ``norm5``, whose ReLU torchvision
    applies in ``forward``) a ReLU is appended so the last stage gives the same map torchvision
    pools.
    """
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential):
        children = list(model.named_children())
        after = children[[name for name, _ in children].index("features") + 1:]
        candidates = [*features.named_children(), *after]
    else:
        candidates = list(model.named_children())
    layers: list[tuple[str, nn.Module]] = []
    for name, layer in candidates:
        if isinstance(layer, _HEAD_TYPES):
            break
        layers.append((name, layer))
    if layers and isinstance(layers[-1][1], (nn.BatchNorm2d, nn.GroupNorm)):
        layers.append((f"{layers[-1][0]}_relu", nn.ReLU(inplace=False)))
    return layers


def cut_into_stages(model: nn.Module, probe_size: int = PROBE_SIZE) -> list[Stage]:
    """Group the trunk layers of ``model`` into stages by output stride (paper §4.2).

    Probe images of ``probe_size``² and :data:`SECOND_PROBE_SIZE`² run once through the layers
    of a copy of the model on PyTorch's ``meta`` device (shapes only: no arithmetic, the model
    itself is untouched); a new stage starts whenever the stride changes. ResNet-50 gives 5
    stages at strides 2, 4, 8, 16, 32 (conv1+bn1+relu, maxpool+layer1, layer2, layer3,
    layer4); ConvNeXt and Swin give 4 at strides 4, 8, 16, 32 (patch embedding + first block
    group, then each downsampling layer with the block group after it).

    Layout: a layer's output is 4-D with the channels either second (N, C, H, W) or last
    (N, H, W, C, Swin's token maps); the channel dimension is the one that is the same for both
    probe sizes. A stage whose layers work channels-last gets a permutation in front (when its
    input is channels-last for torchvision) and one behind (when its output is), so every stage
    takes and returns (N, C, H, W); two permutations in a row are views that cancel, nothing is
    copied. Introduced in ``notebooks/02_experts.ipynb``.
    """
    layers = trunk_layers(model)
    layouts, strides, channels = _probe_layers(model, probe_size)

    stages: list[Stage] = []
    start = 0
    for i in range(1, len(layers) + 1):
        if i == len(layers) or strides[i] != strides[start]:
            group = list(layers[start:i])
            enters_last = start > 0 and layouts[start - 1] == CHANNELS_LAST
            leaves_last = layouts[i - 1] == CHANNELS_LAST
            if enters_last:
                group.insert(0, ("to_channels_last", Permute([0, 2, 3, 1])))
            if leaves_last:
                group.append(("to_channels_first", Permute([0, 3, 1, 2])))
            works_last = enters_last or leaves_last or CHANNELS_LAST in layouts[start:i]
            stages.append(Stage(module=nn.Sequential(OrderedDict(group)), stride=strides[i - 1],
                                channels=channels[i - 1], layout=CHANNELS_LAST if works_last else CHANNELS_FIRST))
            start = i
    return stages


def _probe_layers(model: nn.Module, probe_size: int) -> tuple[list[str], list[int], list[int]]:
    """Each trunk layer's output layout, stride and channels, from two meta-device probes."""
    probe_layers = trunk_layers(_meta_copy(model).eval())
    sizes = (probe_size, max(SECOND_PROBE_SIZE, probe_size + probe_size // 2))
    shapes: list[list[tuple[int, ...]]] = []
    with torch.no_grad():
        for size in sizes:
            x = torch.zeros(1, 3, size, size, device="meta")
            shapes.append([])
            for name, layer in probe_layers:
                x = layer(x)
                if x.dim() != 4:
                    raise ValueError(f"layer {name!r} of {type(model).__name__} does not output a 2-D map "
                                     f"(output shape {tuple(x.shape)} for a {size}x{size} image)")
                shapes[-1].append(tuple(x.shape))
    layouts, strides, channels = [], [], []
    for (name, _), small, large in zip(probe_layers, *shapes):
        if small[1] == large[1] and small[3] != large[3]:
            layout, width, depth = CHANNELS_FIRST, small[3], small[1]
        elif small[3] == large[3] and small[1] != large[1]:
            layout, width, depth = CHANNELS_LAST, small[2], small[3]
        else:
            raise ValueError(f"cannot tell the channel dimension of layer {name!r} of {type(model).__name__}: "
                             f"outputs {small} and {large} for {sizes[0]}² and {sizes[1]}² probe images")
        layouts.append(layout)
        strides.append(round(probe_size / width))
        channels.append(depth)
    return layouts, strides, channels


def stage_map_sizes(stages: list[nn.Module], input_size: int | tuple[int, int]) -> list[tuple[int, int]]:
    """(height, width) of each stage's output map for one ``input_size`` image, from one forward
    of a meta-device copy (exact, whatever the layers' padding and rounding; no arithmetic).

    ``stages``: the stage modules in order (``FineFACE.stages``, or ``[s.module for s in
    cut_into_stages(...)]``). Book: ``notebooks/02_experts.ipynb``.
    """
    height, width = (input_size, input_size) if isinstance(input_size, int) else input_size
    copies = _meta_copy(nn.Sequential(*stages)).eval()
    sizes = []
    with torch.no_grad():
        x = torch.zeros(1, 3, height, width, device="meta")
        for stage in copies:
            x = stage(x)
            sizes.append((int(x.shape[-2]), int(x.shape[-1])))
    return sizes


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


def pooled_feature_norm(model: nn.Module) -> nn.LayerNorm | None:
    """The normalisation torchvision applies to the pooled features before its final Linear
    (ConvNeXt's ``classifier = [LayerNorm2d, Flatten, Linear]``), or None (ResNet, DenseNet,
    Swin: the Linear reads the pooled map directly). The baseline keeps it: it is part of the
    backbone's usual classifier head.
    """
    name, _ = final_classifier(model)
    parent_name, _, last = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else None
    if not isinstance(parent, nn.Sequential):
        return None
    before = []
    for child_name, child in parent.named_children():
        if child_name == last:
            break
        if not isinstance(child, (nn.Flatten, nn.Dropout)):
            before.append(child)
    if not before:
        return None
    if len(before) > 1 or not isinstance(before[0], nn.LayerNorm):
        raise ValueError(f"{type(model).__name__}'s classifier {parent_name!r} holds "
                         f"{[type(m).__name__ for m in before]} before its final Linear; only one "
                         "LayerNorm (ConvNeXt) is supported there")
    return before[0]
