"""Inference-only ablations: which views and heads to fuse, and the mask threshold t.

Paper §3.3 ("Inference Phase": the mean of every head's scores on the raw image and on
A_oval), §3.2 (the threshold t = 0.5) and the supplementary ablation studies (B). Introduced
in ``notebooks/06_ablations.ipynb``. Every head's scores are computed once
(:func:`fusion_scores`); each fusion subset is a mean of some of them, so the trained model
is never changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from finefcace.metrics import protected_columns
from finefcace.presets import REGION_PAD, REGION_THRESHOLD

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "FUSION_SUBSETS",
    "budget_cost",
    "budget_note",
    "fusion_predictions",
    "fusion_scores",
    "experts_arm",
    "fusion_table",
    "pooling_arm",
    "preset_arm",
    "study_arms",
    "summary_table",
    "threshold_table",
]


def fusion_scores(model: Any, loader: Any, *, threshold: float = REGION_THRESHOLD, pad: float = REGION_PAD,
                  max_batches: int | None = None) -> dict[str, Any]:
    """Every head's logits on every test image, for both inference views (paper §3.3): the
    raw image and the overall region A_oval. One pass over ``loader``; every fusion subset is
    then a mean of some of these (:func:`fusion_table`). Returns ``{"raw": (H, N_img, K),
    "oval": (H, N_img, K), "heads": names, "y_true": (N_img,), "row_index": (N_img,),
    "oval_share": (N_img,)}`` with heads e_1..e_N, concat, and the share of each image A_oval's
    box keeps. Book: ``notebooks/06_ablations.ipynb``."""
    return _scores_by_threshold(model, loader, [threshold], pad, max_batches)[threshold]


def _scores_by_threshold(model: Any, loader: Any, thresholds: Iterable[float], pad: float,
                         max_batches: int | None) -> dict[float, dict[str, Any]]:
    """:func:`fusion_scores` for several thresholds t in one pass: the raw view and its CAMs do
    not depend on t, so each batch is forwarded once, then cropped and forwarded once per t."""
    import torch

    from finefcace import attention

    thresholds = list(dict.fromkeys(thresholds))
    device = next(model.parameters()).device
    model.eval()
    raw, labels, rows = [], [], []
    oval, shares = {t: [] for t in thresholds}, {t: [] for t in thresholds}
    with torch.inference_mode():
        for index, (images, y, row_index) in enumerate(loader):
            if max_batches is not None and index >= max_batches:
                break
            images = images.to(device)
            size = tuple(images.shape[-2:])
            first = model(images)
            # = attention.overall_region, spelled out to keep the box's share of the image
            total = attention.overall_attention_map(attention.class_activation_maps(model, first), size)
            raw.append(_head_logits(first))
            for t in thresholds:
                boxes = attention.boxes_from_maps(total, t, pad)
                oval[t].append(_head_logits(model(attention.crop_and_resize(images, boxes))))
                shares[t].append(attention.box_fractions(boxes, size).cpu())
            labels.append(torch.as_tensor(y))
            rows.append(torch.as_tensor(row_index))
    common = {"raw": torch.cat(raw, dim=1),
              "heads": [f"e_{n + 1}" for n in range(model.num_experts)] + ["concat"],
              "y_true": torch.cat(labels).numpy(), "row_index": torch.cat(rows).numpy()}
    return {t: {**common, "oval": torch.cat(oval[t], dim=1), "oval_share": torch.cat(shares[t]).numpy()}
            for t in thresholds}


def _head_logits(output: Any) -> Any:
    """(H, B, K): the logits of e_1..e_N and the concatenation, on the CPU."""
    import torch

    return torch.stack([*output.expert_logits, output.concat_logits]).float().cpu()


#: The fusion subsets of the supplementary ablation (B): (views, heads).
FUSION_SUBSETS: tuple[tuple[str, str], ...] = (
    ("raw", "e_1"), ("raw", "e_2"), ("raw", "e_3"), ("raw", "concat"), ("raw", "all"),
    ("oval", "e_1"), ("oval", "e_2"), ("oval", "e_3"), ("oval", "concat"), ("oval", "all"),
    ("raw+oval", "concat"), ("raw+oval", "all"),
)


def fusion_predictions(scores: Mapping[str, Any], views: str, heads: str, combine: str = "logits") -> Any:
    """Predicted classes of one fusion subset: the mean of the chosen heads' logits (or
    probabilities) over the chosen views (``"raw"``, ``"oval"``, ``"raw+oval"``); heads
    ``"all"``, ``"experts"``, ``"concat"`` or ``"e_n"``. The paper's inference is
    ``("raw+oval", "all")``: the argmax of the mean of the 2(N+1) scores."""
    import torch

    names = scores["heads"]
    if heads == "all":
        chosen = list(range(len(names)))
    elif heads == "experts":
        chosen = list(range(len(names) - 1))
    elif heads in names:
        chosen = [names.index(heads)]
    else:
        raise ValueError(f"heads={heads!r}: use 'all', 'experts' or one of {names}")
    stacked = torch.cat([scores[v][chosen] for v in views.split("+")])
    if combine == "probabilities":
        stacked = stacked.softmax(dim=-1)
    return stacked.mean(dim=0).argmax(dim=-1).numpy()


def fusion_table(scores: Mapping[str, Any], table: "pd.DataFrame", *,
                 subsets: Iterable[tuple[str, str]] | None = None, n_bootstrap: int = 0) -> "pd.DataFrame":
    """Accuracy and fairness of each fusion subset on the same test images (supplementary B,
    inference only: the trained model is not changed). ``table``: the dataset table (for the
    protected columns). Book: ``notebooks/06_ablations.ipynb``."""
    subsets = list(subsets) if subsets is not None else [
        s for s in FUSION_SUBSETS if s[1] in ("all", "concat", "experts") or s[1] in scores["heads"]]
    protected = _protected_rows(table, scores)
    reports = {(views, heads): _fusion_report(scores, protected, views, heads, n_bootstrap)
               for views, heads in subsets}
    return summary_table(reports, names=("views", "heads"))


def _protected_rows(table: "pd.DataFrame", scores: Mapping[str, Any]) -> "pd.DataFrame":
    """The protected columns of the scored images, in the order of ``scores``."""
    return table.loc[scores["row_index"], protected_columns(table)].reset_index(drop=True)


def _fusion_report(scores: Mapping[str, Any], protected: "pd.DataFrame", views: str, heads: str,
                   n_bootstrap: int) -> "pd.DataFrame":
    """The gender-task report (:mod:`finefcace.metrics`) of one fusion subset's predictions."""
    from finefcace import metrics

    frame = protected.assign(y_true=scores["y_true"], y_pred=fusion_predictions(scores, views, heads))
    return metrics.gender_task_report(frame, n_bootstrap=n_bootstrap, seed=0)


