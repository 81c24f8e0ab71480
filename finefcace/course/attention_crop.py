"""Paper §3.2 step by step: every intermediate quantity of the attention regions.

Introduced in ``notebooks/03_attention_crop.ipynb`` (class activation maps Ω_n, upsampled
Ω̃_n, normalised Ω̃_n^norm (eq. 4), masks, boxes, regions A_n and A_oval, each computed with
:mod:`finefcace.attention`'s own functions so the walkthrough shows what training uses);
and the chapter's figures (:func:`walkthrough_figure`, paper Fig. 2's steps, and
:func:`region_grid`). ``notebooks/05_evaluation.ipynb`` uses
:func:`comparison_maps` for the paper's Fig. 3 (FineFACE's maps beside the baseline's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from finefcace.plots import ATTENTION_CMAP, FIGURE_WIDTH, describe, new_figure
from finefcace.presets import REGION_PAD, REGION_THRESHOLD

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "attention_steps",
    "box_shares",
    "chapter_run",
    "comparison_maps",
    "deepest_map_size",
    "prediction_labels",
    "region_grid",
    "walkthrough_figure",
]


def deepest_map_size(model: Any, input_size: int) -> tuple[int, int]:
    """(height, width) of the deepest expert's map x''_N at ``input_size`` px (ResNet: a
    32nd of the input, so 2 × 2 at 64 px, 4 × 4 at 128 px, 14 × 14 at 448 px). Computed on
    PyTorch's meta device: no arithmetic. Book: ``notebooks/03_attention_crop.ipynb``."""
    import copy

    import torch

    with torch.device("meta"):
        probe = copy.deepcopy(model).to("meta").eval()
        output = probe(torch.empty(1, 3, input_size, input_size))
    return tuple(output.maps[-1].shape[-2:])


def chapter_run(params: Mapping[str, Any], input_size: int | None = None, *, epochs: int | None = None,
                max_batches: int | None = None) -> Any:
    """The trained FineFACE chapter 03 reads (train-or-load). First chapter 04's run,
    ``<run_dir>/<target>-finefcace`` (this chapter trains it when it runs first). When
    ``input_size`` is None or the profile's own input size is at least ``input_size`` (the
    paper's 448 px), that is the model. Otherwise its backbone is fine-tuned at ``input_size``
    px — new descriptor blocks and classifiers, ``epochs`` epochs of at most ``max_batches``
    batches — in ``<run_dir>/<target>-finefcace-<input_size>px``: far cheaper than training at
    that size from scratch. Synthetic faces are rendered at that size (``<root>-<input_size>px``),
    since upsampled small faces would hold no finer detail for the maps to find.
    Book: ``notebooks/03_attention_crop.ipynb``."""
    from pathlib import Path

    from finefcace.backbones import save_backbone_file
    from finefcace.course import session

    target = params.get("target", "gender")
    base = session.trained_run(params, f"{target}-finefcace", method="finefcace")
    if input_size is None or (params.get("input_size") or 0) >= input_size:
        return base
    backbone = Path(base.run_dir) / "backbone.pt"
    if not backbone.is_file() or backbone.stat().st_mtime < (Path(base.run_dir) / "best.pt").stat().st_mtime:
        save_backbone_file(base.model, backbone)
    changes: dict[str, Any] = {"input_size": input_size, "max_batches": max_batches, "weights": backbone.as_posix()}
    if epochs is not None:
        changes["epochs"] = epochs
    synthetic = params.get("synthetic")
    if synthetic is not None:
        changes.update(synthetic={**synthetic, "size": input_size}, table=None,
                       root=f"{params.get('root') or 'data/synthetic'}-{input_size}px")
    return session.trained_run(params, f"{target}-finefcace-{input_size}px", method="finefcace", **changes)


def prediction_labels(result: Any, rows: "pd.DataFrame") -> list[str]:
    """One label per figure row: the image's protected groups, its true class and the class
    the run's fused model predicted for it (from the run's test predictions), marked ✓ or ✗.
    Book: ``notebooks/03_attention_crop.ipynb`` and ``05_evaluation.ipynb``."""
    from finefcace.metrics import protected_columns

    predictions = result.predictions.set_index("path")
    labels = []
    for row in rows.itertuples(index=False):
        groups = " / ".join(str(getattr(row, c)) for c in protected_columns(rows))
        if row.path not in predictions.index:  # a run evaluated on part of its test split (max_eval_batches)
            labels.append(f"{groups}\nnot among the run's evaluated test images")
            continue
        true, predicted = predictions.loc[row.path, ["label_true", "label_pred"]]
        labels.append(f"{groups}\ntrue {true}\npredicted {predicted} {'✓' if true == predicted else '✗'}")
    return labels


def attention_steps(model: Any, images: Any, threshold: float = REGION_THRESHOLD, pad: float = REGION_PAD) -> dict[str, Any]:
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


def _show(ax: Any, picture: Any, title: str | None = None, **kwargs: Any) -> Any:
    image = ax.imshow(picture, **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)
    return image


def _colour_bar(fig: Any, image: Any, ax: Any, label: str) -> None:
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
    bar.ax.tick_params(labelsize=7)
    bar.set_label(label, fontsize=7)


def _caption(fig: Any, caption: str) -> None:
    """A caption under the panels, wrapped to the figure's width (text wider than the figure
    would widen the saved image and shrink everything else on the page)."""
    import textwrap

    if caption:
        fig.text(0.5, 0.0, textwrap.fill(caption, width=int(FIGURE_WIDTH * 15)), ha="center", va="top",
                 fontsize=7, color="0.35")


