"""``python -m rig`` is ``zaprig``."""

from __future__ import annotations

import sys

from rig.cli import main

if __name__ == "__main__":
    sys.exit(main())
