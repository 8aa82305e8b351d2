"""What the data-path tests share (a plain module: conftest.py names collide): the two
implementations, addresses in ADDRESS_DTYPE, and batches built from lists of packets.

It sits beside the tests so that the files the namespace tests run as scripts import it too."""

from __future__ import annotations

import ipaddress
import sys
from typing import Any

import numpy as np

import l2tpfast._dataplane as compiled
import l2tpfast.reference.dataplane as refdp
import l2tpfast.reference.forwarder as reffw
from l2tpfast.wire.dtypes import ADDRESS_DTYPE

#: (DataPath, Forwarder) of each implementation: one test body runs on both (STYLE.md 8).
IMPLS = {
    "compiled": (compiled.DataPath, compiled.Forwarder),
    "reference": (refdp.DataPath, reffw.Forwarder),
}


def address(host: str, port: int) -> Any:
    """An ADDRESS_DTYPE scalar for an IPv4 or IPv6 host and a port."""
    a = np.zeros((), dtype=ADDRESS_DTYPE)
    packed = ipaddress.ip_address(host).packed
    a["addr"][: len(packed)] = list(packed)
    a["family"] = 4 if len(packed) == 4 else 6
    a["port"] = port
    return a


def batch(packets: list[bytes]) -> tuple[Any, Any, Any]:
    """(buffer, offsets, lengths) of packets laid end to end, as one receive batch."""
    buf = np.frombuffer(b"".join(packets) or b"\0", dtype=np.uint8)
    lengths = np.array([len(p) for p in packets], dtype=np.uint32)
    offsets = np.zeros(len(packets), dtype=np.uint32)
    offsets[1:] = np.cumsum(lengths)[:-1]
    return buf, offsets, lengths


def route(dp: Any, packets: list[bytes]) -> tuple[int, list[int]]:
    """``route_batch`` over IP packets: how many found a session, and the slot of each."""
    buf, offsets, lengths = batch(packets)
    slots = np.zeros(len(packets), dtype=np.uint32)
    found = dp.route_batch(buf, offsets, lengths, slots)
    return found, [int(s) for s in slots]


def stats_of(fw: Any) -> dict[str, int]:
    """A Forwarder's counters by name."""
    names = sys.modules[type(fw).__module__].FORWARDER_STATS
    return dict(zip(names, (int(v) for v in fw.stats), strict=True))
