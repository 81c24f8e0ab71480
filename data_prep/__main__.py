"""``python -m data_prep <dataset> ...``: see :mod:`data_prep.cli`."""

import sys

from data_prep.cli import main

sys.exit(main())
