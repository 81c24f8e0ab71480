"""Tests of finefcace/training/loaders.py: the training order, sharded over processes."""

from __future__ import annotations

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
