"""The course's own figures, too chapter-specific for :mod:`finefcace.plots`.

The attention walkthrough of paper §3.2 (Fig. 2's steps: CAM, upsampled, normalised map
(eq. 4), mask, box, region), introduced in ``notebooks/03_attention_crop.ipynb`` from the
quantities of :func:`finefcace.attention_walkthrough.attention_steps`; and the image grid of
a dataset table by protected group, ``notebooks/01_dataset_preparation.ipynb`` (paper §4.1).
Each returns a ``matplotlib.figure.Figure`` that pyplot does not track (shown as a cell's
last expression), as :mod:`finefcace.plots` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finefcace.dataset_preparation import protected_columns
from finefcace.plots import new_figure

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "region_grid",
    "table_montage",
    "walkthrough_figure",
]


def _show(ax: Any, picture: Any, title: str | None = None, **kwargs: Any) -> None:
    ax.imshow(picture, **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def table_montage(table: "pd.DataFrame", root: str | Path, *, columns: Iterable[str] | None = None,
                  per_group: int = 4, split: str = "test", size: int = 96, title: str | None = None):
    """A grid of a table's images: one row per protected group, the first ``per_group``
    images of ``split`` in each (for real datasets; synthetic data has
    :func:`finefcace.synthetic.synthetic_montage`). Book: ``notebooks/01_dataset_preparation.ipynb``."""
    from finefcace.data import read_image

    columns = list(columns) if columns is not None else protected_columns(table)
    rows = table[table["split"] == split]
    groups = list(rows.groupby(columns, sort=True)) if columns else [("all", rows)]
    fig = new_figure(per_group * 1.2, len(groups) * 1.25, layout=None)
    axes = fig.subplots(len(groups), per_group, squeeze=False)
    for r, (group, frame) in enumerate(groups):
        paths = frame["path"].tolist()[:per_group]
        for k in range(per_group):
            ax = axes[r, k]
            ax.set_xticks([])
            ax.set_yticks([])
            if k < len(paths):
                ax.imshow(read_image(Path(root) / paths[k]).resize((size, size)))
        label = " / ".join(map(str, group)) if isinstance(group, tuple) else str(group)
        axes[r, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def walkthrough_figure(images: Any, steps: Mapping[str, Any], index: int = 0, *, caption: str = ""):
    """One image through paper §3.2, one row per expert and one for the overall map:
    Ω_n at its own resolution, upsampled Ω̃_n, normalised Ω̃_n^norm (eq. 4), the mask ≥ t,
    the box (grown by the padding) on the input, and the cropped-and-resized region A_n.
    Book: ``notebooks/03_attention_crop.ipynb``."""
    from matplotlib.patches import Rectangle

    from finefcace.data import denormalize

    picture = denormalize(images[index : index + 1])[0].permute(1, 2, 0).cpu().numpy()
    n_experts = len(steps["cams"])
    titles = [r"$\Omega_n$ (CAM)", r"$\tilde\Omega_n$ upsampled", r"$\tilde\Omega_n^{norm}$ (eq. 4)",
              f"mask $\\geq$ t = {steps['threshold']}", f"box (+{steps['pad']:.0%} per side)", "region $A_n$"]
    fig = new_figure(1.7 * len(titles), 1.75 * (n_experts + 1), layout=None)
    axes = fig.subplots(n_experts + 1, len(titles), squeeze=False)
    for row in range(n_experts + 1):
        is_overall = row == n_experts
        name = r"overall ($A_{oval}$)" if is_overall else f"expert $e_{row + 1}$"
        if is_overall:
            _show(axes[row, 0], picture, None)
            axes[row, 0].set_title("input" if row == 0 else "", fontsize=8)
            _show(axes[row, 1], sum(n[index] for n in steps["normalised"]).cpu().numpy(), None, cmap="jet")
        else:
            _show(axes[row, 0], steps["cams"][row][index].cpu().numpy(), None, cmap="jet")
            _show(axes[row, 1], steps["upsampled"][row][index].cpu().numpy(), None, cmap="jet")
        normalised = steps["overall"] if is_overall else steps["normalised"][row]
        _show(axes[row, 2], normalised[index].cpu().numpy(), None, cmap="jet", vmin=0, vmax=1)
        _show(axes[row, 3], steps["masks"][row][index].cpu().numpy(), None, cmap="gray", vmin=0, vmax=1)
        _show(axes[row, 4], picture, None)
        x0, y0, x1, y1 = (int(v) for v in steps["boxes"][row][index])
        axes[row, 4].add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color="yellow", lw=1.5))
        region = denormalize(steps["regions"][row][index : index + 1])[0].permute(1, 2, 0).cpu().numpy()
        _show(axes[row, 5], region, None)
        axes[row, 0].set_ylabel(name, fontsize=9)
    for column, title in enumerate(titles):
        axes[0, column].set_title(title, fontsize=8)
    axes[n_experts, 1].set_title(r"$\sum_n \tilde\Omega_n^{norm}$", fontsize=8)
    axes[n_experts, 2].set_title(r"$\tilde\Omega_{oval}^{norm}$", fontsize=8)
    if caption:
        fig.text(0.5, 0.0, caption, ha="center", va="top", fontsize=7, color="0.35", wrap=True)
    fig.tight_layout()
    return fig


def region_grid(images: Any, steps: Mapping[str, Any], *, row_labels: Iterable[str] | None = None,
                caption: str = ""):
    """The inputs and the regions A_1..A_N, A_oval the model proposes for them (one row per
    image), with each box's share of the image. Book: ``notebooks/03_attention_crop.ipynb``."""
    from finefcace.data import denormalize

    pictures = denormalize(images).permute(0, 2, 3, 1).cpu().numpy()
    regions = [denormalize(r).permute(0, 2, 3, 1).cpu().numpy() for r in steps["regions"]]
    height, width = pictures.shape[1:3]
    names = ["input"] + [f"$A_{n + 1}$" for n in range(len(regions) - 1)] + [r"$A_{oval}$"]
    labels = list(row_labels) if row_labels is not None else [""] * len(pictures)
    fig = new_figure(1.45 * len(names), 1.5 * len(pictures), layout=None)
    axes = fig.subplots(len(pictures), len(names), squeeze=False)
    for i in range(len(pictures)):
        _show(axes[i, 0], pictures[i], names[0] if i == 0 else None)
        axes[i, 0].set_ylabel(labels[i], fontsize=7)
        for j, region in enumerate(regions, start=1):
            x0, y0, x1, y1 = (int(v) for v in steps["boxes"][j - 1][i])
            share = (x1 - x0) * (y1 - y0) / (height * width)
            _show(axes[i, j], region[i], (names[j] + "\n" if i == 0 else "") + f"{share:.0%} of image")
    if caption:
        fig.text(0.5, 0.0, caption, ha="center", va="top", fontsize=7, color="0.35", wrap=True)
    fig.tight_layout()
    return fig
