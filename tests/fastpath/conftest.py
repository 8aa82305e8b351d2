"""One test body, two implementations (STYLE.md 8): the compiled ``l2tpfast._parse``
and its pure-Python twin ``l2tpfast.reference.parse``."""

from __future__ import annotations

from types import ModuleType

import pytest

import l2tpfast._parse
import l2tpfast.reference.parse

PARSERS = {"compiled": l2tpfast._parse, "reference": l2tpfast.reference.parse}


@pytest.fixture(params=sorted(PARSERS))
def parser(request: pytest.FixtureRequest) -> ModuleType:
    """A module with ``parse_batch`` and ``parse_header``."""
    return PARSERS[request.param]
