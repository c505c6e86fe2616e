"""``python -m sim.cli``: the same as ``tpe``."""

import sys

from sim.cli import main

sys.exit(main())
