"""Tests for finefcace/plots.py: every helper renders a small fixture with warnings turned into
errors, draws what it claims, and stays out of pyplot's figure registry."""

from __future__ import annotations

import io
import os
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from finefcace import plots
from finefcace.course import paper_results  # noqa: E402
from finefcace.metrics import attribute_task_report, gender_task_report  # noqa: E402

SAVE_DIR = os.environ.get("FINEFCACE_PLOTS_DIR")  # set to keep the PNGs for a look


#: Figures a test builds itself (a 10-inch figure to draw a panel into), not as a helper makes them.
NOT_A_COURSE_FIGURE = {"accuracy_fairness_scatter_worst_group"}


def _render(fig, name: str) -> bytes:
    """Draw the figure to PNG bytes with every warning an error (the `-W error` check), and check
    that the helper's figure is legible at the book's width: its smallest text, as the book
    shows it (shrunk to the column when wider), is at least plots.MIN_TEXT_PT."""
    if name not in NOT_A_COURSE_FIGURE:
        points, text = plots.smallest_text_as_shown(fig)
        assert points >= plots.MIN_TEXT_PT, f"{name}: {text!r} reads as {points:.1f} pt at the book's width"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=60)
    if SAVE_DIR:
        os.makedirs(SAVE_DIR, exist_ok=True)
        fig.savefig(os.path.join(SAVE_DIR, f"{name}.png"), dpi=100)
    data = buffer.getvalue()
    assert data.startswith(b"\x89PNG") and len(data) > 5000
    return data


def _strict(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return function(*args, **kwargs)


def _predictions(accuracy_of, n=1200, seed=0, races=("r1", "r2", "r3")):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"race": rng.choice(list(races), n), "gender": rng.choice(["Female", "Male"], n),
                          "y_true": rng.integers(0, 2, n)})
    accuracy = np.array([accuracy_of(r, g) for r, g in zip(frame["race"], frame["gender"])])
    frame["y_pred"] = np.where(rng.random(n) < accuracy, frame["y_true"], 1 - frame["y_true"])
    return frame


@pytest.fixture(scope="module")
def gender_reports():
    baseline = gender_task_report(_predictions(lambda r, g: 0.8 if g == "Female" else 0.95), n_bootstrap=100)
    finefcace = gender_task_report(_predictions(lambda r, g: 0.93, seed=1), n_bootstrap=100)
    return {"Baseline": baseline, "FineFACE": finefcace}


def test_no_figure_is_left_in_pyplot(gender_reports):
    before = plt.get_fignums()
    _strict(plots.group_accuracy_bars, gender_reports)
    assert plt.get_fignums() == before


def test_plotting_libraries_are_imported_lazily():
    # no module-level import of matplotlib/seaborn/fairlearn in the three modules: `import
    # finefcace` stays light and works where they are absent (the GPU machine has no fairlearn)
    import ast
    import inspect

    from finefcace import metrics

    for module in (plots, metrics, paper_results):
        tree = ast.parse(inspect.getsource(module))
        top_level = set()
        for node in tree.body:
            if isinstance(node, ast.Import):
                top_level |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                top_level.add(node.module.split(".")[0])
        assert not top_level & {"matplotlib", "seaborn", "fairlearn", "sklearn", "torch"}, module.__name__


def test_group_accuracy_bars(gender_reports):
    fig = _strict(plots.group_accuracy_bars, gender_reports, title="fixture")
    _render(fig, "group_accuracy_bars")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == list(gender_reports["Baseline"].query("metric == 'accuracy'")["group"])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Baseline", "FineFACE"]
    assert len(ax.containers) == 2  # one error-bar set per model
    overall = [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == "--"]
    expected = [r.query("metric == 'overall_accuracy'")["value"].item() for r in gender_reports.values()]
    assert overall == pytest.approx(expected)


