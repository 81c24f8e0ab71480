"""Figures of the course: per-group accuracies, attention overlays (Fig. 1/3), the Fig. 4
decomposition, accuracy-vs-bias trade-offs and training curves.

Every helper takes results already computed (reports of ``finefcace.metrics``, tables of
``finefcace.course.paper_results``, arrays or tensors of maps), returns a ``matplotlib.figure.Figure``
and draws nothing else: this module does not import the model code. matplotlib and seaborn are
imported when a helper is first called, so ``import finefcace`` stays light.

Introduced in ``notebooks/05_evaluation.ipynb`` (groups, intersectional cells, decomposition, trade-off),
``notebooks/03_attention_crop.ipynb`` (attention overlays) and ``notebooks/04_training.ipynb``
(training curves).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = [
    "group_accuracy_bars",
    "intersectional_heatmap",
    "attention_overlays",
    "fairness_decomposition",
    "accuracy_fairness_scatter",
    "method_tradeoffs",
    "training_curves",
    "new_figure",
    "describe",
    "alt_text",
    "drawn_text_sizes",
    "figure_html",
    "smallest_text_as_shown",
    "wrap_wide_titles",
]

# attribute metric names (finefcace.metrics) and the paper's labels (finefcace.course.paper_results)
#: The colour map of every attention map and CAM the course draws: perceptually uniform (equal
#: steps of the value look like equal steps of colour, also in grey), unlike ``jet``, whose bright
#: bands invent edges a reader then takes for structure.
ATTENTION_CMAP = "inferno"

_ATTRIBUTE_COLUMNS = {
    "accuracy": ("accuracy", "Accuracy"), "max_group_accuracy": ("max_group_accuracy", "Max. grp. Acc."),
    "min_group_accuracy": ("min_group_accuracy", "Min. grp. Acc."), "tpr": ("tpr", "TPR"),
    "max_group_tpr": ("max_group_tpr", "Max. grp. TPR"), "min_group_tpr": ("min_group_tpr", "Min. grp. TPR"),
    "deo": ("deo", "DEO"), "deodds": ("deodds", "DEODD", "DEOdds"),
}


@contextlib.contextmanager
def _plotting() -> Iterator[Any]:
    """Import matplotlib lazily and silence the seaborn-on-matplotlib-3.11 ``vert`` warning."""
    import matplotlib

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*vert.*", category=PendingDeprecationWarning)
        warnings.filterwarnings("ignore", message=".*vert.*", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*vert.*", category=matplotlib.MatplotlibDeprecationWarning)
        yield matplotlib


def new_figure(width: float, height: float, layout: str | None = "constrained", **kwargs: Any) -> "Figure":
    """A figure not registered with pyplot (no double display, no leak when many are made);
    pyplot is still imported so Jupyter's inline backend knows how to show a Figure. Shown as a
    cell's last expression or with ``display``; the course's own figures
    (:mod:`finefcace.course`) use it too. Book: every chapter's figures."""
    import matplotlib.pyplot  # noqa: F401  (registers the notebook display of Figure objects)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout=layout, **kwargs)


#: Where :func:`describe` keeps a figure's alt text.
_ALT_ATTRIBUTE = "_finefcace_alt"


def describe(figure: "Figure", text: str) -> "Figure":
    """Give ``figure`` the alt text the book shows for it (what the figure shows, in words);
    returns the figure. Figures without one are described from their own titles and axis labels
    (:func:`alt_text`). Book: every chapter's figures."""
    setattr(figure, _ALT_ATTRIBUTE, " ".join(str(text).split()))
    return figure


def alt_text(figure: "Figure") -> str:
    """The figure's alt text: the one :func:`describe` gave it, or one made of its own words —
    its title, then each titled panel with its axes ("y against x"); a figure with no title at
    all is described by its first panel's axes."""
    explicit = getattr(figure, _ALT_ATTRIBUTE, None)
    if explicit:
        return explicit

    def words(text: str) -> str:
        return " ".join(plain_text(text).split())

    def axes_words(ax) -> str:
        labels = [words(label) for label in (ax.get_ylabel(), ax.get_xlabel()) if label.strip()] if ax.axison else []
        return " against ".join(labels)

    suptitle = getattr(figure, "_suptitle", None)
    title = words(suptitle.get_text()) if suptitle is not None else ""
    visible = [ax for ax in figure.get_axes() if ax.get_visible()]
    panels: list[str] = []
    for ax in visible:
        name = "; ".join(words(t.get_text()) for t in (ax.title, ax._left_title, ax._right_title)
                         if t.get_text().strip())
        if not name:
            continue  # an untitled panel: one image of a grid, a colour bar
        text = name + (f" ({axes_words(ax)})" if axes_words(ax) else "")
        if text not in panels:
            panels.append(text)
    if not title and not panels and visible and axes_words(visible[0]):
        panels.append(axes_words(visible[0]))
    shown = panels[:8] + ([f"and {len(panels) - 8} more"] if len(panels) > 8 else [])
    listed = ("Panels: " if len(panels) > 1 else "") + "; ".join(shown)
    if title:
        return f"Figure: {title}" + (f". {listed}" if panels else "")
    return f"Figure: {listed}" if panels else "Figure without a title or labelled axes"


def wrap_wide_titles(figure: "Figure") -> "Figure":
    """Wrap the figure's titles (its own, its panels') and captions onto lines no wider than the figure:
    saved with a tight bounding box, a line wider than the figure widens the image, and the book
    shrinks the whole image — every label with it — to fit its column. (matplotlib's
    ``wrap=True`` does not apply to a tight bounding box.) Returns the figure."""
    import textwrap

    width = figure.get_size_inches()[0]
    suptitle = getattr(figure, "_suptitle", None)
    titles = [t for ax in figure.get_axes() for t in (ax.title, ax._left_title, ax._right_title)]
    for text in [suptitle, *figure.texts, *titles]:
        if text is None or not text.get_text():
            continue
        # a character of a proportional font is about half its size wide
        fits = max(20, int(width * 72 / (0.55 * text.get_fontsize())))
        lines = text.get_text().split("\n")
        if any(len(line) > fits for line in lines):
            text.set_text("\n".join(textwrap.fill(line, fits) for line in lines))
    return figure


