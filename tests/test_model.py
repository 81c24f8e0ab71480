"""FineFACE experts, heads, switches and the baseline (finefcace/model.py)."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn

from finefcace.model import Baseline, FineFACE, FineFACEOutput, batchnorm_statistics_unchanged


def tiny(backbone: str = "resnet18", num_classes: int = 2, **kwargs) -> FineFACE:
    torch.manual_seed(0)
    kwargs.setdefault("descriptor_dim", 32)
    return FineFACE(backbone, num_classes, **kwargs)


# --------------------------------------------------------------------------- shapes


@pytest.mark.slow
def test_resnet50_experts_at_448_px():
    """Paper §4.2: e_1..e_3 end at layer2/3/4: 512/1024/2048 channels at 56²/28²/14²."""
    model = FineFACE("resnet50", 2).eval()
    assert model.expert_stages == [3, 4, 5] and model.expert_channels == [512, 1024, 2048]
    x = torch.randn(1, 3, 448, 448)
    with torch.no_grad():
        features = model.backbone_features(x)
        assert [tuple(f.shape) for f in features] == [(1, 512, 56, 56), (1, 1024, 28, 28), (1, 2048, 14, 14)]
        logits, maps, descriptor = model.expert_head(0, features[0])
        assert maps.shape == (1, 1024, 56, 56) and descriptor.shape == (1, 1024) and logits.shape == (1, 2)
        deepest = model.expert_head(2, features[2])
        assert deepest[1].shape == (1, 1024, 14, 14)


@pytest.mark.parametrize("size", [(64, 64), (96, 128)])
def test_resnet18_forward_at_two_sizes(size):
    model = tiny(num_classes=3).eval()
    assert model.expert_channels == [128, 256, 512]
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert isinstance(out, FineFACEOutput)
    h, w = size
    assert [tuple(m.shape) for m in out.maps] == [(2, 32, h // 8, w // 8), (2, 32, h // 16, w // 16), (2, 32, h // 32, w // 32)]
    assert [tuple(p.shape) for p in out.expert_logits] == [(2, 3)] * 3
    assert out.concat_logits.shape == (2, 3)
    assert [tuple(v.shape) for v in out.descriptors] == [(2, 32)] * 3


@pytest.mark.parametrize("size", [(64, 64), (80, 112)])
def test_densenet121_experts_at_two_sizes(size):
    """Supp. A.1: e_1 = dense blocks 1–2, e_2 = 1–3, e_3 = 1–4."""
    model = tiny("densenet121").eval()
    assert model.expert_channels == [512, 1024, 1024]
    assert "denseblock2" in dict(model.stages[2].named_children())
    assert "denseblock4" in dict(model.stages[4].named_children())
    with torch.no_grad():
        features = model.backbone_features(torch.randn(1, 3, *size))
    h, w = size
    assert [tuple(f.shape) for f in features] == [(1, 512, h // 8, w // 8), (1, 1024, h // 16, w // 16), (1, 1024, h // 32, w // 32)]


def test_odd_input_sizes_work():
    model = tiny().eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 65, 97))
    assert out.concat_logits.shape == (1, 2) and torch.isfinite(out.concat_logits).all()


def test_descriptor_block_layout():
    """Eq. 1: 1×1 conv (C_n→C_v/2) → BN → act → 3×3 conv (→C_v) → BN → act; no conv bias."""
    model = tiny(descriptor_dim=64, activation="relu", descriptor_bn_momentum=0.1)
    block = model.descriptor_blocks[1]
    kinds = [type(m) for m in block]
    assert kinds == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    assert block[0].in_channels == 256 and block[0].out_channels == 32 and block[0].kernel_size == (1, 1)
    assert block[3].out_channels == 64 and block[3].kernel_size == (3, 3) and block[3].padding == (1, 1)
    assert block[0].bias is None and block[3].bias is None
    assert block[1].momentum == block[4].momentum == 0.1
    default = tiny(activation="elu")
    assert isinstance(default.descriptor_blocks[0][2], nn.ELU)
    assert default.descriptor_blocks[0][1].momentum == 0.01  # the published code's (paper silent)


def test_heads_mlp_and_linear():
    mlp = tiny(head="mlp", num_classes=4)
    kinds = [type(m) for m in mlp.classifiers[0]]
    assert kinds == [nn.BatchNorm1d, nn.Linear, nn.BatchNorm1d, nn.ELU, nn.Linear]
    assert mlp.concat_classifier[1].in_features == 3 * 32
    linear = tiny(head="linear", num_classes=4)
    assert isinstance(linear.classifiers[2], nn.Linear) and linear.classifiers[2].out_features == 4
    assert linear.concat_classifier.in_features == 96


def test_concat_head_uses_the_pooled_descriptors():
    model = tiny().eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
        torch.testing.assert_close(out.concat_logits, model.concat_classifier(torch.cat(out.descriptors, 1)))
        torch.testing.assert_close(out.descriptors[0], out.maps[0].amax(dim=(2, 3)))  # GMP


@pytest.mark.parametrize("pooling", ["gap", "bilinear", "covariance"])
def test_pooling_variants_run_and_learn(pooling):
    model = tiny(pooling=pooling, descriptor_dim=24)  # 24 is no square: BP/GCP use r = 4, D = 16
    out = model(torch.randn(2, 3, 64, 64))
    expected = 24 if pooling == "gap" else 16
    assert model.descriptor_length == expected
    assert all(v.shape == (2, expected) for v in out.descriptors)
    loss = sum(p.sum() for p in out.expert_logits) + out.concat_logits.sum()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.head_parameters() if p.grad is not None)
    if pooling == "gap":
        torch.testing.assert_close(out.descriptors[1], out.maps[1].mean(dim=(2, 3)))


def test_covariance_descriptor_is_the_matrix_square_root():
    model = tiny(pooling="covariance", descriptor_dim=16).eval()
    pool = model.poolings[0]
    maps = torch.randn(2, 16, 6, 6)
    with torch.no_grad():
        root = pool(maps).reshape(2, 4, 4)
        z = pool._reduced(maps).flatten(2)
        cov = z @ z.transpose(1, 2) / z.shape[-1]
    torch.testing.assert_close(root @ root, cov, atol=5e-2 * cov.abs().max().item(), rtol=0)


# --------------------------------------------------------------------------- experts


def test_default_and_custom_experts():
    assert tiny().expert_stages == [3, 4, 5]
    two = tiny(experts=(2, 5))
    assert two.num_experts == 2 and two.expert_channels == [64, 512]
    assert tiny(experts=[-2, -1]).expert_stages == [4, 5]
    shallow = tiny(experts=(2, 3))
    assert len(shallow.stages) == 3  # stages past the deepest expert are dropped
    assert shallow.min_input_size == 64
    with torch.no_grad():
        out = shallow.eval()(torch.randn(1, 3, 64, 64))
    assert [m.shape[-1] for m in out.maps] == [16, 8]


@pytest.mark.parametrize("experts", [(3, 3), (5, 4), (0,), (6,), (), ("3",)])
def test_bad_experts_are_refused(experts):
    with pytest.raises(ValueError, match="stage|experts"):
        tiny(experts=experts)


def _blocks_run(model: FineFACE, call):
    """(call's result, the blocks it ran in order: stage1.., F0.., f0.., f_oval), without gradient."""
    ran: list[str] = []
    named = [*((f"stage{i + 1}", s) for i, s in enumerate(model.stages)),
             *((f"F{n}", b) for n, b in enumerate(model.descriptor_blocks)),
             *((f"f{n}", c) for n, c in enumerate(model.classifiers)),
             ("f_oval", model.concat_classifier)]
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: ran.append(name)) for name, m in named]
    try:
        with torch.no_grad():
            return call(), ran
    finally:
        for hook in hooks:
            hook.remove()


