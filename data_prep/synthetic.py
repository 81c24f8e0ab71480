"""``python -m data_prep.synthetic ...``: the same as ``python -m data_prep synthetic ...`` (see :mod:`data_prep.cli`)."""

from __future__ import annotations

import sys

from data_prep.cli import main as _main


def main(argv: list[str] | None = None) -> int:
    """Run the synthetic command with ``argv`` (default: the command line)."""
    return _main(["synthetic", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
