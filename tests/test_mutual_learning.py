"""Tests of finefcace/mutual_learning.py: Algorithm 1 step by step, the region draws, the baseline step."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from finefcace import attention, mutual_learning
from finefcace.model import Baseline, FineFACE
from finefcace.mutual_learning import baseline_iteration, finefcace_iteration, step_names
from finefcace.presets import get_preset
from finefcace.training.recipe import build_optimizer
from tests.training_fixtures import one_thread  # noqa: F401  (autouse: one intra-op thread)

SIZE = 64


def _small_model(seed: int = 0, **kwargs) -> FineFACE:
    torch.manual_seed(seed)
    return FineFACE("resnet18", 2, descriptor_dim=16, **kwargs).train()


def _batch(seed: int = 0, batch: int = 4):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, SIZE, SIZE, generator=generator)
    labels = torch.tensor([0, 1] * (batch // 2))
    return images, labels


def _expected_reach(model: FineFACE) -> dict[str, set[str]]:
    """Parameter names each step's loss reaches (Algorithm 1), from the model's structure."""
    names = [n for n, _ in model.named_parameters()]

    def stages_upto(n: int) -> set[str]:
        last = model.expert_stages[n]  # 1-based stage the expert ends at
        return {p for p in names if p.startswith("stages.") and int(p.split(".")[1]) < last}

    def head(n: int) -> set[str]:
        return {p for p in names if p.startswith((f"descriptor_blocks.{n}.", f"poolings.{n}.", f"classifiers.{n}."))}

    def descriptor(n: int) -> set[str]:
        return {p for p in names if p.startswith((f"descriptor_blocks.{n}.", f"poolings.{n}."))}

    concat = {p for p in names if p.startswith("concat_classifier.")}
    count = model.num_experts
    expected = {f"expert_{n + 1}": stages_upto(n) | head(n) for n in range(count)}
    every_stage = stages_upto(count - 1)
    expected["overall_region"] = every_stage | set().union(*(head(n) for n in range(count))) | concat
    expected["concat_raw"] = every_stage | set().union(*(descriptor(n) for n in range(count))) | concat
    return expected


@pytest.mark.parametrize("steps_forward", ["expert_only", "all_heads"])
def test_one_iteration_follows_algorithm_1(monkeypatch, steps_forward):
    model = _small_model()
    images, labels = _batch()
    # A large learning rate so that every reached parameter visibly moves.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=5e-4)
    reference = copy.deepcopy(model)  # the weights and BN state before the iteration

    # --- count the attention computations and the optimizer steps
    calls = {"cams": 0, "regions": 0, "overall": 0, "steps": 0}
    for name, key in (("class_activation_maps", "cams"), ("attention_boxes", "regions"),
                      ("overall_box", "overall")):
        original = getattr(attention, name)

        def counted(*args, _original=original, _key=key, **kwargs):
            calls[_key] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(attention, name, counted)
    original_step = optimizer.step

    def counted_step(*args, **kwargs):
        calls["steps"] += 1
        return original_step(*args, **kwargs)

    optimizer.step = counted_step

    # --- which stages run in each step (forward hooks)
    running: list[int] = []
    for index, stage in enumerate(model.stages):
        stage.register_forward_hook(lambda module, inputs, output, _i=index: running.append(_i))

    # --- gradients present at each step, parameter values before/after, inputs seen
    named = dict(model.named_parameters())
    before = {n: p.detach().clone() for n, p in named.items()}
    log = []
    grads_at_step: list[set[str]] = []

    def after_backward():
        grads_at_step.append({n for n, p in named.items() if p.grad is not None})

    def on_step(info):
        changed = {n for n, p in named.items() if not torch.equal(p.detach(), before[n])}
        log.append(dict(info, changed=changed, stages=sorted(set(running)), stage_calls=len(running)))
        running.clear()
        for n, p in named.items():
            before[n] = p.detach().clone()

    stats: dict = {}
    generator = torch.Generator().manual_seed(3)
    losses = finefcace_iteration(model, optimizer, images, labels, steps_forward=steps_forward,
                                 generator=generator, after_backward=after_backward, on_step=on_step,
                                 stats=stats)

    count = model.num_experts
    assert count == 3
    names = step_names(count)
    assert names == ["expert_3", "expert_2", "expert_1", "overall_region", "concat_raw"]
    # N + 2 optimizer steps, in Algorithm 1's order
    assert calls["steps"] == count + 2
    assert [entry["name"] for entry in log] == names
    assert list(losses) == names
    assert all(torch.isfinite(v) for v in losses.values())
    # attention regions computed once per batch
    assert calls == {"cams": 1, "regions": 1, "overall": 1, "steps": count + 2}

    # each step updates exactly the parameters its loss reaches
    expected = _expected_reach(model)
    for entry, grads in zip(log, grads_at_step):
        assert grads == expected[entry["name"]], entry["name"]
        assert entry["changed"] == expected[entry["name"]], entry["name"]

    # forwards: the paper runs only what e_n needs in steps 2..N
    stage_count = len(model.stages)
    if steps_forward == "expert_only":
        for entry in log[1:count]:
            n = int(entry["name"].split("_")[1]) - 1
            assert entry["stages"] == list(range(model.expert_stages[n])), entry["name"]
    else:
        for entry in log[1:count]:
            assert entry["stages"] == list(range(stage_count))
    assert log[0]["stage_calls"] == stage_count  # step 1: one forward through the backbone

    # inputs: raw for steps 1 and N+2, A_oval for N+1, raw or another expert's region for 2..N
    regions, overall = stats["regions"], stats["overall_region"]
    assert log[0]["input_name"] == "raw" and log[0]["input"] is images
    assert log[-1]["input_name"] == "raw" and log[-1]["input"] is images
    assert log[count]["input_name"] == "A_oval" and torch.equal(log[count]["input"], overall)
    for entry in log[1:count]:
        n = int(entry["name"].split("_")[1])
        allowed = {"raw"} | {f"A_{m}" for m in range(1, count + 1) if m != n}
        assert entry["input_name"] in allowed
        source = images if entry["input_name"] == "raw" else regions[int(entry["input_name"][2:]) - 1]
        assert torch.equal(entry["input"], source)
    assert stats["inputs"] == {e["name"]: e["input_name"] for e in log}

    # the regions come from step 1's forward, with the weights *before* its update
    with torch.no_grad():
        full = reference(images)
    cams = [reference.class_activation_map(n, full.maps[n], full.expert_logits[n].argmax(1)).float()
            for n in range(count)]
    expected_regions = attention.attention_regions(images, cams)
    for got, want in zip(regions, expected_regions):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(overall, attention.overall_region(images, cams), atol=1e-5, rtol=1e-5)


def _batchnorm_statistics(model: FineFACE) -> dict[str, tuple[torch.Tensor, ...]]:
    """(running_mean, running_var, num_batches_tracked) of every BatchNorm, by module name."""
    return {name: (m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
            for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}


def _recorded(before: dict, after: dict) -> set[str]:
    """The BatchNorms that recorded a batch between two snapshots; each records at most one,
    and then all three buffers change."""
    moved = set()
    for name, (mean, var, count) in before.items():
        new_mean, new_var, new_count = after[name]
        changed = [not torch.equal(mean, new_mean), not torch.equal(var, new_var), not torch.equal(count, new_count)]
        if any(changed):
            assert all(changed) and int(new_count - count) == 1, f"{name}: {int(new_count - count)} batches"
            moved.add(name)
    return moved


@pytest.mark.parametrize("preset", ["paper", "official_code"])
@pytest.mark.parametrize("pooling", ["gmp", "gap", "bilinear", "covariance"])
def test_batchnorm_statistics_move_only_where_a_step_trains(monkeypatch, preset, pooling):
    """Running statistics are part of the evaluated model: with the paper's forwards a step
    moves exactly the BatchNorms it trains (step N+2 not the expert classifiers, step 1 not
    the shallower heads it runs for the CAMs); the published code's ``all_heads`` moves every
    BatchNorm in every step; the CAM computation moves none, for every pooling."""
    torch.manual_seed(0)
    model = FineFACE.from_preset(preset, "resnet18", 2, descriptor_dim=16, pooling=pooling).train()
    config = get_preset(preset)
    images, labels = _batch(4)
    snapshots = {"start": _batchnorm_statistics(model)}
    original_cams = attention.class_activation_maps

    def observed_cams(*args, **kwargs):
        snapshots["before_cams"] = _batchnorm_statistics(model)
        cams = original_cams(*args, **kwargs)
        snapshots["after_cams"] = _batchnorm_statistics(model)
        return cams

    monkeypatch.setattr(attention, "class_activation_maps", observed_cams)
    recorded: dict[str, set[str]] = {}
    previous = [snapshots["start"]]

    def on_step(info):
        now = _batchnorm_statistics(model)
        recorded[info["name"]] = _recorded(previous[0], now)
        previous[0] = now

    finefcace_iteration(model, build_optimizer(model, config), images, labels,
                        concat_loss_weight=config["concat_loss_weight"], region_draw=config["region_draw"],
                        steps_forward=config["steps_forward"], generator=torch.Generator().manual_seed(0),
                        on_step=on_step)

    every = set(snapshots["start"])
    names = step_names(model.num_experts)
    assert list(recorded) == names
    assert _recorded(snapshots["before_cams"], snapshots["after_cams"]) == set()  # the CAMs
    if preset == "official_code":  # all_heads: the whole network, in training mode, every step
        assert config["steps_forward"] == "all_heads"
        expected = {name: every for name in names}
    else:  # a BatchNorm records exactly in the steps whose loss reaches (trains) its weights
        reach = _expected_reach(model)
        expected = {name: {bn for bn in every if f"{bn}.weight" in reach[name]} for name in names}
        assert not any(bn.startswith("classifiers.") for bn in expected["concat_raw"])
        assert not any(bn.startswith(("descriptor_blocks.0.", "classifiers.0.")) for bn in expected["expert_3"])
    for name in names:
        assert recorded[name] == expected[name], (name, sorted(recorded[name] ^ expected[name]))
    # step 1's forward alone accounts for step 1 (nothing records after the CAMs)
    assert _recorded(snapshots["start"], snapshots["before_cams"]) == expected[names[0]]


def test_losses_of_the_last_two_steps_weight_the_concatenation_by_lambda():
    model = _small_model(1)
    images, labels = _batch(1)
    optimizer = build_optimizer(model, get_preset("paper"))
    snapshots = {}

    def on_step(info):
        if info["step"] in (model.num_experts, model.num_experts + 1):  # after steps N and N+1
            snapshots[info["step"]] = copy.deepcopy(model)

    stats: dict = {}
    losses = finefcace_iteration(model, optimizer, images, labels, concat_loss_weight=2.0,
                                 on_step=on_step, stats=stats)
    count = model.num_experts
    with torch.no_grad():
        out = snapshots[count](stats["overall_region"])
        want = sum(F.cross_entropy(p, labels) for p in out.expert_logits) + 2.0 * F.cross_entropy(out.concat_logits, labels)
        torch.testing.assert_close(losses["overall_region"], want)
        out = snapshots[count + 1](images)
        torch.testing.assert_close(losses["concat_raw"], 2.0 * F.cross_entropy(out.concat_logits, labels))
        assert int(stats["correct"]) == int((out.concat_logits.argmax(1) == labels).sum())


def test_region_draws_are_uniform_over_raw_and_the_other_experts_regions():
    candidates = [torch.full((6, 1, 2, 2), float(i)) for i in range(3)]
    names = ["raw", "A_1", "A_3"]
    generator = torch.Generator().manual_seed(0)
    counts = {name: 0 for name in names}
    for _ in range(600):
        chosen, name, _ = mutual_learning._draw_inputs(candidates, names, "batch", generator)
        counts[name] += 1
        assert torch.equal(chosen, candidates[names.index(name)])
    assert all(150 < c < 250 for c in counts.values()), counts  # 200 expected each
    mixed, name, choices = mutual_learning._draw_inputs(candidates, names, "sample", generator)
    assert name == "per_sample" and len(choices) == 6
    for row, choice in enumerate(choices):
        assert torch.equal(mixed[row], candidates[choice][row])


def test_per_sample_draws_feed_each_sample_its_own_choice():
    model = _small_model(2)
    images, labels = _batch(2, batch=6)
    optimizer = build_optimizer(model, get_preset("paper"))
    seen = []
    stats: dict = {}
    finefcace_iteration(model, optimizer, images, labels, region_draw="sample",
                        generator=torch.Generator().manual_seed(5), stats=stats,
                        on_step=lambda info: seen.append((info["name"], info["input_name"], info["input"])))
    pool_for = {"expert_2": [images, stats["regions"][0], stats["regions"][2]],
                "expert_1": [images, stats["regions"][1], stats["regions"][2]]}
    for name, input_name, tensor in seen[1:3]:
        assert input_name == "per_sample"
        for row in range(len(images)):
            assert any(torch.equal(tensor[row], c[row]) for c in pool_for[name]), (name, row)


def test_baseline_iteration_is_one_step_on_every_parameter():
    torch.manual_seed(0)
    model = Baseline("resnet18", 2).train()
    images, labels = _batch(3)
    optimizer = build_optimizer(model, get_preset("paper"))
    before = [p.detach().clone() for p in model.parameters()]
    stats: dict = {}
    losses = baseline_iteration(model, optimizer, images, labels, stats=stats)
    assert list(losses) == ["loss"] and torch.isfinite(losses["loss"])
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    assert 0 <= int(stats["correct"]) <= len(labels)


@pytest.mark.parametrize("backbone", ["convnext_tiny", "swin_t"])
def test_algorithm_1_runs_unchanged_on_modern_backbones(backbone):
    """A few FineFACE batches on ConvNeXt and Swin (paper §6) at 64 px: finite losses, N + 2
    steps, and each step's gradients reach exactly what Algorithm 1 says — the same trainer,
    the same batched attention, whatever the backbone's layout (Swin works channels-last)."""
    torch.manual_seed(0)
    model = FineFACE(backbone, 2, descriptor_dim=16).train()
    optimizer = build_optimizer(model, get_preset("paper"))
    named = dict(model.named_parameters())
    expected = _expected_reach(model)
    generator = torch.Generator().manual_seed(1)
    for batch in range(3):
        images, labels = _batch(seed=batch)
        reached: list[set[str]] = []
        stats: dict = {}
        losses = finefcace_iteration(model, optimizer, images, labels, generator=generator, stats=stats,
                                     after_backward=lambda: reached.append(
                                         {n for n, p in named.items() if p.grad is not None}))
        assert list(losses) == step_names(3) and all(torch.isfinite(v) for v in losses.values())
        assert reached == [expected[name] for name in step_names(3)]
        assert all(region.shape == images.shape and torch.isfinite(region).all()
                   for region in [*stats["regions"], stats["overall_region"]])