def test_forward_expert_matches_forward_and_runs_only_its_stages():
    model = tiny(num_classes=3).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        full = model(x)
    for n, stage in enumerate(model.expert_stages):
        (logits, maps, descriptor), ran = _blocks_run(model, lambda n=n: model.forward_expert(x, n))
        torch.testing.assert_close(logits, full.expert_logits[n])
        torch.testing.assert_close(maps, full.maps[n])
        torch.testing.assert_close(descriptor, full.descriptors[n])
        assert ran == [f"stage{i}" for i in range(1, stage + 1)] + [f"F{n}", f"f{n}"]
    with pytest.raises(IndexError):
        model.forward_expert(x, 3)


def test_forward_expert_gradients_reach_only_its_parameters():
    model = tiny().train()
    logits, _, _ = model.forward_expert(torch.randn(2, 3, 64, 64), 0)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.stages[:3].parameters())
    assert all(p.grad is None for p in model.stages[3:].parameters())
    assert all(p.grad is None for p in model.descriptor_blocks[1].parameters())
    assert all(p.grad is None for p in model.concat_classifier.parameters())
    assert all(p.grad is not None for p in model.classifiers[0].parameters())


def test_forward_concat_matches_forward_and_runs_no_expert_classifier():
    """Algorithm 1, step N+2: the backbone, every F_n, then f_oval — no f_n."""
    model = tiny(num_classes=3).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        full = model(x)
    logits, ran = _blocks_run(model, lambda: model.forward_concat(x))
    torch.testing.assert_close(logits, full.concat_logits)
    stages = [f"stage{i}" for i in range(1, model.expert_stages[-1] + 1)]
    assert ran == stages + [f"F{n}" for n in range(model.num_experts)] + ["f_oval"]


