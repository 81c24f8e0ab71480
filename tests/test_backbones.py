"""Stage detection by output stride, and weight loading (finefcace/backbones.py)."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision
from torch import nn

from finefcace.backbones import (
    _classifier_prefixes,
    SUPPORTED_FAMILIES,
    check_backbone_name,
    cut_into_stages,
    load_torchvision_backbone,
    stage_map_sizes,
    supported_backbones,
)


def _run_stages(stages, x):
    for stage in stages:
        x = stage.module(x)
    return x


def test_supported_backbones_cover_the_required_models():
    names = supported_backbones()
    for required in ("resnet18", "resnet34", "resnet50", "resnet101", "densenet121", "convnext_tiny", "swin_t",
                     "swin_v2_t"):
        assert required in names
    assert all(name.startswith(SUPPORTED_FAMILIES) for name in names)


@pytest.mark.parametrize("name", ["vgg16", "mobilenet_v3_small", "resnet51", "", None])
def test_unsupported_backbone_names_the_supported_families(name):
    with pytest.raises(ValueError) as error:
        check_backbone_name(name)
    message = str(error.value)
    assert "resnet" in message and "densenet" in message and repr(name) in message


@pytest.mark.parametrize(
    "name,channels,layer_names",
    [
        ("resnet18", [64, 64, 128, 256, 512], [["conv1", "bn1", "relu"], ["maxpool", "layer1"], ["layer2"], ["layer3"], ["layer4"]]),
        ("resnet50", [64, 256, 512, 1024, 2048], None),
        ("resnet34", [64, 64, 128, 256, 512], None),
        ("resnet101", [64, 256, 512, 1024, 2048], None),
        ("resnext50_32x4d", [64, 256, 512, 1024, 2048], None),
        ("densenet169", [64, 256, 512, 1280, 1664], None),
        ("densenet121", [64, 256, 512, 1024, 1024],
         [["conv0", "norm0", "relu0"], ["pool0", "denseblock1"], ["transition1", "denseblock2"],
          ["transition2", "denseblock3"], ["transition3", "denseblock4", "norm5", "norm5_relu"]]),
    ],
)
def test_stages_are_grouped_by_output_stride(name, channels, layer_names):
    with torch.device("meta"):  # shapes only: no weights to initialise, no arithmetic
        model = torchvision.models.get_model(name)
    stages = cut_into_stages(model)
    assert [s.stride for s in stages] == [2, 4, 8, 16, 32]
    assert [s.channels for s in stages] == channels
    if layer_names is not None:
        assert [[n for n, _ in s.module.named_children()] for s in stages] == layer_names


@pytest.mark.parametrize("name", ["resnet18", "densenet121"])
def test_stages_recompose_the_torchvision_model(name):
    """Nothing is lost or added by the cut: stages + GAP + the torchvision classifier = torchvision forward."""
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, num_classes=5).eval()
    stages = cut_into_stages(model)
    x = torch.randn(2, 3, 72, 72)
    with torch.no_grad():
        features = _run_stages(stages, x)
        classifier = model.fc if hasattr(model, "fc") else model.classifier
        torch.testing.assert_close(classifier(features.mean(dim=(2, 3))), model(x), atol=1e-5, rtol=1e-5)


def test_stage_detection_leaves_mode_and_batchnorm_statistics_alone():
    model = torchvision.models.resnet18().train()
    before = model.bn1.running_mean.clone()
    cut_into_stages(model)
    assert model.training
    assert torch.equal(model.bn1.running_mean, before)


# --------------------------------------------------------------------------- weights


def _assert_same_trunk(a: nn.Module, b: nn.Module, skip: str = "fc.") -> None:
    sa, sb = a.state_dict(), b.state_dict()
    for key in sa:
        if not key.startswith(skip):
            assert torch.equal(sa[key], sb[key]), key


def test_local_weights_file_loads(tmp_path):
    torch.manual_seed(1)
    source = torchvision.models.resnet18()
    path = tmp_path / "r18.pth"
    torch.save(source.state_dict(), path)
    loaded = load_torchvision_backbone("resnet18", path)
    _assert_same_trunk(loaded, source, skip="")
    assert not torch.equal(torchvision.models.resnet18().conv1.weight, source.conv1.weight)  # not a fluke
    loaded_str = load_torchvision_backbone("resnet18", str(path))
    _assert_same_trunk(loaded_str, source, skip="")


def test_local_file_with_other_head_or_wrapped_keys_loads(tmp_path):
    torch.manual_seed(2)
    source = torchvision.models.resnet18(num_classes=7)  # fine-tuned head of another size: ignored
    wrapped = {"state_dict": {"module." + k: v for k, v in source.state_dict().items()}}
    path = tmp_path / "wrapped.pt"
    torch.save(wrapped, path)
    _assert_same_trunk(load_torchvision_backbone("resnet18", path), source)
    headless = {k: v for k, v in source.state_dict().items() if not k.startswith("fc.")}
    torch.save(headless, tmp_path / "headless.pth")
    _assert_same_trunk(load_torchvision_backbone("resnet18", tmp_path / "headless.pth"), source)


def test_old_style_densenet_keys_are_renamed(tmp_path):
    """torchvision's own DenseNet files say 'norm.1'; the modules now say 'norm1'."""
    torch.manual_seed(3)
    source = torchvision.models.densenet121()
    old = {}
    for key, value in source.state_dict().items():
        if key.endswith("num_batches_tracked"):  # absent from torchvision's own (old) files
            continue
        old[key.replace(".norm1.", ".norm.1.").replace(".conv1.", ".conv.1.")
            .replace(".norm2.", ".norm.2.").replace(".conv2.", ".conv.2.")] = value
    assert any(".norm.1." in k for k in old)
    torch.save(old, tmp_path / "densenet121-old.pth")
    _assert_same_trunk(load_torchvision_backbone("densenet121", tmp_path / "densenet121-old.pth"),
                       source, skip="classifier.")