#: TeX a figure's labels use, in the plain characters alt text needs (a screen reader reads no TeX).
_TEX_WORDS = {r"\tilde": "", r"\Omega": "Ω", r"\sum": "sum ", r"\geq": "≥", r"\leq": "≤", r"\times": "×",
              r"\alpha": "α", r"\lambda": "λ", r"\,": " "}


def plain_text(text: str) -> str:
    """A label without its TeX: ``$\\tilde\\Omega_n^{norm}$`` -> ``Ω_n^norm`` (for alt text)."""
    import re

    text = str(text)
    for tex, plain in _TEX_WORDS.items():
        text = text.replace(tex, plain)
    return re.sub(r"[${}]", "", text).replace("\\", "")


def drawn_text_sizes(figure: "Figure", **savefig: Any) -> tuple[bytes, list[tuple[float, str]]]:
    """The figure as PNG bytes (``savefig`` keywords, e.g. ``bbox_inches="tight"``) and every text
    drawn in it with its size in points, as the renderer drew them — tick labels of hidden axes,
    empty strings and invisible artists do not count because they are never drawn."""
    import io

    from matplotlib.backends.backend_agg import RendererAgg

    drawn: list[tuple[float, str]] = []
    original = RendererAgg.draw_text

    def recording(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if str(s).strip():
            drawn.append((float(prop.get_size_in_points()), str(s)))
        return original(self, gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)

    buffer = io.BytesIO()
    RendererAgg.draw_text = recording
    try:
        figure.savefig(buffer, format="png", **savefig)
    finally:
        RendererAgg.draw_text = original
    return buffer.getvalue(), drawn


#: The width of the course's figures (inches): at the 100 dpi they are drawn at, about the width of
#: the book's text column (:data:`BOOK_COLUMN_PX`), so the book shows them unshrunk and their
#: 7-pt labels stay legible; a figure with more panels than fit side by side stacks them.
FIGURE_WIDTH = 6.8
#: The smallest figure text the book accepts, in CSS points (1 pt = 4/3 CSS px) as a reader
#: sees it at the book's page width: the small end of what figure guidelines accept for labels
#: at final size (the book's body text is 12 pt). tests/test_browser.py holds every figure of
#: the built book to it.
MIN_TEXT_PT = 7.0
#: The width (CSS px) the book gives a cell's image at the browser check's 1280-px viewport
#: (measured: an image wider than this is shrunk to it).
BOOK_COLUMN_PX = 688


def smallest_text_as_shown(figure: "Figure", column_px: float = BOOK_COLUMN_PX) -> tuple[float, str]:
    """The smallest text of ``figure`` in CSS points as the book shows it: drawn at the
    figure's dpi (s pt is s·dpi/72 image pixels), then shrunk to ``column_px`` when the image is
    wider — s · dpi/96 · min(1, column / image width). Returns (points, the text)."""
    import io

    from PIL import Image

    png, drawn = drawn_text_sizes(wrap_wide_titles(figure), dpi=figure.dpi, bbox_inches="tight")
    if not drawn:
        return float("inf"), ""
    width = Image.open(io.BytesIO(png)).width
    size, text = min(drawn)
    return size * figure.dpi / 96 * min(1.0, column_px / width), text


def figure_html(figure: "Figure") -> str:
    """How the course shows a figure in a notebook and the book: an ``<img>`` (the PNG inline)
    with the figure's :func:`alt_text`, and the size of its smallest text in points and the
    resolution it was drawn at (``data-smallest-text-pt``, ``data-dpi``), from which the book's
    browser check (tests/test_browser.py) computes the text size a reader sees at the page's
    width. :func:`finefcace.course.session.start` registers it for every matplotlib figure.
    Book: every chapter's figures."""
    import base64
    import html

    dpi = float(figure.dpi)
    png, drawn = drawn_text_sizes(wrap_wide_titles(figure), dpi=dpi, bbox_inches="tight")
    size, text = min(drawn) if drawn else (0.0, "")
    return (f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}" '
            f'alt="{html.escape(alt_text(figure))}" data-smallest-text-pt="{size:g}" '
            f'data-smallest-text="{html.escape(text[:60])}" data-dpi="{dpi:g}" '
            'style="max-width: 100%; height: auto">')


def _palette(n: int) -> list:
    import seaborn as sns

    return sns.color_palette("colorblind", max(n, 1))


def _to_numpy(array: Any) -> np.ndarray:
    if hasattr(array, "detach"):  # a torch tensor, without importing torch here
        array = array.detach().cpu().numpy()
    return np.asarray(array, dtype=float)


# ------------------------------------------------------------------------------------------
# per-group accuracy with intervals


