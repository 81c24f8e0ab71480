"""Batched CAMs, boxes and crops (finefcace/attention.py) against slow per-sample references."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from finefcace.attention import (
    attention_maps,
    attention_regions,
    baseline_class_activation_maps,
    box_fractions,
    boxes_from_maps,
    class_activation_maps,
    crop_and_resize,
    normalize_maps,
    overall_attention_map,
    overall_region,
)
from finefcace.model import Baseline, FineFACE, effective_weights

# --------------------------------------------------------------------------- references
# Written plainly, one sample at a time, straight from the paper's §3.2 / spec §3 wording.


def ref_upsample(map2d: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(map2d[None, None].float(), size=size, mode="bilinear", align_corners=False)[0, 0]


def ref_normalize(m: torch.Tensor):
    """Min-max; None when the map is constant or not finite."""
    if not torch.isfinite(m).all():
        return None
    low, high = m.min(), m.max()
    if not high > low:
        return None
    return (m - low) / (high - low)


def ref_box(m: torch.Tensor, threshold: float, pad: float, size=None) -> list[int]:
    if size is not None:
        m = ref_upsample(m, size)
    height, width = m.shape
    whole = [0, 0, width, height]
    norm = ref_normalize(m)
    if norm is None:
        return whole
    ys, xs = torch.nonzero(norm >= threshold, as_tuple=True)
    if len(ys) == 0:
        return whole
    py, px = int(pad * height), int(pad * width)
    return [max(int(xs.min()) - px, 0), max(int(ys.min()) - py, 0),
            min(int(xs.max()) + 1 + px, width), min(int(ys.max()) + 1 + py, height)]


def ref_crop(image: torch.Tensor, box, size) -> torch.Tensor:
    x0, y0, x1, y1 = (int(v) for v in box)
    return F.interpolate(image[None, :, y0:y1, x0:x1], size=size, mode="bilinear", align_corners=False)[0]


def ref_overall_box(cams, b: int, size, threshold: float, pad: float) -> list[int]:
    total = torch.zeros(size)
    for cam in cams:
        norm = ref_normalize(ref_upsample(cam[b], size))
        if norm is not None:
            total = total + norm
    return ref_box(total, threshold, pad)


def blobs(height: int, width: int, centres, sigma: float = 2.0) -> torch.Tensor:
    ys = torch.arange(height, dtype=torch.float32)[:, None]
    xs = torch.arange(width, dtype=torch.float32)[None, :]
    out = torch.zeros(height, width)
    for cy, cx in centres:
        out += torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * sigma**2))
    return out


# --------------------------------------------------------------------------- boxes


@pytest.mark.parametrize("map_size,image_size", [((7, 7), (64, 64)), ((5, 9), (48, 80)), ((40, 56), None)])
@pytest.mark.parametrize("threshold,pad", [(0.5, 0.1), (0.3, 0.0), (0.8, 0.25)])
def test_boxes_match_reference_on_random_maps(map_size, image_size, threshold, pad):
    torch.manual_seed(0)
    maps = torch.randn(16, *map_size)
    boxes = boxes_from_maps(maps, threshold, pad, size=image_size)
    expected = [ref_box(m, threshold, pad, image_size) for m in maps]
    assert boxes.dtype == torch.long and boxes.shape == (16, 4)
    assert boxes.tolist() == expected


def test_box_covers_every_blob_not_just_the_largest():
    maps = torch.stack([
        blobs(60, 80, [(10, 10), (50, 70)]),
        blobs(60, 80, [(30, 5), (30, 40), (30, 75)]),
        blobs(60, 80, [(30, 40)]),
    ])
    boxes = boxes_from_maps(maps, 0.5, 0.0)
    assert boxes.tolist() == [ref_box(m, 0.5, 0.0) for m in maps]
    x0, y0, x1, y1 = boxes[0].tolist()  # spans both blobs
    assert x0 <= 10 < 70 < x1 and y0 <= 10 < 50 < y1
    x0, _, x1, _ = boxes[1].tolist()
    assert x0 <= 5 and x1 > 75
    x0, y0, x1, y1 = boxes[2].tolist()  # one blob: a small box around it
    assert 30 < x0 < 40 < x1 < 50 and 20 < y0 < 30 < y1 < 40


def test_box_padding_is_a_fraction_of_the_image_side_and_clamped():
    maps = blobs(100, 200, [(50, 100)], sigma=1.0)[None]
    tight = boxes_from_maps(maps, 0.5, 0.0)[0]
    padded = boxes_from_maps(maps, 0.5, 0.1)[0]
    assert (padded - tight).tolist() == [-20, -10, 20, 10]
    corner = blobs(100, 200, [(0, 0)], sigma=1.0)[None]
    x0, y0, x1, y1 = boxes_from_maps(corner, 0.5, 0.1)[0].tolist()
    assert x0 == 0 and y0 == 0 and x1 <= 0 + 3 + 20 and y1 <= 3 + 10


def test_degenerate_maps_give_the_whole_image():
    hot = torch.zeros(32, 48)
    hot[5, 7] = 3.0
    partly_nan = torch.randn(32, 48)
    partly_nan[3, 3] = float("nan")
    with_inf = torch.randn(32, 48)
    with_inf[0, 0] = float("inf")
    maps = torch.stack([
        torch.full((32, 48), 2.5),            # constant
        torch.full((32, 48), float("nan")),   # all NaN
        partly_nan,
        with_inf,
        hot,                                  # one hot pixel: a real box around it
        torch.zeros(32, 48),
    ])
    boxes = boxes_from_maps(maps, 0.5, 0.1)
    whole = [0, 0, 48, 32]
    assert boxes.tolist() == [whole, whole, whole, whole, [7 - 4, 5 - 3, 8 + 4, 6 + 3], whole]
    assert boxes.tolist() == [ref_box(m, 0.5, 0.1) for m in maps]
    # threshold above the maximum of the normalised map: empty mask -> whole image
    assert boxes_from_maps(torch.randn(4, 32, 48), threshold=1.01).tolist() == [whole] * 4
    # threshold 0: every pixel is in the mask
    assert boxes_from_maps(torch.randn(2, 32, 48), threshold=0.0).tolist() == [whole] * 2


def test_pixels_exactly_at_the_threshold_are_in_the_mask():
    maps = torch.zeros(1, 10, 10)
    maps[0, 2, 3] = 1.0
    maps[0, 7, 8] = 0.5  # normalises to exactly 0.5
    assert boxes_from_maps(maps, 0.5, 0.0).tolist() == [[3, 2, 9, 8]]
    assert boxes_from_maps(maps, 0.5001, 0.0).tolist() == [[3, 2, 4, 3]]


def test_normalize_maps_never_emits_nan():
    maps = torch.stack([torch.full((5, 5), float("nan")), torch.ones(5, 5), torch.randn(5, 5)])
    normalized, valid = normalize_maps(maps)
    assert torch.isfinite(normalized).all()
    assert valid.tolist() == [False, False, True]
    assert normalized[2].min() == 0 and normalized[2].max() == 1


# --------------------------------------------------------------------------- crop


@pytest.mark.parametrize("size", [None, (40, 56), (96, 96)])
def test_crop_and_resize_matches_per_sample_interpolate(size):
    torch.manual_seed(1)
    images = torch.randn(12, 3, 48, 64)
    x0 = torch.randint(0, 60, (12,))
    y0 = torch.randint(0, 44, (12,))
    x1 = x0 + 1 + (torch.rand(12) * (64 - x0)).long().clamp(max=63 - x0)
    y1 = y0 + 1 + (torch.rand(12) * (48 - y0)).long().clamp(max=47 - y0)
    boxes = torch.stack([x0, y0, x1, y1], dim=1)
    boxes[0] = torch.tensor([0, 0, 64, 48])   # whole image: identity when size is None
    boxes[1] = torch.tensor([63, 47, 64, 48])  # one pixel in the corner
    boxes[2] = torch.tensor([0, 10, 64, 11])   # one row, full width
    out = crop_and_resize(images, boxes, size)
    out_size = (48, 64) if size is None else size
    assert out.shape == (12, 3, *out_size)
    expected = torch.stack([ref_crop(images[b], boxes[b], out_size) for b in range(12)])
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)
    if size is None:
        torch.testing.assert_close(out[0], images[0], atol=1e-5, rtol=0)


def test_crop_and_resize_is_differentiable_and_keeps_dtype():
    images = torch.randn(2, 3, 32, 32, dtype=torch.float64, requires_grad=True)
    out = crop_and_resize(images, torch.tensor([[0, 0, 16, 16], [8, 8, 32, 32]]))
    assert out.dtype == torch.float64
    out.sum().backward()
    assert images.grad is not None


# --------------------------------------------------------------------------- regions


def _random_cams(batch: int, generator_seed: int = 0):
    torch.manual_seed(generator_seed)
    cams = [torch.randn(batch, 8, 8), torch.randn(batch, 4, 4), torch.randn(batch, 2, 2)]
    cams[0][1] = float("nan")  # one degenerate expert map for sample 1
    cams[2][2] = 7.0           # a constant one for sample 2
    return cams


@pytest.mark.parametrize("threshold,pad", [(0.5, 0.1), (0.7, 0.0)])
def test_attention_regions_match_reference(threshold, pad):
    images = torch.randn(5, 3, 64, 64)
    cams = _random_cams(5)
    regions = attention_regions(images, cams, threshold, pad)
    assert len(regions) == 3
    for n, region in enumerate(regions):
        assert region.shape == images.shape
        for b in range(5):
            box = ref_box(cams[n][b], threshold, pad, (64, 64))
            torch.testing.assert_close(region[b], ref_crop(images[b], box, (64, 64)), atol=1e-4, rtol=1e-4)
    assert torch.equal(regions[0][1], images[1]) or torch.allclose(regions[0][1], images[1], atol=1e-5)


@pytest.mark.parametrize("threshold,pad", [(0.5, 0.1), (0.6, 0.05)])
def test_overall_region_matches_reference(threshold, pad):
    images = torch.randn(5, 3, 64, 80)
    cams = _random_cams(5, 3)
    region = overall_region(images, cams, threshold, pad)
    assert region.shape == images.shape and torch.isfinite(region).all()
    for b in range(5):
        box = ref_overall_box(cams, b, (64, 80), threshold, pad)
        torch.testing.assert_close(region[b], ref_crop(images[b], box, (64, 80)), atol=1e-4, rtol=1e-4)


def test_overall_region_of_all_degenerate_maps_is_the_image():
    images = torch.randn(3, 3, 64, 64)
    cams = [torch.full((3, 8, 8), float("nan")), torch.ones(3, 4, 4), torch.zeros(3, 2, 2)]
    torch.testing.assert_close(overall_region(images, cams), images, atol=1e-5, rtol=0)
    for region in attention_regions(images, cams):
        torch.testing.assert_close(region, images, atol=1e-5, rtol=0)


def test_overall_attention_map_is_normalised_sum():
    cams = _random_cams(4)
    total = overall_attention_map(cams, (32, 32))
    manual = torch.stack(attention_maps(cams, (32, 32))).sum(0)
    for b in range(4):
        expected = ref_normalize(manual[b])
        torch.testing.assert_close(total[b], expected)
    assert total.min() >= 0 and total.max() <= 1


# --------------------------------------------------------------------------- CAMs


def _tiny_model(**kwargs) -> FineFACE:
    torch.manual_seed(0)
    return FineFACE("resnet18", 3, descriptor_dim=16, **kwargs)


@pytest.mark.parametrize("pooling", ["gmp", "gap", "bilinear", "covariance"])
@pytest.mark.parametrize("head", ["mlp", "linear"])
def test_batched_cam_matches_per_sample_reference(pooling, head):
    model = _tiny_model(pooling=pooling, head=head).eval()
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        output = model(images)
    cams = class_activation_maps(model, output)
    for n, cam in enumerate(cams):
        assert cam.shape == output.maps[n].shape[:1] + output.maps[n].shape[2:]
        weights = effective_weights(model.classifiers[n])
        for b in range(3):
            k = int(output.expert_logits[n][b].argmax())
            x = output.maps[n][b]
            if pooling in ("gmp", "gap"):
                expected = (weights[k][:, None, None] * x).sum(0)
            else:
                pool = model.poolings[n]
                z = pool._reduced(x[None])[0]
                w = weights[k].reshape(pool.rank, pool.rank)
                expected = torch.einsum("ihw,ij,jhw->hw", z, w, z)
            torch.testing.assert_close(cam[b], expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("pooling", ["gmp", "gap", "bilinear", "covariance"])
def test_training_mode_cam_explains_the_forward_and_records_no_batchnorm_statistics(pooling):
    """In training (Algorithm 1, after step 1's forward) the CAM uses the batch-normalised z
    of that forward, and no BatchNorm's running statistics or batch count change."""
    model = _tiny_model(pooling=pooling, head="linear").train()
    with torch.no_grad():
        output = model(torch.randn(3, 3, 64, 64))
    reference = copy.deepcopy(model)  # the same weights and statistics
    before = {k: b.clone() for k, b in model.named_buffers()}
    cams = class_activation_maps(model, output)
    assert before.keys() == dict(model.named_buffers()).keys()
    assert all(torch.equal(before[k], b) for k, b in model.named_buffers())
    for n in range(model.num_experts):
        k = output.expert_logits[n].argmax(1)
        weights = model.class_weights(n)[k]
        x = output.maps[n]
        if pooling in ("gmp", "gap"):
            expected = torch.einsum("bchw,bc->bhw", x, weights)
        else:
            pool = reference.poolings[n]
            with torch.no_grad():
                z = pool._reduced(x)  # training mode: batch statistics, as the forward used
            expected = torch.einsum("bihw,bij,bjhw->bhw", z, weights.reshape(-1, pool.rank, pool.rank), z)
        torch.testing.assert_close(cams[n], expected)


def test_linear_head_cam_is_the_classic_cam():
    """GAP + one Linear: logit_k = mean_ab Ω_k(a, b) + bias_k, and Ω_k = W[k] · x''."""
    model = _tiny_model(pooling="gap", head="linear").eval()
    images = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        output = model(images)
    cams = class_activation_maps(model, output)
    for n in range(model.num_experts):
        linear = model.classifiers[n]
        torch.testing.assert_close(model.class_weights(n), linear.weight)
        k = output.expert_logits[n].argmax(1)
        classic = torch.einsum("bchw,bc->bhw", output.maps[n], linear.weight[k])
        torch.testing.assert_close(cams[n], classic)
        logit = output.expert_logits[n].gather(1, k[:, None])[:, 0]
        torch.testing.assert_close(cams[n].mean(dim=(1, 2)) + linear.bias[k], logit, atol=1e-4, rtol=1e-4)


def test_second_order_cam_sums_to_the_pre_normalisation_score():
    """BP/GCP CAM: mean_ab Ω(a, b) = <W_k, M> with M the (un-normalised) second-order matrix."""
    for pooling in ("bilinear", "covariance"):
        model = _tiny_model(pooling=pooling, head="linear").eval()
        with torch.no_grad():
            output = model(torch.randn(2, 3, 64, 64))
            cams = class_activation_maps(model, output)
            pool = model.poolings[0]
            z = pool._reduced(output.maps[0]).flatten(2)
            matrix = z @ z.transpose(1, 2) / z.shape[-1]
            k = output.expert_logits[0].argmax(1)
            w = model.class_weights(0)[k].reshape(-1, pool.rank, pool.rank)
            torch.testing.assert_close(cams[0].mean(dim=(1, 2)), (w * matrix).sum(dim=(1, 2)), atol=1e-4, rtol=1e-4)


def test_mlp_cam_uses_the_linearised_weights():
    model = _tiny_model(head="mlp")
    mlp = model.classifiers[1]
    first, last = mlp[1], mlp[4]
    torch.testing.assert_close(model.class_weights(1), last.weight @ first.weight)


def test_cams_use_each_experts_own_prediction_and_carry_no_gradient():
    model = _tiny_model(head="linear").train()
    output = model(torch.randn(4, 3, 64, 64))
    cams = class_activation_maps(model, output)
    assert all(not cam.requires_grad for cam in cams)
    for n, cam in enumerate(cams):
        other = (output.expert_logits[n].argmax(1) + 1) % 3  # a class the expert did not predict
        not_predicted = model.class_activation_map(n, output.maps[n].detach(), other)
        assert not torch.allclose(cam, not_predicted)


def test_baseline_cam_is_the_classic_cam():
    torch.manual_seed(0)
    model = Baseline("resnet18", 2).eval()
    images = torch.randn(2, 3, 64, 64)
    logits, cam = baseline_class_activation_maps(model, images)
    _, maps = model.forward_with_map(images)
    assert cam.shape == (2, 2, 2)
    k = logits.argmax(1)
    torch.testing.assert_close(cam, torch.einsum("bchw,bc->bhw", maps, model.classifier.weight[k]))
    torch.testing.assert_close(cam.mean(dim=(1, 2)) + model.classifier.bias[k], logits.gather(1, k[:, None])[:, 0],
                               atol=1e-4, rtol=1e-4)


@pytest.mark.gpu
def test_regions_make_no_host_synchronisation_on_cuda():
    """No per-sample (indeed no) device->host sync in CAM-to-region code (spec §3)."""
    device = torch.device("cuda")
    images = torch.randn(64, 3, 224, 224, device=device)
    cams = [torch.randn(64, 28, 28, device=device), torch.randn(64, 14, 14, device=device),
            torch.randn(64, 7, 7, device=device)]
    attention_regions(images, cams)  # warm-up (lazy CUDA init may sync)
    overall_region(images, cams)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        regions = attention_regions(images, cams)
        oval = overall_region(images, cams)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    boxes = boxes_from_maps(torch.stack([F.interpolate(c[:, None], (224, 224), mode="bilinear")[:, 0]
                                         for c in cams]).flatten(0, 1))
    assert len(regions) == 3 and oval.shape == images.shape and boxes.shape == (192, 4)
    assert math.isfinite(float(oval.sum()))


def test_box_fractions_is_the_area_share_of_each_box():
    boxes = torch.tensor([[0, 0, 64, 32], [16, 16, 48, 48], [0, 0, 0, 0]])
    assert box_fractions(boxes, (32, 64)).tolist() == [1.0, 32 * 32 / (32 * 64), 0.0]
