"""How the course's notebooks show what they make, so that the book reads well at its page width
(``tests/test_browser.py`` checks it): figures as images with alt text in words and a record of
their smallest text (:func:`finefcace.plots.figure_html`), tables with one header row and whole
cells (:func:`frame_html`), and each training run's log as one block — its messages and a table of
its epochs (:class:`RunLog`) — instead of one grey box per log line, cut at the right edge.
:func:`finefcace.course.session.start` turns the first two on (:func:`show_in_notebook`) and
:func:`finefcace.course.session.trained_run` uses the third. Book: every notebook.
"""

from __future__ import annotations

import contextlib
import html
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["RunLog", "epoch_table", "frame_html", "in_kernel", "one_block_log", "one_header_row", "show_in_notebook"]


def in_kernel() -> bool:
    """Whether this runs in a Jupyter kernel (where outputs are displayed), not a plain Python."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with Jupyter
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def show_in_notebook(shell: Any) -> None:
    """Show every matplotlib figure through :func:`finefcace.plots.figure_html` (an image with alt
    text and its text size; the PNG is then not stored a second time) and every DataFrame through
    :func:`frame_html`, in this kernel. Called by :func:`finefcace.course.session.start`."""
    import pandas as pd
    from matplotlib.figure import Figure

    from finefcace import plots

    formatters = shell.display_formatter.formatters
    formatters["text/html"].for_type(Figure, plots.figure_html)
    formatters["image/png"].pop(Figure, None)
    formatters["text/html"].for_type(pd.DataFrame, frame_html)


def one_header_row(frame: "pd.DataFrame") -> "pd.DataFrame":
    """``frame`` without header rows that would be empty but for a name: a level of its columns
    that is empty in every column (the summaries of a table whose other columns are groups) is
    dropped, and the name of its (single-level) index is moved into the header's corner
    (``split \\ gender`` where the columns have a name of their own) — pandas prints an index's
    name on a header row of its own."""
    if frame.columns.nlevels > 1:
        empty = [level for level in range(frame.columns.nlevels)
                 if all(str(value).strip() == "" for value in frame.columns.get_level_values(level))]
        if empty and len(empty) < frame.columns.nlevels:
            frame = frame.droplevel(empty, axis=1)
    if frame.index.nlevels != 1 or frame.index.name is None:
        return frame
    names = list(frame.columns.names)
    index_name = str(frame.index.name)
    names[-1] = f"{index_name} \\ {names[-1]}" if names[-1] is not None else index_name
    return frame.rename_axis(index=None).rename_axis(columns=names if len(names) > 1 else names[0])


def frame_html(frame: "pd.DataFrame") -> str | None:
    """A DataFrame's HTML as the course shows it: pandas' own, after :func:`one_header_row`."""
    return one_header_row(frame)._repr_html_()


#: The columns of :func:`epoch_table`, from a run's history (``history.csv``).
_EPOCH_COLUMNS = {"train_accuracy": "train acc (%)", "val_loss": "val loss", "val_accuracy": "val acc (%)",
                  "epoch_seconds": "time (s)", "best": "best so far"}


def epoch_table(history: "pd.DataFrame") -> "pd.DataFrame":
    """One row per epoch of a run's history: each training loss (one per step of an iteration:
    FineFACE's N + 2, the baseline's one), training and validation accuracy in percent, the
    validation loss, the epoch's time and whether its checkpoint was the best so far (the one
    kept is the last so marked). Learning rates are in the training curves, not here."""
    import pandas as pd

    frame = pd.DataFrame(history)
    losses = [c for c in frame.columns if c == "loss" or c.startswith("loss_")]
    table = pd.DataFrame(index=pd.Index(frame["epoch"].astype(int), name="epoch"))
    for column in losses:
        name = "training loss" if column == "loss" else "loss " + column.removeprefix("loss_").replace("_", " ")
        table[name] = frame[column].to_numpy()
    for column, name in _EPOCH_COLUMNS.items():
        if column not in frame.columns:
            continue
        values = frame[column].to_numpy()
        if column.endswith("accuracy"):
            values = (100 * values.astype(float)).round(1)
        elif column == "epoch_seconds":
            values = values.astype(float).round(1)
        elif column == "best":
            values = ["yes" if str(v).lower() in ("true", "1") else "" for v in values]
        table[name] = values
    return table


class RunLog:
    """One training run's log, shown as one block that updates while the run trains: the
    library's messages (trained with protected labels, loaded, finished with its accuracies) and,
    once the run is done, :func:`epoch_table` of its history — also for a run that was loaded,
    so a build that loads the run shows what the build that trained it showed. While it trains,
    each epoch's log line is shown as it comes."""

    def __init__(self, run_dir: Any) -> None:
        self.run_dir = str(run_dir)
        self.messages: list[str] = []
        self.epochs: list[str] = []
        self.table: pd.DataFrame | None = None

    def add(self, record: logging.LogRecord) -> None:
        """A log record of the run: an epoch's line (the trainer's ``_end_epoch``) or a message."""
        (self.epochs if record.funcName == "_end_epoch" else self.messages).append(record.getMessage())

    def finish(self, history: Any) -> None:
        """The run is done: its epochs as a table (``history``: the run's, may be empty)."""
        if history is not None and len(history):
            self.table = epoch_table(history)

    def _repr_html_(self) -> str:
        parts = [f"<p>{html.escape(message)}</p>" for message in self.messages]
        if self.table is not None:
            parts.append(frame_html(self.table) or "")
        else:
            parts += [f"<p>{html.escape(line)}</p>" for line in self.epochs]
        return f'<div class="run-log">{"".join(parts) or html.escape(self.run_dir)}</div>'

    def __repr__(self) -> str:
        lines = list(self.messages)
        lines += [self.table.to_string()] if self.table is not None else self.epochs
        return "\n".join(lines) or self.run_dir


@contextlib.contextmanager
def one_block_log(run_dir: Any) -> Iterator[RunLog]:
    """Within the block, the ``finefcace`` loggers' records go to one :class:`RunLog` displayed
    (and updated in place) in the cell's output, instead of to the course's one-line-per-record
    handler (:func:`finefcace.course.session.start`); call :meth:`RunLog.finish` before leaving."""
    from IPython.display import display

    log = RunLog(run_dir)
    handle = display(log, display_id=True)

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            log.add(record)
            handle.update(log)

    logger = logging.getLogger("finefcace")
    course_handlers = [h for h in logger.handlers if getattr(h, "_finefcace_course", False)]

    def mute(record: logging.LogRecord) -> bool:
        return False

    collector = Collect(logging.INFO)
    for handler in course_handlers:
        handler.addFilter(mute)
    logger.addHandler(collector)
    try:
        yield log
    finally:
        logger.removeHandler(collector)
        for handler in course_handlers:
            handler.removeFilter(mute)
        handle.update(log)
