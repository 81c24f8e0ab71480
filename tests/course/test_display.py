"""finefcace.course.display: tables with one header row, a run's log as one block."""

from __future__ import annotations

import logging
import re

import pandas as pd

from finefcace.course import display


def _header_rows(html: str) -> list[list[str]]:
    head = re.search(r"<thead>(.*?)</thead>", html, re.S).group(1)
    return [re.findall(r"<th[^>]*>(.*?)</th>", row, re.S) for row in re.findall(r"<tr[^>]*>(.*?)</tr>", head, re.S)]


def test_an_index_name_goes_into_the_header_corner_not_an_empty_row():
    frame = pd.DataFrame({"layers": ["conv1", "layer1"], "stride": [2, 4]}, index=pd.Index([1, 2], name="stage"))
    assert _header_rows(frame._repr_html_())[1][0] == "stage"  # pandas: a second header row, empty but its name
    rows = _header_rows(display.frame_html(frame))
    assert rows == [["stage", "layers", "stride"]]
    columns = pd.MultiIndex.from_product([["tone_1"], ["Female", "Male"]], names=["tone", "gender"])
    counts = pd.DataFrame([[1, 2]], columns=columns, index=pd.Index(["train"], name="split"))
    rows = _header_rows(display.frame_html(counts))
    assert len(rows) == 2 and rows[1][0] == "split \\ gender" and rows[0][0] == "tone"
    plain = pd.DataFrame({"a": [1]})
    assert display.one_header_row(plain) is plain


def _history(epochs: int = 2, losses=("loss_expert_2", "loss_concat_raw")) -> pd.DataFrame:
    rows = []
    for epoch in range(1, epochs + 1):
        row = {"epoch": epoch, "step": 10 * epoch, "batches": 10, **{loss: 0.7 / epoch for loss in losses},
               "train_accuracy": 0.5 + 0.1 * epoch, "val_loss": 0.6, "val_accuracy": 0.55 + 0.1 * epoch,
               "lr_backbone": 0.01, "epoch_seconds": 12.345 * epoch, "best": epoch == epochs}
        rows.append(row)
    return pd.DataFrame(rows)


def test_the_epoch_table_keeps_every_loss_the_accuracies_and_the_times():
    table = display.epoch_table(_history())
    assert list(table.columns) == ["loss expert 2", "loss concat raw", "train acc (%)", "val loss", "val acc (%)",
                                   "time (s)", "best so far"]
    assert table.index.name == "epoch" and list(table.index) == [1, 2]
    assert table.loc[2, "val acc (%)"] == 75.0 and table.loc[1, "time (s)"] == 12.3
    assert list(table["best so far"]) == ["", "yes"]
    assert list(display.epoch_table(_history(losses=("loss",))).columns)[0] == "training loss"


def _record(message: str, function: str) -> logging.LogRecord:
    record = logging.LogRecord("finefcace.training.trainer", logging.INFO, __file__, 1, message, (), None)
    record.funcName = function
    return record


def test_a_run_log_shows_messages_and_epoch_lines_then_one_table():
    log = display.RunLog("runs/quick/gender-finefcace")
    log.add(_record("method group_dro trains WITH PROTECTED LABELS (tone)", "setup"))
    log.add(_record("epoch 1/2  loss=0.7  val_acc=0.6500", "_end_epoch"))
    live = log._repr_html_()
    assert "WITH PROTECTED LABELS" in live and "val_acc=0.6500" in live and "<table" not in live
    log.add(_record("finished runs/quick/gender-finefcace: test accuracy 0.7", "finish"))
    log.finish(_history())
    done = log._repr_html_()
    assert done.count("<table") == 1 and "val_acc=0.6500" not in done
    assert "WITH PROTECTED LABELS" in done and "test accuracy 0.7" in done and "75.0" in done
    assert "val acc (%)" in repr(log) and "finished" in repr(log)


def test_one_block_log_collects_the_records_and_mutes_the_line_per_record_handler(monkeypatch):
    shown = []

    class Handle:
        def update(self, obj):
            shown.append(obj._repr_html_())

    monkeypatch.setattr("IPython.display.display", lambda obj, display_id=False: (shown.append("first"), Handle())[1])
    logger = logging.getLogger("finefcace")
    printed = []

    class Course(logging.Handler):
        _finefcace_course = True

        def emit(self, record):
            printed.append(record.getMessage())

    course = Course(logging.INFO)
    logger.addHandler(course)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with display.one_block_log("runs/x") as log:
            logging.getLogger("finefcace.training.trainer").info("loading the finished run in %s", "runs/x")
            log.finish(_history())
        assert printed == [] and log.messages == ["loading the finished run in runs/x"]
        assert shown[0] == "first" and "<table" in shown[-1]
        logging.getLogger("finefcace.training.trainer").info("after the block")
        assert printed == ["after the block"]
    finally:
        logger.removeHandler(course)
        logger.setLevel(level)


def test_in_a_notebook_figures_are_images_with_alt_text_and_frames_have_one_header_row():
    """What start() turns on in a kernel: a Figure is formatted as the <img> of
    finefcace.plots.figure_html (and its PNG is not stored a second time), a DataFrame through
    frame_html."""
    from types import SimpleNamespace

    from IPython.core.formatters import DisplayFormatter

    from finefcace import plots

    shell = SimpleNamespace(display_formatter=DisplayFormatter())
    display.show_in_notebook(shell)
    figure = plots.new_figure(2.0, 2.0)
    figure.subplots().set_title("a curve")
    data, _ = shell.display_formatter.format(figure)
    assert "image/png" not in data and 'alt="Figure: a curve"' in data["text/html"]
    frame = pd.DataFrame({"a": [1]}, index=pd.Index([0], name="stage"))
    data, _ = shell.display_formatter.format(frame)
    assert _header_rows(data["text/html"]) == [["stage", "a"]]


def test_a_column_level_empty_in_every_column_is_dropped():
    columns = pd.MultiIndex.from_tuples([("Max/Min", ""), ("DoB", "")], names=["race", "gender"])
    frame = pd.DataFrame([[1.2, 4.0]], columns=columns,
                         index=pd.MultiIndex.from_tuples([("paper", "FineFACE")], names=["source", "method"]))
    rows = _header_rows(display.frame_html(frame))
    assert rows[0][-2:] == ["Max/Min", "DoB"] and not any(row[1:] == ["", ""] for row in rows)
    kept = pd.DataFrame([[1, 2]], columns=pd.MultiIndex.from_tuples([("a", "x"), ("a", "")]))
    assert display.one_header_row(kept).columns.nlevels == 2
