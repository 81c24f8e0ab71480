"""The verdict across the committed studies: three sentences and one summary figure.

Reads the committed studies of ``experiments/results/`` (no training: every number is already
there) and writes ``verdict.md`` (the three sentences of ``book/results.md``: synthetic faces,
real photographs, the mitigation methods) and ``verdict.svg`` (a forest plot of every comparison
behind them), both with :mod:`finefcace.course.verdict`. Run it again after any study changes;
``tests/course/test_verdict.py`` fails while the committed files differ from what it writes.

The figure is committed, not drawn at build time: the book's Markdown pages include files, they
do not run code, and the inputs are committed JSON files that change only when a study is rerun
— so a build-time step would redraw the same picture every build. The test keeps it in step.

    python experiments/verdict.py [--results experiments/results]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS_DIR = Path(__file__).resolve().parent / "results"
COMMAND = "python experiments/verdict.py"


def write(results: Path, out: Path | None = None) -> tuple[Path, Path]:
    """Write ``verdict.md`` and ``verdict.svg`` for the studies in ``results`` into ``out``
    (default: ``results``); the SVG is byte-for-byte reproducible (no date, fixed ids)."""
    import matplotlib

    matplotlib.use("Agg")
    from finefcace import outputs
    from finefcace.course import verdict

    out = out or results
    comparisons = verdict.comparison_rows(results)
    markdown = outputs.write_text(out / "verdict.md", verdict.verdict_markdown(comparisons, command=COMMAND))
    with matplotlib.rc_context({"svg.hashsalt": "finefcace-verdict", "svg.fonttype": "none"}):
        figure = verdict.summary_figure(comparisons)
        svg = outputs.save_figure(figure, out / "verdict.svg", metadata={"Date": None})
    import matplotlib.pyplot as plt

    plt.close(figure)
    return markdown, svg


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="the folder of committed studies")
    args = parser.parse_args(argv)
    for path in write(args.results):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