def summary_table(reports: Mapping[Any, "pd.DataFrame"], *, names: tuple[str, ...] = ("variant",)) -> "pd.DataFrame":
    """One row per gender-task report: overall accuracy, worst group, Max/Min and DoB, with
    "value [low, high]" text when the report has bootstrap intervals."""
    import pandas as pd

    metrics_shown = {"overall_accuracy": "overall accuracy (%)", "min_group_accuracy": "worst group (%)",
                     "max_min_ratio": "Max/Min", "degree_of_bias": "DoB"}
    rows = {}
    for key, report in reports.items():
        summary = report[report["group"] == "all"].set_index("metric")
        row = {}
        for metric, column in metrics_shown.items():
            value, low, high = summary.loc[metric, ["value", "ci_low", "ci_high"]]
            digits = 3 if metric == "max_min_ratio" else 1
            row[column] = f"{value:.{digits}f}" + (f" [{low:.{digits}f}, {high:.{digits}f}]" if low == low else "")
        rows[key] = row
    frame = pd.DataFrame(rows).T
    frame.index = pd.MultiIndex.from_tuples(frame.index, names=list(names)) if len(names) > 1 else \
        pd.Index(frame.index, name=names[0])
    return frame


def threshold_table(model: Any, loader: Any, table: "pd.DataFrame", thresholds: Iterable[float], *,
                    pad: float = REGION_PAD, max_batches: int | None = None) -> "pd.DataFrame":
    """The threshold t of the attention masks (paper §3.2, t = 0.5), varied at inference only:
    the fused accuracy (raw + A_oval, all heads) and fairness at each t, and how much of the
    image A_oval keeps on average. Book: ``notebooks/06_ablations.ipynb``."""
    by_threshold = _scores_by_threshold(model, loader, thresholds, pad, max_batches)
    protected = _protected_rows(table, next(iter(by_threshold.values())))
    reports = {t: _fusion_report(scores, protected, "raw+oval", "all", n_bootstrap=0)
               for t, scores in by_threshold.items()}
    shares = {t: 100 * float(scores["oval_share"].mean()) for t, scores in by_threshold.items()}
    frame = summary_table(reports, names=("threshold t",))
    frame.insert(0, "A_oval keeps (% of image)", [f"{shares[t]:.1f}" for t in reports])
    return frame