def walkthrough_figure(images: Any, steps: Mapping[str, Any], index: int = 0, *, caption: str = ""):
    """One image through paper §3.2, one row per expert and one for the overall map:
    Ω_n at its own resolution, upsampled Ω̃_n (both on the CAM's own scale, with a colour
    bar), normalised Ω̃_n^norm (eq. 4; 0 to 1), the mask ≥ t, the box (grown by the padding)
    on the input, and the cropped-and-resized region A_n.
    Book: ``notebooks/03_attention_crop.ipynb``."""
    from matplotlib.patches import Rectangle

    from finefcace.sources.transforms import denormalize

    picture = denormalize(images[index : index + 1])[0].permute(1, 2, 0).cpu().numpy()
    n_experts = len(steps["cams"])
    titles = [r"$\Omega_n$ (CAM)", r"$\tilde\Omega_n$ upsampled", r"$\tilde\Omega_n^{norm}$ (eq. 4)",
              f"mask $\\geq$ t = {steps['threshold']}", f"box (+{steps['pad']:.0%} a side)", "region $A_n$"]
    fig = new_figure(FIGURE_WIDTH, 1.3 * (n_experts + 1), layout=None)
    axes = fig.subplots(n_experts + 1, len(titles), squeeze=False)
    for row in range(n_experts + 1):
        is_overall = row == n_experts
        name = r"overall ($A_{oval}$)" if is_overall else f"expert $e_{row + 1}$"
        if is_overall:
            _show(axes[row, 0], picture, None)
            axes[row, 0].set_title("input" if row == 0 else "", fontsize=7)
            summed = _show(axes[row, 1], sum(n[index] for n in steps["normalised"]).cpu().numpy(), None, cmap=ATTENTION_CMAP)
            _colour_bar(fig, summed, axes[row, 1], "sum of maps")
        else:
            cam = steps["cams"][row][index].cpu().numpy()  # its own scale: the CAM's values, same in both panels
            scale = {"vmin": float(cam.min()), "vmax": float(cam.max())}
            _show(axes[row, 0], cam, None, cmap=ATTENTION_CMAP, **scale)
            upsampled = _show(axes[row, 1], steps["upsampled"][row][index].cpu().numpy(), None, cmap=ATTENTION_CMAP, **scale)
            _colour_bar(fig, upsampled, axes[row, 1], "CAM value")
        normalised = steps["overall"] if is_overall else steps["normalised"][row]
        shown = _show(axes[row, 2], normalised[index].cpu().numpy(), None, cmap=ATTENTION_CMAP, vmin=0, vmax=1)
        _colour_bar(fig, shown, axes[row, 2], "normalised (0-1)")
        _show(axes[row, 3], steps["masks"][row][index].cpu().numpy(), None, cmap="gray", vmin=0, vmax=1)
        _show(axes[row, 4], picture, None)
        x0, y0, x1, y1 = (int(v) for v in steps["boxes"][row][index])
        axes[row, 4].add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color="yellow", lw=1.5))
        region = denormalize(steps["regions"][row][index : index + 1])[0].permute(1, 2, 0).cpu().numpy()
        _show(axes[row, 5], region, None)
        axes[row, 0].set_ylabel(name, fontsize=8)
    for column, title in enumerate(titles):
        axes[0, column].set_title(title, fontsize=7)
    axes[n_experts, 1].set_title(r"$\sum_n \tilde\Omega_n^{norm}$", fontsize=7)
    axes[n_experts, 2].set_title(r"$\tilde\Omega_{oval}^{norm}$", fontsize=7)
    _caption(fig, caption)
    fig.tight_layout(w_pad=0.4)
    return describe(fig, f"One image through the attention step by step (paper §3.2), one row per expert and one "
                         f"for the overall map: the class activation map, upsampled to the image, normalised to 0-1 "
                         f"(eq. 4), the mask of values at least t = {steps['threshold']}, its box grown by "
                         f"{steps['pad']:.0%} a side on the image, and the region cropped from it"
                         + (f". {caption}" if caption else ""))


def region_grid(images: Any, steps: Mapping[str, Any], *, row_labels: Iterable[str] | None = None,
                caption: str = ""):
    """The inputs and the regions A_1..A_N, A_oval the model proposes for them (one row per
    image), with each box's share of the image. Book: ``notebooks/03_attention_crop.ipynb``."""
    from finefcace.sources.transforms import denormalize

    pictures = denormalize(images).permute(0, 2, 3, 1).cpu().numpy()
    regions = [denormalize(r).permute(0, 2, 3, 1).cpu().numpy() for r in steps["regions"]]
    height, width = pictures.shape[1:3]
    names = ["input"] + [f"$A_{n + 1}$" for n in range(len(regions) - 1)] + [r"$A_{oval}$"]
    labels = list(row_labels) if row_labels is not None else [""] * len(pictures)
    fig = new_figure(min(FIGURE_WIDTH, 1.45 * len(names)), 1.5 * len(pictures), layout=None)
    axes = fig.subplots(len(pictures), len(names), squeeze=False)
    for i in range(len(pictures)):
        _show(axes[i, 0], pictures[i], names[0] if i == 0 else None)
        axes[i, 0].set_ylabel(labels[i], fontsize=7)
        for j, region in enumerate(regions, start=1):
            x0, y0, x1, y1 = (int(v) for v in steps["boxes"][j - 1][i])
            share = (x1 - x0) * (y1 - y0) / (height * width)
            _show(axes[i, j], region[i], (names[j] + "\n" if i == 0 else "") + f"{share:.0%} of image")
            axes[i, j].title.set_fontsize(7)
    _caption(fig, caption)
    fig.tight_layout()
    return describe(fig, f"{len(pictures)} images, one a row, and the regions A_1 to A_{len(regions) - 1} and "
                         "A_oval cropped from each, each titled with the share of the image its box keeps"
                         + (f". {caption}" if caption else ""))