def _batchnorm_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: b.clone() for name, b in model.named_buffers()
            if name.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked")}


@pytest.mark.parametrize("train", [True, False])
def test_batchnorm_statistics_unchanged_keeps_outputs_and_records_nothing(train):
    model = tiny(pooling="bilinear").train(train)
    ordinary = tiny(pooling="bilinear").train(train)  # same seed, same weights
    x = torch.randn(3, 3, 64, 64)
    before = _batchnorm_buffers(model)
    with torch.no_grad():
        expected = ordinary(x)
        with batchnorm_statistics_unchanged(model):
            got = model(x)
    torch.testing.assert_close(got.concat_logits, expected.concat_logits, rtol=0, atol=0)
    after = _batchnorm_buffers(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    # the ordinary forward does record in training mode (the check above could fail)
    assert any(not torch.equal(before[k], v) for k, v in _batchnorm_buffers(ordinary).items()) == train
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms and all(m.track_running_stats for m in norms)  # restored
    with pytest.raises(RuntimeError), batchnorm_statistics_unchanged(model):
        raise RuntimeError("restored on error too")
    assert all(m.track_running_stats for m in norms)


def test_parameter_groups_split_backbone_and_heads():
    model = tiny(pooling="bilinear")
    backbone = {id(p) for p in model.backbone_parameters()}
    heads = {id(p) for p in model.head_parameters()}
    assert backbone and heads and not backbone & heads
    assert backbone | heads == {id(p) for p in model.parameters()}


# --------------------------------------------------------------------------- errors


def test_clear_errors_for_bad_input():
    model = tiny().eval()
    with pytest.raises(ValueError, match="3 image channels"):
        model(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match="too small.*64"):
        model(torch.randn(1, 3, 48, 64))
    with pytest.raises(ValueError, match="batch, 3, height, width"):
        model(torch.randn(3, 64, 64))
    with pytest.raises(ValueError, match="3 image channels"):
        model.forward_expert(torch.randn(1, 4, 64, 64), 0)


def test_clear_errors_for_bad_configuration():
    with pytest.raises(ValueError, match="resnet.*densenet"):
        FineFACE("vgg16")
    with pytest.raises(ValueError, match="pooling"):
        FineFACE("resnet18", pooling="max")
    with pytest.raises(ValueError, match="activation"):
        FineFACE("resnet18", activation="gelu")
    with pytest.raises(ValueError, match="head"):
        FineFACE("resnet18", head="transformer")
    with pytest.raises(ValueError, match="num_classes"):
        FineFACE("resnet18", 1)


def test_weights_file_reaches_the_expert_stages(tmp_path):
    torch.manual_seed(5)
    source = torchvision.models.resnet18()
    torch.save(source.state_dict(), tmp_path / "r18.pth")
    model = FineFACE("resnet18", 2, descriptor_dim=16, weights=tmp_path / "r18.pth")
    torch.testing.assert_close(model.stages[0].conv1.weight, source.conv1.weight)
    torch.testing.assert_close(model.stages[4].layer4[1].bn2.running_var, source.layer4[1].bn2.running_var)


def test_from_preset_applies_the_switches():
    paper = FineFACE.from_preset("paper", "resnet18", 2, descriptor_dim=16)
    official = FineFACE.from_preset("official_code", "resnet18", 2, descriptor_dim=16)
    assert isinstance(paper.descriptor_blocks[0][2], nn.ELU) and paper.descriptor_blocks[0][1].momentum == 0.01
    assert isinstance(official.descriptor_blocks[0][2], nn.ReLU) and official.descriptor_blocks[0][1].momentum == 0.01
    assert paper.config["pooling"] == "gmp" and paper.config["head"] == "mlp"
    linear = FineFACE.from_preset("paper", "resnet18", 2, descriptor_dim=16, head="linear")
    assert isinstance(linear.classifiers[0], nn.Linear)


# --------------------------------------------------------------------------- baseline


@pytest.mark.parametrize("backbone,features", [("resnet18", 512), ("densenet121", 1024)])
def test_baseline_head_and_forward(backbone, features):
    torch.manual_seed(0)
    model = Baseline(backbone, 3).eval()
    assert model.classifier.in_features == features and model.classifier.out_features == 3
    x = torch.randn(2, 3, 64, 64)
    reference = torchvision.models.get_model(backbone, num_classes=3).eval()
    # same weights in the torchvision model -> same logits (the cut loses nothing)
    own = {k.split(".", 1)[1]: v for k, v in model.stages.state_dict().items()}
    prefix = "features." if backbone.startswith("densenet") else ""
    head = "classifier" if backbone.startswith("densenet") else "fc"
    reference.load_state_dict({**{prefix + k: v for k, v in own.items()},
                               f"{head}.weight": model.classifier.weight, f"{head}.bias": model.classifier.bias})
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), atol=1e-5, rtol=1e-5)
    backbone_ids = {id(p) for p in model.backbone_parameters()}
    assert backbone_ids.isdisjoint({id(p) for p in model.head_parameters()})
    with pytest.raises(ValueError, match="too small"):
        model(torch.randn(1, 3, 32, 32))


