"""Tests of finefcace/training/trainer.py: the trainers end to end, early stopping, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from finefcace import mutual_learning
from finefcace.presets import get_preset
from finefcace.training import trainer
from finefcace.training.config import ConfigError
from finefcace.training.loaders import TrainingDataError
from finefcace.training.trainer import NonFiniteLossError, train
from tests.training_fixtures import one_thread  # noqa: F401  (autouse: one intra-op thread)

SIZE = 64


# ------------------------------------------------------------------ whole runs


@pytest.fixture(scope="module")
def tiny_synthetic(tmp_path_factory):
    """24 train / 8 val / 8 test synthetic faces at 64 px (the data helper's generator)."""
    from finefcace.sources.synthetic import generate_synthetic

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
    result = trainer.train_or_load(config)
    assert result.finished and "loss" in result.history.columns
    stamp = (run_dir / "best.pt").stat().st_mtime_ns
    again = trainer.train_or_load(dict(config, progress=True))  # progress does not change the run
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
    # a validation accuracy that improves once, in epoch 2, then never -> stop after 2 + patience
    # epochs (a tiny model's real accuracy often stays flat from epoch 1: the fake must show)
    scores = iter([0.4, 0.5, 0.5, 0.5, 0.5])
    original = trainer.evaluate_split

    def fake_evaluate(*args, **kwargs):
        result = original(*args, **kwargs)
        if kwargs.get("max_batches") == 1:  # during training (finish() evaluates with the same bound)
            result["accuracy"] = next(scores, result["accuracy"])
        return result

    monkeypatch.setattr(trainer, "evaluate_split", fake_evaluate)
    result = train(tiny_config(tiny_synthetic, tmp_path / "early", method="baseline", epochs=5, patience=2,
                               max_batches=1, max_eval_batches=1))
    assert result.summary["stopped_early"] and result.summary["epochs_run"] == 4
    assert result.summary["best_epoch"] == 2
    assert result.history["best"].tolist() == [True, True, False, False]


@pytest.mark.parametrize(("method", "loss_columns"), [("group_balanced", ["loss"]), ("domain_independent", ["loss"]),
                                                   ("adversarial", ["loss", "loss_adversary"]),
                                                   ("group_dro", ["loss", "loss_worst_group"])])
def test_mitigation_methods_write_the_same_run_directory_and_say_they_use_protected_labels(
        tiny_synthetic, tmp_path, method, loss_columns, caplog):
    run_dir = tmp_path / method
    config = tiny_config(tiny_synthetic, run_dir, method=method, epochs=1, max_batches=2)
    with caplog.at_level("INFO", logger="finefcace"):
        result = trainer.train_or_load(config)
    assert result.finished
    for name in ("config.json", "last.pt", "best.pt", "history.csv", "summary.json", "predictions_test.csv"):
        assert (run_dir / name).is_file(), name
    assert [c for c in result.history.columns if c.startswith("loss")] == loss_columns
    assert f"method {method} trains WITH PROTECTED LABELS (protected column(s) tone: 4 domains" in caplog.text
    summary = json.loads((run_dir / "summary.json").read_text())
    saved = json.loads((run_dir / "config.json").read_text())
    for record in (summary, saved):
        assert record["uses_protected_labels"] is True and record["protected_training_columns"] == ["tone"]
        assert record["domains"] == ["tone_1", "tone_2", "tone_3", "tone_4"]
    assert saved["resolved"]["method_options"]  # the options in force, defaults included
    # read back (train-or-load) with the same model and predictions
    again = trainer.train_or_load(config)
    for key, value in result.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[key]), key
    pd.testing.assert_frame_equal(result.predictions.reset_index(drop=True), again.predictions, check_dtype=False)


def test_finefcace_and_the_baseline_record_that_they_use_no_protected_labels(tiny_synthetic, tmp_path):
    result = train(tiny_config(tiny_synthetic, tmp_path / "b", method="baseline", epochs=1, max_batches=1,
                               max_eval_batches=1))
    assert result.summary["uses_protected_labels"] is False and result.summary["protected_training_columns"] == []


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


@pytest.mark.parametrize("method", ["group_balanced", "domain_independent", "adversarial", "group_dro"])
def test_a_method_that_needs_protected_labels_stops_before_training_on_a_table_without_them(tmp_path, method):
    base = {"backbone": "resnet18", "input_size": 64, "batch_size": 2, "device": "cpu", "progress": False,
            "run_dir": str(tmp_path / "run"), "method": method}
    rows = [(f"img/{i}.png", "val" if i >= 4 else "train", "Male" if i % 2 else "Female") for i in range(6)]
    table = _table(tmp_path, rows)  # path, split, gender: the target is the only protected column
    with pytest.raises(TrainingDataError) as caught:
        train(dict(base, table=str(table)))
    message = str(caught.value)
    assert f"method {method!r} trains with a protected label" in message
    assert "no protected column besides the target 'gender'" in message and "'race' or 'tone'" in message
    assert "Add it to the table" in message and "method: finefcace or method: baseline" in message
    # a protected column with a gap in the training split
    frame = pd.read_csv(table)
    frame["race"] = ["White", None, "Black", "Black", "White", "Black"]
    frame.to_csv(table, index=False)
    with pytest.raises(TrainingDataError, match=r"1 training row\(s\) .* have none \(first rows \[1\]\)"):
        train(dict(base, table=str(table)))
    frame["race"] = "White"  # one domain: nothing to balance
    frame.to_csv(table, index=False)
    with pytest.raises(TrainingDataError, match="at least two protected domains"):
        train(dict(base, table=str(table)))
    assert not (tmp_path / "run").exists()  # stopped before anything was written


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
    from finefcace.sources.synthetic import generate_synthetic

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