def _reports(reports: pd.DataFrame | Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    if isinstance(reports, pd.DataFrame):
        return {"model": reports}
    if isinstance(reports, Mapping) and reports:
        return {str(k): v for k, v in reports.items()}
    raise TypeError("reports must be a metrics report or a dict label -> report, e.g. "
                    "{'Baseline': baseline_report, 'FineFACE': finefcace_report}")


def group_accuracy_bars(reports: pd.DataFrame | Mapping[str, pd.DataFrame], *, metric: str = "accuracy",
                        attribute: str | None = None, title: str | None = None) -> "Figure":
    """Per-group accuracy (or TPR/FPR) of one or more models, each with its bootstrap interval.

    ``reports``: a ``gender_task_report`` / ``attribute_task_report`` or a dict label -> report
    (e.g. baseline vs FineFACE). One row per group, one marker per model with its interval as an
    error bar, and each model's overall value as a dashed line: points with interval bars rather
    than filled bars, because accuracies near 90% drawn as bars from 0 hide the gaps that matter.
    Attribute reports need ``attribute`` (default: the mean over attributes).
    Book: ``notebooks/05_evaluation.ipynb``.
    """
    items = _reports(reports)
    tidy = []
    for label, report in items.items():
        rows = report
        if "attribute" in report.columns:
            wanted = attribute or ("mean" if "mean" in set(report["attribute"]) else report["attribute"].iloc[0])
            rows = report[report["attribute"] == wanted]
            if rows.empty:
                raise ValueError(f"report {label!r} has no attribute {wanted!r}; it has "
                                 f"{sorted(set(report['attribute']))}")
        groups = rows[(rows["metric"] == metric) & (rows["group"] != "all")]
        if groups.empty:
            raise ValueError(f"report {label!r} has no per-group {metric!r} rows (metrics: "
                             f"{sorted(set(rows['metric']))})")
        overall_metric = "overall_accuracy" if metric == "accuracy" and "attribute" not in report.columns else metric
        overall = rows[(rows["metric"] == overall_metric) & (rows["group"] == "all")]
        tidy.append((label, groups.reset_index(drop=True), float(overall["value"].iloc[0]) if len(overall) else np.nan))
    order = list(dict.fromkeys(g for _, groups, _ in tidy for g in groups["group"]))
    colors = _palette(len(tidy))
    with _plotting():
        fig = new_figure(7.0, 1.3 + 0.3 * len(order) * max(1, min(len(tidy), 3)) ** 0.5)
        ax = fig.add_subplot()
        step = 0.7 / max(len(tidy), 1)
        for k, (label, groups, overall) in enumerate(tidy):
            position = {g: i for i, g in enumerate(order)}
            y = np.array([position[g] for g in groups["group"]]) - 0.35 + step * (k + 0.5)
            value = groups["value"].to_numpy(dtype=float)
            low = groups["ci_low"].to_numpy(dtype=float) if "ci_low" in groups else np.full_like(value, np.nan)
            high = groups["ci_high"].to_numpy(dtype=float) if "ci_high" in groups else np.full_like(value, np.nan)
            err = np.vstack([np.where(np.isnan(low), 0, value - low), np.where(np.isnan(high), 0, high - value)])
            ax.errorbar(value, y, xerr=err, fmt="o", color=colors[k], ecolor=colors[k], elinewidth=1.5,
                        capsize=2.5, markersize=5, label=label)
            if not np.isnan(overall):
                ax.axvline(overall, color=colors[k], linestyle="--", linewidth=1, alpha=0.8)
        ax.set_yticks(range(len(order)), order)
        ax.invert_yaxis()
        ax.set_ylim(len(order) - 0.5, -0.5)
        name = {"accuracy": "accuracy", "tpr": "TPR", "fpr": "FPR"}.get(metric, metric)
        ax.set_xlabel(f"{name} (%); dashed: overall; bars: bootstrap interval")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(loc="best", fontsize="small", frameon=False)
        ax.set_title(title or f"Per-group {name}")
    return fig


# ------------------------------------------------------------------------------------------
# intersectional groups: per-cell value and interval width


def _cell_label(level: Any) -> str:
    return " / ".join(map(str, level)) if isinstance(level, tuple) else str(level)


def intersectional_heatmap(report: pd.DataFrame, *, metric: str = "accuracy", title: str | None = None,
                           cmap: str = "viridis") -> "Figure":
    """Heatmaps of one per-cell metric of an intersectional report and of its interval width.

    ``report``: :func:`finefcace.metrics.intersectional_report` (e.g. race x gender). Left: the
    metric in every crossed cell (rows: the first crossed column, columns: the others), each
    cell annotated with its value and its sample count n; right: the width of its bootstrap
    interval (ci_high - ci_low, percentage points), the number to read before comparing two
    cells. Cells flagged ``small`` (fewer than the report's ``min_group_size`` samples) are
    hatched and their n is starred; empty cells are blank. Book: ``notebooks/05_evaluation.ipynb``.
    """
    from finefcace.metrics import intersectional_grid

    values = intersectional_grid(report, metric, "value")
    widths = intersectional_grid(report, metric, "ci_width").reindex_like(values)
    counts = intersectional_grid(report, metric, "n").reindex_like(values)
    small = intersectional_grid(report, metric, "small").reindex_like(values).fillna(False).astype(bool)
    columns = list(report.attrs["group_columns"])
    name = {"accuracy": "accuracy", "tpr": "TPR", "fpr": "FPR"}.get(metric, metric)
    rows, cols = values.shape
    with _plotting():
        fig = new_figure(min(FIGURE_WIDTH, 2.4 + 1.5 * cols * 2), 1.5 + 0.55 * rows)
        axes = fig.subplots(1, 2, squeeze=True)
        panels = ((axes[0], values, f"{name} (%)", cmap), (axes[1], widths, "interval width (points)", "magma_r"))
        for ax, grid, label, colors in panels:
            data = np.ma.masked_invalid(grid.to_numpy(dtype=float))
            image = ax.imshow(data, cmap=colors, aspect="auto")
            for i in range(rows):
                for j in range(cols):
                    n = counts.iat[i, j]
                    count = f"n={int(n) if not pd.isna(n) else 0}{'*' if small.iat[i, j] else ''}"
                    if np.ma.is_masked(data[i, j]):
                        ax.text(j, i, f"empty\n{count}", ha="center", va="center", fontsize=7, color="0.4")
                        continue
                    shade = image.cmap(image.norm(data[i, j]))
                    ink = "black" if 0.299 * shade[0] + 0.587 * shade[1] + 0.114 * shade[2] > 0.5 else "white"
                    ax.text(j, i, f"{data[i, j]:.1f}\n{count}", ha="center", va="center", fontsize=7, color=ink)
                    if small.iat[i, j]:
                        ax.add_patch(_hatch(j, i))
            ax.set_xticks(range(cols), [_cell_label(c) for c in grid.columns], fontsize=8)
            ax.set_yticks(range(rows), [_cell_label(r) for r in grid.index], fontsize=8)
            ax.set_xlabel(" / ".join(columns[1:]) if len(columns) > 1 else "", fontsize=8)
            ax.set_ylabel(columns[0], fontsize=8)
            bar = fig.colorbar(image, ax=ax, shrink=0.9, pad=0.02)
            bar.set_label(label, fontsize=8)
            bar.ax.tick_params(labelsize=7)
        axes[0].set_title(f"{name} per cell", fontsize=9)
        axes[1].set_title("width of its bootstrap interval", fontsize=9)
        minimum = report.attrs.get("min_group_size")
        fig.suptitle(title or f"Intersectional {name}: {' x '.join(columns)}"
                     + (f" (hatched, n*: fewer than {minimum} samples)" if small.to_numpy().any() else ""),
                     fontsize=10)
    return fig


def _hatch(x: float, y: float) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, hatch="///", edgecolor="0.5", linewidth=0)


