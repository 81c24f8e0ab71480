"""Tests of finefcace/sources/dataset.py: the dataset over a table and its loader."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from finefcace.sources.dataset import FaceTableDataset, default_workers, make_loader
from finefcace.sources.images import ImageReadError, require_images
from finefcace.sources.transforms import test_transform


def test_dataset_items_labels_and_row_indices(image_root):
    root, table = image_root
    table.index = table.index + 100  # row index = the table's index label, not a position
    dataset = FaceTableDataset(table, root, "gender", split="val", transform=test_transform(32))
    assert len(dataset) == 2
    image, label, row = dataset[1]
    assert image.shape == (3, 32, 32)
    assert row == 103 and label == dataset.classes.index(table.loc[103, "gender"])
    smiling = FaceTableDataset(table, root, "Smiling")
    assert smiling.classes == [0, 1] and [smiling[i][1] for i in range(6)] == table["Smiling"].tolist()
    raw = FaceTableDataset(table, root, "tone")
    assert isinstance(raw[0][0], Image.Image)


def test_dataset_raises_before_training_naming_missing_images(image_root):
    root, table = image_root
    (root / table.loc[3, "path"]).unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of 6 images.*imgs/val/3.png"):
        FaceTableDataset(table, root, "gender")
    with pytest.raises(FileNotFoundError, match="imgs/val/3.png"):
        require_images(table, root)
    # Label-only use is allowed, and the split filter only checks its own rows.
    FaceTableDataset(table, root, "gender", check_images=False)
    FaceTableDataset(table, root, "gender", split="train")


def test_dataset_refuses_unknown_labels_and_splits(image_root):
    root, table = image_root
    with pytest.raises(ValueError, match=r"outside the classes \['Female', 'Male'\].*'Unknown'"):
        FaceTableDataset(table.assign(gender=["Female"] * 5 + ["Unknown"]), root, "gender")
    with pytest.raises(ValueError, match="split must be one of"):
        FaceTableDataset(table, root, "gender", split="validation")


def test_dataset_reports_a_corrupt_image_by_name(image_root):
    root, table = image_root
    (root / table.loc[0, "path"]).write_bytes(b"broken")
    dataset = FaceTableDataset(table, root, "gender")
    with pytest.raises(ImageReadError, match="imgs/train/0.png"):
        dataset[0]


def test_loader_batches_and_seeded_shuffle(image_root):
    root, table = image_root
    dataset = FaceTableDataset(table, root, "gender", transform=test_transform(16))
    order = lambda seed: torch.cat([rows for _, _, rows in make_loader(dataset, batch_size=4, train=True,  # noqa: E731
                                                                       workers=0, seed=seed)]).tolist()
    assert order(1) == order(1) and sorted(order(1)) == list(range(6))
    loader = make_loader(dataset, batch_size=4, train=False, workers=0)
    images, labels, rows = next(iter(loader))
    assert images.shape == (4, 3, 16, 16) and rows.tolist() == [0, 1, 2, 3]
    assert not loader.drop_last
    # A final training batch of one image is dropped (BatchNorm cannot train on it).
    assert make_loader(dataset, batch_size=5, train=True, workers=0).drop_last
    assert not make_loader(dataset, batch_size=4, train=True, workers=0).drop_last


def test_loader_with_workers_is_persistent(image_root):
    root, table = image_root
    dataset = FaceTableDataset(table, root, "gender", transform=test_transform(16))
    loader = make_loader(dataset, batch_size=3, train=False, workers=1)
    assert loader.persistent_workers and loader.num_workers == 1
    assert loader.pin_memory == torch.cuda.is_available()
    assert sum(len(b[1]) for b in loader) == 6


def test_default_workers_reads_the_environment(monkeypatch):
    monkeypatch.setenv("FINEFCACE_WORKERS", "3")
    assert default_workers() == 3
    monkeypatch.setenv("FINEFCACE_WORKERS", "many")
    with pytest.raises(ValueError, match="FINEFCACE_WORKERS"):
        default_workers()
    monkeypatch.delenv("FINEFCACE_WORKERS")
    if not torch.cuda.is_available():
        assert default_workers() == 0  # CPU: decode in the main process
    else:
        assert default_workers() >= 1