def test_config_rebuilds_the_same_architecture():
    model = tiny(experts=(2, 4), pooling="gap", head="linear", activation="relu")
    clone = FineFACE(**model.config)
    assert clone.state_dict().keys() == model.state_dict().keys()
    clone.load_state_dict(model.state_dict())
    baseline = Baseline("resnet18", 4)
    Baseline(**baseline.config).load_state_dict(baseline.state_dict())


# --------------------------------------------------------------------------- modern backbones (paper §6)

MODERN = ("convnext_tiny", "swin_t")


@pytest.fixture(scope="module")
def modern_models() -> dict[str, FineFACE]:
    return {name: tiny(name).eval() for name in MODERN}


@pytest.mark.parametrize("name", MODERN)
@pytest.mark.parametrize("size,sides", [(224, [28, 14, 7]), (448, [56, 28, 14])])
def test_modern_backbone_expert_maps_at_224_and_448(modern_models, name, size, sides):
    """Default experts = the last three of the four stages (strides 8, 16, 32): x_n and x''_n
    at 224 and 448 px, from a meta-device copy (shapes only, no arithmetic)."""
    model = modern_models[name]
    assert model.expert_stages == [2, 3, 4] and model.expert_strides == [8, 16, 32]
    assert model.expert_channels == [192, 384, 768]
    meta = copy.deepcopy(model).to("meta")
    with torch.no_grad():
        features = meta.backbone_features(torch.zeros(1, 3, size, size, device="meta"))
        heads = [meta.expert_head(n, f) for n, f in enumerate(features)]
    assert [tuple(f.shape) for f in features] == [(1, c, s, s) for c, s in zip([192, 384, 768], sides)]
    assert [tuple(maps.shape) for _, maps, _ in heads] == [(1, 32, s, s) for s in sides]


