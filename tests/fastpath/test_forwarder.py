"""The forwarding loop over real sockets, compiled and reference (one body, two implementations).

On loopback: L2TP switching between two sessions (header rewritten, payload intact), control
messages and non-IP PPP frames handed up once per batch with the peer and the local address
(IP_PKTINFO), bad datagrams counted and dropped, the run loop stopped by an eventfd. In a
network namespace the test creates: the TUN paths both ways (L2TP to TUN, TUN to L2TP) through
a real TUN device.
"""

from __future__ import annotations

import os
import socket
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from dpkit import IMPLS, address
from tools import run_in_new_netns

from l2tpfast.wire.constants import DropReason, SessionTarget
from l2tpfast.wire.header import build_control_header, build_data_header, parse_header


@pytest.fixture(params=sorted(IMPLS))
def impl(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    return IMPLS[request.param]


def udp(host: str = "127.0.0.1") -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.settimeout(2.0)
    return s


def wait_readable(sock: socket.socket) -> None:
    import select

    select.select([sock], [], [], 2.0)


def test_switching_between_two_sessions(impl: tuple[Any, Any]) -> None:
    path_cls, fw_cls = impl
    server, a, b = udp(), udp(), udp()
    server.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_PKTINFO", 8), 1)
    server.setblocking(False)
    dp = path_cls(8)
    # a's session forwards to b's and back (L2TP switching, target SWITCH).
    sa = dp.add_session(1, 1, 10, 11, address(*a.getsockname()), target=SessionTarget.SWITCH, target_index=1)
    sb = dp.add_session(1, 2, 20, 21, address(*b.getsockname()), target=SessionTarget.SWITCH, target_index=sa)
    assert sb == 1
    sc = dp.add_session(1, 3, 30, 31, address(*a.getsockname()), target=SessionTarget.PPP)
    fw = fw_cls(dp, server.fileno())
    handed: list[Any] = []
    fw.handoff = handed.append
    dst = server.getsockname()
    for i in range(20):
        a.sendto(build_data_header(1, 1, ns=i) + b"\xff\x03\x00\x21" + bytes([i]) * 40, dst)
    a.sendto(build_control_header(1, 0, 0, 0, 0), dst)  # a ZLB
    a.sendto(build_data_header(1, 3) + b"\xff\x03\xc0\x21\x01\x01\x00\x04", dst)  # LCP, to the PPP engine
    a.sendto(build_data_header(1, 9) + b"\xff\x03\x00\x21" + b"x", dst)  # unknown session
    c = udp()
    c.sendto(build_data_header(1, 2) + b"\xff\x03\x00\x21" + b"x", dst)  # b's session, wrong peer
    wait_readable(server)
    time.sleep(0.05)
    received = 0
    for _ in range(10):
        received += fw.run_once()
        if received >= 24:
            break
    assert received == 24
    for i in range(20):
        data, _ = b.recvfrom(2048)
        header, off = parse_header(data)
        assert (header.tunnel_id, header.session_id) == (20, 21)
        assert data[off:] == b"\xff\x03\x00\x21" + bytes([i]) * 40
    kinds = [item[0] for batch in handed for item in batch]
    assert kinds == ["control", "ppp"]
    control = next(item for batch in handed for item in batch if item[0] == "control")
    assert control[2] == a.getsockname() and control[3] == "127.0.0.1"
    ppp = next(item for batch in handed for item in batch if item[0] == "ppp")
    assert ppp[1:] == (sc, 0xC021, b"\x01\x01\x00\x04")
    assert dp.drops[DropReason.UNKNOWN_SESSION] == 1 and dp.drops[DropReason.WRONG_PEER] == 1
    stats = dict(zip(sys.modules[fw_cls.__module__].FORWARDER_STATS, fw.stats.tolist(), strict=True))
    assert stats["udp_rx"] == 24 and stats["udp_tx"] == 20
    assert dp.counters[sb]["tx_packets"] == 20 and dp.counters[sa]["rx_packets"] == 20
    for s in (server, a, b, c):
        s.close()


def test_run_stops_on_its_eventfd(impl: tuple[Any, Any]) -> None:
    path_cls, fw_cls = impl
    server = udp()
    server.setblocking(False)
    fw = fw_cls(path_cls(4), server.fileno())
    stop = os.eventfd(0, os.EFD_NONBLOCK)
    thread = threading.Thread(target=fw.run, args=(stop,), daemon=True)
    thread.start()
    time.sleep(0.1)
    assert thread.is_alive()
    os.eventfd_write(stop, 1)
    thread.join(2.0)
    assert not thread.is_alive()
    os.close(stop)
    server.close()


# --- the TUN paths, inside a namespace ------------------------------------------------------------

TUN_SCRIPT = textwrap.dedent(
    """
    import os, socket, sys, time
    import numpy as np
    sys.path.insert(0, {tests!r})
    from l2tpfast.runtime.tun import TunDevice
    from l2tpfast.wire.constants import SessionTarget
    from l2tpfast.wire.dtypes import ADDRESS_DTYPE
    from l2tpfast.wire.header import build_data_header, parse_header
    if {impl!r} == "compiled":
        from l2tpfast._dataplane import DataPath, Forwarder
    else:
        from l2tpfast.reference.dataplane import DataPath
        from l2tpfast.reference.forwarder import Forwarder

    def address(host, port):
        a = np.zeros((), dtype=ADDRESS_DTYPE)
        a["addr"][:4] = [int(x) for x in host.split(".")]
        a["family"] = 4
        a["port"] = port
        return a

    subprocess_ok = os.system("ip link set lo up") == 0
    tun = TunDevice.open("l2ftest%d")
    tun.up(["10.9.0.1/24"])
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); server.bind(("127.0.0.1", 0))
    server.setblocking(False)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); peer.bind(("127.0.0.1", 0)); peer.settimeout(2)
    dp = DataPath(8)
    slot = dp.add_session(3, 4, 30, 40, address(*peer.getsockname()), target=SessionTarget.TUN)
    dp.route_add(bytes([10, 9, 0, 2]), slot)  # the subscriber behind the session
    fw = Forwarder(dp, server.fileno(), tun.fileno())
    # L2TP -> TUN: an IPv4/UDP packet from the subscriber 10.9.0.2 to a socket on 10.9.0.1.
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); sink.bind(("10.9.0.1", 7000)); sink.settimeout(2)
    def ipv4_udp(src, dst, sport, dport, payload):
        import struct
        def csum(b):
            if len(b) % 2: b += b"\\0"
            s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xFFFF); s += s >> 16
            return ~s & 0xFFFF
        udph = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
        pseudo = bytes(src) + bytes(dst) + struct.pack("!BBH", 0, 17, 8 + len(payload))
        c = csum(pseudo + udph + payload) or 0xFFFF
        udph = struct.pack("!HHHH", sport, dport, 8 + len(payload), c)
        total = 20 + 8 + len(payload)
        iph = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0, 64, 17, 0, bytes(src), bytes(dst))
        iph = iph[:10] + struct.pack("!H", csum(iph)) + iph[12:]
        return iph + udph + payload
    for i in range(10):
        packet = ipv4_udp([10, 9, 0, 2], [10, 9, 0, 1], 5000, 7000, b"up%d" % i)
        peer.sendto(build_data_header(3, 4) + b"\\xff\\x03\\x00\\x21" + packet, server.getsockname())
    time.sleep(0.05)
    for _ in range(20):
        fw.run_once(udp=True, tun=False)
    got = sorted(sink.recvfrom(100)[0] for _ in range(10))
    assert got == sorted(b"up%d" % i for i in range(10)), got
    # TUN -> L2TP: the kernel routes a datagram to 10.9.0.2 into the TUN; the loop encapsulates it.
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); out.bind(("10.9.0.1", 0))
    for i in range(10):
        out.sendto(b"down%d" % i, ("10.9.0.2", 9000))
    time.sleep(0.05)
    down = []
    for _ in range(50):
        fw.run_once(udp=False, tun=True)
        try:
            while True:
                peer.settimeout(0.05)
                data = peer.recv(2048)
                header, off = parse_header(data)
                assert (header.tunnel_id, header.session_id) == (30, 40), header
                assert data[off:off + 4] == b"\\xff\\x03\\x00\\x21"
                down.append(data[off + 4 + 28:])
        except OSError:
            pass
        if len(down) >= 10:
            break
    assert sorted(down) == sorted(b"down%d" % i for i in range(10)), down
    print("ok", dp.counters[slot]["rx_packets"], dp.counters[slot]["tx_packets"])
    """
)


@pytest.mark.parametrize("which", sorted(IMPLS))
def test_tun_paths_in_a_namespace(which: str, tmp_path: Path) -> None:
    script = tmp_path / "tun_paths.py"
    tests_dir = str(Path(__file__).resolve().parents[1])
    script.write_text(TUN_SCRIPT.format(tests=tests_dir, impl=which))
    out = run_in_new_netns(f"l2f-fw-{which}", [sys.executable, str(script)], "a namespace and a TUN device")
    assert out.startswith("ok 10 10"), out


def test_garbage_never_stops_the_loop(impl: tuple[Any, Any]) -> None:
    """Random datagrams (some longer than a receive slot) between valid ones: every valid one is
    forwarded, the rest counted and dropped, and the loop thread keeps running."""
    import random
    import select

    path_cls, fw_cls = impl
    server, a, b = udp(), udp(), udp()
    server.setblocking(False)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    dp = path_cls(8)
    sa = dp.add_session(1, 1, 10, 11, address(*a.getsockname()), target=SessionTarget.SWITCH, target_index=1)
    dp.add_session(1, 2, 20, 21, address(*b.getsockname()), target=SessionTarget.SWITCH, target_index=sa)
    fw = fw_cls(dp, server.fileno(), batch=16)
    stop = os.eventfd(0, os.EFD_NONBLOCK)
    thread = threading.Thread(target=fw.run, args=(stop,), daemon=True)
    thread.start()
    rng = random.Random(7)
    dst = server.getsockname()
    valid = 0
    for i in range(300):
        if i % 3 == 0:
            a.sendto(build_data_header(1, 1) + b"\xff\x03\x00\x21" + bytes([valid % 256]) * 20, dst)
            valid += 1
        else:
            size = rng.choice([0, 1, 5, 12, 40, 3000])
            junk = bytearray(rng.randbytes(size))
            if size >= 6 and rng.random() < 0.5:
                junk[0:6] = b"\x00\x02\x00\x01\x00\x01"  # a data header for session (1, 1), then junk
            a.sendto(bytes(junk), dst)
        if i % 50 == 49:
            time.sleep(0.01)
    got = 0
    end = time.monotonic() + 5
    while got < valid and time.monotonic() < end:
        if select.select([b], [], [], 0.5)[0]:
            b.recv(4096)
            got += 1
    assert thread.is_alive()
    os.eventfd_write(stop, 1)
    thread.join(2.0)
    os.close(stop)
    assert got >= valid, (got, valid)
    names = sys.modules[fw_cls.__module__].FORWARDER_STATS
    stats = dict(zip(names, fw.stats.tolist(), strict=True))
    assert stats["truncated"] > 0 and stats["udp_rx"] == 300
    assert int(dp.drops.sum()) > 0
    for s in (server, a, b):
        s.close()
