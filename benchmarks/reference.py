"""The published code's structure, rewritten from its description, as a cost reference.

``book/decisions.md`` describes how the authors' published training script (derived from
CMAL-Net's) is organised; this module reproduces that *structure* — not its code, which we
never copy — so the benchmark can price the two differences that matter for cost:

1. **Per-sample attention** (``per_sample_*``): a Python loop over the batch that computes
   each sample's CAM, upsamples and normalises it, thresholds it, reads the box back to the
   host (``int(...)`` on device values: one synchronisation per read), slices the crop and
   resizes it with ``F.interpolate``. About B·(N+1)·5 host reads per iteration (320 for
   B = 16, N = 3). Its output equals the batched :func:`finefcace.attention.attention_regions`
   / :func:`~finefcace.attention.overall_region` to float rounding (checked by the benchmark).
2. **Every head in every step** (:func:`published_structure_iteration`): each of the N + 2
   optimizer steps forwards the whole model (all stages, all N descriptor blocks and
   classifiers, the concatenation head), then back-propagates only the step's loss.

Everything else (losses, the region draw, λ, the optimizer) is as in our trainer, so the
time difference is the price of those two choices. Book: the cost chapter.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from finefcace.model import FineFACE


def per_sample_cams(model: FineFACE, maps: Sequence[Tensor], logits: Sequence[Tensor]) -> list[Tensor]:
    """Ω_n per sample in a Python loop, for each expert's own predicted class (read to the host)."""
    cams = []
    with torch.no_grad():
        for n, (x, p) in enumerate(zip(maps, logits)):
            weights = model.class_weights(n).to(x.dtype)
            rows = []
            for b in range(x.shape[0]):
                k = int(p[b].argmax())  # host read, as the published loop does
                rows.append(torch.einsum("c,chw->hw", weights[k], x[b].detach()))
            cams.append(torch.stack(rows).float())
    return cams


def _normalised(map_: Tensor) -> Tensor | None:
    """Min-max normalised map, or None for a degenerate one (the published code would crash)."""
    low, high = map_.min(), map_.max()
    if not bool(torch.isfinite(low) & torch.isfinite(high) & (high > low)):  # host read
        return None
    return (map_ - low) / (high - low)


def _crop_one(image: Tensor, map_: Tensor | None, threshold: float, pad: float) -> Tensor:
    """Threshold, box (read to the host), pad, clamp, crop and resize one image (C, H, W)."""
    height, width = image.shape[-2:]
    x0, y0, x1, y1 = 0, 0, width, height
    if map_ is not None:
        ys, xs = torch.nonzero(map_ >= threshold, as_tuple=True)  # synchronises: data-dependent size
        if ys.numel() > 0:
            pad_y, pad_x = int(pad * height), int(pad * width)
            y0 = max(int(ys.min()) - pad_y, 0)
            y1 = min(int(ys.max()) + 1 + pad_y, height)
            x0 = max(int(xs.min()) - pad_x, 0)
            x1 = min(int(xs.max()) + 1 + pad_x, width)
    crop = image[None, :, y0:y1, x0:x1]
    return F.interpolate(crop, size=(height, width), mode="bilinear", align_corners=False)[0]


def per_sample_regions(
    images: Tensor, cams: Sequence[Tensor], threshold: float = 0.5, pad: float = 0.1
) -> tuple[list[Tensor], Tensor]:
    """(A_1..A_N, A_oval) computed sample by sample, as the published code's loop does."""
    height, width = images.shape[-2:]
    regions: list[list[Tensor]] = [[] for _ in cams]
    overall: list[Tensor] = []
    with torch.no_grad():
        for b in range(images.shape[0]):
            normalised = []
            for n, cam in enumerate(cams):
                up = F.interpolate(cam[b][None, None].float(), size=(height, width), mode="bilinear",
                                   align_corners=False)[0, 0]
                map_ = _normalised(up)
                normalised.append(map_ if map_ is not None else torch.zeros_like(up))
                regions[n].append(_crop_one(images[b], map_, threshold, pad))
            overall.append(_crop_one(images[b], _normalised(torch.stack(normalised).sum(0)), threshold, pad))
    return [torch.stack(r) for r in regions], torch.stack(overall)


def published_structure_iteration(
    model: FineFACE,
    optimizer: torch.optim.Optimizer,
    images: Tensor,
    labels: Tensor,
    *,
    concat_loss_weight: float = 1.0,
    threshold: float = 0.5,
    pad: float = 0.1,
    rng: random.Random | None = None,
) -> list[float]:
    """One mini-batch of Algorithm 1 with the published code's structure; returns the N + 2 losses.

    Every step runs ``model(x)`` (all stages, all heads); attention regions come from
    :func:`per_sample_cams` and :func:`per_sample_regions`. Losses and steps as in
    Algorithm 1 (paper §3.3): CE(p_N); CE(p_n) for n = N−1..1 on a region drawn once per batch
    from {raw} ∪ {A_m : m ≠ n}; Σ CE(p_n^A) + λ CE(p_oval^A) on A_oval; λ CE(p_oval) on raw.
    """
    rng = rng or random.Random(0)
    model.train()
    num_experts = model.num_experts
    losses = []

    def step(loss: Tensor) -> None:
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())

    # Step 1: deepest expert, whole model forwarded; attention regions from this forward.
    optimizer.zero_grad(set_to_none=True)
    out = model(images)
    step(F.cross_entropy(out.expert_logits[-1], labels))
    cams = per_sample_cams(model, out.maps, out.expert_logits)
    regions, region_oval = per_sample_regions(images, cams, threshold, pad)

    # Steps 2..N: shallower experts, deep to shallow, every head forwarded.
    for n in range(num_experts - 2, -1, -1):
        optimizer.zero_grad(set_to_none=True)
        choices = [images] + [regions[m] for m in range(num_experts) if m != n]
        out = model(rng.choice(choices))
        step(F.cross_entropy(out.expert_logits[n], labels))

    # Step N+1: all experts and the concatenation on A_oval.
    optimizer.zero_grad(set_to_none=True)
    out = model(region_oval)
    loss = sum(F.cross_entropy(p, labels) for p in out.expert_logits)
    step(loss + concat_loss_weight * F.cross_entropy(out.concat_logits, labels))

    # Step N+2: the concatenation on the raw batch.
    optimizer.zero_grad(set_to_none=True)
    out = model(images)
    step(concat_loss_weight * F.cross_entropy(out.concat_logits, labels))
    return [float(x) for x in losses]
