"""A trained run's model card: what the model is, what it was trained and tested on, how it
does for each group, what it is for and not for, and the terms of its data.

Model cards (Mitchell et al., FAT* 2019) put beside a trained model the facts a reader needs
before using it or quoting it. The engine writes one, ``model_card.md``, into the folder of
every run that finishes (:func:`write_model_card`, called by
:mod:`finefcace.training.trainer`); ``python -m finefcace card --run-dir DIR`` writes it again,
for example for a run trained before cards existed. Introduced in ``notebooks/04_training.ipynb``.

Everything is read from the run folder — ``config.json`` (the configuration), ``summary.json``
(what the run reports of itself), ``predictions_test.csv`` (``predictions_val.csv`` when there
is no test split) and the dataset table ``config.json`` names — so a card always describes the
files beside it. The evaluation per group is :func:`finefcace.metrics.task_report` with
:data:`CARD_BOOTSTRAP` resamples and seed :data:`CARD_SEED`: the same call on the same
predictions gives the same numbers (``tests/training/test_model_card.py`` checks that it does).
The data licence is the one the dataset's adapter states (:mod:`finefcace.sources.licences`);
the labels' caveats summarise the book's chapter :data:`LABELS_CHAPTER`.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from finefcace.metrics import ALL_GROUPS, MIN_GROUP_SIZE, protected_columns, task_report
from finefcace.mitigation import MITIGATIONS
from finefcace.outputs import write_text
from finefcace.sources.licences import DataLicence, data_licence
from finefcace.sources.table import load_table
from finefcace.training.config import ConfigError
from finefcace.training.run_directory import CONFIG_FILE, MODEL_CARD_FILE, SUMMARY_FILE, read_run_config

__all__ = ["CARD_BOOTSTRAP", "CARD_SEED", "LABELS_CHAPTER", "LABELS_CHAPTER_SOURCE", "MODEL_CARD_FILE",
           "card_evaluation", "model_card_text", "write_model_card"]

#: Bootstrap resamples and seed of the card's intervals: few enough to take well under a second.
CARD_BOOTSTRAP = 200
CARD_SEED = 0
#: The book's chapter on what the labels are and are not: its title and its source.
LABELS_CHAPTER = "What the labels are, and are not"
LABELS_CHAPTER_SOURCE = "book/labels.md"

#: Each report metric in words (the unit follows from the report's ``unit`` column).
METRIC_WORDS: dict[str, str] = {
    "accuracy": "accuracy",
    "tpr": "true-positive rate",
    "fpr": "false-positive rate",
    "overall_accuracy": "overall accuracy (every image counts once)",
    "max_group_accuracy": "best group's accuracy",
    "min_group_accuracy": "worst group's accuracy",
    "max_min_ratio": "Max/Min: best group's accuracy ÷ worst group's",
    "degree_of_bias": "degree of bias (DoB): standard deviation of the group accuracies",
    "max_group_tpr": "best group's true-positive rate",
    "min_group_tpr": "worst group's true-positive rate",
    "deo": "DEO: difference of the groups' true-positive rates",
    "deodds": "DEOdds: difference of true-positive rates + of false-positive rates",
}
#: A rate over every image, in the summaries (the attribute task reports them beside the groups').
OVERALL_WORDS: dict[str, str] = {"accuracy": "accuracy over all images", "tpr": "true-positive rate over all images",
                                 "fpr": "false-positive rate over all images"}
#: The value of each gap measure for a model that treats every group alike.
FAIR_VALUES: dict[str, str] = {"max_min_ratio": "1", "degree_of_bias": "0", "deo": "0", "deodds": "0"}

#: What each dataset's labels are, in one sentence (the chapter :data:`LABELS_CHAPTER` says more).
LABEL_CAVEATS: dict[str | None, str] = {
    "synthetic": ("`tone` is a skin-tone rendering parameter of the generator (tone_1 to tone_4, light to dark), "
                  "not a race, and `gender` a binary presentation it draws. Their bias is designed (the defaults of "
                  "`SyntheticBias`; the knobs used are in bias.json beside the table): tone_4 is rare and mostly "
                  "Male in training, and its small facial cues are drawn at low contrast in every split. "
                  "A gap measured here shows the machinery at work; it says nothing about real people."),
    "fairface": ("Race (7 groups), binary gender and age group were assigned by crowd workers who looked at each "
                 "photograph: perceived categories, not how the people pictured identify."),
    "utkface": ("Race (5 groups; `Others` mixes many populations), binary gender and age were estimated from the "
                "photograph (by an algorithm, checked by an annotator): perceived categories, not self-identified."),
    "lfwa": ("Binary gender and race flags (White, Black, Asian, Indian; `Undefined` when none or several) of a "
             "73-attribute label file whose making is thinly documented: perceived categories at best."),
    "celeba": ("Gender is the binary attribute `Male` assigned by annotators; CelebA has no race labels, so only "
               "gender groups can be compared. Perceived, not self-identified."),
    None: "The labels' origin is unknown to the course: find out how they were made before reading the groups.",
}


@dataclass
class CardEvaluation:
    """The card's evaluation: the report, the split it is on, the file it came from and the
    warnings the measurement raised (each message once)."""

    report: pd.DataFrame | None
    split: str | None
    source: Path | None
    warnings: list[str]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path} cannot be read as JSON ({error}); it is not the file a run writes. Train the "
                          f"run again, or give the folder of another finished run") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path} does not hold a JSON object; it is not the file a run writes")
    return document


def _finished_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config.json's document, summary.json) of the finished run in ``run_dir``, or a
    :class:`~finefcace.training.config.ConfigError` naming what is missing and the fix."""
    if not run_dir.is_dir():
        raise ConfigError(f"run directory {str(run_dir)!r} does not exist; give --run-dir the folder of a finished "
                          "run (the run_dir of its config)")
    saved = read_run_config(run_dir)
    summary_file = run_dir / SUMMARY_FILE
    if not saved or not summary_file.is_file():
        missing = CONFIG_FILE if not saved else SUMMARY_FILE
        raise ConfigError(f"{str(run_dir)!r} holds no finished run (no {missing}); train it to the end first "
                          "(python -m finefcace train ...), or give the folder of a finished run")
    summary = _read_json(summary_file)
    if not summary.get("finished"):
        raise ConfigError(f"the run in {str(run_dir)!r} has not finished ({SUMMARY_FILE} says so): run its train "
                          "command again to finish it, then write its card")
    return saved, summary


