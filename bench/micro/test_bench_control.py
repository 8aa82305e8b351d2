"""Session setup through the sans-IO control plane: a LAC core and an LNS core wired in memory,
no loss, both on this one CPU. One round opens a tunnel, places 500 calls on it (ICRQ, ICRP,
ICCN, acks) and runs until every call is up on the LNS: the rate is calls set up per second of
CPU for both ends together, what the control plane costs per subscriber before any I/O.
Reported, never asserted (STYLE.md 9).
"""

from __future__ import annotations

import random
from typing import Any

from l2tpfast.control.endpoint import Endpoint
from l2tpfast.control.events import SessionEstablished
from l2tpfast.control.settings import EndpointSettings, TunnelSettings

CALLS = 500
LAC, LNS = ("192.0.2.1", 1701), ("192.0.2.2", 1701)


def one_round() -> int:
    """Returns the calls up on the LNS."""
    settings = {"receive_window": 64}
    lac = Endpoint(EndpointSettings(TunnelSettings(host_name="lac", **settings)), rng=random.Random(1))  # type: ignore[arg-type]
    lns = Endpoint(EndpointSettings(TunnelSettings(host_name="lns", **settings)), rng=random.Random(2))  # type: ignore[arg-type]
    tid = lac.open_tunnel(LNS, 0.0)
    now, up = 0.0, 0
    opened = False
    for _ in range(CALLS * 20):  # bounded: a few exchanges per call
        moved = False
        for tx in lac.datagrams_to_send():
            lns.receive_datagram(tx.data, LAC, now)
            moved = True
        for tx in lns.datagrams_to_send():
            lac.receive_datagram(tx.data, LNS, now)
            moved = True
        while (event := lns.next_event()) is not None:
            up += isinstance(event, SessionEstablished)
        while lac.next_event() is not None:
            pass
        if not opened and lac.tunnels[tid].state.value == "established":
            opened = True
            for _ in range(CALLS):
                lac.open_session(tid, now)
            continue
        if not moved:
            if up >= CALLS:
                break
            now += 0.1  # ZLB acks leave after ack_delay: let the clock run
            lac.handle_timer(now)
            lns.handle_timer(now)
    return up


def test_control_plane_setup_rate(benchmark: Any) -> None:
    ups: list[int] = []
    benchmark.pedantic(lambda: ups.append(one_round()), rounds=5, iterations=1, warmup_rounds=1)
    assert all(u == CALLS for u in ups), ups
    seconds = benchmark.stats.stats.median
    print(
        f"\ncontrol plane: {CALLS} calls set up in {seconds * 1000:.0f} ms, {CALLS / seconds:,.0f} calls/s "
        "(both ends on one CPU, in memory, no loss, median of 5)"
    )
