"""Tests of finefcace/training/checkpoint.py and of resuming runs exactly (finefcace/training/trainer.py)."""

from __future__ import annotations

import os
import random
import signal

import numpy as np
import pandas as pd
import pytest
import torch

from finefcace import mutual_learning
from finefcace.training.checkpoint import (
    CheckpointError,
    _umask,
    atomic_save,
    load_checkpoint,
    rng_state,
    set_rng_state,
)
from finefcace.training.trainer import TrainingInterrupted, train
from tests.training_fixtures import one_thread  # noqa: F401  (autouse: one intra-op thread)


def test_atomic_save_never_leaves_a_truncated_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_save({"step": 1, "weights": torch.ones(3)}, path)

    def failing_save(obj, stream, *args, **kwargs):
        stream.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"step": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1  # the previous checkpoint is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temporary left
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_load_checkpoint_names_the_file_when_missing_or_corrupt(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt.*could not be read"):
        load_checkpoint(bad)


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path):
    generator = torch.Generator().manual_seed(7)
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    atomic_save({"rng": rng_state(generator)}, tmp_path / "rng.pt")
    expected = (random.random(), np.random.rand(), torch.rand(2), torch.rand(2, generator=generator))
    random.seed(9), np.random.seed(9), torch.manual_seed(9), generator.manual_seed(9)
    set_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"], generator)  # weights_only=True load
    got = (random.random(), np.random.rand(), torch.rand(2), torch.rand(2, generator=generator))
    assert got[0] == expected[0] and got[1] == expected[1]
    assert torch.equal(got[2], expected[2]) and torch.equal(got[3], expected[3])


# ------------------------------------------------------------------ resume


@pytest.fixture(scope="module")
def resume_data(tmp_path_factory):
    from finefcace.sources.synthetic import generate_synthetic

    root = tmp_path_factory.mktemp("resume_data")
    generate_synthetic(root, n_train=16, n_val=8, n_test=8, size=64, seed=0)
    return root


@pytest.fixture
def deterministic_restored():
    previous = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(previous)


def _config(root, run_dir, **changes):
    values = {
        "table": str(root / "labels.csv"), "backbone": "resnet18", "input_size": 64, "batch_size": 8,
        "epochs": 2, "patience": None, "overrides": {"descriptor_dim": 16}, "device": "cpu",
        "progress": False, "deterministic": True, "seed": 3, "run_dir": str(run_dir),
    }
    values.update(changes)
    return values


@pytest.fixture(scope="module")
def uninterrupted(resume_data, tmp_path_factory):
    previous = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    result = train(_config(resume_data, run_dir))
    torch.use_deterministic_algorithms(previous)
    torch.set_num_threads(threads)
    return result, torch.load(run_dir / "last.pt", weights_only=True)


def _assert_same_run(reference, reference_last, result, run_dir):
    last = torch.load(run_dir / "last.pt", weights_only=True)
    for key, value in reference_last["model"].items():
        assert torch.equal(value, last["model"][key]), key  # final weights, bit for bit
    for key, value in reference.model.state_dict().items():
        assert torch.equal(value, result.model.state_dict()[key]), key  # best weights
    assert last["position"] == reference_last["position"]
    ignore = ["epoch_seconds"]
    pd.testing.assert_frame_equal(reference.history.drop(columns=ignore), result.history.drop(columns=ignore))
    pd.testing.assert_frame_equal(reference.predictions.reset_index(drop=True),
                                  result.predictions.reset_index(drop=True))
    momentum = [s["momentum_buffer"] for s in last["optimizer"]["state"].values()]
    expected = [s["momentum_buffer"] for s in reference_last["optimizer"]["state"].values()]
    assert all(torch.equal(a, b) for a, b in zip(momentum, expected))


def _count_loss_calls(monkeypatch, action_at: int, action):
    """Patch the trainer's loss so that ``action()`` runs at its ``action_at``-th call.
    One FineFACE batch makes 8 loss calls (steps 1..3: one each, step N+1: N+1, step N+2: one)."""
    calls = {"n": 0}
    original = mutual_learning._classification_loss

    def patched(logits, labels):
        calls["n"] += 1
        if calls["n"] == action_at:
            action()
        return original(logits, labels)

    monkeypatch.setattr(mutual_learning, "_classification_loss", patched)


