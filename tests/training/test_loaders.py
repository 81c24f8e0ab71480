"""Tests of finefcace/training/loaders.py: the training order, sharded over processes."""

from __future__ import annotations

import numpy as np
import torch

from finefcace.training.loaders import EpochShardSampler

WORLD_SIZE = 2


def test_shards_are_disjoint_equal_and_cover_whole_batches():
    size, batch_size = 23, 4
    shards = []
    for rank in range(WORLD_SIZE):
        sampler = EpochShardSampler(size, batch_size=batch_size, seed=1, rank=rank, world_size=WORLD_SIZE)
        sampler.set_epoch(3)
        shards.append([index for epoch, index in sampler])
        assert len(sampler) == len(shards[-1]) == 11  # 23 // 2 = 11 per rank (11 % 4 != 1: kept)
        assert sampler.batches_per_epoch() == 3
    assert not set(shards[0]) & set(shards[1])
    # another epoch, another order; the same epoch, the same order
    again = EpochShardSampler(size, batch_size=batch_size, seed=1, rank=0, world_size=WORLD_SIZE)
    again.set_epoch(3)
    assert [i for _, i in again] == shards[0]
    again.set_epoch(4)
    assert [i for _, i in again] != shards[0]
    # resume inside an epoch: skip whole batches
    again.set_epoch(3, start_batch=2)
    assert [i for _, i in again] == shards[0][8:]
    # a last batch of one is dropped (BatchNorm cannot train on it)
    single = EpochShardSampler(9, batch_size=4, seed=0)
    assert len(single) == 8 and single.batches_per_epoch() == 2


def test_weighted_sampling_draws_every_group_equally_often_and_stays_a_function_of_seed_and_epoch():
    """Group-balanced sampling (mitigation methods): image i drawn with probability ∝ weights[i]."""
    groups = np.array([0] * 80 + [1] * 16 + [2] * 4)          # 100 images, 80/16/4 per group
    weights = torch.tensor([1.0 / 80] * 80 + [1.0 / 16] * 16 + [1.0 / 4] * 4 + [0.0] * 0)
    sampler = EpochShardSampler(100, batch_size=10, seed=0, weights=weights)
    drawn = []
    for epoch in range(30):
        sampler.set_epoch(epoch)
        drawn += [i for _, i in sampler]
    share = np.bincount(groups[drawn], minlength=3) / len(drawn)
    np.testing.assert_allclose(share, [1 / 3] * 3, atol=0.03)   # 3000 draws: within 3 points of 1/3
    sampler.set_epoch(5)
    first = [i for _, i in sampler]
    sampler.set_epoch(5, start_batch=3)
    assert [i for _, i in sampler] == first[30:]                 # resume inside an epoch
    never = EpochShardSampler(4, batch_size=2, seed=0, weights=torch.tensor([1.0, 0.0, 1.0, 0.0]))
    assert {i for _, i in never} <= {0, 2}                      # weight 0: never drawn


def test_the_training_loader_carries_the_protected_label_only_when_given(tmp_path):
    from finefcace.sources.synthetic import generate_synthetic
    from finefcace.training.config import load_config
    from finefcace.training.loaders import prepare_data, train_loader

    generate_synthetic(tmp_path, n_train=8, n_val=4, n_test=0, size=64, seed=0)
    base = {"table": str(tmp_path / "labels.csv"), "backbone": "resnet18", "input_size": 64, "device": "cpu"}
    for method in ("baseline", "finefcace"):
        assert prepare_data(load_config(base, method=method)).domains is None
    config = load_config(base, method="group_balanced")
    data = prepare_data(config)
    assert data.domains.columns == ["tone"] and data.domains.names == sorted(set(data.table["tone"][data.table["split"] == "train"]))
    table = data.table.loc[data.train.row_indices]
    assert [data.domains.names[c] for c in data.domains.codes] == table["tone"].tolist()
    assert float(data.domains.counts.sum()) == 8
    sampler = EpochShardSampler(8, batch_size=4, seed=0)
    plain = next(iter(train_loader(data.train, sampler, config, 4, torch.device("cpu"))))
    with_domains = next(iter(train_loader(data.train, sampler, config, 4, torch.device("cpu"), domains=data.domains.codes)))
    assert len(plain) == 3 and len(with_domains) == 4
    assert with_domains[3].tolist() == [int(data.domains.codes[i]) for i in
                                        [list(data.train.row_indices).index(r) for r in with_domains[2].tolist()]]
