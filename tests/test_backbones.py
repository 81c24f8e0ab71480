"""Stage detection by output stride, and weight loading (finefcace/backbones.py)."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision
from torch import nn

from finefcace.backbones import (
    SUPPORTED_FAMILIES,
    check_backbone_name,
    cut_into_stages,
    load_torchvision_backbone,
    supported_backbones,
)


def _run_stages(stages, x):
    for stage in stages:
        x = stage.module(x)
    return x


def test_supported_backbones_cover_the_required_models():
    names = supported_backbones()
    for required in ("resnet18", "resnet34", "resnet50", "resnet101", "densenet121"):
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