def test_mismatched_weights_file_names_the_keys(tmp_path):
    state = torchvision.models.resnet18().state_dict()
    del state["layer3.0.conv1.weight"]
    state["layer9.extra"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(ValueError) as error:
        load_torchvision_backbone("resnet18", tmp_path / "bad.pth")
    message = str(error.value)
    assert "layer3.0.conv1.weight" in message and "layer9.extra" in message and "bad.pth" in message
    # the wrong architecture entirely: shapes differ
    torch.save(torchvision.models.resnet34().state_dict(), tmp_path / "r34.pth")
    with pytest.raises(ValueError, match="r34.pth"):
        load_torchvision_backbone("resnet50", tmp_path / "r34.pth")


def test_missing_weights_file_and_unknown_weights_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_torchvision_backbone("resnet18", tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        load_torchvision_backbone("resnet18", "IMAGENET_V7")


def test_torch_home_cache_is_used_like_torchvision(tmp_path, monkeypatch):
    """A file in $TORCH_HOME/hub/checkpoints under torchvision's name loads with no network."""
    torch.manual_seed(4)
    source = torchvision.models.resnet18()
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(source.state_dict(), cache / weights.url.rsplit("/", 1)[1])
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    for name in ("IMAGENET1K_V1", "DEFAULT", "ResNet18_Weights.IMAGENET1K_V1", weights):
        _assert_same_trunk(load_torchvision_backbone("resnet18", name), source, skip="")


def test_offline_without_cache_explains_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    with pytest.raises(RuntimeError) as error:
        load_torchvision_backbone("resnet18", "IMAGENET1K_V1")
    assert "resnet18-f37072fd.pth" in str(error.value) and str(tmp_path) in str(error.value)


# --------------------------------------------------------------------------- modern backbones (paper §6)


@pytest.mark.parametrize(
    "name,channels,layout,layer_names",
    [
        ("convnext_tiny", [96, 192, 384, 768], "channels_first", [["0", "1"], ["2", "3"], ["4", "5"], ["6", "7"]]),
        ("convnext_small", [96, 192, 384, 768], "channels_first", None),
        ("swin_t", [96, 192, 384, 768], "channels_last",
         [["0", "1", "to_channels_first"], ["to_channels_last", "2", "3", "to_channels_first"],
          ["to_channels_last", "4", "5", "to_channels_first"], ["to_channels_last", "6", "7", "norm", "permute"]]),
        ("swin_v2_t", [96, 192, 384, 768], "channels_last", None),
        ("swin_b", [128, 256, 512, 1024], "channels_last", None),
    ],
)
def test_modern_backbones_cut_into_four_stages(name, channels, layout, layer_names):
    """ConvNeXt and Swin: patch embedding + first block group at 1/4, then a downsampling layer
    and a block group at 1/8, 1/16, 1/32; Swin's channels-last layout is detected, not listed."""
    with torch.device("meta"):
        model = torchvision.models.get_model(name)
    stages = cut_into_stages(model)
    assert [s.stride for s in stages] == [4, 8, 16, 32]
    assert [s.channels for s in stages] == channels
    assert {s.layout for s in stages} == {layout}
    if layer_names is not None:
        assert [[n for n, _ in s.module.named_children()] for s in stages] == layer_names


# (height = width of each stage's map) at 224 and 448 px; the default experts are the last three
# stages. The paper's ResNet-50 experts at 448 px are 56, 28, 14 (layer2..layer4): the modern
# backbones give the same expert grids, with one stage fewer below them.
STAGE_MAP_SIDES = {
    ("resnet50", 224): [112, 56, 28, 14, 7], ("resnet50", 448): [224, 112, 56, 28, 14],
    ("convnext_tiny", 224): [56, 28, 14, 7], ("convnext_tiny", 448): [112, 56, 28, 14],
    ("swin_t", 224): [56, 28, 14, 7], ("swin_t", 448): [112, 56, 28, 14],
}


@pytest.mark.parametrize("name,size", sorted(STAGE_MAP_SIDES))
def test_stage_map_sizes_at_224_and_448(name, size):
    with torch.device("meta"):
        model = torchvision.models.get_model(name)
    stages = cut_into_stages(model)
    sides = STAGE_MAP_SIDES[name, size]
    assert stage_map_sizes([s.module for s in stages], size) == [(side, side) for side in sides]
    assert [size // s.stride for s in stages] == sides


def test_stage_map_sizes_follow_the_layers_rounding():
    """ConvNeXt's unpadded stride-2 downsampling floors odd sides (100 px: 25 -> 12 -> 6 -> 3);
    Swin's patch merging pads them (25 -> 13 -> 7 -> 4): the meta forward gets both right."""
    with torch.device("meta"):
        convnext, swin = torchvision.models.convnext_tiny(), torchvision.models.swin_t()
    assert stage_map_sizes([s.module for s in cut_into_stages(convnext)], 100) == [(25, 25), (12, 12), (6, 6), (3, 3)]
    assert stage_map_sizes([s.module for s in cut_into_stages(swin)], (100, 132)) == \
        [(25, 33), (13, 17), (7, 9), (4, 5)]


def test_swin_stage_maps_fill_whole_windows_at_224_and_448_only():
    """torchvision's Swin pads every map to a multiple of its 7x7 window (and patch merging pads
    odd sides), so any input size runs (FineFACE's own minimum, 64 px, included); but the padded
    zero tokens take part in the window attention unmasked. Only input sides that are multiples of
    4 x 2^3 x 7 = 224 give stage maps that are whole numbers of windows (56/28/14/7 at 224 px,
    112/56/28/14 at 448 px), as in Swin's ImageNet training: the sizes to use with pretrained weights."""
    with torch.device("meta"):
        model = torchvision.models.swin_t()
    window = model.features[1][0].attn.window_size
    assert window == [7, 7]
    stages = [s.module for s in cut_into_stages(model)]
    for size in (224, 448):
        assert all(side % 7 == 0 for h_w in stage_map_sizes(stages, size) for side in h_w)
    for size in (64, 96, 128, 192, 256):
        assert any(side % 7 for h_w in stage_map_sizes(stages, size) for side in h_w)


@pytest.mark.parametrize("name", ["convnext_tiny", "swin_t"])
def test_modern_stages_recompose_the_torchvision_model(name):
    """Stages (N, C, H, W) in and out + GAP + torchvision's own head = torchvision's forward,
    on a real (small) image: nothing lost or added by the cut or the layout permutations."""
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, num_classes=5).eval()
    stages = cut_into_stages(model)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        maps = x
        for stage in stages:
            maps = stage.module(maps)
            assert maps.shape[1] == stage.channels  # channels second after every stage
        pooled = maps.mean(dim=(2, 3), keepdim=True)
        logits = model.classifier(pooled) if name.startswith("convnext") else model.head(pooled.flatten(1))
        torch.testing.assert_close(logits, model(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["vit_b_16", "vit_l_32", "vit_h_14"])
def test_plain_vit_is_refused_with_the_reason(name):
    with pytest.raises(ValueError) as error:
        check_backbone_name(name)
    message = str(error.value)
    assert repr(name) in message and "single stage" in message and "swin_t" in message
    assert "224" in message and "448" in message  # the fixed input size, and the paper's
    with pytest.raises(ValueError, match="pyramid"):
        load_torchvision_backbone(name)


def test_unknown_family_lists_the_modern_ones_too():
    with pytest.raises(ValueError) as error:
        check_backbone_name("efficientnet_b0")
    message = str(error.value)
    for family in SUPPORTED_FAMILIES:
        assert family in message
    assert "convnext_tiny" in message and "swin_t" in message and "swin_v2_t" in message


def test_a_layer_without_a_2d_map_is_named():
    """The stride probe refuses a trunk whose layers output tokens (N, L, C), naming the layer."""
    class ToTokens(nn.Module):
        def forward(self, x):
            return x.flatten(2).transpose(1, 2)

    model = nn.Sequential()
    model.add_module("embed", nn.Conv2d(3, 8, 16, stride=16))
    model.add_module("tokens", ToTokens())
    with pytest.raises(ValueError, match="'tokens'.*2-D map"):
        cut_into_stages(model)


@pytest.mark.parametrize("name,prefix", [("resnet18", "fc."), ("densenet121", "classifier."),
                                         ("convnext_tiny", "classifier."), ("swin_t", "head.")])
def test_the_classifier_is_the_child_holding_the_final_linear(name, prefix):
    """Not every child that contains a Linear: ConvNeXt's and Swin's blocks do."""
    with torch.device("meta"):
        model = torchvision.models.get_model(name)
    assert _classifier_prefixes(model) == (prefix,)


def test_convnext_weights_file_with_a_missing_trunk_key_is_named(tmp_path):
    torch.manual_seed(5)
    state = torchvision.models.convnext_tiny(num_classes=3).state_dict()  # another head size: fine
    del state["features.3.0.block.3.weight"]  # a Linear inside a ConvNeXt block
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(ValueError) as error:
        load_torchvision_backbone("convnext_tiny", tmp_path / "broken.pth")
    assert "features.3.0.block.3.weight" in str(error.value) and "classifier" not in str(error.value)


def test_swin_weights_come_from_torch_home_like_resnet(tmp_path, monkeypatch):
    """Pretrained Swin/ConvNeXt weights take the same offline path as ResNet's: a file under
    torchvision's name in $TORCH_HOME/hub/checkpoints, no download."""
    torch.manual_seed(6)
    source = torchvision.models.swin_t()
    weights = torchvision.models.Swin_T_Weights.IMAGENET1K_V1
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(source.state_dict(), cache / weights.url.rsplit("/", 1)[1])
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    _assert_same_trunk(load_torchvision_backbone("swin_t", "IMAGENET1K_V1"), source, skip="")


def test_a_models_trunk_saved_as_a_file_loads_into_torchvision(tmp_path):
    """save_backbone_file writes what load_backbone_file reads: a run's backbone as weights."""
    import torch

    from finefcace.backbones import load_torchvision_backbone, save_backbone_file
    from finefcace.model import Baseline, FineFACE

    torch.manual_seed(0)
    for model in (FineFACE("resnet18", 2, descriptor_dim=8), Baseline("resnet18", 2)):
        path = save_backbone_file(model, tmp_path / "trunk.pt")
        trunk = load_torchvision_backbone("resnet18", str(path))
        assert torch.equal(trunk.conv1.weight, model.stages[0].conv1.weight)
        assert torch.equal(trunk.layer3[0].bn1.running_var, model.stages[3].layer3[0].bn1.running_var)
