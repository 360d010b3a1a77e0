"""``python -m labtrain`` is the ``labtrain`` command."""

import sys

from labtrain.cli import main

sys.exit(main())
