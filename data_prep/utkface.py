"""``python -m data_prep.utkface ...``: the same as ``python -m data_prep utkface ...`` (see :mod:`data_prep.cli`)."""

from __future__ import annotations

import sys

from data_prep.cli import main as _main


def main(argv: list[str] | None = None) -> int:
    """Run the utkface command with ``argv`` (default: the command line)."""
    return _main(["utkface", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
