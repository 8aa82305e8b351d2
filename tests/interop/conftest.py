"""Fixtures of the interop tests."""

from __future__ import annotations

import pytest
from tools import require_tool


@pytest.fixture(scope="session")
def tshark() -> str:
    """Path of tshark; missing, it fails the test under CI and skips it elsewhere."""
    return require_tool("tshark", "the independent judge of every datagram we build")
