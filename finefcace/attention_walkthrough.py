"""Paper §3.2 step by step: every intermediate quantity of the attention regions.

Introduced in ``notebooks/03_attention_crop.ipynb`` (class activation maps Ω_n, upsampled
Ω̃_n, normalised Ω̃_n^norm (eq. 4), masks, boxes, regions A_n and A_oval, each computed with
:mod:`finefcace.attention`'s own functions so the walkthrough shows what training uses);
the figures are :mod:`finefcace.course_figures`'. ``notebooks/05_evaluation.ipynb`` uses
:func:`comparison_maps` for the paper's Fig. 3 (FineFACE's maps beside the baseline's).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "attention_steps",
    "box_shares",
    "comparison_maps",
]


def attention_steps(model: Any, images: Any, threshold: float = 0.5, pad: float = 0.1) -> dict[str, Any]:
    """Every intermediate quantity of paper §3.2 for a batch, step by step, with the library's
    own functions: the predicted classes k_n; the CAMs Ω_n (B, h_n, w_n); Ω̃_n upsampled to the
    input; Ω̃_n^norm (eq. 4); the masks Ω̃_n^norm ≥ t; the boxes (grown by ``pad``); the regions
    A_n; and the same for the overall map (the normalised maps summed, normalised again) and
    A_oval. Book: ``notebooks/03_attention_crop.ipynb``."""
    import torch

    from finefcace import attention

    size = tuple(images.shape[-2:])
    with torch.no_grad():
        output = model.eval()(images)
        cams = attention.class_activation_maps(model, output)
        upsampled = [attention.upsample_maps(cam, size) for cam in cams]
        normalised = [attention.normalize_maps(u)[0] for u in upsampled]
        overall = attention.normalize_maps(torch.stack(normalised).sum(dim=0))[0]
        maps = [*normalised, overall]
        boxes = [attention.boxes_from_maps(m, threshold, pad) for m in maps]
        regions = [attention.crop_and_resize(images, b) for b in boxes]
    return {
        "output": output, "classes": [logits.argmax(dim=1) for logits in output.expert_logits],
        "cams": cams, "upsampled": upsampled, "normalised": normalised, "overall": overall,
        "masks": [m >= threshold for m in maps], "boxes": boxes, "regions": regions,
        "threshold": threshold, "pad": pad,
    }


def box_shares(steps: Mapping[str, Any]) -> "pd.DataFrame":
    """Share of the image each box covers, per expert and for A_oval (mean, min, max over the batch)."""
    import pandas as pd

    rows = {}
    n_experts = len(steps["cams"])
    from finefcace import attention

    size = tuple(steps["overall"].shape[-2:])
    for j, boxes in enumerate(steps["boxes"]):
        share = attention.box_fractions(boxes, size)
        name = "A_oval" if j == n_experts else f"A_{j + 1}"
        rows[name] = {"mean": float(share.mean()), "min": float(share.min()), "max": float(share.max())}
    return (100 * pd.DataFrame(rows).T).round(1).rename(columns=lambda c: f"{c} share of image (%)")


def comparison_maps(model: Any, baseline: Any, images: Any) -> tuple[list[Any], Any, Any]:
    """The maps of the paper's Fig. 3 for a batch: each expert's normalised CAM
    Ω̃_n^norm, the overall Ω̃_oval^norm (FineFACE) and the baseline's CAM Ω̃_ori^norm (its
    last convolutional map, its predicted class), all at the input size.
    Book: ``notebooks/05_evaluation.ipynb``."""
    import torch

    from finefcace import attention

    size = tuple(images.shape[-2:])
    with torch.no_grad():
        cams = attention.class_activation_maps(model, model.eval()(images))
        _, baseline_cam = attention.baseline_class_activation_maps(baseline.eval(), images)
    experts = attention.attention_maps(cams, size)
    overall = attention.overall_attention_map(cams, size)
    return experts, overall, attention.attention_maps([baseline_cam], size)[0]