# ------------------------------------------------------------------------------------------
# attention overlays (Fig. 1 and Fig. 3)


def _images_hwc(images: Any, mean: Sequence[float] | None, std: Sequence[float] | None) -> np.ndarray:
    array = _to_numpy(images)
    if array.ndim == 2:
        array = array[None, ..., None]
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), (B, H, W, C) or one image; got shape {array.shape}")
    if array.shape[1] in (1, 3) and array.shape[-1] not in (1, 3):
        array = array.transpose(0, 2, 3, 1)
    if mean is not None and std is not None:
        array = array * np.asarray(std, dtype=float) + np.asarray(mean, dtype=float)
    elif array.min() < 0 or array.max() > 1:  # unknown normalisation: rescale each image for display
        low = array.min(axis=(1, 2, 3), keepdims=True)
        high = array.max(axis=(1, 2, 3), keepdims=True)
        array = (array - low) / np.where(high > low, high - low, 1.0)
    array = np.clip(array, 0.0, 1.0)
    return np.repeat(array, 3, axis=-1) if array.shape[-1] == 1 else array


def _maps(maps: Any, batch: int, what: str) -> np.ndarray:
    array = _to_numpy(maps)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[0] != batch:
        raise ValueError(f"{what} must be (B, h, w) with B = {batch} images; got shape {array.shape}")
    # min-max normalisation of each map, Eq. (4)
    low = array.min(axis=(1, 2), keepdims=True)
    high = array.max(axis=(1, 2), keepdims=True)
    return (array - low) / np.where(high > low, high - low, 1.0)


def attention_overlays(images: Any, expert_maps: Sequence[Any], overall_map: Any, baseline_map: Any = None, *,
                       mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                       row_labels: Sequence[str] | None = None, alpha: float = 0.5, cmap: str = ATTENTION_CMAP,
                       panel_size: float = 1.6) -> "Figure":
    """Attention maps over the input, as in the paper's Fig. 1 and Fig. 3.

    Columns: the input, each expert's normalised map (Omega~_n^norm, Eq. 4), the overall map
    (Omega~_oval^norm) and, when given, the baseline's CAM (Omega~_ori^norm). One row per image.
    ``images``: (B, C, H, W) or (B, H, W, C) array/tensor (``mean``/``std`` undo the input
    normalisation); maps: (B, h, w) arrays/tensors at any resolution, min-max normalised here
    and stretched bilinearly over the image. Red = most activated. Pass maps already computed
    (``finefcace.attention.class_activation_maps``); nothing here runs a model.
    Book: ``notebooks/03_attention_crop.ipynb``.
    """
    pictures = _images_hwc(images, mean, std)
    batch = pictures.shape[0]
    columns = [("input", None)]
    columns += [(f"expert {n + 1}\n" + rf"$\tilde\Omega_{n + 1}^{{norm}}$", _maps(m, batch, f"expert_maps[{n}]"))
                for n, m in enumerate(expert_maps)]
    columns.append(("overall\n" + r"$\tilde\Omega_{oval}^{norm}$", _maps(overall_map, batch, "overall_map")))
    if baseline_map is not None:
        columns.append(("baseline\n" + r"$\tilde\Omega_{ori}^{norm}$", _maps(baseline_map, batch, "baseline_map")))
    if row_labels is not None and len(row_labels) != batch:
        raise ValueError(f"row_labels has {len(row_labels)} entries for {batch} images")
    label_room = 1.3 if row_labels is not None else 0.0  # the row labels sit left of the first column
    panel_size = min(panel_size, (FIGURE_WIDTH - 0.8 - label_room) / len(columns))
    with _plotting():
        fig = new_figure(panel_size * len(columns) + 0.8 + label_room, panel_size * batch + 0.7)
        axes = fig.subplots(batch, len(columns), squeeze=False)
        height, width = pictures.shape[1:3]
        image = None
        for i in range(batch):
            for j, (title, maps) in enumerate(columns):
                ax = axes[i, j]
                ax.imshow(pictures[i], extent=(0, width, height, 0))
                if maps is not None:
                    image = ax.imshow(maps[i], cmap=cmap, alpha=alpha, vmin=0, vmax=1, interpolation="bilinear",
                                      extent=(0, width, height, 0))
                ax.set_xticks([])
                ax.set_yticks([])
                if i == 0:
                    ax.set_title(title, fontsize=8)
                if j == 0 and row_labels is not None:  # horizontal, beside the row: long labels stay legible
                    ax.set_ylabel(row_labels[i], fontsize=7, rotation=0, ha="right", va="center", labelpad=4)
        if image is not None:
            colorbar = fig.colorbar(image, ax=axes, shrink=0.8, pad=0.01, fraction=0.03)
            colorbar.set_label("normalised activation", fontsize=8)
            colorbar.ax.tick_params(labelsize=7)
    shown = ", ".join(["each expert's normalised attention map", "the overall map"]
                      + (["the baseline's CAM"] if baseline_map is not None else []))
    return describe(fig, f"{batch} image{'s' if batch != 1 else ''}, one a row, under {shown}, each drawn over the "
                         "image (bright: most activated, on a 0-1 scale)"
                         + (f"; rows: {'; '.join(' '.join(str(label).split()) for label in row_labels)}"
                            if row_labels is not None else ""))


# ------------------------------------------------------------------------------------------
# Fig. 4: decomposition of the change from a baseline


def _metrics_by_method(table: pd.DataFrame) -> pd.DataFrame:
    """Rows = (source, method), columns = attribute metric names, from paper layouts,
    side_by_side or a plain frame (metric names or the paper's labels, either orientation).
    A table without sources gets the source ``""``."""
    def canonical(labels: Sequence[Any]) -> dict[Any, str]:
        found = {}
        for label in labels:
            for name, aliases in _ATTRIBUTE_COLUMNS.items():
                if label in aliases:
                    found[label] = name
        return found

    frame = table.copy()
    if len(canonical(list(frame.index))) > len(canonical(list(frame.columns))):
        frame = frame.T
    frame = frame.rename(columns=canonical(list(frame.columns)))
    missing = [m for m in _ATTRIBUTE_COLUMNS if m not in frame.columns]
    if missing:
        raise ValueError(f"the table lacks {missing}: give rows = methods and the columns of Table 6/7 "
                         "(e.g. paper_results.side_by_side(report, 'table7', label=...))")
    if isinstance(frame.index, pd.MultiIndex):
        rows = [(str(source), str(method)) for source, method in frame.index]
    else:
        rows = [("", str(method)) for method in frame.index]
    frame.index = pd.MultiIndex.from_tuples(rows, names=["source", "method"])
    return frame.loc[:, list(_ATTRIBUTE_COLUMNS)].astype(float)


