"""bench/ is not a package: put this folder on sys.path so the benchmarks import ``e2e_common``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