def _dataset_table(saved: dict[str, Any]) -> tuple[pd.DataFrame | None, str]:
    """The run's dataset table, read again from where ``config.json`` says it was; ``None`` and
    the reason when it is no longer there."""
    path = saved.get("table") or saved.get("config", {}).get("table")
    if not path:
        return None, "config.json names no dataset table"
    if not Path(path).is_file():
        return None, (f"the dataset table {path} was not found (moved, or a path relative to the folder the run "
                      "was trained from)")
    return load_table(path), str(path)


def card_evaluation(run_dir: str | os.PathLike, target: str) -> CardEvaluation:
    """The evaluation a card shows: :func:`finefcace.metrics.task_report` (``CARD_BOOTSTRAP``
    resamples, seed ``CARD_SEED``) of the run's test predictions, or of its validation ones when
    it has no test split; ``report`` is ``None`` when neither was saved or they cannot be
    measured (the reason is in ``warnings``)."""
    run_dir = Path(run_dir)
    for split in ("test", "val"):
        source = run_dir / f"predictions_{split}.csv"
        if source.is_file():
            break
    else:
        return CardEvaluation(None, None, None, ["no predictions were saved (save_predictions: false): rerun "
                                                 "`python -m finefcace evaluate --run-dir` to write them"])
    predictions = pd.read_csv(source)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            report = task_report(predictions, target, n_bootstrap=CARD_BOOTSTRAP, seed=CARD_SEED)
        except ValueError as error:  # DataError included: e.g. no protected column to group by
            return CardEvaluation(None, split, source, [f"the evaluation per group could not be computed: {error}"])
        except ImportError:  # a machine without the metrics packages (the GPU check's): train anyway
            return CardEvaluation(None, split, source, [
                "the evaluation per group was not computed: it needs the metrics packages (fairlearn, "
                f"scikit-learn), absent where this card was written; `python -m finefcace card --run-dir "
                f"{run_dir.as_posix()}` writes it again where they are installed"])
    # the metrics' own warnings (undefined rates, small groups, a constant guess), not libraries' notices
    messages = list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)))
    return CardEvaluation(report, split, source, messages)


# ------------------------------------------------------------------------------ the card in words


def _number(value: Any, unit: str) -> str:
    value = float(value)
    if math.isnan(value):
        return "undefined"
    if math.isinf(value):
        return "∞"
    return f"{value:.2f}" if unit == "ratio" else f"{value:.1f}"


