"""``python -m tabrelay``: the same as the ``tabrelay`` command."""

from __future__ import annotations

import sys

from tabrelay.cli import main

sys.exit(main())
