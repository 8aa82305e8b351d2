"""One test body, two implementations (STYLE.md 8): the compiled ``l2tpfast._parse``
and its pure-Python twin ``l2tpfast.reference.parse``."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest
from sockkit import socket_maker

import l2tpfast._parse
import l2tpfast.reference.parse

PARSERS = {"compiled": l2tpfast._parse, "reference": l2tpfast.reference.parse}


@pytest.fixture(params=sorted(PARSERS))
def parser(request: pytest.FixtureRequest) -> ModuleType:
    """A module with ``parse_batch`` and ``parse_header``."""
    return PARSERS[request.param]


@pytest.fixture
def udp_socket() -> Iterator[Callable[..., socket.socket]]:
    """Makes non-blocking UDP sockets on 127.0.0.1 (closed after the test): ``udp_socket(buffer, proto)``."""
    with socket_maker() as make:
        yield make
