"""Tiny copies of the official dataset layouts (quirks included) for the adapter tests."""

from __future__ import annotations

import zlib

import numpy as np
from PIL import Image

from finefcace.sources.fairface import FAIRFACE_RACES


def write_jpg(path, size=(12, 12), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(zlib.crc32(str(path).encode()))  # distinct files: no accidental duplicates
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).convert(mode).save(path, format="JPEG")


HEADER = "file,age,gender,race,service_test"


def fairface_layout(root, train_rows, val_rows, *, newline="\n", images=True, folder="fairface-img-margin025-trainval"):
    root.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", train_rows), ("val", val_rows)):
        text = newline.join([HEADER, *rows]) + newline
        (root / f"fairface_label_{name}.csv").write_bytes(text.encode())
        if images:
            for row in rows:
                file = row.split(",")[0].replace("fairface/", "")
                write_jpg(root / folder / file)
    return root


def fairface_rows(split, n, start=1):
    ages = ["0-2", "3-9", "10-19", "20-29", "more than 70"]
    return [f"{split}/{i}.jpg,{ages[i % 5]},{('Male', 'Female')[i % 2]},{FAIRFACE_RACES[i % 7]},{('True', 'False')[i % 3 == 0]}"
            for i in range(start, start + n)]
