"""The paper's image transforms (method.md §4: the published train/test transforms).

Introduced in the book in ``notebooks/01_dataset_preparation.ipynb``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from PIL import Image
from torchvision import transforms

#: Published resize ratio: images are resized to input·460/448, then cropped to input.
RESIZE_RATIO = 460 / 448


def resize_size(size: int) -> int:
    """Side of the square resize before cropping: ``round(size·460/448)`` (448 → 460)."""
    return int(round(size * RESIZE_RATIO))


def square_resize(size: int) -> transforms.Resize:
    """The first, deterministic step of both transforms: resize to ``resize_size(size)`` square.
    The decoded-image cache (:mod:`finefcace.sources.image_cache`) stores its output, so a
    cached image goes through the rest of the transform exactly as a freshly decoded one
    (resizing an image to the size it has is a copy)."""
    side = resize_size(size)
    return transforms.Resize((side, side), antialias=True)


class CentreFraction:
    """Keep the central ``fraction`` of an image (each side), before the paper's resize.

    LFW images (250×250, face centred, much background) are customarily centre-cropped for
    attribute tests; FairFace, UTKFace and CelebA crops need none (``face_crop=None``).
    """

    def __init__(self, fraction: float) -> None:
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"face_crop must be in (0, 1], got {fraction}")
        self.fraction = float(fraction)

    def __call__(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        keep_w, keep_h = max(1, round(width * self.fraction)), max(1, round(height * self.fraction))
        left, top = (width - keep_w) // 2, (height - keep_h) // 2
        return image.crop((left, top, left + keep_w, top + keep_h))

    def __repr__(self) -> str:
        return f"CentreFraction({self.fraction})"


def _prefix(face_crop: float | None) -> list:
    return [] if face_crop is None else [CentreFraction(face_crop)]


def train_transform(size: int, *, padding: int = 8, face_crop: float | None = None) -> Callable:
    """Paper's train transform: resize to size·460/448 (square), random crop to ``size`` with
    8 px padding, horizontal flip, normalise with mean = std = 0.5 (method.md §4).
    ``face_crop`` first keeps the image's central fraction (see :class:`CentreFraction`).

    Introduced in ``notebooks/01_dataset_preparation.ipynb``.
    """
    return transforms.Compose([
        *_prefix(face_crop),
        square_resize(size),
        transforms.RandomCrop(size, padding=padding),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),
    ])


def test_transform(size: int, *, face_crop: float | None = None) -> Callable:
    """Paper's test transform: the same square resize, centre crop to ``size``, normalise.
    ``face_crop`` first keeps the image's central fraction (see :class:`CentreFraction`).

    Introduced in ``notebooks/01_dataset_preparation.ipynb``.
    """
    return transforms.Compose([
        *_prefix(face_crop),
        square_resize(size),
        transforms.CenterCrop(size),
        transforms.ToTensor(),
        transforms.Normalize([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),
    ])


test_transform.__test__ = False  # not a pytest test, though its name starts with "test"


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Undo the mean = std = 0.5 normalisation (for display): values back in [0, 1]."""
    return (images * 0.5 + 0.5).clamp(0, 1)