def budget_note(report: "pd.DataFrame", epochs: int, max_batches: int | None = None) -> str:
    """Plain sentences on the reference model of the trained ablations, from its gender-task
    report: its overall and worst-group accuracy against chance, and whether at this budget
    (``epochs`` epochs of at most ``max_batches`` batches) the ablations can mean anything.
    Book: ``notebooks/06_ablations.ipynb``."""
    from finefcace.course.findings import CHANCE, worst_group_phrase

    budget = f"{epochs} epoch{'s' if epochs != 1 else ''}" + (f" of at most {max_batches} batches" if max_batches else "")
    summary = report[report["group"] == "all"].set_index("metric")
    overall = summary.loc["overall_accuracy", "value"]
    worst, worst_high = summary.loc["min_group_accuracy", ["value", "ci_high"]]
    near_chance = (worst_high if worst_high == worst_high else worst) < CHANCE + 15
    text = (f"At {budget}, the reference reaches {overall:.1f} % overall and {worst:.1f} % on its worst group "
            f"(chance: {CHANCE:.0f} %). ")
    if near_chance:
        return text + (f"Its worst group is {worst_group_phrase(worst, worst_high)}. So these trainings show that "
                       "every variant runs, not which design choice is better — a difference between them says more "
                       "about which run got further in a few updates. The committed study below repeats them over "
                       "several seeds.")
    return text + ("Every group is clearly above chance, so a difference from it can reflect the design choice; "
                   "with one seed, read it against its interval and against the committed study below.")


def budget_cost(result: Any, trainings: int, seeds: int = 3) -> str:
    """What a budget at which the ablations could mean something would cost, measured on a
    full run (chapter 4's FineFACE, ``result``): its validation accuracy after each epoch and
    the time each epoch took here, then the time ``trainings`` runs of the smallest budget that
    reached 85 % would take per seed and for ``seeds`` seeds. Book: ``notebooks/06_ablations.ipynb``."""
    history = result.history
    accuracy = 100 * history["val_accuracy"]
    seconds = history["epoch_seconds"]
    per_epoch = ", ".join(f"{a:.0f} % after epoch {int(e)}" for e, a in zip(history["epoch"], accuracy))
    text = (f"Chapter 4's FineFACE ({int(history['batches'].iloc[0])} batches an epoch) reached {per_epoch} "
            f"on the validation split; an epoch took {seconds.median():.0f} s here (median).")
    good = history[accuracy >= 85]
    if good.empty:
        return text + " Not even its full budget reached 85 %."
    epochs = int(good["epoch"].iloc[0])
    cost = trainings * seconds.median() * epochs
    return (text + f" A budget of {epochs} such epoch{'s' if epochs != 1 else ''} for the {trainings} trainings of this "
            f"chapter would take about {cost / 60:.0f} min per seed on this machine, {seeds * cost / 60:.0f} min for "
            f"{seeds} seeds — more than a book build can spend, which is why the trainings here stay small.")


def pooling_arm(pooling: str) -> str:
    """The ablation study's name of the arm with another pooling (``experiments/seeds.py``)."""
    return f"pooling-{pooling}"


def experts_arm(stages: Iterable[int]) -> str:
    """The ablation study's name of the arm whose experts end at ``stages``."""
    return "experts-" + "-".join(map(str, stages))


def preset_arm(preset: str) -> str:
    """The ablation study's name of the arm with another preset."""
    return f"preset-{preset}"


def study_arms(reference: Any, pooling_runs: Mapping[str, Any], expert_runs: Mapping[str, Any],
               preset_runs: Mapping[str, Any]) -> dict[str, Any]:
    """The chapter's trained runs under the names the ablation study gives its arms
    (:func:`pooling_arm`, :func:`experts_arm`, :func:`preset_arm`; ``reference``), so the build
    can check the committed study against them (:func:`finefcace.course.findings.study_report`).
    ``expert_runs`` is keyed as the chapter keys it: the stages joined by ", "."""
    arms = {"reference": reference}
    arms.update({pooling_arm(p): run for p, run in pooling_runs.items() if run is not reference})
    arms.update({experts_arm(stages.split(", ")): run for stages, run in expert_runs.items() if run is not reference})
    arms.update({preset_arm(p): run for p, run in preset_runs.items() if run is not reference})
    return arms