def test_group_accuracy_bars_attribute_report_and_errors():
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame({"gender": rng.choice(["Female", "Male"], n), "y_true": rng.integers(0, 2, n),
                          "path": np.arange(n)})
    frame["y_pred"] = np.where(rng.random(n) < 0.85, frame["y_true"], 1 - frame["y_true"])
    report = attribute_task_report({"Smiling": frame, "Bangs": frame.assign(y_pred=frame["y_true"])}, n_bootstrap=50)
    fig = _strict(plots.group_accuracy_bars, report, metric="tpr", attribute="Smiling")
    _render(fig, "group_tpr_bars")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["Female", "Male"]
    with pytest.raises(ValueError, match="no attribute"):
        plots.group_accuracy_bars(report, attribute="Chubby")
    with pytest.raises(ValueError, match="per-group"):
        plots.group_accuracy_bars(report, metric="deo")


def test_attention_overlays_from_arrays_and_tensors():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.normal(size=(2, 3, 32, 32))).float()  # normalised-looking input
    expert_maps = [torch.rand(2, 8, 8), rng.random((2, 4, 4)), rng.random((2, 2, 2))]  # shallow -> deep
    overall = rng.random((2, 8, 8))
    baseline = torch.rand(2, 1, 2, 2)
    fig = _strict(plots.attention_overlays, images, expert_maps, overall, baseline,
                  mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), row_labels=["a", "b"])
    _render(fig, "attention_overlays")
    panels = [ax for ax in fig.axes if ax.get_title() or ax.get_images()]
    assert len([ax for ax in panels if ax.get_images()]) == 2 * 6
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0] == "input" and titles[1].startswith("expert 1") and titles[-1].startswith("baseline")
    overlay = fig.axes[1].get_images()[1].get_array()
    assert overlay.min() == pytest.approx(0.0) and overlay.max() == pytest.approx(1.0)  # Eq. (4)
    without_baseline = _strict(plots.attention_overlays, rng.random((32, 32, 3)), [rng.random((4, 4))],
                               rng.random((4, 4)))
    _render(without_baseline, "attention_overlays_single")
    with pytest.raises(ValueError, match="expert_maps\\[0\\]"):
        plots.attention_overlays(images, [rng.random((3, 4, 4))], overall)


def test_fairness_decomposition_from_the_papers_table7():
    table = paper_results.paper_layout("table7")
    fig = _strict(plots.fairness_decomposition, table, "Baseline single task", highlight="FineFACE [ours]")
    _render(fig, "fairness_decomposition")
    left = fig.axes[0]
    widths = [patch.get_width() for patch in left.patches]
    values = paper_results.paper_values("table7")
    mins = values[values["metric"] == "min_group_accuracy"].set_index("method")["value"]
    expected = (mins.drop("Baseline single task") - mins["Baseline single task"]).tolist()
    assert widths == pytest.approx(expected)
    assert len(fig.axes) == 4
    with pytest.raises(ValueError, match="baseline"):
        plots.fairness_decomposition(table, "nope")


def test_fairness_decomposition_with_our_rows():
    rng = np.random.default_rng(2)
    n = 600
    reports = {}
    for method, correct in (("Baseline", 0.8), ("FineFACE", 0.9)):
        tables = {}
        for attribute in ("Smiling", "Bangs"):
            truth = rng.integers(0, 2, n)
            tables[attribute] = pd.DataFrame({"gender": rng.choice(["Female", "Male"], n), "y_true": truth,
                                              "y_pred": np.where(rng.random(n) < correct, truth, 1 - truth)})
        reports[method] = attribute_task_report(tables, n_bootstrap=0)
    table = paper_results.side_by_side(reports, "table6", label="ours (fixture)")
    fig = _strict(plots.fairness_decomposition, table, "Baseline", highlight="FineFACE (ours (fixture))")
    _render(fig, "fairness_decomposition_ours")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["FineFACE", "FineFACE (ours (fixture))"]
    # each source against its own baseline: ours minus ours, never ours minus the paper's
    ours = table.loc["ours (fixture)"].astype(float)
    paper = table.loc["paper, Table 6"].astype(float)
    widths = [patch.get_width() for patch in fig.axes[0].patches]
    assert widths == pytest.approx([paper.loc["FineFACE", "Min. grp. Acc."] - paper.loc["Baseline", "Min. grp. Acc."],
                                    ours.loc["FineFACE", "Min. grp. Acc."] - ours.loc["Baseline", "Min. grp. Acc."]])
    with pytest.raises(ValueError, match="ours \\(fixture\\)"):
        plots.fairness_decomposition(table.drop(index=("ours (fixture)", "Baseline")), "Baseline")


