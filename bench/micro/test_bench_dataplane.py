"""The data path's receive step on one batch of 1024 data datagrams (64 sessions, 64-octet IP
packets): compiled ``l2tpfast._dataplane`` against the reference, and the cost of sequencing
(RFC 2661 5.4) with 10% of the packets reordered against the unsequenced path, in one run
(STYLE.md 9). Speed is reported, never asserted; the summary lines give Mpps and ratios.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import l2tpfast._dataplane as compiled
import l2tpfast.reference.dataplane as reference
from l2tpfast.wire.constants import DeliveryAction, SessionTarget
from l2tpfast.wire.dtypes import ADDRESS_DTYPE, DELIVERY_DTYPE
from l2tpfast.wire.header import build_data_header

SESSIONS = 64
COUNT = 1024
PER_SESSION = COUNT // SESSIONS
ROUNDS = 200


class Stream:
    """A batch whose Ns advance by PER_SESSION before every round (setup, not timed)."""

    def __init__(self, *, sequenced: bool, reorder: float, seed: int = 1701) -> None:
        rng = random.Random(seed)
        order = [(s, k) for k in range(PER_SESSION) for s in range(SESSIONS)]
        if reorder:
            # Swap a packet with the next one of its session: that pair arrives out of order.
            for i in range(len(order) - SESSIONS):
                if rng.random() < reorder / 2:
                    order[i], order[i + SESSIONS] = order[i + SESSIONS], order[i]
        parts, self.ns_at, self.ns_base = [], [], []
        pos = 0
        for s, k in order:
            header = build_data_header(1, s + 1, ns=k if sequenced else None)
            if sequenced:
                self.ns_at.append(pos + 6)
                self.ns_base.append(k)
            packet = header + b"\xff\x03\x00\x21" + bytes([0x45]) + bytes(63)
            parts.append(packet)
            pos += len(packet)
        self.buf = np.frombuffer(b"".join(parts), dtype=np.uint8).copy()
        self.lengths = np.array([len(p) for p in parts], dtype=np.uint32)
        self.offsets = np.zeros(COUNT, dtype=np.uint32)
        self.offsets[1:] = np.cumsum(self.lengths)[:-1]
        self.sources = np.zeros(COUNT, dtype=ADDRESS_DTYPE)
        self.sources["family"] = 4
        self.sources["port"] = 1701
        self.sources["addr"][:, :4] = [192, 0, 2, 1]
        self.ns_at_arr = np.array(self.ns_at, dtype=np.int64)
        self.ns_base_arr = np.array(self.ns_base, dtype=np.int64)
        self.round = 0
        self.out = np.zeros(COUNT * 4, dtype=DELIVERY_DTYPE)

    def advance(self) -> None:
        if len(self.ns_at_arr):
            ns = (self.ns_base_arr + self.round * PER_SESSION) % 65536
            self.buf[self.ns_at_arr] = ns >> 8
            self.buf[self.ns_at_arr + 1] = ns & 0xFF
        self.round += 1


def make_path(cls: Any) -> Any:
    dp = cls(SESSIONS * 2, reorder_window=16)
    peer = np.zeros((), dtype=ADDRESS_DTYPE)
    peer["family"], peer["port"] = 4, 1701
    peer["addr"][:4] = [192, 0, 2, 1]
    for s in range(SESSIONS):
        dp.add_session(1, s + 1, 1, s + 1, peer, target=SessionTarget.TUN)
    return dp


def bench(benchmark: Any, cls: Any, stream: Stream, rounds: int = ROUNDS) -> int:
    dp = make_path(cls)
    delivered: list[int] = []

    def step() -> None:
        delivered.append(
            dp.process(stream.buf, stream.offsets, stream.lengths, stream.sources, stream.out, 0.0)
        )

    benchmark.pedantic(step, setup=stream.advance, rounds=rounds, iterations=1, warmup_rounds=1)
    # What was timed is right: every packet of every round went to the TUN device. (The warm-up
    # round is left out: a session's first sequenced packet sets the Ns it expects, so a swapped
    # first pair loses one packet there, as RFC 2661 5.4 allows.)
    assert all(n == COUNT for n in delivered[1:]), delivered[:5]
    assert (stream.out["action"][:COUNT] == DeliveryAction.TUN).all()
    return len(delivered)


@pytest.mark.parametrize(
    ("name", "sequenced", "reorder"),
    [("unsequenced", False, 0.0), ("sequenced", True, 0.0), ("reordered10", True, 0.10)],
)
def test_compiled_receive(
    benchmark: Any, record_result: Callable[[str, Any], None], name: str, sequenced: bool, reorder: float
) -> None:
    bench(benchmark, compiled.DataPath, Stream(sequenced=sequenced, reorder=reorder))
    record_result(f"dataplane.{name}", benchmark)


def test_reference_receive(benchmark: Any, record_result: Callable[[str, Any], None]) -> None:
    bench(benchmark, reference.DataPath, Stream(sequenced=False, reorder=0.0), rounds=10)
    record_result("dataplane.reference", benchmark)