def _interval(row: dict[str, Any]) -> str:
    if math.isnan(float(row["ci_low"])) or math.isnan(float(row["ci_high"])):
        return "—"
    return f"[{_number(row['ci_low'], row['unit'])}, {_number(row['ci_high'], row['unit'])}]"


def _unit(unit: str) -> str:
    return " (%)" if unit == "%" else ""


def _initialisation(weights: str | None) -> str:
    if weights is None:
        return "trained from random initialisation (no pretrained weights)"
    if any(sep in weights for sep in ("/", "\\")) or weights.endswith((".pt", ".pth")):
        return f"initialised from the weights file {weights}"
    return f"initialised with torchvision's ImageNet weights {weights}"


def _method_words(config: dict[str, Any], resolved: dict[str, Any], saved: dict[str, Any]) -> str:
    method = config["method"]
    if method == "finefcace":
        experts = resolved.get("experts")
        n = len(experts) if experts else 3
        where = f"stages {', '.join(map(str, experts))}" if experts else "the last three stages"
        regions = {"cam": "the attention regions of their class activation maps",
                   "placebo": "regions of the same sizes at seeded random positions (the placebo control, not "
                              "FineFACE's attention)",
                   "none": "the raw image only (the no-regions control: no attention region anywhere)"}
        return (f"FineFACE (Manzoor & Rattani): {n} experts cut from {where} of the backbone, each with a descriptor "
                f"block (C_v = {resolved.get('descriptor_dim')}) and a classifier, trained by multi-step mutual "
                f"learning ({n + 2} optimizer steps per mini-batch, the paper's Algorithm 1) on "
                f"{regions.get(config.get('regions', 'cam'), config.get('regions'))}; its prediction fuses the views "
                f"{', '.join(resolved.get('fusion_views') or [])} (heads: {resolved.get('fusion_heads')}, combined as "
                f"{resolved.get('fusion_combine')})")
    if method == "baseline":
        return ("the baseline: the backbone, global average pooling and one linear classifier, one optimizer step "
                "per mini-batch")
    mitigation = MITIGATIONS[method]
    options = config.get("method_options") or {}
    return (f"{mitigation.title} ({mitigation.source}), a bias-mitigation method on the baseline's network"
            + (f" (options: {', '.join(f'{k}={v}' for k, v in options.items())})" if options else ""))


def _protected_use(saved: dict[str, Any]) -> str:
    if saved.get("uses_protected_labels"):
        columns = ", ".join(saved.get("protected_training_columns") or [])
        domains = ", ".join(map(str, saved.get("domains") or []))
        return (f"It trains **with the protected label of every training image** ({columns}; groups: {domains}); "
                "it needs none to predict.")
    return "It uses no protected label in training: the protected columns serve only to evaluate it."


def _model_section(saved: dict[str, Any], summary: dict[str, Any], dataset: str | None) -> list[str]:
    config, resolved = saved.get("config", {}), saved.get("resolved", {})
    classes = saved.get("classes") or []
    target = config.get("target")
    if target == "gender":
        origin = ("the generator drew the face with" if dataset == "synthetic" else
                  "the dataset's annotators assigned — a perceived category, not anyone's gender identity")
        labels = " / ".join(map(str, classes))
        task = f"classifies a face image as one of the binary gender labels {labels} that {origin}"
    else:
        labels = ", ".join(map(str, classes))
        task = f"classifies whether a face image shows the attribute `{target}` (classes {labels})"
    overrides = config.get("overrides") or {}
    changed = ", ".join(f"{k} = {v}" for k, v in overrides.items()) or "none"
    patience = config.get("patience")
    stopping = (f"early stopping after {patience} epochs without improvement of {config.get('monitor')}"
                if patience is not None else "no early stopping")
    if summary.get("stopped_early"):
        stopping += " (it stopped early)"
    bounds = (f"; at most {config['max_batches']} batches per epoch (a test-sized bound)"
              if config.get("max_batches") else "")
    best = summary.get("best_metric")
    return [
        "## The model", "",
        f"- **Task**: {task}.",
        f"- **Method**: {_method_words(config, resolved, saved)}. {_protected_use(saved)}",
        f"- **Network**: {resolved.get('backbone')}, {_initialisation(config.get('weights'))}; input images of "
        f"{resolved.get('input_size')} × {resolved.get('input_size')} pixels.",
        f"- **Training**: the `{config.get('preset')}` preset of `finefcace.presets`, keys changed: {changed}. "
        f"{str(resolved.get('optimizer', '')).upper()} with learning rates {resolved.get('head_lr')} (new layers) and "
        f"{resolved.get('backbone_lr')} (backbone), momentum {resolved.get('momentum')}, weight decay "
        f"{resolved.get('weight_decay')}, {resolved.get('lr_schedule')} schedule, batch size "
        f"{resolved.get('batch_size')}; {summary.get('epochs_run')} of at most {config.get('epochs')} epochs, "
        f"{stopping}{bounds}; {summary.get('steps')} training iterations in all.",
        f"- **Checkpoint kept**: epoch {summary.get('best_epoch')}, the best {summary.get('monitor')} on the "
        f"validation split ({best:.4f})." if best is not None else "- **Checkpoint kept**: none recorded.",
        f"- **Reproducibility**: seed {config.get('seed')}; trained on {summary.get('device')} in "
        f"{summary.get('world_size')} process(es). One run, one seed: a difference between two such cards is not "
        "a finding until it holds over several seeds (the course's seeds study, book/results.md).",
        "",
    ]


