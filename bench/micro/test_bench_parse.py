"""Header parsing of one receive batch: ``l2tpfast._parse.parse_batch`` against the
pure-Python reference ``l2tpfast.reference.parse.parse_batch``, in the same run
(STYLE.md 9).  Run with ``python -m pytest bench/micro --benchmark-only -s``; the
last lines give Mpps of each and the ratio.  Speed is reported, never asserted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import l2tpfast._parse as compiled
import l2tpfast.reference.parse as reference
from l2tpfast.wire.constants import ParseStatus
from l2tpfast.wire.dtypes import empty_header_array


def test_parse_batch(benchmark: Any, batch: Any, record_result: Callable[[str, Any], None]) -> None:
    out = empty_header_array(len(batch))
    benchmark.extra_info["datagrams"] = len(batch)
    assert benchmark(compiled.parse_batch, batch.buf, batch.offsets, batch.lengths, out) == len(batch)
    record_result("parse_batch", benchmark)
    # What was timed is right: every datagram parses, and as the reference parses it.
    expected = empty_header_array(len(batch))
    reference.parse_batch(batch.buf, batch.offsets, batch.lengths, expected)
    assert out.tobytes() == expected.tobytes()
    assert (out["status"] == ParseStatus.OK).all()


def test_reference_parse_batch(benchmark: Any, batch: Any, record_result: Callable[[str, Any], None]) -> None:
    out = empty_header_array(len(batch))
    benchmark.extra_info["datagrams"] = len(batch)
    assert benchmark(reference.parse_batch, batch.buf, batch.offsets, batch.lengths, out) == len(batch)
    record_result("reference", benchmark)
