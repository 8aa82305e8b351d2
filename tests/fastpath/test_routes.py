"""What a PPP client (a LAC originating many sessions) and an LNS's anti-spoofing need from the
data path, compiled and reference (one body, two implementations, STYLE.md 8):

* ``route_by="source"``: packets read from a TUN device shared by many sessions find their
  session by their source address (IPv4 offset 12, IPv6 offset 8), through ``route_batch`` and
  through the Forwarder's TUN side (in a network namespace the test creates);
* ``set_source``: IPv4 packets a subscriber sends into the TUN device must carry its address
  as their source, otherwise they are dropped and counted (SPOOFED_SOURCE);
* ACFC and PFC set with ``set_flags`` shape the PPP framing ``encapsulate`` writes (RFC 1661
  6.5, 6.6), LCP excepted.

Run as a script (``python test_routes.py TUN_SOURCE compiled``) this file is the part of the
Forwarder check that runs inside the namespace.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dpkit import IMPLS, address, batch, route

from l2tpfast.wire.constants import MAX_DATA_HEADER, DeliveryAction, DropReason, SessionFlag, SessionTarget
from l2tpfast.wire.dtypes import ADDRESS_DTYPE, DELIVERY_DTYPE
from l2tpfast.wire.header import build_data_header, parse_header

PEER4 = ("192.0.2.1", 1701)
NO_SLOT = 0xFFFFFFFF


@pytest.fixture(params=sorted(IMPLS))
def impl(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    return IMPLS[request.param]


def ip4(src: str, dst: str, body: bytes = b"") -> bytes:
    """An IPv4 header (no options, checksum not computed: the data path does not look at it)."""
    total = 20 + len(body)
    head = bytes([0x45, 0]) + total.to_bytes(2, "big") + bytes(4) + bytes([64, 17, 0, 0])
    return head + ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed + body


def ip6(src: str, dst: str, body: bytes = b"") -> bytes:
    head = bytes([0x60, 0, 0, 0]) + len(body).to_bytes(2, "big") + bytes([17, 64])
    return head + ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed + body


def receive(dp: Any, datagrams: list[bytes], now: float = 0.0) -> list[tuple[int, int, int, bytes]]:
    """Run ``process`` on datagrams from PEER4; (action, slot, protocol, payload) a row."""
    buf, offsets, lengths = batch(datagrams)
    sources = np.zeros(len(datagrams), dtype=ADDRESS_DTYPE)
    sources[:] = address(*PEER4)
    out = np.zeros(len(datagrams) * 20 + 8, dtype=DELIVERY_DTYPE)
    n = dp.process(buf, offsets, lengths, sources, out, now)
    pool = dp.pool.reshape(-1)
    rows = []
    for r in out[:n]:
        where = buf if r["source"] == 0 else pool
        body = bytes(where[int(r["offset"]) : int(r["offset"]) + int(r["length"])])
        rows.append((int(r["action"]), int(r["slot"]), int(r["protocol"]), body))
    return rows


# --- route_by ---------------------------------------------------------------------------------


def test_route_by_is_validated_and_read_only(impl: tuple[Any, Any]) -> None:
    path_cls, _ = impl
    assert path_cls(4).route_by == "destination"
    assert path_cls(4, route_by="source").route_by == "source"
    with pytest.raises(ValueError, match="'destination' or 'source'"):
        path_cls(4, route_by="src")
    dp = path_cls(4)
    with pytest.raises(AttributeError):
        dp.route_by = "source"


def test_route_by_source_ipv4_and_ipv6(impl: tuple[Any, Any]) -> None:
    path_cls, _ = impl
    dp = path_cls(8, route_by="source")
    a = dp.add_session(5, 6, 50, 60, address(*PEER4))
    b = dp.add_session(5, 7, 50, 61, address(*PEER4))
    dp.route_add(ipaddress.IPv4Address("10.9.0.2").packed, a)
    dp.route_add(ipaddress.IPv4Address("10.9.0.3").packed, b)
    dp.route_add(ipaddress.IPv6Address("2001:db8::3").packed, b)
    packets = [
        ip4("10.9.0.2", "198.51.100.1"),
        ip4("10.9.0.3", "198.51.100.1"),
        ip4("198.51.100.1", "10.9.0.2"),  # only its destination is a session's: no route
        ip6("2001:db8::3", "2001:db8:1::1"),
        ip6("2001:db8:1::1", "2001:db8::3"),
        ip4("10.9.0.2", "198.51.100.1")[:19],  # too short to be IPv4
    ]
    assert route(dp, packets) == (3, [a, b, NO_SLOT, b, NO_SLOT, NO_SLOT])
    # The same table routing by destination finds the other packets.
    by_destination = path_cls(8)
    a = by_destination.add_session(5, 6, 50, 60, address(*PEER4))
    by_destination.route_add(ipaddress.IPv4Address("10.9.0.2").packed, a)
    by_destination.route_add(ipaddress.IPv6Address("2001:db8::3").packed, a)
    assert route(by_destination, packets) == (2, [NO_SLOT, NO_SLOT, a, NO_SLOT, a, NO_SLOT])


# --- the source check -------------------------------------------------------------------------

IP = b"\xff\x03\x00\x21"
IP6 = b"\xff\x03\x00\x57"


def test_set_source_validates_and_reads_back(impl: tuple[Any, Any]) -> None:
    path_cls, _ = impl
    dp = path_cls(4)
    slot = dp.add_session(5, 6, 50, 60, address(*PEER4), target=SessionTarget.TUN)
    assert dp.get_source(slot) is None
    dp.set_source(slot, bytes([10, 9, 0, 2]))
    assert dp.get_source(slot) == bytes([10, 9, 0, 2])
    with pytest.raises(ValueError, match="4 octets"):
        dp.set_source(slot, ipaddress.IPv6Address("2001:db8::2").packed)
    with pytest.raises(ValueError, match=r"0\.0\.0\.0"):
        dp.set_source(slot, bytes(4))
    with pytest.raises(ValueError, match="empty"):
        dp.set_source(3, bytes([10, 9, 0, 2]))
    with pytest.raises(ValueError, match="empty"):
        dp.get_source(3)
    dp.set_source(slot, None)
    assert dp.get_source(slot) is None
    dp.set_source(slot, bytes([10, 9, 0, 2]))
    dp.remove_session(5, 6)  # a new session in the same slot starts without a check
    assert dp.add_session(5, 7, 50, 61, address(*PEER4)) == slot and dp.get_source(slot) is None


def test_spoofed_source_is_dropped_and_counted(impl: tuple[Any, Any]) -> None:
    path_cls, _ = impl
    dp = path_cls(4)
    slot = dp.add_session(5, 6, 50, 60, address(*PEER4), target=SessionTarget.TUN)
    dp.set_source(slot, ipaddress.IPv4Address("10.9.0.2").packed)
    own = ip4("10.9.0.2", "198.51.100.1", b"own")
    spoofed = ip4("203.0.113.9", "198.51.100.1", b"spoof")
    v6 = ip6("2001:db8::2", "2001:db8:1::1")
    datagrams = [
        build_data_header(5, 6) + IP + own,
        build_data_header(5, 6) + IP + spoofed,
        build_data_header(5, 6) + b"\x21" + spoofed,  # ACFC and PFC: the same packet
        build_data_header(5, 6) + IP + own[:19],  # no whole IPv4 header: its source is unknown
        build_data_header(5, 6) + IP + v6,  # labelled IPv4, IPv6 inside: the TUN goes by the nibble
        build_data_header(5, 6) + IP6 + spoofed,  # labelled IPv6, IPv4 inside: checked all the same
        build_data_header(5, 6) + IP6 + own,
        build_data_header(5, 6) + IP6 + v6,  # IPv6 is not checked
        build_data_header(5, 6) + b"\xff\x03\xc0\x21\x09\x01\x00\x08abcd",  # LCP goes to PPP
    ]
    rows = receive(dp, datagrams)
    assert rows == [
        (DeliveryAction.TUN, slot, 0x21, own),
        (DeliveryAction.TUN, slot, 0x57, own),
        (DeliveryAction.TUN, slot, 0x57, v6),
        (DeliveryAction.PPP, slot, 0xC021, b"\x09\x01\x00\x08abcd"),
    ]
    assert dp.drops[DropReason.SPOOFED_SOURCE] == 5
    assert dp.counters[slot]["dropped"] == 5 and dp.counters[slot]["rx_packets"] == 4
    dp.set_source(slot, None)
    assert receive(dp, [build_data_header(5, 6) + IP + spoofed]) == [
        (DeliveryAction.TUN, slot, 0x21, spoofed)
    ]
    assert dp.drops[DropReason.SPOOFED_SOURCE] == 5


def test_source_check_only_guards_the_tun_device(impl: tuple[Any, Any]) -> None:
    """PPP frames (the session is not up at the IP level) and switched frames (they leave through
    another tunnel) are not checked."""
    path_cls, _ = impl
    dp = path_cls(4)
    ppp = dp.add_session(5, 6, 50, 60, address(*PEER4), target=SessionTarget.PPP)
    switch = dp.add_session(5, 7, 50, 61, address(*PEER4), target=SessionTarget.SWITCH, target_index=ppp)
    for slot in (ppp, switch):
        dp.set_source(slot, ipaddress.IPv4Address("10.9.0.2").packed)
    spoofed = ip4("203.0.113.9", "198.51.100.1")
    rows = receive(dp, [build_data_header(5, 6) + IP + spoofed, build_data_header(5, 7) + IP + spoofed])
    assert rows == [(DeliveryAction.PPP, ppp, 0x21, spoofed), (DeliveryAction.SWITCH, switch, 0x21, spoofed)]
    assert dp.drops[DropReason.SPOOFED_SOURCE] == 0


def test_a_spoofed_packet_does_not_consume_its_ns(impl: tuple[Any, Any]) -> None:
    """The check comes before sequencing (RFC 2661 5.4): the gap it leaves is given up like a loss."""
    path_cls, _ = impl
    dp = path_cls(4, reorder_window=8, reorder_timeout=0.05)
    slot = dp.add_session(5, 6, 50, 60, address(*PEER4), target=SessionTarget.TUN)
    dp.set_source(slot, ipaddress.IPv4Address("10.9.0.2").packed)
    own = [ip4("10.9.0.2", "198.51.100.1", bytes([n])) for n in range(3)]
    datagrams = [
        build_data_header(5, 6, ns=0) + IP + own[0],
        build_data_header(5, 6, ns=1) + IP + ip4("203.0.113.9", "198.51.100.1"),
        build_data_header(5, 6, ns=2) + IP + own[2],
    ]
    assert [r[3] for r in receive(dp, datagrams, now=1.0)] == [own[0]]
    assert dp.held_count() == 1 and dp.counters[slot]["out_of_order"] == 1
    out = np.zeros(8, dtype=DELIVERY_DTYPE)
    assert dp.release_expired(out, 1.1) == 1 and dp.held_count() == 0


# --- ACFC and PFC on send (RFC 1661 6.5, 6.6) -------------------------------------------------


def test_set_flags_acfc_pfc_shape_the_framing(impl: tuple[Any, Any]) -> None:
    path_cls, _ = impl
    dp = path_cls(4)
    slot = dp.add_session(5, 6, 50, 60, address(*PEER4))
    protocols = [0x0021, 0x0057, 0x8021, 0xC021, 0xC223, 0x003D]
    expected = {
        0: [b"\xff\x03\x00\x21", b"\xff\x03\x00\x57", b"\xff\x03\x80\x21", b"\xff\x03\xc0\x21"],
        SessionFlag.ACFC: [b"\x00\x21", b"\x00\x57", b"\x80\x21", b"\xff\x03\xc0\x21"],
        SessionFlag.PFC: [b"\xff\x03\x21", b"\xff\x03\x57", b"\xff\x03\x80\x21", b"\xff\x03\xc0\x21"],
        SessionFlag.ACFC | SessionFlag.PFC: [b"\x21", b"\x57", b"\x80\x21", b"\xff\x03\xc0\x21"],
    }
    n = len(protocols)
    for flags, framing in expected.items():
        dp.set_flags(slot, flags)
        assert dp.get_flags(slot) == flags
        headers = np.zeros((n, MAX_DATA_HEADER), dtype=np.uint8)
        hl = np.zeros(n, dtype=np.uint8)
        slots = np.full(n, slot, dtype=np.uint32)
        lengths = np.full(n, 10, dtype=np.uint32)
        assert dp.encapsulate(slots, np.array(protocols, dtype=np.uint32), lengths, headers, hl) == n
        got = []
        for i in range(n):
            head = bytes(headers[i, : hl[i]])
            parsed, off = parse_header(head)
            assert (parsed.tunnel_id, parsed.session_id) == (50, 60)
            got.append(head[off:])
        assert got[:4] == framing, hex(flags)
        # CHAP (0xC223) is never compressible; 0x003D (MP) is, like IPv4.
        acfc = b"" if flags & SessionFlag.ACFC else b"\xff\x03"
        assert got[4] == acfc + b"\xc2\x23"
        assert got[5] == acfc + (b"\x3d" if flags & SessionFlag.PFC else b"\x00\x3d")


def test_tun_rows_and_spoofed_drops_through_the_forwarder(impl: tuple[Any, Any]) -> None:
    """Over loopback, without a TUN device: the packet with the right source is a TUN row (a
    write error here, there is no device), the spoofed one never gets that far."""
    path_cls, fw_cls = impl
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.setblocking(False)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    dp = path_cls(4)
    slot = dp.add_session(3, 4, 30, 40, address(*peer.getsockname()), target=SessionTarget.TUN)
    dp.set_source(slot, ipaddress.IPv4Address("10.9.0.2").packed)
    fw = fw_cls(dp, server.fileno())
    peer.sendto(build_data_header(3, 4) + IP + ip4("10.9.0.2", "198.51.100.1"), server.getsockname())
    peer.sendto(build_data_header(3, 4) + IP + ip4("10.9.0.7", "198.51.100.1"), server.getsockname())
    select.select([server], [], [], 2.0)
    time.sleep(0.05)
    received = 0
    for _ in range(10):
        received += fw.run_once(udp=True, tun=False)
        if received >= 2:
            break
    stats = dict(zip(sys.modules[fw_cls.__module__].FORWARDER_STATS, fw.stats.tolist(), strict=True))
    assert received == 2 and stats["tun_errors"] == 1 and stats["tun_tx"] == 0
    assert dp.drops[DropReason.SPOOFED_SOURCE] == 1 and dp.counters[slot]["rx_packets"] == 1
    if hasattr(fw, "close"):
        fw.close()
    server.close()
    peer.close()


# --- the Forwarder's TUN side routing by source, in a namespace -------------------------------

# Each client has its own IPv6 /64: an IPv6 route is a /64, whatever the interface identifier.
CLIENTS = (("10.9.0.2", "2001:db8:0:2::2"), ("10.9.0.3", "2001:db8:0:3::3"))
REMOTE4, REMOTE6 = "198.51.100.1", "2001:db8:1::1"


def tun_source_routing(which: str) -> None:
    """Inside the namespace: a LAC's TUN shared by two sessions, each with its own addresses.

    The kernel routes datagrams the two clients send to a remote host into the TUN device; the
    Forwarder sends each through the session its source address names, framed as the session's
    ACFC/PFC flags say.
    """
    from l2tpfast.runtime.tun import TunDevice

    path_cls, fw_cls = IMPLS[which]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    tun = TunDevice.open("l2fsrc%d")
    tun.up([f"{v4}/32" for v4, _ in CLIENTS] + [f"{v6}/128" for _, v6 in CLIENTS])
    tun.add_route("198.51.100.0/24")
    tun.add_route("2001:db8:1::/64")
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.setblocking(False)
    lns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    lns.bind(("127.0.0.1", 0))
    dp = path_cls(8, route_by="source")
    flags = (SessionFlag.ACFC | SessionFlag.PFC, 0)
    slots = []
    for i, (v4, v6) in enumerate(CLIENTS):
        slot = dp.add_session(3, 4 + i, 30, 40 + i, address(*lns.getsockname()), target=SessionTarget.TUN)
        dp.set_flags(slot, flags[i])
        dp.route_add(ipaddress.ip_address(v4).packed, slot)
        dp.route_add(ipaddress.ip_address(v6).packed, slot)
        slots.append(slot)
    fw = fw_cls(dp, server.fileno(), tun.fileno())
    for i, (v4, v6) in enumerate(CLIENTS):
        for host, remote, family in ((v4, REMOTE4, socket.AF_INET), (v6, REMOTE6, socket.AF_INET6)):
            with socket.socket(family, socket.SOCK_DGRAM) as client:
                client.bind((host, 0))
                client.sendto(b"from-%d" % i, (remote, 9000))
    # Not the source of any session: counted as no_route.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        subprocess.run(["ip", "addr", "add", "10.9.0.9/32", "dev", tun.name], check=True)
        other.bind(("10.9.0.9", 0))
        other.sendto(b"nobody", (REMOTE4, 9000))
    time.sleep(0.05)
    got: list[tuple[int, bytes, bytes]] = []
    lns.settimeout(0.05)
    for _ in range(50):
        fw.run_once(udp=False, tun=True)
        try:
            while True:
                data = lns.recv(2048)
                header, off = parse_header(data)
                assert header.tunnel_id == 30, header
                framing_len = 4 if data[off : off + 2] == b"\xff\x03" else 1
                got.append((header.session_id, data[off : off + framing_len], data[off + framing_len :]))
        except OSError:
            pass
        if len(got) >= 4:
            break
    assert sorted((sid, framing) for sid, framing, _ in got) == [
        (40, b"\x21"),  # ACFC and PFC: the protocol octet alone
        (40, b"\x57"),
        (41, b"\xff\x03\x00\x21"),
        (41, b"\xff\x03\x00\x57"),
    ], got
    for sid, _, packet in got:
        i = sid - 40
        source = packet[12:16] if packet[0] >> 4 == 4 else packet[8:24]
        assert ipaddress.ip_address(source) in {ipaddress.ip_address(a) for a in CLIENTS[i]}, (sid, packet)
        assert packet.endswith(b"from-%d" % i)
    stats = dict(zip(sys.modules[fw_cls.__module__].FORWARDER_STATS, fw.stats.tolist(), strict=True))
    assert stats["udp_tx"] == 4 and stats["no_route"] >= 1, stats
    assert [int(dp.counters[s]["tx_packets"]) for s in slots] == [2, 2]
    print("ok")


@pytest.mark.parametrize("which", sorted(IMPLS))
def test_tun_side_routes_by_source_in_a_namespace(which: str) -> None:
    from tools import run_in_new_netns

    out = run_in_new_netns(
        f"l2f-src-{which}",
        [sys.executable, str(Path(__file__).resolve()), "TUN_SOURCE", which],
        "a namespace and a TUN device",
    )
    assert out.strip().endswith("ok"), out


if __name__ == "__main__" and sys.argv[1:2] == ["TUN_SOURCE"]:
    tun_source_routing(sys.argv[2])
