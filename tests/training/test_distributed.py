"""Tests of finefcace/training/distributed.py: two CPU processes (gloo) train FineFACE as replicas."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from finefcace.training import distributed

WORLD_SIZE = 2


def _worker(rank: int, rendezvous: str, root: str, run_dir: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=WORLD_SIZE)
    try:
        from finefcace.training.config import load_config
        from finefcace.training.recipe import build_model, seed_everything
        from finefcace.training.trainer import train

        context = distributed.init_distributed("cpu")
        assert context.enabled and context.rank == rank and context.world_size == WORLD_SIZE

        # gradient averaging: only existing gradients, the mean over ranks
        a, b = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2))
        a.grad = torch.full((3,), float(rank + 1))  # b.grad stays None
        assert distributed.average_gradients([a, b], context) == 1
        assert torch.equal(a.grad, torch.full((3,), 1.5)) and b.grad is None

        config = {
            "table": f"{root}/labels.csv", "backbone": "resnet18", "input_size": 64, "batch_size": 4,
            "epochs": 2, "patience": None, "overrides": {"descriptor_dim": 16}, "device": "cpu",
            "progress": False, "seed": 0, "run_dir": run_dir,
        }
        seed_everything(0)
        initial = {n: p.detach().clone() for n, p in build_model(load_config(config), 2).named_parameters()}
        stopped = train(dict(config, stop_after_batches=3))  # epoch 2, after its first batch
        state = {"parameters": {n: p.detach().clone() for n, p in stopped.model.named_parameters()},
                 "initial": initial}
        finished = train(config)  # resume to the end (validation gathered across ranks)
        state["history"] = finished.history.to_dict("list")
        state["summary"] = finished.summary
        torch.save(state, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_keep_identical_replicas(tmp_path):
    from finefcace.sources.synthetic import generate_synthetic

    root = tmp_path / "data"
    generate_synthetic(root, n_train=16, n_val=6, n_test=5, size=64, seed=0)
    run_dir = tmp_path / "run"
    mp.spawn(_worker, args=(str(tmp_path / "rendezvous"), str(root), str(run_dir), str(tmp_path)),
             nprocs=WORLD_SIZE, join=True)
    states = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD_SIZE)]
    # the replicas hold identical weights after training (averaged gradients, identical steps)
    for name, value in states[0]["parameters"].items():
        assert torch.equal(value, states[1]["parameters"][name]), name
    # and they did train
    moved = [n for n, v in states[0]["parameters"].items() if not torch.equal(v, states[0]["initial"][n])]
    assert len(moved) == len(states[0]["parameters"])
    # every rank saw the same validation result (gathered from both shards)
    assert states[0]["history"] == states[1]["history"]
    assert states[0]["summary"] == states[1]["summary"]
    assert states[0]["summary"]["world_size"] == WORLD_SIZE
    history = pd.read_csv(run_dir / "history.csv")
    assert list(history["epoch"]) == [1, 2] and (history["batches"] == 2).all()  # 16 / 2 ranks / batch 4
    predictions = pd.read_csv(run_dir / "predictions_test.csv")
    assert len(predictions) == 5 and predictions["path"].is_unique  # all test images, once
    assert len(pd.read_csv(run_dir / "predictions_val.csv")) == 6
    assert json.loads((run_dir / "config.json").read_text())["world_size"] == WORLD_SIZE
