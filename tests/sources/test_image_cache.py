"""Tests of finefcace/sources/image_cache.py: every image decoded once, before training; the cached images
give exactly the tensors the files give; bad images refused before the first batch (the policy)."""

from __future__ import annotations

import os

import pandas as pd
import pytest
import torch

from finefcace.sources.dataset import FaceTableDataset
from finefcace.sources.image_cache import UnusableImagesError, decode_images
from finefcace.sources.transforms import resize_size, test_transform, train_transform
from tests.sources.bad_images import BAD_FILES, UNUSABLE, write_bad_files


def test_cached_images_give_the_same_tensors_as_the_files(image_root, tmp_path):
    root, table = image_root
    images = decode_images(table, root, 16, tmp_path / "cache", threads=2)
    assert images is not None and images.array.shape == (6, resize_size(16), resize_size(16), 3)
    for transform in (test_transform(16), train_transform(16)):
        from_files = FaceTableDataset(table, root, "gender", transform=transform)
        cached = FaceTableDataset(table, root, "gender", transform=transform, images=images)
        for i in range(len(table)):
            torch.manual_seed(i)  # the same random crop and flip for both
            expected = from_files[i][0]
            torch.manual_seed(i)
            torch.testing.assert_close(cached[i][0], expected, rtol=0, atol=0)


def test_the_cache_is_read_back_and_follows_the_files(image_root, tmp_path):
    root, table = image_root
    first = decode_images(table, root, 16, tmp_path / "cache")
    again = decode_images(table, root, 16, tmp_path / "cache")
    assert again.file == first.file and len(list((tmp_path / "cache").glob("*.npy"))) == 1
    path = root / table["path"].iloc[0]
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a changed file: another cache
    assert decode_images(table, root, 16, tmp_path / "cache").file != first.file
    assert decode_images(table, root, 24, tmp_path / "cache").side == resize_size(24)


def test_loader_workers_reopen_the_cache_file(image_root, tmp_path):
    import pickle

    import numpy as np

    root, table = image_root
    images = decode_images(table, root, 16, tmp_path / "cache")
    copy = pickle.loads(pickle.dumps(images))
    assert len(pickle.dumps(images)) < 10_000  # the pixels are not pickled: a worker maps the file
    np.testing.assert_array_equal(np.asarray(copy.image(table["path"].iloc[2])), np.asarray(images.image(table["path"].iloc[2])))


def test_too_many_pixels_to_store_are_only_checked_and_the_check_remembered(image_root, tmp_path):
    root, table = image_root
    assert decode_images(table, root, 16, tmp_path / "cache", max_bytes=10) is None
    assert len(list((tmp_path / "cache").glob("*.checked.json"))) == 1
    assert not list((tmp_path / "cache").glob("*.npy"))


def test_unusable_images_are_refused_before_training_all_named(tmp_path):
    good, _ = write_bad_files(tmp_path / "photos")
    table = pd.DataFrame({"path": good + sorted(BAD_FILES), "split": "train", "gender": "Male"})
    with pytest.raises(UnusableImagesError) as info:
        decode_images(table, tmp_path / "photos", 32, tmp_path / "cache")
    message = str(info.value)
    assert f"{len(UNUSABLE)} of {len(table)} images" in message and "nothing was trained" in message
    for name in UNUSABLE:
        assert name in message
    for name in set(BAD_FILES) - UNUSABLE:  # converted, rotated, misnamed: read fine
        assert f"  {name}:" not in message
    assert "--decode --drop-bad" in message
    assert not (tmp_path / "cache").exists(), "nothing is stored when images are refused"
    with pytest.raises(UnusableImagesError) as info:  # decoded for predict, the refusal says so
        decode_images(table, tmp_path / "photos", 32, tmp_path / "cache", purpose="prediction")
    assert "nothing was predicted" in str(info.value) and "trained" not in str(info.value)
    usable = table[~table["path"].isin(UNUSABLE)]
    assert len(decode_images(usable, tmp_path / "photos", 32, tmp_path / "cache")) == len(usable)