def test_a_run_stopped_signalled_and_crashed_resumes_to_the_same_weights_and_history(
        resume_data, uninterrupted, tmp_path, monkeypatch, deterministic_restored):
    """2 epochs of 2 batches, interrupted three ways, resumed each time: identical to one go."""
    reference, reference_last = uninterrupted
    run_dir = tmp_path / "interrupted"

    def position():
        return torch.load(run_dir / "last.pt", weights_only=True)["position"]

    # 1. a bounded run (max-steps stop) after the first batch
    partial = train(_config(resume_data, run_dir, stop_after_batches=1))
    assert not partial.finished and position() == {"epoch": 0, "batch": 1, "step": 1, "world_size": 1}

    # 2. SIGTERM during the last batch of epoch 1: the batch ends, last.pt is saved, the run stops
    _count_loss_calls(monkeypatch, 5, lambda: os.kill(os.getpid(), signal.SIGTERM))
    previous_handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted, match="SIGTERM.*resume"):
        train(_config(resume_data, run_dir))
    assert signal.getsignal(signal.SIGTERM) == previous_handler  # handlers restored
    assert position() == {"epoch": 0, "batch": 2, "step": 2, "world_size": 1}  # before epoch 1's validation

    # 3. a crash in epoch 2's second batch, with a checkpoint after every batch
    def crash():
        raise RuntimeError("injected failure")

    _count_loss_calls(monkeypatch, 8 + 2, crash)
    with pytest.raises(RuntimeError, match="injected failure"):
        train(_config(resume_data, run_dir, checkpoint_every=1))
    assert position() == {"epoch": 1, "batch": 1, "step": 3, "world_size": 1}
    monkeypatch.undo()

    # 4. resume to the end
    result = train(_config(resume_data, run_dir, checkpoint_every=1))
    assert result.finished
    _assert_same_run(reference, reference_last, result, run_dir)


def test_group_dro_resumes_bit_identically_with_its_group_weights(resume_data, tmp_path, deterministic_restored):
    """A mitigation method with training state (group DRO's q) and group-balanced sampling,
    stopped twice mid-epoch and resumed: the same weights, q, history and predictions as one go."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        dro = {"method": "group_dro", "method_options": {"step_size": 0.5}}  # a large η_q: q moves visibly
        reference = train(_config(resume_data, tmp_path / "one_go", **dro))
        reference_last = torch.load(tmp_path / "one_go" / "last.pt", weights_only=True)
        run_dir = tmp_path / "stopped"
        for stop in (1, 3):
            partial = train(_config(resume_data, run_dir, stop_after_batches=stop, **dro))
            assert not partial.finished
        assert torch.load(run_dir / "last.pt", weights_only=True)["position"]["step"] == 3
        result = train(_config(resume_data, run_dir, **dro))
    finally:
        torch.set_num_threads(threads)
    assert result.finished
    _assert_same_run(reference, reference_last, result, run_dir)
    q = torch.load(run_dir / "last.pt", weights_only=True)["method_state"]["q"]
    assert torch.equal(q, reference_last["method_state"]["q"])
    assert not torch.allclose(q, torch.full_like(q, 1 / len(q)))  # q did move away from uniform


def test_a_full_disk_while_saving_names_the_checkpoint_and_keeps_the_previous_one(tmp_path, monkeypatch):
    """torch.save on a full disk fails inside its zip writer (a RuntimeError raised while an
    OSError ENOSPC is handled): the message names the file and the fix, the last complete
    checkpoint stays as it was and no temporary file is left."""
    import errno

    import torch

    from finefcace.training.checkpoint import CheckpointWriteError, atomic_save

    path = atomic_save({"epoch": 2}, tmp_path / "last.pt")

    def full_disk(obj, stream):
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos") from None

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointWriteError, match=r"last\.pt: No space left on device .*run the same command again"):
        atomic_save({"epoch": 3}, path)
    monkeypatch.undo()
    assert torch.load(path)["epoch"] == 2 and [p.name for p in tmp_path.iterdir()] == ["last.pt"]
