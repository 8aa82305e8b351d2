"""Fixtures of the interop tests."""

from __future__ import annotations

from collections.abc import Iterator

import lab
import pytest
from tools import require_tool


@pytest.fixture(scope="session")
def tshark() -> str:
    """Path of tshark; missing, it fails the test under CI and skips it elsewhere."""
    return require_tool("tshark", "the independent judge of every datagram we build")


@pytest.fixture
def pair() -> Iterator[lab.NetnsPair]:
    """Two network namespaces joined by a veth pair, deleted after the test."""
    with lab.NetnsPair() as p:
        yield p


@pytest.fixture
def capture_tools(tshark: str) -> str:
    """What a test of our daemons in namespaces with a capture needs; tshark's path."""
    for name, why in (("ip", "network namespaces"), ("tcpdump", "captures")):
        require_tool(name, why)
    return tshark