def test_fairness_decomposition_takes_one_baseline_name_per_source():
    table7 = paper_results.paper_layout("table7")
    ours = pd.DataFrame([[90.0, 91, 89, 70, 72, 68, 4, 5], [92.0, 92.5, 91.5, 75, 76, 74, 2, 3]],
                        index=["Baseline", "FineFACE"], columns=list(paper_results.paper_layout("table6").columns))
    combined = pd.concat([table7.T, pd.concat({"ours (fixture)": ours})])
    fig = _strict(plots.fairness_decomposition, combined, ("Baseline single task", "Baseline"))
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[-1] == "FineFACE (ours (fixture))" and "Baseline single task" not in labels
    assert fig.axes[0].patches[-1].get_width() == pytest.approx(91.5 - 89)


def test_pareto_front():
    x = np.array([1.0, 2.0, 0.5, 3.0, 0.5])
    y = np.array([90.0, 95.0, 80.0, 94.0, 85.0])
    assert sorted(plots._pareto_front(x, y).tolist()) == [0, 1, 4]


def test_pareto_front_when_higher_fairness_is_better():
    x = np.array([80.0, 85.0, 90.0, 70.0])   # worst-group accuracy: higher is fairer
    y = np.array([92.0, 91.0, 88.0, 93.0])
    assert sorted(plots._pareto_front(x, y, lower_x_better=False).tolist()) == [0, 1, 2, 3]
    y[1] = 87.0                               # now beaten by point 2 on both axes
    assert sorted(plots._pareto_front(x, y, lower_x_better=False).tolist()) == [0, 2, 3]


def test_the_scatter_reads_worst_group_accuracy_as_higher_is_fairer_and_draws_into_a_panel():
    points = paper_results.tradeoff_points("table7", fairness="min_group_accuracy")
    fig = plots.new_figure(10, 4)
    left, right = fig.subplots(1, 2)
    assert _strict(plots.accuracy_fairness_scatter, points, ax=right) is fig
    _render(fig, "accuracy_fairness_scatter_worst_group")
    assert "worst-group accuracy" in right.get_xlabel() and "higher is fairer" in right.get_xlabel()
    assert not left.texts and len(right.texts) == len(points) + 1  # a label per point, the better-corner note
    # the front: no other method better on both accuracy and worst-group accuracy
    rings = next(c for c in right.collections if c.get_label().startswith("Pareto"))
    ringed = {tuple(p) for p in rings.get_offsets().tolist()}
    expected = set(map(tuple, points[["fairness", "accuracy"]].to_numpy()[plots._pareto_front(
        points["fairness"].to_numpy(), points["accuracy"].to_numpy(), lower_x_better=False)].tolist()))
    assert ringed == expected and (92.76, 92.85) in ringed  # FineFACE's printed Table 7 row is on it


def test_method_tradeoffs_shows_every_run_the_means_and_their_front():
    rows = []
    for method, (acc, dob, worst) in {"A": (90.0, 3.0, 84.0), "B": (88.0, 1.0, 86.0), "C": (87.0, 2.0, 83.0)}.items():
        for seed in range(3):
            for metric, value in (("overall_accuracy", acc + seed), ("degree_of_bias", dob + 0.1 * seed),
                                  ("min_group_accuracy", worst + seed)):
                rows.append({"method": method, "seed": seed, "metric": metric, "value": value,
                             "ci_low": value - 1, "ci_high": value + 1})
    runs = pd.DataFrame(rows)
    fig = _strict(plots.method_tradeoffs, runs, protected={"B": True})
    _render(fig, "method_tradeoffs")
    dob_panel, worst_panel = fig.axes[:2]
    assert "DoB" in dob_panel.get_xlabel() and "worst-group" in worst_panel.get_xlabel()
    means = {line.get_label(): (line.get_xdata()[0], line.get_ydata()[0], line.get_marker())
             for line in dob_panel.lines if line.get_label() in ("A", "B", "C")}
    assert means["A"] == (pytest.approx(3.1), pytest.approx(91.0), "o") and means["B"][2] == "^"
    ringed = sorted((round(x, 6), round(y, 6)) for x, y in next(
        c for c in dob_panel.collections if c.get_label().startswith("Pareto")).get_offsets().tolist())
    assert ringed == [(1.1, 89.0), (3.1, 91.0)]  # C is beaten by B on both
    with pytest.raises(ValueError, match="no \\['min_group_accuracy'\\]"):
        plots.method_tradeoffs(runs[runs["metric"] != "min_group_accuracy"])


