"""Small images and dataset layouts the tests of :mod:`finefcace.sources` write."""

from __future__ import annotations

import numpy as np
from PIL import Image


def face_image(size=(40, 48), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8), "RGB")
