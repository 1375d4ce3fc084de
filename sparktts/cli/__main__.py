"""``python -m sparktts.cli clone|create|voice|tokenize|inference ...`` (same as the ``sparktts`` script)."""

import sys

from sparktts.cli import main

sys.exit(main())