def test_accuracy_fairness_scatter(gender_reports):
    points = pd.concat([paper_results.tradeoff_points("table2"),
                        paper_results.tradeoff_points("table2", gender_reports, label="ours (fixture)")],
                       ignore_index=True)
    points = points[points.index != 1]  # the paper's table 2 and ours: 3 points
    fig = _strict(plots.accuracy_fairness_scatter, points)
    _render(fig, "accuracy_fairness_scatter")
    paper_panel, our_panel = fig.axes  # Table 2's 14 race x gender groups, our 6 race x gender groups
    assert paper_panel.get_xlabel().startswith("Degree of Bias (DoB, points) over 14 race × gender groups")
    assert our_panel.get_xlabel().startswith("Degree of Bias (DoB, points) over 6 race × gender groups")
    for ax in fig.axes:  # each panel names the better corner: less bias (left), more accuracy (up)
        assert any(t.get_text().startswith("\u2196 better") for t in ax.texts)
    annotations = sorted(t.get_text() for ax in fig.axes for t in ax.texts if not t.get_text().startswith("\u2196"))
    assert annotations == sorted(points["method"])
    same_groups = points.assign(groups="7 race groups")
    assert len(_strict(plots.accuracy_fairness_scatter, same_groups).axes) == 1
    with pytest.raises(ValueError, match="tradeoff_points"):
        plots.accuracy_fairness_scatter(points.drop(columns="fairness"))


def test_training_curves_tolerates_whatever_columns_exist():
    # the columns finefcace.training.trainer writes, plus an unknown text column
    history = [{"epoch": e + 1, "step": 10 * (e + 1), "batches": 10, "loss_expert_3": 1 / (e + 1),
                "loss_expert_2": 0.9 / (e + 1), "loss_expert_1": 0.8 / (e + 1), "loss_overall_region": 0.6 / (e + 1),
                "loss_concat_raw": 0.5 / (e + 1), "train_accuracy": 0.5 + 0.05 * e, "val_loss": 0.7 / (e + 1),
                "val_accuracy": 0.55 + 0.04 * e - 0.02 * (e == 5), "lr_backbone": 0.0002 * 0.5 ** e,
                "lr_head": 0.002 * 0.5 ** e, "epoch_seconds": 3.0, "best": e < 5, "note": "x"} for e in range(6)]
    fig = _strict(plots.training_curves, history, title="fixture")
    _render(fig, "training_curves")
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "accuracy (%)", "learning rate"]
    styles = [line.get_linestyle() for line in fig.axes[0].lines]
    assert styles == ["-"] * 5 + ["--", ":"]  # 5 training steps, validation dashed, best epoch dotted
    assert fig.axes[1].lines[0].get_ydata().max() == pytest.approx(75.0)  # fractions shown as percent
    assert fig.axes[2].get_yscale() == "log"  # the schedule spans decades
    assert [line.get_xdata()[0] for line in fig.axes[0].lines if line.get_linestyle() == ":"] == [5]  # best epoch
    only_loss = pd.DataFrame({"step": [0, 0, 1, 1], "loss": [1.0, 3.0, 0.5, 1.5]})  # several rows per step
    fig = _strict(plots.training_curves, only_loss)
    _render(fig, "training_curves_loss_only")
    assert len(fig.axes) == 1 and fig.axes[0].lines[0].get_ydata().tolist() == [2.0, 1.0]
    same_rates = [{**row, "lr_backbone": row["lr_head"]} for row in history]  # the quick profile's case
    fig = _strict(plots.training_curves, same_rates)
    lr_lines = [line for line in fig.axes[2].lines if line.get_linestyle() != ":"]
    assert [line.get_label() for line in lr_lines] == ["lr_backbone = lr_head"]  # one line, both names
    assert all(float(t).is_integer() for t in fig.axes[0].get_xticks())  # whole epochs
    with pytest.raises(ValueError, match="no loss/acc/lr"):
        plots.training_curves([{"epoch": 0, "note": "nothing"}])
    with pytest.raises(ValueError, match="empty"):
        plots.training_curves([])