def _changes_from_baselines(frame: pd.DataFrame, baseline: str | Sequence[str]):
    """Each source's methods minus that source's own baseline row (the paper's methods against
    the paper's baseline, ours against ours). Returns the changes, the absolute values (both
    rows = displayed method names) and each source's baseline row."""
    candidates = [baseline] if isinstance(baseline, str) else list(baseline)
    changes, absolute, baselines = [], [], {}
    for source in dict.fromkeys(frame.index.get_level_values("source")):
        methods = frame.xs(source, level="source")
        found = [name for name in candidates if name in methods.index]
        if not found:
            where = f"source {source!r}" if source else "the table"
            raise ValueError(f"no baseline {candidates} among the rows of {where}: {list(methods.index)}; "
                             "pass baseline= the name of the reference method (several names: one per source)")
        base = methods.loc[found[0]]
        others = methods.drop(index=found[0])
        shown = [name if not source or source.startswith("paper") else f"{name} ({source})" for name in others.index]
        changes.append((others - base).set_axis(shown))
        absolute.append(others.set_axis(shown))
        baselines[source or "table"] = base
    return pd.concat(changes), pd.concat(absolute), baselines


def fairness_decomposition(table: pd.DataFrame, baseline: str | Sequence[str], *,
                           highlight: str | Sequence[str] | None = None, title: str | None = None) -> "Figure":
    """The paper's Fig. 4: each method's change from its baseline (mean over the attributes).

    Top: change in the minimum group accuracy. Below, top to bottom: change in accuracy
    (overall, best group, worst group), change in TPR (overall, best, worst), and DEO/DEOdds
    (absolute values; lower is fairer; dashed: each source's baseline). ``table``: rows =
    methods, columns = the Table 6/7 metrics (``paper_results.paper_layout('table7')`` or
    ``side_by_side(..., 'table7', label=...)`` work as they are). With several sources (the
    paper's rows beside ours), each source's methods are compared with *that source's*
    baseline — never ours with the paper's — so ``baseline`` may name one method per source,
    e.g. ``("Baseline single task", "Baseline")``. ``highlight``: method name(s) drawn in bold.
    Book: ``notebooks/05_evaluation.ipynb``.
    """
    changes, absolute, baselines = _changes_from_baselines(_metrics_by_method(table), baseline)
    highlighted = {highlight} if isinstance(highlight, str) else set(highlight or ())
    names = list(changes.index)
    colors = _palette(3)
    with _plotting():
        # one column of panels, the book column's width: the change in the worst group's accuracy
        # on top, then accuracy, TPR and DEO/DEOdds
        top = max(1.6, 0.3 * len(names) + 0.8)
        fig = new_figure(FIGURE_WIDTH, top + 3 * 2.3 + 1.2)
        grid = fig.add_gridspec(4, 1, height_ratios=[top, 2.0, 2.0, 2.6])
        left = fig.add_subplot(grid[0, 0])
        change = changes["min_group_accuracy"]
        left.barh(names, change, height=min(0.8, 0.25 * len(names)),
                  color=[colors[2] if v >= 0 else colors[1] for v in change])
        left.axvline(0, color="black", linewidth=0.8)
        left.set_xlabel("change in min. group accuracy (points)")
        left.invert_yaxis()
        panels = [
            (("accuracy", "max_group_accuracy", "min_group_accuracy"), "change in accuracy (points)"),
            (("tpr", "max_group_tpr", "min_group_tpr"), "change in TPR (points)"),
        ]
        position = np.arange(len(names))
        width = 0.27
        for row, (metrics, label) in enumerate(panels):
            ax = fig.add_subplot(grid[row + 1, 0])
            for k, (metric, part) in enumerate(zip(metrics, ("overall", "best group", "worst group"))):
                ax.bar(position + (k - 1) * width, changes[metric], width, label=part, color=colors[k])
            ax.axhline(0, color="black", linewidth=0.8)
            ax.set_ylabel(label, fontsize=9)
            ax.set_xticks(position, [""] * len(names))
            ax.set_xlim(-0.6, len(names) - 0.4)
            ax.legend(fontsize="x-small", ncols=3, frameon=False, loc="lower left", bbox_to_anchor=(0, 1))
            ax.grid(axis="y", alpha=0.3)
        ax = fig.add_subplot(grid[3, 0])
        for k, (metric, label) in enumerate((("deo", "DEO"), ("deodds", "DEOdds"))):
            ax.bar(position + (k - 0.5) * 0.38, absolute[metric], 0.38, label=label, color=colors[k])
        for (source, base), style in zip(baselines.items(), ("--", ":", "-.")):
            for k, metric in enumerate(("deo", "deodds")):
                ax.axhline(base[metric], color=colors[k], linestyle=style, linewidth=1,
                           label=f"baseline ({source})" if k == 0 and len(baselines) > 1 else None)
        ax.set_ylabel("DEO / DEOdds (points)\n lines: baselines", fontsize=9)
        ax.set_xticks(position, names, rotation=35, ha="right", fontsize=8)
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.legend(fontsize="x-small", ncols=2, frameon=False, loc="lower left", bbox_to_anchor=(0, 1))
        ax.grid(axis="y", alpha=0.3)
        for axis in fig.axes:
            for text in list(axis.get_xticklabels()) + list(axis.get_yticklabels()):
                if text.get_text() in highlighted:
                    text.set_fontweight("bold")
        default = ("Change from each source's own baseline" if len(baselines) > 1 else "Change from the baseline")
        fig.suptitle(title or f"{default} (mean over attributes)", fontsize=11)
    return fig


# ------------------------------------------------------------------------------------------
# accuracy vs bias (Pareto) scatter


