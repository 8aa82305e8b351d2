"""The shell around the PPP links (runtime/subscribers.py) with a real compiled DataPath and no
network: what it sends is collected, time is the test's."""

from __future__ import annotations

import asyncio
from typing import Any

from l2tpfast._dataplane import DataPath
from l2tpfast.config import LnsConfig, PppConfig
from l2tpfast.control.events import CallInfo, CallType, Role, SessionEstablished
from l2tpfast.ppp.constants import Protocol
from l2tpfast.ppp.frame import build_packet
from l2tpfast.runtime.dataplane import address_row
from l2tpfast.runtime.subscribers import FRAME_BURST, FRAME_RATE, Subscribers
from l2tpfast.wire.constants import SessionTarget


def _subscribers(now: list[float]) -> tuple[Subscribers, int, list[bytes]]:
    path = DataPath(16)
    slot = path.add_session(7, 9, 70, 90, address_row("192.0.2.1", 1701), target=SessionTarget.PPP)
    sent: list[bytes] = []
    subs = Subscribers(
        server=True,
        ppp=PppConfig(auth=()),
        lns=LnsConfig(pool=("10.100.0.0/24",)),
        path=path,
        tun=None,
        send=lambda data, peer, local: sent.append(data),
        close_session=lambda *args: None,
        now=lambda: now[0],
    )
    event = SessionEstablished(
        7, 9, 70, 90, ("192.0.2.1", 1701), Role.LNS, CallType.INCOMING, CallInfo(), False, None
    )
    subs.session_established(event, slot, None)
    return subs, slot, sent


def test_a_flood_of_ppp_frames_from_one_session_is_cut_to_its_rate() -> None:
    async def main() -> dict[str, Any]:
        now = [100.0]
        subs, slot, sent = _subscribers(now)
        echo = build_packet(9, 1, b"\0\0\0\0")  # LCP Echo-Request (code 9), magic 0
        subs.frames([(slot, Protocol.LCP, echo)] * 1000)
        first = dict(subs.counters)
        now[0] += 1.0  # a second later the bucket holds FRAME_RATE again
        subs.frames([(slot, Protocol.LCP, echo)] * 1000)
        subs.stop()
        return {"first": first, "second": dict(subs.counters), "sent": len(sent)}

    got = asyncio.run(main())
    assert got["first"]["frames_in"] == FRAME_BURST
    assert got["first"]["frames_rate_limited"] == 1000 - FRAME_BURST
    assert got["second"]["frames_in"] == FRAME_BURST + int(FRAME_RATE)
    assert got["second"]["frames_rate_limited"] == 2000 - FRAME_BURST - int(FRAME_RATE)
