"""Tests of finefcace/train.py: Algorithm 1 step by step, the trainers end to end, bad input."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from finefcace import attention, mutual_learning, train as train_module
from finefcace.config import ConfigError
from finefcace.model import Baseline, FineFACE, FineFACEOutput
from finefcace.presets import get_preset
from finefcace.mutual_learning import baseline_iteration, finefcace_iteration, step_names
from finefcace.recipe import build_optimizer
from finefcace.train import NonFiniteLossError, train
from finefcace.training_data import TrainingDataError

SIZE = 64


@pytest.fixture(autouse=True)
def one_thread():
    """Two intra-op threads on 2 shared cores slow these tiny models ~10x: use one."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


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
    for name, key in (("class_activation_maps", "cams"), ("attention_regions", "regions"),
                      ("overall_region", "overall")):
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


def test_optimizer_has_two_learning_rates_from_the_preset():
    model = _small_model()
    for preset in ("paper", "official_code"):
        values = get_preset(preset)
        optimizer = build_optimizer(model, values)
        head, backbone = optimizer.param_groups
        assert head["lr"] == values["head_lr"] and backbone["lr"] == values["backbone_lr"]
        assert head["momentum"] == values["momentum"] and head["weight_decay"] == values["weight_decay"]
        assert {id(p) for p in backbone["params"]} == {id(p) for p in model.stages.parameters()}
        total = len(head["params"]) + len(backbone["params"])
        assert total == len(list(model.parameters()))


# ------------------------------------------------------------------ whole runs


@pytest.fixture(scope="module")
def tiny_synthetic(tmp_path_factory):
    """24 train / 8 val / 8 test synthetic faces at 64 px (the data helper's generator)."""
    from finefcace.synthetic import generate_synthetic

    root = tmp_path_factory.mktemp("synthetic")
    generate_synthetic(root, n_train=24, n_val=8, n_test=8, size=SIZE, seed=0)
    return root


def tiny_config(root, run_dir, **changes):
    values = {
        "table": str(root / "labels.csv"), "target": "gender", "backbone": "resnet18", "input_size": SIZE,
        "batch_size": 8, "epochs": 2, "patience": 5, "overrides": {"descriptor_dim": 16},
        "device": "cpu", "progress": False, "run_dir": str(run_dir), "seed": 0,
    }
    values.update(changes)
    return values


def test_finefcace_run_writes_a_complete_run_directory(tiny_synthetic, tmp_path):
    run_dir = tmp_path / "run"
    result = train(tiny_config(tiny_synthetic, run_dir, max_batches=2))
    for name in ("config.json", "last.pt", "best.pt", "history.csv", "history.json", "summary.json",
                 "predictions_test.csv", "predictions_val.csv"):
        assert (run_dir / name).is_file(), name
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["resolved"]["concat_loss_weight"] == get_preset("paper")["concat_loss_weight"]
    assert saved["classes"] == ["Female", "Male"]
    history = pd.read_csv(run_dir / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    for column in ("loss_expert_3", "loss_expert_2", "loss_expert_1", "loss_overall_region", "loss_concat_raw",
                   "train_accuracy", "val_accuracy", "val_loss", "lr_head", "lr_backbone", "epoch_seconds"):
        assert column in history.columns, column
    assert (history["batches"] == 2).all()
    # cosine annealing over the epochs: the second epoch runs at half the first's rate
    assert history["lr_head"].tolist() == pytest.approx([0.002, 0.001])
    predictions = pd.read_csv(run_dir / "predictions_test.csv")
    assert len(predictions) == 8
    assert {"path", "split", "target", "y_true", "y_pred", "prob_0", "prob_1", "label_true", "label_pred",
            "tone", "gender"} <= set(predictions.columns)
    assert (predictions["split"] == "test").all() and (predictions["target"] == "gender").all()
    np.testing.assert_allclose(predictions[["prob_0", "prob_1"]].sum(axis=1), 1.0, atol=1e-5)
    assert (predictions["y_pred"] == predictions[["prob_0", "prob_1"]].to_numpy().argmax(1)).all()
    table = pd.read_csv(tiny_synthetic / "labels.csv")
    merged = predictions.merge(table, on="path", suffixes=("", "_table"))
    assert (merged["tone"] == merged["tone_table"]).all()
    assert (merged["label_true"] == merged["gender_table"]).all()
    # the best checkpoint is chosen on validation, and the returned model holds it
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["best_epoch"] == int(history.loc[history["val_accuracy"].idxmax(), "epoch"])
    best = torch.load(run_dir / "best.pt", weights_only=True)
    for key, value in result.model.state_dict().items():
        assert torch.equal(value, best["model"][key]), key


def test_baseline_run_and_train_or_load(tiny_synthetic, tmp_path):
    run_dir = tmp_path / "baseline"
    config = tiny_config(tiny_synthetic, run_dir, method="baseline", epochs=1, max_batches=2)
    result = train_module.train_or_load(config)
    assert result.finished and "loss" in result.history.columns
    stamp = (run_dir / "best.pt").stat().st_mtime_ns
    again = train_module.train_or_load(dict(config, progress=True))  # progress does not change the run
    assert (run_dir / "best.pt").stat().st_mtime_ns == stamp  # loaded, not retrained
    for key, value in result.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[key])
    pd.testing.assert_frame_equal(result.predictions.reset_index(drop=True), again.predictions, check_dtype=False)
    with pytest.raises(ConfigError, match="different configuration.*seed"):
        train(dict(config, seed=1))  # the same run_dir with another config is refused