def test_intersectional_heatmap_draws_values_widths_and_flags():
    from finefcace.metrics import SmallGroupWarning, intersectional_report

    predictions = _predictions(lambda r, g: 0.75 if (r, g) == ("r3", "Female") else 0.92, n=600,
                               races=("r1", "r2", "r3", "r4"))
    rare = predictions["race"] == "r4"
    predictions = predictions[~rare | (predictions.index % 5 == 0)]  # r4: ~30 images, ~15 per gender
    with pytest.warns(SmallGroupWarning):
        report = intersectional_report(predictions, group_columns=("race", "gender"), n_bootstrap=200)
    fig = _strict(plots.intersectional_heatmap, report)
    _render(fig, "intersectional_heatmap")
    titled = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    value_ax, width_ax = titled["accuracy per cell"], titled["width of its bootstrap interval"]
    assert [t.get_text() for t in value_ax.get_yticklabels()] == ["r1", "r2", "r3", "r4"]
    assert [t.get_text() for t in value_ax.get_xticklabels()] == ["Female", "Male"]
    cells = report[report["metric"] == "accuracy"].set_index("group")
    texts = {t.get_text() for t in value_ax.texts}
    for group, row in cells.iterrows():
        star = "*" if row["small"] else ""
        assert f"{row['value']:.1f}\nn={row['n']}{star}" in texts, group
    widths = {t.get_text() for t in width_ax.texts}
    for group, row in cells.iterrows():
        assert f"{row['ci_high'] - row['ci_low']:.1f}\nn={row['n']}{'*' if row['small'] else ''}" in widths
    assert cells.loc[["r4 / Female", "r4 / Male"], "small"].all() and not cells.loc["r1 / Female", "small"]
    assert len(value_ax.patches) == 2 and "fewer than 30" in fig._suptitle.get_text()  # two hatched cells
    assert value_ax.images[0].get_array()[2, 0] == pytest.approx(cells.loc["r3 / Female", "value"])
    with pytest.raises(ValueError, match="per-cell 'tpr'"):
        plots.intersectional_heatmap(intersectional_report(predictions.assign(label_true=predictions["y_true"]),
                                                           group_columns=("gender", "label_true"), n_bootstrap=0,
                                                           min_group_size=1), metric="tpr")


# ----------------------------------------------------------------- how a figure reaches the page


def _two_panels():
    figure = plots.new_figure(4.0, 2.0)
    left, right = figure.subplots(1, 2)
    left.plot([0, 1], [0, 1])
    left.set_title("loss", fontsize=6.5)
    left.set_xlabel("epoch")
    left.set_ylabel("loss")
    right.imshow(np.zeros((4, 4)))
    right.set_title("a map")
    right.axis("off")  # its tick labels exist but are never drawn
    figure.suptitle("Training, synthetic faces")
    return figure


def test_drawn_text_sizes_are_the_texts_the_renderer_drew():
    png, drawn = plots.drawn_text_sizes(_two_panels(), dpi=50)
    assert png.startswith(b"\x89PNG")
    assert min(drawn) == (6.5, "loss")
    texts = {text for _, text in drawn}
    assert {"Training, synthetic faces", "a map", "epoch"} <= texts
    # the hidden axes' tick labels (0..3 of the image) are not drawn; the line plot's 0.0..1.0 are
    assert not any(text in ("0", "1", "2", "3") for text in texts) and "0.0" in texts


