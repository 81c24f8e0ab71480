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


def _table_on_disk(tmp_path, labels, paths=None):
    """A dataset table of tiny images: ``labels`` is {split: [label, ...]}."""
    import pandas as pd
    from PIL import Image

    rows = []
    for split, values in labels.items():
        for i, value in enumerate(values):
            rows.append({"path": f"{split}/{i}.png", "split": split, "Smiling": value})
    table = pd.DataFrame(rows)
    if paths:
        table["path"] = [paths.get(i, p) for i, p in enumerate(table["path"])]
    for path in set(table["path"]):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(tmp_path / path)
    table.to_csv(tmp_path / "t.csv", index=False)
    from finefcace.training.config import TrainConfig

    return TrainConfig(method="baseline", table=str(tmp_path / "t.csv"), target="Smiling", run_dir=str(tmp_path / "run"))


def test_the_training_split_fixes_the_classes(tmp_path):
    import pytest

    from finefcace.training.loaders import TrainingDataError, prepare_data

    config = _table_on_disk(tmp_path, {"train": [0, 1, 0, 1], "val": [0, 1], "test": [0, 2, 1]})
    with pytest.raises(TrainingDataError, match=r"class 2 in split 'test' .*rows \[7\].*training split fixes .*\[0, 1\]"):
        prepare_data(config)
    config = _table_on_disk(tmp_path, {"train": ["a", "b", "a", "b"], "val": ["a", "c"], "test": ["a"]})
    with pytest.raises(TrainingDataError, match=r"class 'c' in split 'val'"):
        prepare_data(config)
    data = prepare_data(_table_on_disk(tmp_path, {"train": [0, 1, 0, 1], "val": [0, 1], "test": [1, 0]}))
    assert data.classes == [0, 1] and data.overlaps == {}


def test_images_in_two_splits_are_reported(tmp_path, caplog):
    from finefcace.training.loaders import prepare_data, split_overlaps

    config = _table_on_disk(tmp_path, {"train": [0, 1, 0, 1], "val": [0, 1], "test": [0, 1]},
                            paths={6: "./train/0.png", 7: "val/1.png"})
    with caplog.at_level("WARNING"):
        data = prepare_data(config)
    assert data.overlaps == {"train/test": 1, "val/test": 1}
    assert "1 image path(s) are in both the train and the test split (first: ['train/0.png'])" in caplog.text
    assert split_overlaps(data.table) == {"train/test": ["train/0.png"], "val/test": ["val/1.png"]}


def test_a_run_meets_no_bad_image_mid_epoch_it_is_refused_before_training(tmp_path):
    """The policy: every image a run reads is decoded before the first batch (the decoded-image cache);
    an unusable one stops the run there, naming every such file and the fix; nothing is written."""
    import pandas as pd
    import pytest

    from finefcace.training.config import TrainConfig
    from finefcace.training.loaders import TrainingDataError, prepare_data
    from finefcace.training.trainer import train
    from tests.sources.bad_images import BAD_FILES, UNUSABLE, write_bad_files

    good, _ = write_bad_files(tmp_path / "photos")
    paths = good * 3 + sorted(BAD_FILES)
    table = pd.DataFrame({"path": paths, "split": [("train", "val")[i % 2] for i in range(len(paths))],
                          "gender": [("Male", "Female")[i // 2 % 2] for i in range(len(paths))]})
    table.to_csv(tmp_path / "table.csv", index=False)
    config = {"table": str(tmp_path / "table.csv"), "root": str(tmp_path / "photos"), "backbone": "resnet18",
              "input_size": 64, "batch_size": 2, "device": "cpu", "progress": False, "run_dir": str(tmp_path / "run"),
              "image_cache": str(tmp_path / "cache")}
    with pytest.raises(TrainingDataError) as info:
        train(config)
    for name in UNUSABLE:
        assert name in str(info.value)
    assert "--drop-bad" in str(info.value)
    assert not (tmp_path / "run").exists()
    usable = table[~table["path"].isin(UNUSABLE)]
    usable.to_csv(tmp_path / "usable.csv", index=False)
    data = prepare_data(TrainConfig.from_dict({**config, "table": str(tmp_path / "usable.csv")}))
    assert data.train.images is not None and data.train.images is data.val.images  # decoded once, shared
    image, _, _ = data.train[0]
    assert tuple(image.shape) == (3, 64, 64)


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