#: Group measures where a higher value is fairer (the worst group's accuracy or TPR); for every
#: other measure (DoB, Max/Min, DEO, DEOdds) lower is fairer.
HIGHER_IS_FAIRER = frozenset({"min_group_accuracy", "min_group_tpr"})
_FAIRNESS_LABELS = {"degree_of_bias": "Degree of Bias (DoB, points)", "deo": "DEO (points)",
                    "deodds": "DEOdds (points)", "max_min_ratio": "Max/Min accuracy ratio",
                    "min_group_accuracy": "worst-group accuracy (%)", "min_group_tpr": "worst-group TPR (%)"}


def _fairness_axis_label(metric: str) -> str:
    direction = "higher is fairer" if metric in HIGHER_IS_FAIRER else "lower is fairer"
    return f"{_FAIRNESS_LABELS.get(metric, metric)}  ({direction})"


def _pareto_front(x: np.ndarray, y: np.ndarray, lower_x_better: bool = True) -> np.ndarray:
    """Indices of the points no other point beats on both (better x and higher y), by x."""
    if not lower_x_better:
        return _pareto_front(-x, y)
    order = np.lexsort((-y, x))
    front, best = [], -np.inf
    for i in order:
        if y[i] > best:
            front.append(i)
            best = y[i]
    return np.array(front, dtype=int)


def _mark_pareto_front(ax: Any, x: np.ndarray, y: np.ndarray, metric: str, size: float, label: str) -> None:
    """Ring the Pareto-optimal points (accuracy ``y`` against fairness ``x``) and join them by a
    dotted step line."""
    front = _pareto_front(x, y, metric not in HIGHER_IS_FAIRER)
    ax.scatter(x[front], y[front], s=size, facecolors="none", edgecolors="black", linewidths=1.0, zorder=3, label=label)
    if len(front) > 1:
        ax.step(x[front], y[front], where="post", color="grey", linestyle=":", linewidth=1.2, zorder=0)


def _better_corner(ax: Any, metric: str) -> None:
    """Say in the panel which way is better: up (accuracy) and left (less bias) — or right for
    a measure where higher is fairer (:data:`HIGHER_IS_FAIRER`)."""
    if metric in HIGHER_IS_FAIRER:
        text, x, ha = "better: fairer, higher accuracy \u2197", 0.985, "right"
    else:
        text, x, ha = "\u2196 better: less bias, higher accuracy", 0.015, "left"
    ax.text(x, 0.015, text, transform=ax.transAxes, fontsize=7.5, color="0.25", ha=ha, va="bottom",
            bbox={"boxstyle": "round,pad=0.25", "facecolor": "white", "edgecolor": "0.7", "alpha": 0.85})


def accuracy_fairness_scatter(points: pd.DataFrame, *, title: str | None = None, pareto: bool = True,
                              ax: Any = None) -> "Figure":
    """Accuracy (up is better) against a fairness measure for several methods: a bias measure
    (DoB, Max/Min, DEO, DEOdds: left is better) or the worst group's accuracy or TPR
    (:data:`HIGHER_IS_FAIRER`: right is better).

    ``points``: ``paper_results.tradeoff_points(...)`` (or several concatenated): columns
    source, method, accuracy, fairness, fairness_metric, optional *_low/*_high interval bounds
    drawn as error bars, and optional ``groups`` — the group set the measure is computed over
    ("7 race groups", "8 tone × gender groups"). A DoB over 7 groups is not comparable with one
    over 8 (``book/results.md``), so each group set gets a panel of its own, with its own Pareto
    front (grey step line); accuracy is shared. Marker and colour by source (paper rows vs
    ours); a note marks the better corner. ``ax``: draw into these axes (a panel of a larger
    figure; one group set only) instead of a new figure. Book: ``notebooks/05_evaluation.ipynb``,
    ``notebooks/07_mitigation_methods.ipynb``.
    """
    needed = {"source", "method", "accuracy", "fairness"}
    if not needed <= set(points.columns):
        raise ValueError(f"points need columns {sorted(needed)}, got {list(points.columns)}; "
                         "use paper_results.tradeoff_points(...)")
    metric = str(points["fairness_metric"].iloc[0]) if "fairness_metric" in points else "bias"
    group_sets = points["groups"].fillna("") if "groups" in points else pd.Series("", index=points.index)
    panels = list(dict.fromkeys(group_sets))
    if ax is not None and len(panels) > 1:
        raise ValueError(f"the points hold {len(panels)} group sets ({panels}), which need a panel each; "
                         "pass one group set's points with ax=, or leave ax out")
    sources = list(dict.fromkeys(points["source"]))
    colors = _palette(len(sources))
    markers = ["o", "s", "D", "^", "v", "P", "X", "*"]
    with _plotting():
        if ax is None:
            fig = new_figure(FIGURE_WIDTH, 0.6 + 4.4 * len(panels))  # panels stacked: the column's width each
            axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
        else:
            fig, axes = ax.figure, [ax]
        for panel, group_set in zip(axes, panels):
            in_panel = points[group_sets == group_set]
            for k, source in enumerate(sources):
                part = in_panel[in_panel["source"] == source]
                if part.empty:
                    continue
                x, y = part["fairness"].to_numpy(float), part["accuracy"].to_numpy(float)

                def err(column: str, centre: np.ndarray) -> np.ndarray | None:
                    low, high = part.get(f"{column}_low"), part.get(f"{column}_high")
                    if low is None or high is None or np.isnan(low.to_numpy(float)).all():
                        return None
                    low, high = low.to_numpy(float), high.to_numpy(float)
                    return np.vstack([np.nan_to_num(centre - low), np.nan_to_num(high - centre)]).clip(min=0)

                panel.errorbar(x, y, xerr=err("fairness", x), yerr=err("accuracy", y), fmt=markers[k % len(markers)],
                            color=colors[k], markersize=7, capsize=2, elinewidth=1, label=source)
                offset = (6, 4) if k % 2 == 0 else (6, -11)  # sources alternate above/below: fewer overlaps
                for xi, yi, name in zip(x, y, part["method"]):
                    label = panel.annotate(str(name), (xi, yi), textcoords="offset points", xytext=offset,
                                           fontsize=8, color=colors[k], gid=POINT_LABEL)
                    label.set_in_layout(False)
            if pareto and len(in_panel) > 1:
                x, y = in_panel["fairness"].to_numpy(float), in_panel["accuracy"].to_numpy(float)
                keep = ~(np.isnan(x) | np.isnan(y))
                _mark_pareto_front(panel, x[keep], y[keep], metric, 190, "Pareto-optimal in this panel")
            label = _fairness_axis_label(metric)
            if group_set:
                label = label.replace("  (", f" over {group_set}\n(", 1)
            panel.set_xlabel(label, fontsize=9)
            panel.set_ylabel("accuracy (%)  (higher is better)", fontsize=9)
            panel.grid(alpha=0.3)
            panel.legend(fontsize="x-small", frameon=False, loc="best")
            _better_corner(panel, metric)
        default = "Accuracy vs. bias (better: upper left)" if metric not in HIGHER_IS_FAIRER else \
            "Accuracy vs. fairness (better: upper right)"
        if len(panels) > 1:
            default += " — panels with different groups are not comparable"
        if ax is not None:
            ax.set_title(title or default, fontsize=10)  # the one panel, in the caller's figure
        else:
            fig.suptitle(title or default, fontsize=10)
            separate_point_labels(fig)  # a figure with panels from several calls: its maker calls it
    return fig


