"""Tests of finefcace/training/model_card.py and ``python -m finefcace card``: every finished run
writes a card whose numbers are the run's own (summary.json, the task report of its test
predictions, its table's group sizes) and which states the licence of its training data, as the
dataset's adapter states it."""

from __future__ import annotations

import json
import math
import re
import shutil
import warnings

import pandas as pd
import pytest

from finefcace.metrics import task_report
from finefcace.sources import celeba, fairface, lfwa, synthetic, utkface
from finefcace.sources.licences import DATASET_NAMES
from finefcace.sources.table import save_table
from finefcace.training.cli import main
from finefcace.training.model_card import (CARD_BOOTSTRAP, CARD_SEED, LABEL_CAVEATS, LABELS_CHAPTER,
                                           LABELS_CHAPTER_SOURCE, METRIC_WORDS, MODEL_CARD_FILE, model_card_text)
from finefcace.training.trainer import train
from tests.sources.adapter_tables import adapter_tables
from tests.training_fixtures import one_thread  # noqa: F401  (autouse: one intra-op thread)

SIZE = 64
ADAPTERS = {"fairface": fairface, "utkface": utkface, "lfwa": lfwa, "celeba": celeba, "synthetic": synthetic}
RUN_FILES = ("config.json", "summary.json", "predictions_test.csv", "predictions_val.csv")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny FineFACE run on 24 / 8 / 8 synthetic faces at 64 px, trained to the end."""
    import torch

    from finefcace.sources.synthetic import generate_synthetic

    root = tmp_path_factory.mktemp("synthetic")
    generate_synthetic(root, n_train=24, n_val=8, n_test=8, size=SIZE, seed=0)
    run_dir = tmp_path_factory.mktemp("card") / "run"
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train({"table": str(root / "labels.csv"), "target": "gender", "backbone": "resnet18", "input_size": SIZE,
               "batch_size": 8, "epochs": 1, "max_batches": 2, "overrides": {"descriptor_dim": 16},
               "device": "cpu", "progress": False, "run_dir": str(run_dir), "seed": 0})
    finally:
        torch.set_num_threads(previous)
    return run_dir


def copied_run(run_dir, to, **config_changes):
    """The run's card inputs copied to ``to``, with keys of config.json's document changed."""
    to.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        shutil.copy(run_dir / name, to / name)
    document = json.loads((to / "config.json").read_text())
    document.update(config_changes)
    (to / "config.json").write_text(json.dumps(document))
    return to


def table_rows(card: str, first_cell: str, width: int) -> list[list[str]]:
    """The cells of the card's Markdown table rows of ``width`` cells whose first is ``first_cell``."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in card.splitlines()
            if line.startswith("|")]
    return [row for row in rows if row[0] == first_cell and len(row) == width]


def shown(value: float, unit: str) -> str:
    """A number as the card prints it: percentages to 0.1, ratios to 0.01, an infinite ratio as ∞."""
    if math.isinf(value):
        return "∞"
    return f"{value:.2f}" if unit == "ratio" else f"{value:.1f}"


def interval(row: dict) -> str:
    if math.isnan(row["ci_low"]):
        return "—"
    return f"[{shown(row['ci_low'], row['unit'])}, {shown(row['ci_high'], row['unit'])}]"


def test_a_finished_run_writes_its_model_card(finished_run):
    card = (finished_run / MODEL_CARD_FILE).read_text()
    assert card == model_card_text(finished_run), "the card is a function of the run's files"
    assert card.startswith("# Model card: FineFACE, gender classification, trained on the synthetic faces")
    for heading in ("## The model", "## The data", "## Evaluation per group", "### Fairness summaries",
                    "## Intended use", "## Uses it is not fit for", "## The labels' caveats",
                    "## Licence of the training data"):
        assert f"\n{heading}\n" in card, heading
    assert "identifying, recognising, tracking or profiling people" in card
    assert "any decision about a person" in card
    assert f"*{LABELS_CHAPTER}* ({LABELS_CHAPTER_SOURCE})" in card and LABEL_CAVEATS["synthetic"] in card


