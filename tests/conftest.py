"""Shared set-up for the l2tpfast test suite."""

from __future__ import annotations

import sys
from pathlib import Path

# tests/catalog.py, tests/pcaputil.py and tests/tools.py are imported by name.
sys.path.insert(0, str(Path(__file__).resolve().parent))
