"""Draw FineFACE's architecture diagram for the book from the library's own names.

Writes ``book/_static/finefcace_architecture.svg`` with
:func:`finefcace.course.architecture.architecture_figure`: the paper's model (ResNet-50 at
448 px, the ``paper`` preset), its N + 2 training steps and fused inference. Text stays text
(searchable, and the test reads the labels back); no date and fixed ids, so the file is
byte-for-byte reproducible and ``tests/course/test_architecture.py`` fails while the committed
figure differs from what this script draws today. Committed rather than drawn at build time:
the book's Markdown pages include files and run no code.

    python scripts/architecture_diagram.py [--out book/_static/finefcace_architecture.svg]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

OUT = Path(__file__).resolve().parents[1] / "book" / "_static" / "finefcace_architecture.svg"


def write(path: Path = OUT) -> Path:
    """Draw the diagram of the paper's setting and write it as SVG to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from finefcace import outputs
    from finefcace.course import architecture

    with matplotlib.rc_context({"svg.hashsalt": "finefcace-architecture", "svg.fonttype": "none"}):
        figure = architecture.architecture_figure(architecture.architecture_facts())
        written = outputs.save_figure(figure, path, metadata={"Date": None})
    plt.close(figure)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    print(f"wrote {write(parser.parse_args(argv).out)}")


if __name__ == "__main__":
    main()
