"""``python -m mdesign``: the same as the ``mdesign`` console script."""

import sys

from mdesign.cli import main

sys.exit(main())