def test_bf16_autocast_and_channels_last_on_cpu(tiny_synthetic, tmp_path):
    result = train(tiny_config(tiny_synthetic, tmp_path / "amp", amp=True, channels_last=True, epochs=1,
                               max_batches=1, max_eval_batches=1, progress=True))
    assert result.finished
    assert all(math.isfinite(v) for v in result.history.iloc[0][["loss_expert_3", "loss_concat_raw", "val_loss"]])
    assert all(p.dtype == torch.float32 for p in result.model.parameters())  # autocast, not a bf16 model


def test_early_stopping_uses_validation_patience(tiny_synthetic, tmp_path, monkeypatch):
    # a validation accuracy that never improves after epoch 1 -> stop after 1 + patience epochs
    scores = iter([0.5, 0.4, 0.4, 0.4, 0.4])
    original = train_module.evaluate_split

    def fake_evaluate(*args, **kwargs):
        result = original(*args, **kwargs)
        if kwargs.get("max_batches") == 1:  # during training (finish() evaluates with the same bound)
            result["accuracy"] = next(scores, result["accuracy"])
        return result

    monkeypatch.setattr(train_module, "evaluate_split", fake_evaluate)
    result = train(tiny_config(tiny_synthetic, tmp_path / "early", method="baseline", epochs=5, patience=2,
                               max_batches=1, max_eval_batches=1))
    assert result.summary["stopped_early"] and result.summary["epochs_run"] == 3
    assert result.summary["best_epoch"] == 1
    assert result.history["best"].tolist() == [True, False, False]


# ------------------------------------------------------------------ bad input