#: The ``gid`` of the labels the scatter helpers write beside their points (:func:`separate_point_labels`).
POINT_LABEL = "finefcace-point-label"
# Where a point's label may go, in points from the point (x, y, alignment), tried in this order.
_LABEL_PLACES = [(6, 4, "left"), (6, -11, "left"), (-6, 4, "right"), (-6, -11, "right"), (6, 13, "left"),
                 (-6, 13, "right"), (6, -20, "left"), (-6, -20, "right"), (0, 22, "center"), (0, -29, "center")]


def separate_point_labels(figure: "Figure") -> "Figure":
    """Move each point label of the scatter helpers (``gid`` :data:`POINT_LABEL`) to the first of a
    few places around its point where it overlaps no label placed before it and no other point,
    and stays inside its panel — names printed over each other are unreadable. Lays the figure
    out first (labels do not take part in the layout). Returns the figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = figure.canvas if hasattr(figure.canvas, "get_renderer") else FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    for ax in figure.get_axes():
        labels = [t for t in ax.texts if t.get_gid() == POINT_LABEL]
        if not labels:
            continue
        frame = ax.get_window_extent(renderer)
        points = [ax.transData.transform(label.xy) for label in labels]
        placed: list[Any] = []
        for label, point in zip(labels, points):
            best = None
            for dx, dy, ha in _LABEL_PLACES:
                label.xyann = (dx, dy)
                label.set_horizontalalignment(ha)
                box = label.get_window_extent(renderer).expanded(1.04, 1.1)
                inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
                clashes = sum(box.overlaps(other) for other in placed) + sum(
                    box.contains(*other) for other in points if other is not point)
                score = clashes + (0 if inside else 0.5)
                if best is None or score < best[0]:
                    best = (score, dx, dy, ha)
                if score == 0:
                    break
            _, dx, dy, ha = best
            label.xyann = (dx, dy)
            label.set_horizontalalignment(ha)
            placed.append(label.get_window_extent(renderer))
    return figure


def method_tradeoffs(runs: pd.DataFrame, *, fairness_metrics: Sequence[str] = ("degree_of_bias", "min_group_accuracy"),
                     accuracy_metric: str = "overall_accuracy", protected: Mapping[str, bool] | None = None,
                     title: str | None = None) -> "Figure":
    """Several methods trained for several seeds: accuracy against each fairness measure, one
    panel per measure. Each run is a small point with its bootstrap interval (both axes); the
    mean over seeds a large marker — a triangle for a method that trains with protected
    labels (``protected``: method -> bool), a circle otherwise; the Pareto front of the means
    (no other mean better on both axes) is ringed and joined by a dotted step line.

    ``runs``: tidy per-run summaries with columns method, seed, metric, value, ci_low, ci_high
    (e.g. a study's report rows over all groups: :mod:`finefcace.training.study`), holding
    ``accuracy_metric`` and every fairness metric. Book: ``notebooks/07_mitigation_methods.ipynb``.
    """
    needed = {"method", "seed", "metric", "value"}
    if not needed <= set(runs.columns):
        raise ValueError(f"runs need columns {sorted(needed)}, got {list(runs.columns)}")
    missing = [m for m in (accuracy_metric, *fairness_metrics) if m not in set(runs["metric"])]
    if missing:
        raise ValueError(f"runs hold no {missing} rows; metrics present: {sorted(set(runs['metric']))}")
    methods = list(dict.fromkeys(runs["method"]))
    protected = dict(protected or {})
    colors = dict(zip(methods, _palette(len(methods))))

    def wide(metric: str) -> pd.DataFrame:
        part = runs[runs["metric"] == metric].set_index(["method", "seed"])
        return part.reindex(columns=["value", "ci_low", "ci_high"])

    accuracy = wide(accuracy_metric)
    with _plotting():
        fig = new_figure(FIGURE_WIDTH, 1.2 + 4.2 * len(fairness_metrics))  # panels stacked
        axes = fig.subplots(len(fairness_metrics), 1, squeeze=False)[:, 0]
        for ax, metric in zip(axes, fairness_metrics):
            fairness = wide(metric)
            means = []
            for method in methods:
                acc, fair = accuracy.loc[method], fairness.loc[method].reindex(accuracy.loc[method].index)
                color = colors[method]
                ax.errorbar(fair["value"], acc["value"],
                            xerr=np.vstack([fair["value"] - fair["ci_low"], fair["ci_high"] - fair["value"]]).clip(min=0),
                            yerr=np.vstack([acc["value"] - acc["ci_low"], acc["ci_high"] - acc["value"]]).clip(min=0),
                            fmt="o", markersize=3.5, color=color, alpha=0.35, elinewidth=0.8, capsize=0)
                mean_x, mean_y = float(np.nanmean(fair["value"])), float(np.nanmean(acc["value"]))
                means.append((mean_x, mean_y))
                ax.plot([mean_x], [mean_y], marker="^" if protected.get(method) else "o", markersize=10,
                        color=color, markeredgecolor="black", markeredgewidth=0.6, linestyle="none", label=method)
            x, y = np.array(means).T
            keep = ~(np.isnan(x) | np.isnan(y))
            _mark_pareto_front(ax, x[keep], y[keep], metric, 300, "Pareto front of the means")
            ax.set_xlabel(_fairness_axis_label(metric))
            ax.set_ylabel("overall accuracy (%)  (higher is better)")
            ax.grid(alpha=0.3)
        handles, labels = axes[0].get_legend_handles_labels()
        from matplotlib.lines import Line2D

        handles += [Line2D([], [], marker="^", color="grey", linestyle="none", markersize=8),
                    Line2D([], [], marker="o", color="grey", linestyle="none", markersize=8),
                    Line2D([], [], marker="o", color="grey", linestyle="none", markersize=3.5, alpha=0.5)]
        labels += ["mean over seeds: trains WITH protected labels", "mean over seeds: no protected labels",
                   "one run (seed), bootstrap 95 % interval"]
        fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize="small", frameon=False)
        fig.suptitle(title or "Accuracy vs. fairness, every method and seed")
    return fig


# ------------------------------------------------------------------------------------------
# training curves


def training_curves(history: pd.DataFrame | Sequence[Mapping[str, Any]], *, x: str | None = None,
                    title: str | None = None) -> "Figure":
    """Losses, accuracies and learning rate per epoch from a run's history.

    ``history``: a DataFrame or a list of dicts, one per epoch (or step), with ``epoch`` (or
    ``step``) and any numeric columns: those with "loss" in their name (e.g. one per training
    step kind as ``finefcace.training.trainer`` writes them, ``loss_expert_3`` ... ``loss_concat_raw``, and
    ``val_loss``) go in the first panel, those with "acc" in the second, the learning rates
    (``lr``, ``lr_<group>``, ``learning_rate``) in a third (log scale when they span decades;
    rates that are equal all along are one line, e.g. ``lr_backbone = lr_head``; whole-number
    epoch ticks).
    Panels with no column are left out; several rows per x value are averaged; a boolean
    ``best`` column (the trainer's: validation improved) marks the last best epoch with a
    dotted line. Book: ``notebooks/04_training.ipynb``.
    """
    frame = pd.DataFrame(list(history) if not isinstance(history, pd.DataFrame) else history)
    if frame.empty:
        raise ValueError("training_curves: the history is empty")
    x = x or next((c for c in ("epoch", "step", "iteration") if c in frame.columns), None)
    if x is None:
        frame = frame.reset_index().rename(columns={"index": "row"})
        x = "row"
    numeric = [c for c in frame.columns if c != x and pd.api.types.is_numeric_dtype(frame[c])
               and not pd.api.types.is_bool_dtype(frame[c])]
    groups = {
        "loss": [c for c in numeric if "loss" in c.lower()],
        "accuracy (%)": [c for c in numeric if "acc" in c.lower()],
        "learning rate": [c for c in numeric if c.lower() in ("lr", "learning_rate") or c.lower().startswith("lr_")
                          or c.lower().endswith("_lr")],
    }
    groups = {k: v for k, v in groups.items() if v}
    if not groups:
        raise ValueError(f"training_curves: no loss/acc/lr columns in the history (columns: {list(frame.columns)})")
    curves = frame.groupby(x, sort=True)[sorted({c for v in groups.values() for c in v})].mean()
    # Learning rates that coincide (the quick profile gives heads and backbone the same rate)
    # are one line, named for all of them, not two lines drawn on top of each other.
    if "learning rate" in groups:
        merged: dict[str, list[str]] = {}
        for column in groups["learning rate"]:
            same = next((kept for kept in merged if np.allclose(curves[kept], curves[column], equal_nan=True)), None)
            if same is None:
                merged[column] = [column]
            else:
                merged[same].append(column)
        names = {kept: " = ".join(columns) for kept, columns in merged.items()}
        curves = curves.rename(columns=names)
        groups["learning rate"] = list(names.values())
    best_x = None
    if "best" in frame.columns and pd.api.types.is_bool_dtype(frame["best"]) and frame["best"].any():
        best_x = frame.loc[frame["best"], x].iloc[-1]
    with _plotting():
        columns = min(2, len(groups))  # two panels a row: the figure fits the book's column
        rows = -(-len(groups) // columns)
        fig = new_figure(min(FIGURE_WIDTH, 3.4 * columns), 2.9 * rows + 0.4)
        grid = fig.subplots(rows, columns, squeeze=False)
        for spare in grid.flat[len(groups):]:
            spare.remove()
        axes = list(grid.flat)[:len(groups)]
        for ax, (label, columns) in zip(axes, groups.items()):
            colors = _palette(len(columns))
            for color, column in zip(colors, columns):
                values = curves[column]
                if label.startswith("accuracy") and values.max() <= 1.0:
                    values = 100.0 * values  # fractions -> percent
                ax.plot(curves.index, values, marker="o" if len(curves) <= 30 else None, markersize=3,
                        color=color, label=column, linestyle="--" if column.lower().startswith("val") else "-")
            if best_x is not None:
                ax.axvline(best_x, color="grey", linestyle=":", linewidth=1, label=f"best ({x} {best_x})")
            ax.set_xlabel(x)
            if x in ("epoch", "step", "iteration"):  # whole epochs, never "1.5"
                from matplotlib.ticker import MaxNLocator

                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel(label)
            if label == "learning rate":
                positive = curves[columns].to_numpy(float)
                if (positive > 0).all() and positive.max() / positive.min() > 20:
                    ax.set_yscale("log")  # schedules spanning decades
                else:
                    ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
            ax.grid(alpha=0.3)
            ax.legend(fontsize="x-small", frameon=False)
        if title:
            fig.suptitle(title, fontsize=11)
    panels = "; ".join(f"{label} ({', '.join(map(str, columns))})" for label, columns in groups.items())
    return describe(fig, (f"{title}. " if title else "") + f"Training curves against {x}, one panel per "
                         f"quantity: {panels}" + (f"; the best {x} ({best_x}) marked by a dotted line"
                                                  if best_x is not None else ""))