@pytest.mark.parametrize("name", MODERN)
def test_modern_backbone_forward_gives_channels_first_maps(modern_models, name):
    model = modern_models[name]
    with torch.no_grad():
        features = model.backbone_features(torch.randn(2, 3, 64, 64))
        out = model(torch.randn(2, 3, 64, 64))
    assert [tuple(f.shape) for f in features] == [(2, 192, 8, 8), (2, 384, 4, 4), (2, 768, 2, 2)]
    assert [tuple(m.shape) for m in out.maps] == [(2, 32, 8, 8), (2, 32, 4, 4), (2, 32, 2, 2)]
    assert all(torch.isfinite(p).all() for p in [*out.expert_logits, out.concat_logits])


def _torchvision_twin(model: Baseline, name: str, num_classes: int) -> nn.Module:
    """The torchvision model holding the baseline's weights (stage layers back under their names)."""
    reference = torchvision.models.get_model(name, num_classes=num_classes).eval()
    features = {n for n, _ in reference.features.named_children()}
    state = {}
    for key, value in model.stages.state_dict().items():
        layer_key = key.split(".", 1)[1]
        state[("features." if layer_key.split(".")[0] in features else "") + layer_key] = value
    head = "classifier.2" if name.startswith("convnext") else "head"
    state.update({f"{head}.weight": model.classifier.weight, f"{head}.bias": model.classifier.bias})
    if model.pooled_norm is not None:
        state.update({f"classifier.0.{k}": v for k, v in model.pooled_norm.state_dict().items()})
    reference.load_state_dict(state)
    return reference


@pytest.mark.parametrize("name", MODERN)
def test_modern_baseline_is_the_torchvision_model_with_k_outputs(name):
    """The baseline keeps the backbone's usual head: ConvNeXt's LayerNorm on the pooled features,
    Swin's final LayerNorm (in the last stage) before the pooling."""
    torch.manual_seed(0)
    model = Baseline(name, 3).eval()
    assert (model.pooled_norm is not None) == name.startswith("convnext")
    with torch.no_grad():  # non-trivial LayerNorm affine parameters
        for module in model.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    reference = _torchvision_twin(model, name, 3)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), atol=1e-4, rtol=1e-4)
    everything = {id(p) for p in model.parameters()}
    backbone, head = {id(p) for p in model.backbone_parameters()}, {id(p) for p in model.head_parameters()}
    assert backbone.isdisjoint(head) and backbone | head == everything


def test_convnext_baseline_cam_is_exact_through_the_layernorm():
    """Ω_k = w_k · x(a, b) with w_k = u_k - mean(u_k), u_k = W_k ⊙ γ: its mean over the locations
    is (logit_k - b_k - W_k · β) · σ(v), σ being the LayerNorm's per-image scale of the pooled v."""
    torch.manual_seed(1)
    model = Baseline("convnext_tiny", 3).eval()
    norm = model.pooled_norm
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
        logits, maps = model.forward_with_map(torch.randn(2, 3, 64, 64))
        cam = torch.einsum("bchw,kc->bkhw", maps, model.class_weights())
        pooled = maps.mean(dim=(2, 3))
        sigma = torch.sqrt(pooled.var(dim=1, unbiased=False) + norm.eps)
        constant = model.classifier.bias + model.classifier.weight @ norm.bias
    torch.testing.assert_close(cam.mean(dim=(2, 3)) / sigma[:, None], logits - constant, atol=1e-4, rtol=1e-4)
