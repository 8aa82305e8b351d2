"""Helpers for tests that need external tools (a plain module: conftest.py names collide)."""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = bool(os.environ.get("CI"))


def require_tool(name: str, why: str) -> str:
    """Path of an external tool; under CI a missing tool fails the test, elsewhere it skips.

    CI installs every tool (ci/install-system-deps.sh), so there a missing tool is a broken
    set-up, never a reason to skip.
    """
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed ({why}); `bash ci/install-system-deps.sh` installs it"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message + " -- skipped because CI is unset")
    raise AssertionError("unreachable")