def _data_section(table: pd.DataFrame | None, table_note: str, licence: DataLicence, target: str) -> list[str]:
    lines = ["## The data", "", f"- **Dataset**: {licence.name}; table `{table_note}`." if table is not None
             else f"- **Dataset**: unknown — {table_note}.", ""]
    if table is None:
        return lines
    groups = protected_columns(table)
    splits = [s for s in ("train", "val", "test") if (table["split"] == s).any()]
    if groups:
        counts = table.groupby(groups + ["split"]).size().unstack("split", fill_value=0)
        counts = counts.reindex(columns=splits, fill_value=0)
        lines += [f"Images per group ({' × '.join(groups)}) and split:", "",
                  f"| group | {' | '.join(splits)} |", "|---|" + "---:|" * len(splits)]
        for key, row in counts.iterrows():
            label = " / ".join(map(str, key if isinstance(key, tuple) else (key,)))
            lines.append(f"| {label} | {' | '.join(str(int(row[s])) for s in splits)} |")
        totals = table["split"].value_counts()
        lines += [f"| **all** | {' | '.join(str(int(totals.get(s, 0))) for s in splits)} |", ""]
    else:
        sizes = ", ".join(f"{s} {int((table['split'] == s).sum())}" for s in splits)
        lines += [f"Images per split: {sizes}. The table has no protected column: no group can be measured.", ""]
    if target in table.columns:
        per_class = table.groupby(["split", target]).size()
        lines += ["Labels per split: " + "; ".join(
            f"{s}: " + ", ".join(f"{c} {int(n)}" for c, n in per_class[s].items()) for s in splits) + ".", ""]
    return lines


def _evaluation_section(evaluation: CardEvaluation, summary: dict[str, Any], dataset: str | None) -> list[str]:
    accuracies = ", ".join(f"{split} {100 * summary[f'{split}_accuracy']:.2f} %"
                           for split in ("val", "test") if summary.get(f"{split}_accuracy") is not None)
    lines = ["## Evaluation per group", "", f"Accuracy of the kept checkpoint (summary.json): {accuracies}.", ""]
    report = evaluation.report
    if report is None:
        return lines + [f"- {message}" for message in evaluation.warnings] + [""]
    confidence = round(100 * report.attrs.get("confidence", 0.95))
    where = ("test images" if evaluation.split == "test" else
             "validation images (there is no test split; this split chose the checkpoint: read it as optimistic)")
    lines += [f"On the {where} ({evaluation.source.name}), with {confidence} % percentile-bootstrap "
              f"intervals ({CARD_BOOTSTRAP} resamples, seed {CARD_SEED}, resampled within each group; "
              "`finefcace.metrics.task_report`):", "",
              "| group | measure | images | value | interval |", "|---|---|---:|---:|---|"]
    rows = report.to_dict("records")
    for row in rows:
        if row["group"] != ALL_GROUPS:
            lines.append(f"| {row['group']} | {METRIC_WORDS.get(row['metric'], row['metric'])}{_unit(row['unit'])} "
                         f"| {int(row['n'])} | {_number(row['value'], row['unit'])} | {_interval(row)} |")
    lines += ["", "### Fairness summaries", "", "| measure | value | interval | when fair |", "|---|---:|---|---:|"]
    for row in rows:
        if row["group"] == ALL_GROUPS:
            words = OVERALL_WORDS.get(row["metric"]) or METRIC_WORDS.get(row["metric"], row["metric"])
            lines.append(f"| {words}{_unit(row['unit'])} | {_number(row['value'], row['unit'])} | {_interval(row)} "
                         f"| {FAIR_VALUES.get(row['metric'], '')} |")
    lines.append("")
    small = [r["group"] for r in rows if r["group"] != ALL_GROUPS and int(r["n"]) < MIN_GROUP_SIZE]
    notes = []
    if small:
        notes.append(f"{len(set(small))} group(s) have fewer than {MIN_GROUP_SIZE} images: their values are "
                     "imprecise — read the intervals before comparing groups.")
    notes.append("A smaller gap (DoB, DEO, DEOdds; Max/Min nearer 1) is fairer only if no group got worse: compare "
                 "the group values too (levelling down).")
    if dataset == "synthetic":
        notes.append("These are results on synthetic faces: they show the method and its measurement at work, "
                     "not how any model does on photographs of people.")
    notes += [f"The measurement warned: {message}" for message in evaluation.warnings]
    return lines + [f"- {note}" for note in notes] + [""]


