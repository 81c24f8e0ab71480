"""Class activation maps and attention regions A_1..A_N, A_oval — batched, on the device.

Paper §3.2 (the choices it leaves open: ``book/decisions.md``); introduced in ``notebooks/03_attention_crop.ipynb``.

For each sample: upsample the CAM Ω_n bilinearly to the input size, min-max normalise it,
mask the pixels ≥ t, take one box over *all* mask pixels, grow it by ``pad`` × the image
side on each side (published code; the paper is silent), clamp, crop and resize back to the
input size. Everything here works on whole batches (no per-sample Python loop, no host
synchronisation). A constant map, a map with a NaN/inf, or an empty mask gives the whole
image (the published code crashes on an empty mask).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from finefcace.model import Baseline, FineFACE, FineFACEOutput
from finefcace.presets import REGION_PAD, REGION_THRESHOLD

#: Where the regions a FineFACE run trains and infers on come from (``TrainConfig.regions``):
#: ``"cam"`` the class activation maps (paper §3.2, FineFACE itself); ``"placebo"`` a box of the
#: CAM box's size at a random position (:func:`placebo_boxes`); ``"none"`` no region at all, every
#: step on the raw image (multi-expert deep supervision). The two controls: ``book/decisions.md``.
REGION_SOURCES: tuple[str, ...] = ("cam", "placebo", "none")


@torch.no_grad()
def class_activation_maps(model: FineFACE, output: FineFACEOutput) -> list[Tensor]:
    """Ω_1..Ω_N (each (B, h_n, w_n)) for each expert's own predicted class k_n = argmax p_n.

    Never the true label (paper §3.2). One einsum per expert over the whole batch; no gradient,
    and no BatchNorm statistics recorded, in training or evaluation mode: bilinear and
    covariance pooling recompute their reduction ``z`` from ``x''_n`` exactly as the forward
    did, without updating running statistics (``SecondOrderPool.activation_map``); GMP and
    GAP run no BatchNorm here. Book: ``notebooks/03_attention_crop.ipynb``.
    """
    cams = []
    for n, (logits, maps) in enumerate(zip(output.expert_logits, output.maps)):
        classes = logits.argmax(dim=1)
        cams.append(model.class_activation_map(n, maps.detach(), classes).float())
    return cams


@torch.no_grad()
def baseline_class_activation_maps(model: Baseline, images: Tensor) -> tuple[Tensor, Tensor]:
    """Classic CAM of the baseline for its predicted class: (logits (B, K), Ω_ori (B, h, w)).

    ``Ω_ori(a, b) = w_k · x(a, b)`` on the last convolutional map (paper Fig. 3).
    Book: ``notebooks/03_attention_crop.ipynb``.
    """
    logits, maps = model.forward_with_map(images)
    weights = model.class_weights()[logits.argmax(dim=1)]
    return logits, torch.einsum("bchw,bc->bhw", maps, weights.to(maps.dtype)).float()


def upsample_maps(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear upsampling of (B, h, w) maps to (B, H, W): Ω̃_n (paper §3.2).

    Book: ``notebooks/03_attention_crop.ipynb``.
    """
    return F.interpolate(maps[:, None].float(), size=tuple(size), mode="bilinear", align_corners=False)[:, 0]


