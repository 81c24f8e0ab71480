"""Tests of finefcace/sources/transforms.py: the paper's train and test transforms."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from finefcace.sources.transforms import resize_size, test_transform, train_transform
from tests.sources.fixtures import face_image


def test_transforms_follow_the_paper_at_any_size():
    assert resize_size(448) == 460  # the published 448 → 460
    assert resize_size(64) == 66
    for size in (32, 64, 448):
        train_tf, test_tf = train_transform(size), test_transform(size)
        resize = train_tf.transforms[0]
        crop = train_tf.transforms[1]
        assert resize.size == [resize_size(size)] * 2 or resize.size == (resize_size(size),) * 2
        assert crop.padding == 8 and tuple(crop.size) == (size, size)
        image = face_image((50, 70))
        for tf in (train_tf, test_tf):
            out = tf(image)
            assert out.shape == (3, size, size)
            assert out.min() >= -1 and out.max() <= 1
    # Test transform is deterministic; the train transform is not (crop, flip).
    image = face_image((80, 80), seed=3)
    assert torch.equal(test_transform(64)(image), test_transform(64)(image))
    torch.manual_seed(0)
    outs = [train_transform(64)(image) for _ in range(4)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])


def test_tiny_images_are_upsampled_by_the_transform():
    tiny = face_image((5, 7))
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