def test_nonfinite_loss_stops_naming_step_and_batch_and_keeps_last_good_checkpoint(tiny_synthetic, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = mutual_learning._classification_loss

    def poisoned(logits, labels):
        calls["n"] += 1
        loss = original(logits, labels)
        # a batch makes 8 loss calls (steps 1..3: one each, step N+1: N + 1, step N+2: one);
        # batch 1 (0-based) of epoch 1, step 3 of 5 (expert_1) is call 8 + 3 = 11
        return loss * float("nan") if calls["n"] == 11 else loss

    monkeypatch.setattr(mutual_learning, "_classification_loss", poisoned)
    run_dir = tmp_path / "nan"
    with pytest.raises(NonFiniteLossError) as caught:
        train(tiny_config(tiny_synthetic, run_dir, checkpoint_every=1, max_batches=3))
    message = str(caught.value)
    assert "step 3 of 5 ('expert_1')" in message and "epoch 1, batch 1" in message
    assert "last.pt (epoch 1, batch 1)" in message
    state = torch.load(run_dir / "last.pt", weights_only=True)
    assert state["position"] == {"epoch": 0, "batch": 1, "step": 1, "world_size": 1}
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def _table(tmp_path, rows):
    from PIL import Image

    (tmp_path / "img").mkdir(exist_ok=True)
    for path, *_ in rows:
        Image.new("RGB", (64, 64), (120, 90, 60)).save(tmp_path / path)
    frame = pd.DataFrame(rows, columns=["path", "split", "gender"])
    frame.to_csv(tmp_path / "table.csv", index=False)
    return tmp_path / "table.csv"


def test_bad_data_fails_before_training_with_the_fix(tmp_path):
    base = {"backbone": "resnet18", "input_size": 64, "batch_size": 2, "device": "cpu", "progress": False,
            "run_dir": str(tmp_path / "run")}
    rows = [(f"img/{i}.png", "val" if i >= 4 else "train", "Male" if i % 2 else "Female") for i in range(6)]
    no_train = [(p, "val", g) for p, _, g in rows]
    with pytest.raises(TrainingDataError, match="training split is empty"):
        train(dict(base, table=str(_table(tmp_path, no_train))))
    single = [(p, s, "Male") for p, s, _ in rows]
    with pytest.raises(TrainingDataError, match="single class \\(Male\\)"):
        train(dict(base, table=str(_table(tmp_path, single))))
    no_val = [(p, "train", g) for p, _, g in rows]
    with pytest.raises(TrainingDataError, match="validation split is empty"):
        train(dict(base, table=str(_table(tmp_path, no_val))))
    with pytest.raises(ConfigError, match="'target'"):
        train(dict(base, table=str(_table(tmp_path, rows)), target="Smiling"))
    with pytest.raises(ConfigError, match="does not exist"):
        train(dict(base, table=str(tmp_path / "nowhere.csv")))
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        train(dict(base, table=str(tmp_path / "table.csv"), epoch=3))
    with pytest.raises(ConfigError, match="'batch_size' must be int"):
        train(dict(base, table=str(tmp_path / "table.csv"), batch_size="16"))
    assert not (tmp_path / "run").exists()  # nothing was started


# ------------------------------------------------------------------ convergence (slow)


#: Measured with these settings (SYNTHETIC data, 1 thread, seeds 0/1/2 of the run; same data):
#: summed step loss, mean of the last two epochs / mean of the first two: FineFACE 0.80/0.76/0.78,
#: baseline 0.68/0.74/0.76; best validation accuracy: FineFACE 0.77/0.75/0.73, baseline 0.88/0.70/0.70.
CONVERGENCE = {"n_train": 192, "n_val": 64, "epochs": 5, "batch_size": 16,
               "overrides": {"head_lr": 0.005, "backbone_lr": 0.005},  # random init: one rate for all layers
               "max_loss_ratio": 0.85, "min_val_accuracy": 0.65}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["finefcace", "baseline"])
def test_synthetic_training_learns(tmp_path_factory, method):
    """On synthetic faces (ResNet-18 from scratch, 64 px, CPU) the loss falls and validation
    accuracy ends well above chance (0.5) for both trainers. SYNTHETIC data."""
    from finefcace.synthetic import generate_synthetic

    root = tmp_path_factory.mktemp(f"learn_{method}")
    generate_synthetic(root, n_train=CONVERGENCE["n_train"], n_val=CONVERGENCE["n_val"], n_test=8,
                       size=SIZE, seed=0)
    config = tiny_config(root, root / "run", method=method, epochs=CONVERGENCE["epochs"],
                         batch_size=CONVERGENCE["batch_size"], patience=None,
                         overrides={"descriptor_dim": 64, **CONVERGENCE["overrides"]})
    result = train(config)
    history = result.history
    # FineFACE's training loss: the sum of its N+2 step losses per batch
    step_columns = [c for c in history.columns if c.startswith("loss")]
    history["training_loss"] = history[step_columns].sum(axis=1)
    print(history[["epoch", *step_columns, "training_loss", "train_accuracy", "val_accuracy"]].to_string())
    early, late = history["training_loss"].iloc[:2].mean(), history["training_loss"].iloc[-2:].mean()
    assert late < CONVERGENCE["max_loss_ratio"] * early
    assert history["val_accuracy"].max() >= CONVERGENCE["min_val_accuracy"]