def normalize_maps(maps: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample min-max normalisation of (B, H, W) maps: (Ω̃^norm, valid).

    ``valid`` (B,) is False for a map that is constant or holds a NaN/inf; such maps
    normalise to all zeros (never NaN).
    Book: ``notebooks/03_attention_crop.ipynb``.
    """
    low, high, valid = _range(maps.amin(dim=(1, 2)), maps.amax(dim=(1, 2)))
    normalized = (maps - low[:, None, None]).div_((high - low)[:, None, None])
    return normalized.masked_fill_(~valid[:, None, None], 0.0), valid


def _range(low: Tensor, high: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample (low, high, valid) with safe values where invalid (amin/amax propagate NaN)."""
    valid = torch.isfinite(low) & torch.isfinite(high) & (high > low)
    return torch.where(valid, low, 0.0), torch.where(valid, high, 1.0), valid


def attention_maps(cams: Sequence[Tensor], size: tuple[int, int]) -> list[Tensor]:
    """Ω̃_n^norm: each expert's CAM upsampled to ``size`` and min-max normalised (paper Fig. 3).

    Book: ``notebooks/03_attention_crop.ipynb``.
    """
    return [normalize_maps(upsample_maps(cam, size))[0] for cam in cams]


def overall_attention_map(cams: Sequence[Tensor], size: tuple[int, int]) -> Tensor:
    """Ω̃_oval^norm: the equal-weight sum of the normalised expert maps, min-max normalised.

    Book: ``notebooks/03_attention_crop.ipynb``.
    """
    return normalize_maps(_summed_attention_maps(cams, size))[0]


def _summed_attention_maps(cams: Sequence[Tensor], size: tuple[int, int]) -> Tensor:
    total = normalize_maps(upsample_maps(cams[0], size))[0]
    for cam in cams[1:]:
        total += normalize_maps(upsample_maps(cam, size))[0]
    return total


def boxes_from_maps(
    maps: Tensor, threshold: float = REGION_THRESHOLD, pad: float = REGION_PAD, *, size: tuple[int, int] | None = None
) -> Tensor:
    """One box per map: (B, H, W) maps -> (B, 4) long boxes ``x0, y0, x1, y1`` (end exclusive).

    ``size`` (H_in, W_in): upsample the maps to it first (bilinear); otherwise the maps are
    already at image resolution. Then min-max normalise, mask ≥ ``threshold``, box over all
    mask pixels, grow by ``int(pad · side)`` pixels per side, clamp. Degenerate maps
    (constant, NaN/inf, empty mask) give the whole image.
    Book: ``notebooks/03_attention_crop.ipynb``.
    """
    if maps.dim() != 3:
        raise ValueError(f"maps must have shape (batch, height, width), got {tuple(maps.shape)}")
    if size is not None:
        maps = upsample_maps(maps, size)
    height, width = maps.shape[-2:]
    # Min-max normalisation is monotonic (also in floating point), so a row holds a mask
    # pixel exactly when its normalised maximum reaches t: only row/column extrema are
    # normalised, never the full map.
    row_max, col_max = maps.amax(dim=2), maps.amax(dim=1)  # (B, H), (B, W)
    low, high, valid = _range(maps.amin(dim=2).amin(dim=1), row_max.amax(dim=1))
    span = (high - low)[:, None]
    rows = ((row_max - low[:, None]) / span >= threshold) & valid[:, None]
    cols = ((col_max - low[:, None]) / span >= threshold) & valid[:, None]
    found = rows.any(dim=1) & cols.any(dim=1)
    # argmax returns the first maximal index: first/last True row and column.
    y0 = rows.to(torch.uint8).argmax(dim=1)
    y1 = height - rows.flip(1).to(torch.uint8).argmax(dim=1)
    x0 = cols.to(torch.uint8).argmax(dim=1)
    x1 = width - cols.flip(1).to(torch.uint8).argmax(dim=1)
    pad_y, pad_x = int(pad * height), int(pad * width)
    # Python-scalar fills keep this free of host<->device copies.
    return torch.stack(
        [torch.where(found, (x0 - pad_x).clamp(min=0), 0),
         torch.where(found, (y0 - pad_y).clamp(min=0), 0),
         torch.where(found, (x1 + pad_x).clamp(max=width), width),
         torch.where(found, (y1 + pad_y).clamp(max=height), height)],
        dim=1,
    ).long()


def box_fractions(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """The share of an image of ``size`` (H, W) each box of :func:`boxes_from_maps` keeps, (B,) floats.
    Book: ``notebooks/03_attention_crop.ipynb``, ``notebooks/06_ablations.ipynb``."""
    return ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).float() / (size[0] * size[1])


def crop_and_resize(images: Tensor, boxes: Tensor, size: tuple[int, int] | None = None) -> Tensor:
    """Crop box b from image b and resize it bilinearly to ``size`` (default: the image size).

    Batched with one ``grid_sample``; equals, to float rounding, the per-sample
    ``F.interpolate(image[:, y0:y1, x0:x1], size, mode="bilinear", align_corners=False)``
    (same sampling positions, same edge clamping inside the box).
    Book: ``notebooks/03_attention_crop.ipynb``.
    """
    if images.dim() != 4 or boxes.shape != (images.shape[0], 4):
        raise ValueError(f"expected images (B, C, H, W) and boxes (B, 4), got {tuple(images.shape)} and {tuple(boxes.shape)}")
    height, width = images.shape[-2:]
    out_h, out_w = (height, width) if size is None else (int(size[0]), int(size[1]))
    dtype = images.dtype if images.is_floating_point() else torch.float32
    boxes = boxes.to(device=images.device, dtype=dtype)
    x0, y0, x1, y1 = boxes.unbind(dim=1)
    xs = _source_positions(x0, x1, out_w, dtype)  # (B, out_w), pixel units
    ys = _source_positions(y0, y1, out_h, dtype)  # (B, out_h)
    # grid_sample with align_corners=False: pixel p sits at normalised (2p + 1) / side - 1.
    gx = (2 * xs + 1) / width - 1
    gy = (2 * ys + 1) / height - 1
    grid = torch.stack(
        [gx[:, None, :].expand(-1, out_h, -1), gy[:, :, None].expand(-1, -1, out_w)], dim=-1
    )
    return F.grid_sample(images.to(dtype), grid, mode="bilinear", padding_mode="border", align_corners=False)


def _source_positions(start: Tensor, end: Tensor, out_len: int, dtype: torch.dtype) -> Tensor:
    """Where F.interpolate(bilinear, align_corners=False) samples a crop [start, end) for out_len outputs."""
    length = (end - start)[:, None]
    index = torch.arange(out_len, device=start.device, dtype=dtype)[None, :]
    local = ((index + 0.5) * (length / out_len) - 0.5).clamp(min=0)
    local = torch.minimum(local, length - 1)
    return start[:, None] + local


def attention_boxes(
    cams: Sequence[Tensor], size: tuple[int, int], threshold: float = REGION_THRESHOLD, pad: float = REGION_PAD
) -> list[Tensor]:
    """The boxes of A_1..A_N (paper §3.2) in an image of ``size`` (H, W): one (B, 4) tensor per expert.
    Book: ``notebooks/03_attention_crop.ipynb``."""
    return [boxes_from_maps(cam, threshold, pad, size=size) for cam in cams]


def overall_box(
    cams: Sequence[Tensor], size: tuple[int, int], threshold: float = REGION_THRESHOLD, pad: float = REGION_PAD
) -> Tensor:
    """The box of A_oval (paper §3.2), (B, 4): the summed, normalised expert maps thresholded,
    boxed and padded. Book: ``notebooks/03_attention_crop.ipynb``."""
    # boxes_from_maps min-max normalises the sum (normalising twice changes nothing).
    return boxes_from_maps(_summed_attention_maps(cams, size), threshold, pad)


def placebo_boxes(boxes: Tensor, size: tuple[int, int], generator: torch.Generator | None = None) -> Tensor:
    """The placebo control of the attention crop: each box moved to a uniformly random position.

    Every box keeps its width and height (so its area: the share of the image the CAM's box
    kept) and is placed at a position drawn uniformly among those that fit in an image of
    ``size`` (H, W), from ``generator`` (a CPU generator: seeded, checkpointed, no device sync).
    What it separates from FineFACE: "the CAM found the discriminative part" from "any crop of
    that size is an augmentation" (``book/decisions.md``, the real-photograph controls).
    """
    height, width = int(size[0]), int(size[1])
    draws = torch.rand((boxes.shape[0], 2), generator=generator).to(boxes.device)
    box_w, box_h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    # floor(u · (free + 1)) is uniform over the free + 1 positions; the clamp guards u → 1.
    x0 = torch.minimum((draws[:, 0] * (width - box_w + 1)).floor().long(), width - box_w)
    y0 = torch.minimum((draws[:, 1] * (height - box_h + 1)).floor().long(), height - box_h)
    return torch.stack([x0, y0, x0 + box_w, y0 + box_h], dim=1)


def attention_regions(
    images: Tensor, cams: Sequence[Tensor], threshold: float = REGION_THRESHOLD, pad: float = REGION_PAD
) -> list[Tensor]:
    """A_1..A_N (paper §3.2): each expert's attention region, same shape as ``images``.

    One batched box computation and one batched crop per expert (never per sample).
    Book: ``notebooks/03_attention_crop.ipynb``.
    """
    return [crop_and_resize(images, boxes) for boxes in attention_boxes(cams, tuple(images.shape[-2:]), threshold, pad)]


def overall_region(images: Tensor, cams: Sequence[Tensor], threshold: float = REGION_THRESHOLD, pad: float = REGION_PAD) -> Tensor:
    """A_oval (paper §3.2): crop of the box of the summed, normalised expert maps.

    Each map is upsampled and min-max normalised (a degenerate map contributes zeros), the
    maps are summed with equal weights, and the sum is thresholded, boxed, padded and cropped.
    Book: ``notebooks/03_attention_crop.ipynb``.
    """
    return crop_and_resize(images, overall_box(cams, tuple(images.shape[-2:]), threshold, pad))


def check_region_source(source: str) -> None:
    """``source`` is one of :data:`REGION_SOURCES` (``ValueError`` naming them otherwise)."""
    if source not in REGION_SOURCES:
        raise ValueError(f"regions must be one of {REGION_SOURCES}, got {source!r}")


def regions_from_cams(
    images: Tensor,
    cams: Sequence[Tensor],
    threshold: float = REGION_THRESHOLD,
    pad: float = REGION_PAD,
    *,
    source: str = "cam",
    generator: torch.Generator | None = None,
) -> tuple[list[Tensor], Tensor]:
    """(A_1..A_N, A_oval) of a batch: the CAM's boxes (``source="cam"``, paper §3.2) or, for the
    placebo control (``"placebo"``), each of those boxes moved to a random position drawn from
    ``generator`` (A_1..A_N in order, then A_oval). Book: ``notebooks/03_attention_crop.ipynb``."""
    if source not in ("cam", "placebo"):
        raise ValueError(f"regions_from_cams draws regions for source 'cam' or 'placebo', got {source!r}")
    size = tuple(images.shape[-2:])
    boxes = [*attention_boxes(cams, size, threshold, pad), overall_box(cams, size, threshold, pad)]
    if source == "placebo":
        boxes = [placebo_boxes(b, size, generator) for b in boxes]
    crops = [crop_and_resize(images, b) for b in boxes]
    return crops[:-1], crops[-1]
