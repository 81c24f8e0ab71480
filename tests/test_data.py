"""Tests of finefcace/data.py: the table contract, image reading, transforms, dataset, loader."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from finefcace import data
from finefcace.data import (
    FaceTableDataset, ImageReadError, cache_resized, classes_for, load_table, make_loader,
    read_image, require_images, resize_size, save_table, scan_images, test_transform,
    train_transform, validate_table,
)


def _face(size=(40, 48), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8), "RGB")


@pytest.fixture
def image_root(tmp_path):
    """Six small images and their table (two per split)."""
    rows = []
    for i in range(6):
        split = ("train", "val", "test")[i // 2]
        path = f"imgs/{split}/{i}.png"
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        _face(seed=i).save(tmp_path / path)
        rows.append({"path": path, "split": split, "gender": ("Female", "Male")[i % 2],
                     "tone": f"tone_{i % 4 + 1}", "Smiling": i % 2})
    return tmp_path, pd.DataFrame(rows)


# ---------------------------------------------------------------------------------- table
def test_classes_for_gender_binary_and_strings():
    table = pd.DataFrame({"gender": ["Male", "Male"], "Smiling": [1, 1], "race": ["White", "Black"],
                          "path": ["a", "b"], "split": ["train", "test"]})
    assert classes_for(table, "gender") == ["Female", "Male"]  # both classes even if one is absent
    assert classes_for(table, "Smiling") == [0, 1]
    assert classes_for(table, "race") == ["Black", "White"]
    with pytest.raises(ValueError, match="'age' is not a column"):
        classes_for(table, "age")


def test_validate_table_names_bad_rows():
    with pytest.raises(ValueError, match="lacks column"):
        validate_table(pd.DataFrame({"path": ["a"]}))
    bad = pd.DataFrame({"path": ["a", "b"], "split": ["train", "training"]})
    with pytest.raises(ValueError, match=r"rows \[1\].*'training'"):
        validate_table(bad)
    missing = pd.DataFrame({"path": ["a", "b"], "split": ["train", "test"], "gender": ["Male", None]})
    with pytest.raises(ValueError, match=r"missing in 1 row.*\[1\]"):
        validate_table(missing, "gender")


def test_table_round_trip_keeps_types(tmp_path, image_root):
    _, table = image_root
    path = save_table(table, tmp_path / "out" / "table.csv")
    assert b"\r\n" not in path.read_bytes()
    back = load_table(path)
    pd.testing.assert_frame_equal(back, table, check_dtype=False)
    assert back["Smiling"].dtype.kind == "i"
    # A CRLF copy (e.g. edited on Windows) reads the same.
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    pd.testing.assert_frame_equal(load_table(crlf), back)


# ---------------------------------------------------------------------------------- images
@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA", "P", "I;16", "LA", "1"])
def test_read_image_converts_every_mode_to_rgb(tmp_path, mode):
    rgb = _face((20, 24))
    if mode == "I;16":
        image = Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)
        assert image.mode.startswith("I;16")
        suffix = ".png"
    else:
        image = rgb.convert(mode)
        suffix = ".jpg" if mode in ("L", "CMYK") else ".png"
    path = tmp_path / f"img{suffix}"
    image.save(path)
    out = read_image(path)
    assert out.mode == "RGB" and out.size == (20, 24)
    if mode == "I;16":  # 16-bit scaled to 8 bits, not clipped to white
        np.testing.assert_allclose(np.asarray(out)[..., 0], np.asarray(rgb.convert("L")), atol=1)


def test_read_image_transparent_pixels_become_mid_grey(tmp_path):
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    rgba.save(tmp_path / "a.png")
    out = np.asarray(read_image(tmp_path / "a.png"))
    assert tuple(out[0, 0]) == (255, 0, 0)
    assert tuple(out[4, 4]) == (128, 128, 128)  # = the normalisation mean → 0 after normalising


def test_truncated_and_corrupt_images_raise_naming_the_file(tmp_path):
    good = tmp_path / "good.jpg"
    _face((64, 64)).save(good, quality=95)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"not an image at all")
    for path in (truncated, garbage):
        with pytest.raises(ImageReadError, match=path.name) as info:
            read_image(path)
        assert "download it again" in str(info.value)
    with pytest.raises(FileNotFoundError, match="nothere.jpg"):
        read_image(tmp_path / "nothere.jpg")


def test_scan_images_reports_each_problem(tmp_path):
    _face((64, 64)).save(tmp_path / "ok.jpg")
    _face((64, 64)).convert("L").save(tmp_path / "gray.jpg")
    _face((10, 12)).save(tmp_path / "tiny.png")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    table = pd.DataFrame({"path": ["ok.jpg", "gray.jpg", "tiny.png", "bad.jpg", "gone.jpg"], "split": "test"})
    report = scan_images(table, tmp_path)
    problems = dict(zip(report["path"], report["problem"]))
    assert problems == {"gray.jpg": "converted", "tiny.png": "tiny", "bad.jpg": "unreadable", "gone.jpg": "missing"}
    fast = scan_images(table, tmp_path, decode=False)
    assert fast["problem"].tolist() == ["missing"]


def test_cache_resized_keeps_layout_and_aspect(tmp_path, image_root):
    root, table = image_root
    out = cache_resized(table, root, tmp_path / "cache", 20, threads=2)
    for relative in table["path"]:
        cached = Image.open(out / relative)
        assert min(cached.size) == 20
        assert cached.size == (20, 24)  # 40x48 original, aspect kept
    dataset = FaceTableDataset(table, out, "gender", transform=test_transform(16))
    assert dataset[0][0].shape == (3, 16, 16)
    with pytest.raises(ValueError, match="must differ"):
        cache_resized(table, root, root, 20)


# ---------------------------------------------------------------------------------- transforms
def test_transforms_follow_the_paper_at_any_size():
    assert resize_size(448) == 460  # the published 448 → 460
    assert resize_size(64) == 66
    for size in (32, 64, 448):
        train_tf, test_tf = train_transform(size), test_transform(size)
        resize = train_tf.transforms[0]
        crop = train_tf.transforms[1]
        assert resize.size == [resize_size(size)] * 2 or resize.size == (resize_size(size),) * 2
        assert crop.padding == 8 and tuple(crop.size) == (size, size)
        image = _face((50, 70))
        for tf in (train_tf, test_tf):
            out = tf(image)
            assert out.shape == (3, size, size)
            assert out.min() >= -1 and out.max() <= 1
    # Test transform is deterministic; the train transform is not (crop, flip).
    image = _face((80, 80), seed=3)
    assert torch.equal(test_transform(64)(image), test_transform(64)(image))
    torch.manual_seed(0)
    outs = [train_transform(64)(image) for _ in range(4)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])


def test_tiny_images_are_upsampled_by_the_transform():
    tiny = _face((5, 7))
    assert train_transform(64)(tiny).shape == (3, 64, 64)
    assert test_transform(64)(tiny).shape == (3, 64, 64)


def test_face_crop_keeps_the_centre_first():
    image = Image.new("RGB", (250, 250), (0, 0, 0))
    image.paste((255, 255, 255), (75, 75, 175, 175))  # a white "face" in the central 40 %
    out = test_transform(32, face_crop=0.4)(image)
    assert float(out.min()) > 0.9  # only the face remains
    assert train_transform(32, face_crop=0.4).transforms[0].fraction == 0.4
    plain = test_transform(32)(image)
    assert float(plain.min()) == -1.0
    with pytest.raises(ValueError, match="face_crop"):
        test_transform(32, face_crop=0.0)


def test_centre_crop_mean_matches_normalisation():
    grey = Image.new("RGB", (30, 30), (128, 128, 128))
    out = test_transform(32)(grey)
    assert abs(float(out.mean())) < 0.01  # mean 0.5 → 0


# ---------------------------------------------------------------------------------- dataset
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


# ---------------------------------------------------------------------------------- loader
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
    assert data.default_workers() == 3
    monkeypatch.setenv("FINEFCACE_WORKERS", "many")
    with pytest.raises(ValueError, match="FINEFCACE_WORKERS"):
        data.default_workers()
    monkeypatch.delenv("FINEFCACE_WORKERS")
    if not torch.cuda.is_available():
        assert data.default_workers() == 0  # CPU: decode in the main process
    else:
        assert data.default_workers() >= 1
