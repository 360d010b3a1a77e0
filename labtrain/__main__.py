"""``python -m labtrain`` is the ``labtrain`` command."""

import sys

from .cli import main

sys.exit(main())
