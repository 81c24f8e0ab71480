"""Fused inference (paper §3.3 "Inference Phase"; ``book/decisions.md``).

The raw image gives N+1 logit vectors and the CAMs; the CAMs give A_oval; A_oval gives N+1
more; the prediction is the argmax of the mean of the 2(N+1) vectors. Any subset of views
(raw, A_oval) and heads (all, the concatenation, the experts, one expert), fused over
logits or probabilities, can be selected: the supplementary ablation compares them.
Introduced in ``notebooks/05_evaluation.ipynb``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from finefcace.attention import (check_region_source, class_activation_maps, crop_and_resize, overall_box,
                                 overall_region, placebo_boxes)
from finefcace.model import Baseline, FineFACE, FineFACEOutput
from finefcace.presets import REGION_PAD, REGION_THRESHOLD

VIEWS = ("raw", "oval")
COMBINES = ("logits", "probabilities")


def _select_heads(output: FineFACEOutput, heads: str | int) -> list[Tensor]:
    if heads == "all":
        return [*output.expert_logits, output.concat_logits]
    if heads == "concat":
        return [output.concat_logits]
    if heads == "experts":
        return list(output.expert_logits)
    if isinstance(heads, int) and not isinstance(heads, bool):
        if not -len(output.expert_logits) <= heads < len(output.expert_logits):
            raise ValueError(f"heads={heads}: expert index out of range for {len(output.expert_logits)} experts (0-based)")
        return [output.expert_logits[heads]]
    raise ValueError(f"heads={heads!r}: use 'all', 'concat', 'experts' or an expert index (int, 0-based)")


@contextmanager
def _eval_mode(model: nn.Module):
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def fused_logits(
    model: FineFACE,
    images: Tensor,
    *,
    views: Sequence[str] = ("raw", "oval"),
    heads: str | int = "all",
    combine: str = "logits",
    threshold: float = REGION_THRESHOLD,
    pad: float = REGION_PAD,
    regions: str = "cam",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Fused score (B, K) of FineFACE on ``images`` (paper §3.3); argmax = prediction.

    ``views``: any non-empty subset of ("raw", "oval"); ``heads``: "all" (N experts and the
    concatenation), "concat", "experts" or an expert index; ``combine``: "logits" (mean of
    the logit vectors; the paper's average of scores) or "probabilities" (mean of softmax
    probabilities, returned as probabilities). The model runs in eval mode under
    ``torch.inference_mode()`` and its train/eval mode is restored afterwards. ``regions``:
    where the oval view's box comes from, as in training (:data:`finefcace.attention.REGION_SOURCES`):
    the CAMs (FineFACE), or the CAM box moved to a random position drawn from ``generator``
    (the placebo control); the no-regions control fuses the raw view only.
    """
    views = tuple(views)
    if not views or any(v not in VIEWS for v in views):
        raise ValueError(f"views={views!r}: choose a non-empty subset of {VIEWS}")
    if combine not in COMBINES:
        raise ValueError(f"combine={combine!r}: choose one of {COMBINES}")
    check_region_source(regions)
    with torch.inference_mode(), _eval_mode(model):
        raw = model(images)  # always needed: the CAMs come from the raw forward
        outputs = []
        if "raw" in views:
            outputs.append(raw)
        if "oval" in views:
            if regions == "none":
                raise ValueError("views include 'oval' but regions='none': a run trained without regions fuses the "
                                 "raw view only")
            cams = class_activation_maps(model, raw)
            if regions == "cam":
                region = overall_region(images, cams, threshold, pad)
            else:
                size = tuple(images.shape[-2:])
                box = placebo_boxes(overall_box(cams, size, threshold, pad), size, generator)
                region = crop_and_resize(images, box)
            outputs.append(model(region))
        scores = [s.float() for out in outputs for s in _select_heads(out, heads)]
        if combine == "probabilities":
            scores = [s.softmax(dim=1) for s in scores]
        return torch.stack(scores).mean(dim=0)


def seeded_fusion(fusion: dict[str, Any]) -> dict[str, Any]:
    """The keywords of :func:`fused_logits` for one pass over a split: a ``placebo_seed``
    (placebo control, :func:`finefcace.training.recipe.fusion_options`) becomes one fresh CPU
    generator that draws every batch's box positions in order, so each pass over the same
    loader draws the same boxes."""
    fusion = dict(fusion)
    placebo_seed = fusion.pop("placebo_seed", None)
    if placebo_seed is not None:
        fusion["generator"] = torch.Generator().manual_seed(int(placebo_seed))
    return fusion


def predict_loader(
    model: FineFACE | Baseline,
    loader: Iterable,
    *,
    device: torch.device | str | None = None,
    **fusion: Any,
) -> dict[str, np.ndarray]:
    """Run every batch of ``loader`` through the model; returns numpy arrays.

    Batches are ``(images, labels, row_index)`` as :class:`finefcace.sources.dataset.FaceTableDataset`
    yields them (``(images, labels)`` also works). FineFACE goes through
    :func:`fused_logits` (``fusion`` keywords passed on); the baseline through its own
    forward. Returns ``row_index``, ``y_true``, ``y_pred`` and ``probabilities`` (N, K)
    (softmax of the fused logits, or the fused probabilities). Used by the trainer to write
    the predictions table (``notebooks/05_evaluation.ipynb``). ``placebo_seed`` (placebo
    control only) seeds one generator that draws every batch's box positions in loader order,
    so the same loader gives the same predictions.
    """
    fusion = seeded_fusion(fusion)
    if device is None:
        parameter = next(model.parameters())
        device = parameter.device
    rows, labels, probabilities = [], [], []
    combine = fusion.get("combine", "logits")
    with torch.inference_mode(), _eval_mode(model):
        for batch in loader:
            images, y = batch[0], batch[1]
            index = batch[2] if len(batch) > 2 else torch.arange(len(y)) + sum(len(r) for r in rows)
            images = images.to(device, non_blocking=True)
            if isinstance(model, FineFACE):
                scores = fused_logits(model, images, **fusion)
                probs = scores if combine == "probabilities" else scores.softmax(dim=1)
            else:
                if fusion:
                    raise ValueError(f"fusion options {sorted(fusion)} apply to FineFACE only, not {type(model).__name__}")
                probs = model(images).float().softmax(dim=1)
            probabilities.append(probs.cpu())
            labels.append(torch.as_tensor(y).cpu())
            rows.append(torch.as_tensor(index).cpu())
    if not probabilities:
        raise ValueError("the loader yielded no batches: is the split empty?")
    probs = torch.cat(probabilities).numpy()
    return {
        "row_index": torch.cat(rows).numpy(),
        "y_true": torch.cat(labels).numpy(),
        "y_pred": probs.argmax(axis=1),
        "probabilities": probs,
    }