def _use_section(target: str) -> list[str]:
    return [
        "## Intended use", "",
        "Teaching and research on demographic disparities in facial attribute classification: reproducing "
        "FineFACE (Manzoor & Rattani), measuring how a model's errors differ between the labelled groups of a "
        "benchmark, and comparing methods under identical conditions.", "",
        "## Uses it is not fit for", "",
        "- identifying, recognising, tracking or profiling people;",
        "- inferring the gender, race or any other attribute of a real person, from any photograph;",
        "- any decision about a person — access, admission, hiring, policing, border control, health, "
        "advertising or anything else.", "",
    ] + (["A gender classifier returns one of the two labels an annotator would have given; it cannot know "
          "anyone's gender, and is wrong by construction for everyone outside those two categories.", ""]
         if target == "gender" else [])


def _labels_section(dataset: str | None) -> list[str]:
    groups = ("On real photographs the groups are categories the datasets' makers chose" if dataset == "synthetic"
              else "The groups are categories the datasets' makers chose")
    return [
        "## The labels' caveats", "",
        LABEL_CAVEATS.get(dataset, LABEL_CAVEATS[None]), "",
        f"{groups}, assigned by others from a photograph: they measure disparities between those categories, not "
        "between how people identify, and a group's number averages over everyone the category lumps together. "
        f"Read the course's chapter *{LABELS_CHAPTER}* ({LABELS_CHAPTER_SOURCE}) before quoting these numbers.",
        "",
    ]


def _licence_section(licence: DataLicence) -> list[str]:
    if licence.dataset is None:
        return ["## Licence of the training data", "", f"{licence.licence[0].upper()}{licence.licence[1:]}.", ""]
    return ["## Licence of the training data", "",
            f"{licence.name[0].upper()}{licence.name[1:]}: {licence.licence}. This model is derived from that data: "
            "use it within those terms.", ""]


def model_card_text(run_dir: str | os.PathLike) -> str:
    """The model card of the finished run in ``run_dir``, as Markdown (see the module docstring);
    a folder without a finished run is refused naming what is missing and the fix."""
    run_dir = Path(run_dir)
    saved, summary = _finished_run(run_dir)
    config = saved.get("config", {})
    target = config.get("target", "gender")
    table, table_note = _dataset_table(saved)
    licence = data_licence(table) if table is not None else DataLicence(
        None, "data the card could not read", f"unknown: {table_note}; state the licence of the data yourself")
    method = {"finefcace": "FineFACE", "baseline": "the baseline"}.get(
        config.get("method"), MITIGATIONS[config["method"]].title if config.get("method") in MITIGATIONS else "?")
    task = "gender classification" if target == "gender" else f"the attribute {target}"
    evaluation = card_evaluation(run_dir, target)
    lines = [
        f"# Model card: {method}, {task}, trained on {licence.name}", "",
        f"Run folder `{run_dir.as_posix()}`. Written by `finefcace` when the run finished; "
        f"`python -m finefcace card --run-dir {run_dir.as_posix()}` writes it again from the run's files. "
        "Sections after Mitchell et al., *Model cards for model reporting* (FAT* 2019).", "",
        *_model_section(saved, summary, licence.dataset),
        *_data_section(table, table_note, licence, target),
        *_evaluation_section(evaluation, summary, licence.dataset),
        *_use_section(target),
        *_labels_section(licence.dataset),
        *_licence_section(licence),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


def write_model_card(run_dir: str | os.PathLike) -> Path:
    """Write ``model_card.md`` into the finished run's folder (whole or not at all); return its path."""
    run_dir = Path(run_dir)
    return write_text(run_dir / MODEL_CARD_FILE, model_card_text(run_dir))