def test_alt_text_says_what_the_figure_shows():
    figure = _two_panels()
    assert plots.alt_text(figure) == ("Figure: Training, synthetic faces. Panels: loss (loss against epoch); a map")
    assert plots.alt_text(plots.describe(figure, "two  panels:\n a curve and a map")) == "two panels: a curve and a map"
    bare = plots.new_figure(2.0, 2.0)
    axes = bare.subplots()
    axes.set_xlabel("group")
    axes.set_ylabel("accuracy (%)")
    assert plots.alt_text(bare) == "Figure: accuracy (%) against group"


def test_figure_html_carries_the_image_its_alt_text_and_its_smallest_text():
    import base64
    import re

    from PIL import Image

    figure = _two_panels()
    html = plots.figure_html(figure)
    assert 'alt="Figure: Training, synthetic faces. Panels: loss (loss against epoch); a map"' in html
    assert 'data-smallest-text-pt="6.5"' in html and 'data-smallest-text="loss"' in html
    assert f'data-dpi="{figure.dpi:g}"' in html
    png = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', html).group(1))
    width = Image.open(io.BytesIO(png)).width
    assert abs(width - 4.0 * figure.dpi) < 0.15 * 4.0 * figure.dpi  # the tight box trims a little
    quoted = plots.figure_html(plots.describe(_two_panels(), 'accuracy "per group" <by tone>'))
    assert 'alt="accuracy &quot;per group&quot; &lt;by tone&gt;"' in quoted


def test_smallest_text_as_shown_scales_with_the_column():
    """8-pt text at 100 dpi reads as 8.3 pt in a figure narrower than the book's column, and
    shrinks with the image once the figure is wider than the column."""
    narrow = plots.new_figure(4.0, 2.0, dpi=100)
    narrow.subplots().set_title("small", fontsize=8)
    narrow.axes[0].tick_params(labelsize=9)
    points, text = plots.smallest_text_as_shown(narrow)
    assert text == "small" and abs(points - 8 * 100 / 96) < 1e-9
    wide = plots.new_figure(14.0, 2.0, dpi=100)
    wide.subplots().set_title("small", fontsize=8)
    wide.axes[0].tick_params(labelsize=9)
    points, _ = plots.smallest_text_as_shown(wide)
    assert points < 0.55 * 8 * 100 / 96 and points < plots.MIN_TEXT_PT


def test_alt_text_reads_tex_labels_as_plain_characters():
    figure = plots.new_figure(3.0, 2.0)
    figure.subplots().set_title(r"$\tilde\Omega_{oval}^{norm}$ and mask $\geq$ t")
    assert plots.alt_text(figure) == "Figure: Ω_oval^norm and mask ≥ t"


def test_a_title_wider_than_the_figure_is_wrapped_so_the_image_keeps_its_width():
    import io as _io

    from PIL import Image

    figure = plots.new_figure(4.0, 3.0)
    figure.subplots().set_title("Accuracy per group — ours: synthetic faces, resnet18 from scratch, 64 px, "
                                "4 epochs, cpu", fontsize=12)
    unwrapped, _ = plots.drawn_text_sizes(figure, dpi=100, bbox_inches="tight")
    assert Image.open(_io.BytesIO(unwrapped)).width > 1.5 * 4.0 * 100
    png, _ = plots.drawn_text_sizes(plots.wrap_wide_titles(figure), dpi=100, bbox_inches="tight")
    assert "\n" in figure.axes[0].get_title()
    assert Image.open(_io.BytesIO(png)).width <= 4.0 * 100 + 20  # the tight box's 0.1-in padding a side


def test_training_curves_say_what_they_show_in_their_alt_text():
    history = [{"epoch": e + 1, "loss": 1 / (e + 1), "val_loss": 0.5, "train_accuracy": 0.5, "val_accuracy": 0.6,
                "lr_head": 0.01, "best": e < 2} for e in range(3)]
    alt = plots.alt_text(plots.training_curves(history, title="FineFACE"))
    assert alt.startswith("FineFACE. Training curves against epoch") and "val_accuracy" in alt
    assert "the best epoch (2) marked" in alt
