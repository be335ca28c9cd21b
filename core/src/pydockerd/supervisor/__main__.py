"""``python -m pydockerd.supervisor CONFIG [--fork]``."""

import sys

from pydockerd.supervisor.server import main

sys.exit(main())
