"""``python -m finefcace train|evaluate|predict|card`` (see :mod:`finefcace.training.cli`)."""

import sys

from finefcace.training.cli import main

sys.exit(main())