def test_the_cards_numbers_are_the_runs(finished_run):
    card = (finished_run / MODEL_CARD_FILE).read_text()
    summary = json.loads((finished_run / "summary.json").read_text())
    # the run's own report (summary.json)
    assert f"val {100 * summary['val_accuracy']:.2f} %, test {100 * summary['test_accuracy']:.2f} %" in card
    assert f"epoch {summary['best_epoch']}, the best val_accuracy on the validation split " \
           f"({summary['best_metric']:.4f})" in card
    assert f"{summary['epochs_run']} of at most 1 epochs" in card and f"{summary['steps']} training iterations" in card
    # the evaluation per group: the task report of the test predictions, bootstrap as the card says
    predictions = pd.read_csv(finished_run / "predictions_test.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a 2-batch model predicts one class: the card lists that warning
        report = task_report(predictions, "gender", n_bootstrap=CARD_BOOTSTRAP, seed=CARD_SEED)
    assert f"({CARD_BOOTSTRAP} resamples, seed {CARD_SEED}," in card
    groups = report[report["group"] != "all"]
    assert len(groups) == 8
    for row in groups.to_dict("records"):
        (cells,) = table_rows(card, row["group"], 5)
        assert cells[1:] == ["accuracy (%)", str(row["n"]), shown(row["value"], "%"), interval(row)], row["group"]
    summaries = report[report["group"] == "all"].to_dict("records")
    assert {r["metric"] for r in summaries} == {"overall_accuracy", "max_group_accuracy", "min_group_accuracy",
                                                "max_min_ratio", "degree_of_bias"}
    for row in summaries:
        (cells,) = table_rows(card, METRIC_WORDS[row["metric"]] + (" (%)" if row["unit"] == "%" else ""), 4)
        assert cells[1:3] == [shown(row["value"], row["unit"]), interval(row)], row["metric"]
        assert cells[3] == {"max_min_ratio": "1", "degree_of_bias": "0"}.get(row["metric"], ""), row["metric"]
    overall = next(r for r in summaries if r["metric"] == "overall_accuracy")
    assert overall["value"] == pytest.approx(100 * summary["test_accuracy"])
    # the data: images per group and split, counted in the run's table
    table = pd.read_csv(json.loads((finished_run / "config.json").read_text())["table"])
    for (tone, gender), part in table.groupby(["tone", "gender"]):
        (cells,) = table_rows(card, f"{tone} / {gender}", 4)
        counts = part["split"].value_counts()
        assert cells[1:] == [str(int(counts.get(s, 0))) for s in ("train", "val", "test")], (tone, gender)
    assert table_rows(card, "**all**", 4)[0][1:] == ["24", "8", "8"]


def test_the_card_states_the_licence_of_the_synthetic_faces(finished_run):
    card = (finished_run / MODEL_CARD_FILE).read_text()
    assert f"The synthetic faces: {synthetic.LICENCE}." in card


@pytest.mark.parametrize("dataset", sorted(ADAPTERS))
def test_the_card_states_the_licence_of_each_adapters_data(finished_run, tmp_path, dataset):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = adapter_tables(tmp_path / "releases")[dataset]
    path = save_table(table, tmp_path / f"{dataset}.csv")
    run = copied_run(finished_run, tmp_path / "run", table=str(path))
    card = model_card_text(run)
    name = DATASET_NAMES[dataset]
    assert f"trained on {name}\n" in card
    assert f"{name[0].upper()}{name[1:]}: {ADAPTERS[dataset].LICENCE}." in card
    assert LABEL_CAVEATS[dataset] in card


def test_a_table_that_moved_gets_no_guessed_licence(finished_run, tmp_path):
    run = copied_run(finished_run, tmp_path / "run", table=str(tmp_path / "gone.csv"))
    card = model_card_text(run)
    assert "was not found" in card and "## Licence of the training data\n\nUnknown:" in card
    assert synthetic.LICENCE not in card
    assert "| tone_1 / Female | accuracy (%) |" in card  # the evaluation needs only the predictions


def test_a_mitigation_runs_card_says_it_trains_with_protected_labels(finished_run, tmp_path):
    run = copied_run(finished_run, tmp_path / "run", uses_protected_labels=True,
                     protected_training_columns=["tone"], domains=["tone_1", "tone_2", "tone_3", "tone_4"])
    document = json.loads((run / "config.json").read_text())
    document["config"]["method"] = "group_dro"
    (run / "config.json").write_text(json.dumps(document))
    card = model_card_text(run)
    assert card.startswith("# Model card: Group DRO, gender classification")
    assert "trains **with the protected label of every training image** (tone; groups: tone_1" in card


def test_the_card_command_writes_it_again(finished_run, tmp_path, capsys):
    run = copied_run(finished_run, tmp_path / "run")
    assert not (run / MODEL_CARD_FILE).exists()
    assert main(["card", "--run-dir", str(run)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {run / MODEL_CARD_FILE}"
    assert (run / MODEL_CARD_FILE).read_text() == model_card_text(run)
    assert not list(run.glob(".*.tmp")), "the card is written whole, with no temporary left"


def test_the_card_command_refuses_a_folder_without_a_finished_run(finished_run, tmp_path, capsys):
    assert main(["card", "--run-dir", str(tmp_path / "nothing")]) == 2
    assert re.fullmatch(r"error: run directory '.*nothing' does not exist; give --run-dir .*\n",
                        capsys.readouterr().err)
    unfinished = copied_run(finished_run, tmp_path / "unfinished")
    (unfinished / "summary.json").write_text(json.dumps({"finished": False, "steps": 1}))
    assert main(["card", "--run-dir", str(unfinished)]) == 2
    assert "has not finished" in capsys.readouterr().err
    assert not (unfinished / MODEL_CARD_FILE).exists()
    (unfinished / "summary.json").unlink()
    assert main(["card", "--run-dir", str(unfinished)]) == 2
    assert "holds no finished run (no summary.json)" in capsys.readouterr().err


def test_without_the_metrics_packages_the_card_is_written_and_says_how_to_complete_it(finished_run, tmp_path,
                                                                                      monkeypatch):
    """The GPU machine has no fairlearn: a training there must still finish, its card saying the
    evaluation per group was not computed and which command computes it."""
    import shutil

    from finefcace.training import model_card

    def absent(*args, **kwargs):
        raise ImportError("finefcace.metrics needs fairlearn and scikit-learn")

    monkeypatch.setattr(model_card, "task_report", absent)
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    text = model_card.write_model_card(run).read_text()
    assert "the evaluation per group was not computed: it needs the metrics packages" in text
    assert f"python -m finefcace card --run-dir {run.as_posix()}" in text
    assert "### Fairness summaries" not in text and "## Licence of the training data" in text
