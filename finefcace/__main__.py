"""``python -m finefcace train|evaluate|predict`` (see :mod:`finefcace.cli`)."""

import sys

from finefcace.cli import main

sys.exit(main())
