"""``python -m patterns.cli``: the same as the ``stateless-state`` command."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
