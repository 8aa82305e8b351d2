"""UDP GRO on the receive side (``Forwarder(gro=True)`` over a socket with UDP_GRO, udp(7)).

On loopback a run sent as one GSO message reaches a UDP_GRO socket whole: one buffer and a
UDP_GRO cmsg with the datagrams' size. The Forwarder cuts it into its datagrams again, each
classified as if it had come alone; datagrams that come alone (other sizes, control messages)
pass as before, and a control message still names the local address it was sent to.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from dpkit import stats_of
from sockkit import socket_maker

from l2tpfast._dataplane import DataPath, Forwarder, LoadCounter, LoadGenerator
from l2tpfast.runtime.dataplane import address_row, enable_gro
from l2tpfast.wire.constants import SessionTarget

N = 8


@pytest.fixture
def sockets() -> Iterator[Callable[[], socket.socket]]:
    """UDP sockets on loopback with IP_PKTINFO (the local address of each datagram)."""
    with socket_maker() as make:

        def make_pktinfo() -> socket.socket:
            s = make(64 << 20)
            s.setsockopt(socket.IPPROTO_IP, 8, 1)  # IP_PKTINFO
            return s

        yield make_pktinfo


def _far_end(sock: socket.socket, sender: tuple[str, int], *, gro: bool) -> tuple[Forwarder, LoadCounter]:
    """The receiving data path: N sessions from ``sender``, IP counted by a LoadCounter."""
    path = DataPath(64)
    for i in range(N):
        path.add_session(100, 200 + i, 1, 10 + i, address_row(*sender), target=SessionTarget.TUN)
    if gro:
        enable_gro(sock.fileno())
    fw = Forwarder(path, sock.fileno(), gro=gro)
    counter = LoadCounter(N)
    fw.sink = counter
    return fw, counter


def _generator(out: socket.socket, far: tuple[str, int]) -> LoadGenerator:
    """N sessions to ``far``, keyed as _far_end expects."""
    path = DataPath(64)
    gen = LoadGenerator(out.fileno(), N, path, 64)
    for i in range(N):
        slot = path.add_session(1, 10 + i, 100, 200 + i, address_row(*far), target=SessionTarget.TUN)
        gen.set_session(i, socket.inet_aton("10.0.0.2"), socket.inet_aton("10.0.0.1"), 7, 9, slot)
    return gen


def _pump(fw: Forwarder, done: Callable[[], bool], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    for _ in range(100_000):
        fw.run_once(udp=True, tun=False)
        if done() or time.monotonic() > end:
            return


@pytest.mark.parametrize("gro", [True, False])
def test_gso_runs_arrive_whole_and_are_cut_into_datagrams(
    gro: bool, sockets: Callable[[], socket.socket]
) -> None:
    out, far = sockets(), sockets()
    fw, counter = _far_end(far, out.getsockname(), gro=gro)
    gen = _generator(out, far.getsockname())
    sent, _ = gen.run(100_000, 300, 0.1, 0, 1)  # paced: the socket must hold what is not read yet
    assert gen.gso_stats[0] > 0, "the sender made no GSO runs: nothing to coalesce"
    _pump(fw, lambda: int(counter.totals[0]) >= sent)
    stats = stats_of(fw)
    assert fw.gro is gro
    # Every datagram of every run: counted once, in order per session, octets as sent.
    assert int(counter.totals[0]) == sent and stats["udp_rx"] == sent == stats["tun_tx"]
    assert int(counter.totals[2]) == 0 and int(counter.totals[1]) == sent * 300
    per_session = counter.sessions["packets"]
    assert per_session.sum() == sent and np.ptp(per_session) <= 1
    assert stats["truncated"] == 0 and stats["recv_errors"] == 0
    runs, in_runs = fw.gro_stats
    if gro:
        assert runs > 0 and in_runs > runs, "no run arrived coalesced"
    else:
        assert (runs, in_runs) == (0, 0)


def test_single_datagrams_and_control_messages_still_pass(sockets: Callable[[], socket.socket]) -> None:
    out, far = sockets(), sockets()
    fw, counter = _far_end(far, out.getsockname(), gro=True)
    items: list[Any] = []
    fw.handoff = items.extend
    gen = _generator(out, far.getsockname())
    # Runs of two sizes, then a control message (a ZLB: T, L, S set; Length 12), then a run again.
    sent = gen.run(100_000, 120, 0.02, 0, 1)[0] + gen.run(100_000, 1000, 0.02, 0, 1)[0]
    zlb = struct.pack("!HHHHHH", 0xC802, 12, 100, 0, 0, 1)
    out.sendto(zlb, far.getsockname())
    sent += gen.run(100_000, 120, 0.02, 0, 1)[0]
    _pump(fw, lambda: int(counter.totals[0]) >= sent and bool(items))
    assert int(counter.totals[0]) == sent and int(counter.totals[2]) == 0
    (control,) = [item for item in items if item[0] == "control"]
    assert control[1] == zlb and control[2] == out.getsockname() and control[3] == "127.0.0.1"
    assert stats_of(fw)["udp_rx"] == sent + 1


def test_gro_is_for_udp_receivers_only(sockets: Callable[[], socket.socket]) -> None:
    path = DataPath(4)
    sock = sockets()
    assert Forwarder(path, sock.fileno()).gro is False  # off unless asked for
    assert Forwarder(path, sock.fileno(), raw=True, gro=True).gro is False
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        assert Forwarder(path, sock.fileno(), a.fileno(), receive_udp=False, gro=True).gro is False
    finally:
        a.close()
        b.close()
