"""What a PPP subscriber's traffic needs from the data path, compiled and reference (one body,
two implementations, STYLE.md 8):

* IPv6 routes are /64 prefixes: an LNS gives each subscriber a /64 (announced by Router
  Advertisement) and the subscriber picks its own interface identifiers (RFC 4862 5.5.3), so
  ``route_add``/``route_del`` key on the first 8 octets and a packet is looked up by the top 64
  bits of its address; IPv4 routes stay exact /32s;
* a TUN device per session (``set_tun``): a LAC acting as a plain L2TP client gives each session
  its own device, as pppd's pppN. The main loop writes that session's packets there; a Forwarder
  with ``receive_udp=False`` reads the device and sends into the session, on a UDP socket it only
  sends on.

Without root, AF_UNIX datagram socket pairs stand in for TUN devices (one read, one packet); in a
network namespace the test creates, real TUN devices. Run as a script (``python
test_subscriber_paths.py SESSION_TUN compiled``) this file is the part that runs in the namespace.
"""

from __future__ import annotations

import ipaddress
import os
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from dpkit import IMPLS, address, route, stats_of

import l2tpfast._dataplane as compiled
from l2tpfast.wire.constants import SessionTarget
from l2tpfast.wire.header import build_data_header, parse_header

PEER4 = ("192.0.2.1", 1701)
NO_SLOT = 0xFFFFFFFF
IP = b"\xff\x03\x00\x21"
IP6 = b"\xff\x03\x00\x57"


@pytest.fixture(params=sorted(IMPLS))
def impl(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    return IMPLS[request.param]


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def udp4(src: str, dst: str, dport: int, payload: bytes, sport: int = 5000) -> bytes:
    """An IPv4/UDP packet with correct checksums (the kernel checks them on the real devices)."""
    s, d = ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed
    length = 8 + len(payload)
    pseudo = s + d + struct.pack("!BBH", 0, 17, length)
    udph = struct.pack("!HHHH", sport, dport, length, 0)
    udph = udph[:6] + struct.pack("!H", _checksum(pseudo + udph + payload) or 0xFFFF)
    iph = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, 1, 0, 64, 17, 0, s, d)
    iph = iph[:10] + struct.pack("!H", _checksum(iph)) + iph[12:]
    return iph + udph + payload


def udp6(src: str, dst: str, dport: int, payload: bytes, sport: int = 5000) -> bytes:
    s, d = ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed
    length = 8 + len(payload)
    pseudo = s + d + struct.pack("!I3xB", length, 17)
    udph = struct.pack("!HHHH", sport, dport, length, 0)
    udph = udph[:6] + struct.pack("!H", _checksum(pseudo + udph + payload) or 0xFFFF)
    return struct.pack("!IHBB", 0x60000000, length, 17, 64) + s + d + udph + payload


def close(fw: Any) -> None:
    if hasattr(fw, "close"):
        fw.close()


# --- IPv6 routes are /64 prefixes ---------------------------------------------------------------


@pytest.mark.parametrize("route_by", ["destination", "source"])
def test_an_ipv6_route_is_its_64(impl: tuple[Any, Any], route_by: str) -> None:
    path_cls, _ = impl
    dp = path_cls(8, route_by=route_by)
    a = dp.add_session(5, 6, 50, 60, address(*PEER4))
    b = dp.add_session(5, 7, 50, 61, address(*PEER4))
    # The interface identifier given to route_add is ignored: any will do.
    dp.route_add(ipaddress.IPv6Address("2001:db8:0:a::1").packed, a)
    dp.route_add(ipaddress.IPv6Address("2001:db8:0:b:1234:5678:9abc:def0").packed, b)
    dp.route_add(ipaddress.IPv4Address("10.9.0.2").packed, a)
    far = "2001:db8:1::1"

    def packet(host: str) -> bytes:
        if ":" not in host:
            return (
                udp4(host, "198.51.100.1", 9, b"")
                if route_by == "source"
                else udp4("198.51.100.1", host, 9, b"")
            )
        return udp6(host, far, 9, b"") if route_by == "source" else udp6(far, host, 9, b"")

    hosts = [
        "2001:db8:0:a::1",
        "2001:db8:0:a:ffff:ffff:ffff:ffff",
        "2001:db8:0:a:2c3:4ff:fe05:607",  # an EUI-64 style identifier
        "2001:db8:0:b::",
        "2001:db8:0:c::1",  # the next /64: nobody's
        "2001:db8:0:a::2",
        "2001:db8:1:a::1",  # differs in the top 64 bits only
        "10.9.0.2",
        "10.9.0.3",  # IPv4 stays exact: the neighbour is nobody's
    ]
    found, slots = route(dp, [packet(h) for h in hosts])
    assert slots == [a, a, a, b, NO_SLOT, a, NO_SLOT, a, NO_SLOT]
    assert found == 6
    # A later route_add in the same /64 (another identifier) replaces the route: one /64, one session.
    dp.route_add(ipaddress.IPv6Address("2001:db8:0:a::99").packed, b)
    assert route(dp, [packet("2001:db8:0:a::1")])[1] == [b]
    # route_del with any identifier in the /64 removes it; then it is gone.
    assert dp.route_del(ipaddress.IPv6Address("2001:db8:0:a:5::5").packed)
    assert not dp.route_del(ipaddress.IPv6Address("2001:db8:0:a::1").packed)
    assert route(dp, [packet("2001:db8:0:a::1")])[1] == [NO_SLOT]
    assert not dp.route_del(bytes(8)) and not dp.route_del(ipaddress.IPv4Address("10.9.0.3").packed)
    assert dp.route_del(ipaddress.IPv4Address("10.9.0.2").packed)
    # An IPv4 address and an IPv6 /64 that share their first octets are different routes.
    dp.route_add(bytes([32, 1, 13, 184]), a)
    assert route(dp, [packet("2001:db8::1")])[1] == [NO_SLOT]
    with pytest.raises(ValueError, match="4 or 16 octets"):
        dp.route_add(bytes(8), a)


def test_removing_a_session_removes_its_64s(impl: tuple[Any, Any]) -> None:
    """And a full table of dual-stack subscribers fits: an IPv4 address and a /64 each."""
    path_cls, _ = impl
    dp = path_cls(40)
    slots = [dp.add_session(5, 1 + i, 50, 60 + i, address(*PEER4)) for i in range(40)]
    for i, slot in enumerate(slots):
        dp.route_add(ipaddress.IPv6Address(f"2001:db8:0:{i:x}::1").packed, slot)
        dp.route_add(ipaddress.IPv4Address(f"10.9.0.{i}").packed, slot)
    for i in range(0, 40, 2):
        assert dp.remove_session(5, 1 + i)
    packets = [udp6("2001:db8:1::1", f"2001:db8:0:{i:x}::{i + 7:x}", 9, b"") for i in range(40)]
    packets += [udp4("198.51.100.1", f"10.9.0.{i}", 9, b"") for i in range(40)]
    found, got = route(dp, packets)
    expected = [NO_SLOT if i % 2 == 0 else slots[i] for i in range(40)] * 2
    assert got == expected and found == 40


def test_many_routes_come_and_go(impl: tuple[Any, Any]) -> None:
    """A full table of dual-stack subscribers, half of its routes deleted (backward shifts in the
    compiled table), looked up by packets with other interface identifiers."""
    import random

    path_cls, _ = impl
    rng = random.Random(11)
    n = 3000
    dp = path_cls(n)
    slots = [dp.add_session(1 + i // 1000, 1 + i % 1000, 1, 1, address(*PEER4)) for i in range(n)]
    v4 = rng.sample(range(1 << 24), n)
    v6 = rng.sample(range(1 << 32), n)
    model: dict[bytes, int] = {}
    for i, slot in enumerate(slots):
        a4 = bytes([10]) + v4[i].to_bytes(3, "big")
        p6 = bytes.fromhex("20010db8") + v6[i].to_bytes(4, "big")
        dp.route_add(a4, slot)
        dp.route_add(p6 + rng.randbytes(8), slot)
        model[a4] = model[p6] = slot
    for key in rng.sample(sorted(model), n):
        assert dp.route_del(key if len(key) == 4 else key + rng.randbytes(8))
        del model[key]
    keys = [*sorted(model), bytes([11, 0, 0, 1]), bytes.fromhex("20010db9") + bytes(4)]
    packets = []
    for key in keys:
        if len(key) == 4:
            packets.append(udp4("198.51.100.1", str(ipaddress.IPv4Address(key)), 9, b""))
        else:
            packets.append(udp6("2001:db8:1::1", str(ipaddress.IPv6Address(key + rng.randbytes(8))), 9, b""))
    found, got = route(dp, packets)
    assert got == [model.get(k, NO_SLOT) for k in keys] and found == n


# --- a TUN device per session: the API --------------------------------------------------------


def test_set_tun_validates_and_reads_back(impl: tuple[Any, Any]) -> None:
    path_cls, _ = impl
    dp = path_cls(4)
    slot = dp.add_session(5, 6, 50, 60, address(*PEER4), target=SessionTarget.TUN)
    other = dp.add_session(5, 7, 50, 61, address(*PEER4), target=SessionTarget.PPP)
    assert dp.get_tun(slot) == -1 and dp.get_tun(other) == -1
    dp.set_tun(slot, 0)  # 0 is a descriptor like any other
    assert dp.get_tun(slot) == 0
    dp.set_tun(slot, 17)
    dp.set_tun(other, 2**31 - 1)
    assert (dp.get_tun(slot), dp.get_tun(other)) == (17, 2**31 - 1)
    for bad in (-2, 2**31):
        with pytest.raises(ValueError, match="file descriptor"):
            dp.set_tun(slot, bad)
    assert dp.get_tun(slot) == 17
    with pytest.raises(ValueError, match="empty"):
        dp.set_tun(3, 5)
    with pytest.raises(ValueError, match="empty"):
        dp.get_tun(3)
    with pytest.raises(ValueError, match="empty"):
        dp.get_tun(-1)
    dp.set_tun(slot, -1)
    assert dp.get_tun(slot) == -1
    dp.set_tun(slot, 17)
    assert dp.remove_session(5, 6)
    with pytest.raises(ValueError, match="empty"):
        dp.get_tun(slot)
    # A new session in the same slot uses the Forwarder's device.
    assert dp.add_session(5, 8, 50, 62, address(*PEER4), target=SessionTarget.TUN) == slot
    assert dp.get_tun(slot) == -1


def test_add_session_takes_only_a_session_target(impl: tuple[Any, Any]) -> None:
    path_cls, _ = impl
    dp = path_cls(4)
    for bad in (3, 0xFF, -1):
        with pytest.raises(ValueError, match="SessionTarget"):
            dp.add_session(5, 6, 50, 60, address(*PEER4), target=bad)
    assert dp.session_count() == 0


def test_memory_per_session_stays_at_128_with_the_tun_descriptor() -> None:
    """The descriptor lives in the session's 48 octets (the worst case is 65537 sessions)."""
    for n in (65536, 65537, 100_000):
        assert compiled.DataPath(n).memory_per_session() <= 128


def test_forwarder_without_udp_needs_a_tun_device(impl: tuple[Any, Any]) -> None:
    path_cls, fw_cls = impl
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        with pytest.raises(ValueError, match="TUN device"):
            fw_cls(path_cls(4), server.fileno(), receive_udp=False)
        fw = fw_cls(path_cls(4), server.fileno())
        assert fw.receive_udp
        close(fw)
        with pytest.raises(TypeError):
            fw_cls(path_cls(4), server.fileno(), -1, 64, False, False)  # keyword only


# --- over loopback, AF_UNIX datagram pairs as TUN devices --------------------------------------


class FakeTun:
    """An AF_UNIX datagram pair: the Forwarder's end and ours; one read is one packet, as a TUN's."""

    def __init__(self) -> None:
        self.device, self.host = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.device.setblocking(False)
        self.host.setblocking(False)

    def fileno(self) -> int:
        return self.device.fileno()

    def packets(self) -> list[bytes]:
        out = []
        while True:
            try:
                out.append(self.host.recv(4096))
            except BlockingIOError:
                return out

    def close(self) -> None:
        self.device.close()
        self.host.close()


def loopback_udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


def receive_all(fw: Any, expected: int) -> int:
    got = 0
    for _ in range(50):
        got += fw.run_once(udp=True, tun=False)
        if got >= expected:
            break
        time.sleep(0.01)
    return got


def test_a_session_with_its_own_device_gets_its_packets_there(impl: tuple[Any, Any]) -> None:
    path_cls, fw_cls = impl
    server, peer = loopback_udp(), loopback_udp()
    shared, own = FakeTun(), FakeTun()
    dp = path_cls(8, reorder_window=4, reorder_timeout=0.05)
    peer_address = address(*peer.getsockname())
    a = dp.add_session(3, 4, 30, 40, peer_address, target=SessionTarget.TUN)
    dp.add_session(3, 5, 30, 41, peer_address, target=SessionTarget.TUN)
    dp.set_tun(a, own.fileno())
    fw = fw_cls(dp, server.fileno(), shared.fileno())
    dst = server.getsockname()
    to_a = [udp4("10.8.0.1", "10.8.0.2", 7000, b"a%d" % i) for i in range(3)]
    to_b = [udp4("10.9.0.9", "10.9.0.3", 7000, b"b%d" % i) for i in range(2)]
    v6 = udp6("2001:db8:0:a::1", "2001:db8:0:a::2", 7000, b"a6")
    peer.sendto(build_data_header(3, 4) + IP + to_a[0], dst)
    peer.sendto(build_data_header(3, 5) + IP + to_b[0], dst)
    peer.sendto(build_data_header(3, 4) + IP6 + v6, dst)
    peer.sendto(build_data_header(3, 5) + b"\x21" + to_b[1], dst)
    peer.sendto(build_data_header(3, 4) + b"\xff\x03\xc0\x21\x09\x01\x00\x08abcd", dst)  # LCP: to PPP
    select.select([server], [], [], 2.0)
    handed: list[Any] = []
    fw.handoff = handed.append
    assert receive_all(fw, 5) == 5
    assert own.packets() == [to_a[0], v6]
    assert shared.packets() == to_b
    assert [item[0] for batch in handed for item in batch] == ["ppp"]
    # Held for reordering, then released by the timeout: still to the session's own device.
    peer.sendto(build_data_header(3, 4, ns=0) + IP + to_a[0], dst)
    peer.sendto(build_data_header(3, 4, ns=2) + IP + to_a[2], dst)
    select.select([server], [], [], 2.0)
    assert receive_all(fw, 2) == 2
    assert own.packets() == [to_a[0]] and dp.held_count() == 1
    time.sleep(0.1)
    fw.run_once(udp=False, tun=False)
    assert own.packets() == [to_a[2]] and dp.held_count() == 0
    # Back to the Forwarder's device.
    dp.set_tun(a, -1)
    peer.sendto(build_data_header(3, 4) + IP + to_a[1], dst)
    select.select([server], [], [], 2.0)
    assert receive_all(fw, 1) == 1
    assert shared.packets() == [to_a[1]] and own.packets() == []
    stats = stats_of(fw)
    assert stats["tun_tx"] == 7 and stats["tun_errors"] == 0
    # A write error on the session's device is counted as on the Forwarder's.
    own.close()
    dead = os.open(os.devnull, os.O_RDONLY)  # a descriptor that cannot be written
    dp.set_tun(a, dead)
    peer.sendto(build_data_header(3, 4) + IP + to_a[1], dst)
    select.select([server], [], [], 2.0)
    assert receive_all(fw, 1) == 1
    os.close(dead)
    assert stats_of(fw)["tun_errors"] == 1 and shared.packets() == []
    close(fw)
    for s in (server, peer):
        s.close()
    shared.close()


def test_a_tun_reader_sends_into_the_session_and_never_reads_udp(impl: tuple[Any, Any]) -> None:
    path_cls, fw_cls = impl
    server, lns, stranger = loopback_udp(), loopback_udp(), loopback_udp()
    own = FakeTun()
    dp = path_cls(8, route_by="source")
    a = dp.add_session(3, 4, 30, 40, address(*lns.getsockname()), target=SessionTarget.TUN)
    b = dp.add_session(3, 5, 30, 41, address(*lns.getsockname()), target=SessionTarget.TUN)
    dp.set_tun(a, own.fileno())
    dp.route_add(ipaddress.IPv4Address("10.8.0.2").packed, a)
    dp.route_add(ipaddress.IPv6Address("2001:db8:0:a::").packed, a)
    dp.route_add(ipaddress.IPv4Address("10.8.0.3").packed, b)
    # A datagram waits on the shared socket: the main loops', which the reader must leave alone.
    queued = build_data_header(3, 4) + IP + udp4("10.8.0.1", "10.8.0.2", 7000, b"for the main loop")
    stranger.sendto(queued, server.getsockname())
    select.select([server], [], [], 2.0)
    reader = fw_cls(dp, server.fileno(), own.fileno(), receive_udp=False)
    assert not reader.receive_udp
    stop = os.eventfd(0, os.EFD_NONBLOCK)
    thread = threading.Thread(target=reader.run, args=(stop,), daemon=True)
    thread.start()
    up = [
        udp4("10.8.0.2", "10.8.0.1", 9000, b"up4"),
        udp6("2001:db8:0:a:1:2:3:4", "2001:db8:0:a::1", 9000, b"up6"),  # any identifier in the /64
        udp4("10.8.0.3", "10.8.0.1", 9000, b"b's"),  # b's address: its session, whatever the device
        udp4("10.8.0.99", "10.8.0.1", 9000, b"nobody"),
        udp6("fe80::1", "ff02::2", 9000, b"link-local"),  # no session's /64
    ]
    for p in up:
        own.host.send(p)
    lns.settimeout(2.0)
    got = []
    for _ in range(3):
        data = lns.recv(2048)
        header, off = parse_header(data)
        got.append((header.session_id, data[off:]))
    time.sleep(0.05)  # anything more the reader sent would be here by now
    os.eventfd_write(stop, 1)
    thread.join(2.0)
    assert not thread.is_alive()
    os.close(stop)
    assert sorted(got) == sorted([(40, IP + up[0]), (40, IP6 + up[1]), (41, IP + up[2])])
    stats = stats_of(reader)
    assert stats["tun_rx"] == 5 and stats["udp_tx"] == 3 and stats["no_route"] == 2
    assert stats["udp_rx"] == 0 and stats["batches"] == 0
    # run_once does not read the socket either, even when asked to.
    assert reader.run_once(udp=True, tun=True) == 0
    # The datagram is still queued, whole.
    assert server.recv(4096, socket.MSG_DONTWAIT) == queued
    assert int(dp.counters[a]["tx_packets"]) == 2 and int(dp.counters[a]["rx_packets"]) == 0
    close(reader)
    for s in (server, lns, stranger):
        s.close()
    own.close()


def test_two_loops_share_one_socket(impl: tuple[Any, Any]) -> None:
    """The main loop receives (and writes a session's packets to its device) while that device's
    reader sends on the same socket from another thread."""
    path_cls, fw_cls = impl
    server, lns = loopback_udp(), loopback_udp()
    shared, own = FakeTun(), FakeTun()
    dp = path_cls(8, route_by="source")
    a = dp.add_session(3, 4, 30, 40, address(*lns.getsockname()), target=SessionTarget.TUN)
    dp.set_tun(a, own.fileno())
    dp.route_add(ipaddress.IPv4Address("10.8.0.2").packed, a)
    main = fw_cls(dp, server.fileno(), shared.fileno())
    reader = fw_cls(dp, server.fileno(), own.fileno(), receive_udp=False)
    stops = [os.eventfd(0, os.EFD_NONBLOCK) for _ in range(2)]
    threads = [
        threading.Thread(target=fw.run, args=(stop,), daemon=True)
        for fw, stop in zip((main, reader), stops, strict=True)
    ]
    for t in threads:
        t.start()
    n = 50
    for i in range(n):
        own.host.send(udp4("10.8.0.2", "10.8.0.1", 9000, b"up%d" % i))
        lns.sendto(
            build_data_header(3, 4) + IP + udp4("10.8.0.1", "10.8.0.2", 7000, b"down%d" % i),
            server.getsockname(),
        )
    up = 0
    down: list[bytes] = []
    end = time.monotonic() + 5
    lns.setblocking(False)
    while (up < n or len(down) < n) and time.monotonic() < end:
        select.select([lns, own.host], [], [], 0.2)
        while True:
            try:
                lns.recv(2048)
                up += 1
            except BlockingIOError:
                break
        down += own.packets()
    for stop in stops:
        os.eventfd_write(stop, 1)
    for t in threads:
        t.join(2.0)
        assert not t.is_alive()
    for stop in stops:
        os.close(stop)
    assert up == n and len(down) == n and shared.packets() == []
    assert stats_of(main)["udp_rx"] == n and stats_of(main)["tun_rx"] == 0
    assert stats_of(reader)["udp_rx"] == 0 and stats_of(reader)["udp_tx"] == n
    for fw in (main, reader):
        close(fw)
    for s in (server, lns):
        s.close()
    shared.close()
    own.close()


# --- real TUN devices, in a namespace ----------------------------------------------------------

SHARED4, OWN4, OWN_PEER4 = "10.9.0.1", "10.8.0.2", "10.8.0.1"
OWN6, OWN6_OTHER, OWN_PEER6 = "2001:db8:0:a::2", "2001:db8:0:a:5:6:7:8", "2001:db8:0:a::1"


def _rx_packets(name: str) -> int:
    return int(Path(f"/sys/class/net/{name}/statistics/rx_packets").read_text())


def session_tun(which: str) -> None:
    """Inside the namespace: a LAC with a shared TUN device and one session with its own device.

    The main loop writes session A's packets to A's device (the kernel delivers them to sockets
    bound to A's addresses) and B's to the shared device; A's reader (``receive_udp=False``)
    sends what the kernel routes into A's device through A's session, found by its source
    address (IPv6: by its /64, whatever the interface identifier), and leaves the shared UDP
    socket's queue alone.
    """
    from l2tpfast.runtime.tun import TunDevice

    path_cls, fw_cls = IMPLS[which]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    shared = TunDevice.open("l2fshr%d")
    shared.up([f"{SHARED4}/24"])
    own = TunDevice.open("l2fown%d")
    own.up([f"{OWN4}/32", f"{OWN6}/64", f"{OWN6_OTHER}/64"])
    own.add_route(f"{OWN_PEER4}/32")  # the far end, as pppd routes it to pppN
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.setblocking(False)
    lns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    lns.bind(("127.0.0.1", 0))
    lns.settimeout(2.0)
    dp = path_cls(8, route_by="source")
    a = dp.add_session(3, 4, 30, 40, address(*lns.getsockname()), target=SessionTarget.TUN)
    b = dp.add_session(3, 5, 30, 41, address(*lns.getsockname()), target=SessionTarget.TUN)
    dp.set_tun(a, own.fileno())
    dp.route_add(ipaddress.ip_address(OWN4).packed, a)
    dp.route_add(ipaddress.ip_address("2001:db8:0:a::").packed, a)  # the /64 the LNS announced
    main = fw_cls(dp, server.fileno(), shared.fileno())

    # L2TP -> TUN: A's packets to A's device, B's to the shared one.
    sinks = {}
    for host, family in ((OWN4, socket.AF_INET), (OWN6, socket.AF_INET6), (SHARED4, socket.AF_INET)):
        sink = socket.socket(family, socket.SOCK_DGRAM)
        sink.bind((host, 7000))
        sink.settimeout(2.0)
        sinks[host] = sink
    rx_own, rx_shared = _rx_packets(own.name), _rx_packets(shared.name)
    dst = server.getsockname()
    lns.sendto(build_data_header(3, 4) + IP + udp4(OWN_PEER4, OWN4, 7000, b"to-a4"), dst)
    lns.sendto(build_data_header(3, 4) + IP6 + udp6(OWN_PEER6, OWN6, 7000, b"to-a6"), dst)
    lns.sendto(build_data_header(3, 5) + IP + udp4("10.9.0.9", SHARED4, 7000, b"to-b"), dst)
    select.select([server], [], [], 2.0)
    time.sleep(0.05)
    received = 0
    for _ in range(20):
        received += main.run_once(udp=True, tun=False)
        if received >= 3:
            break
    assert received == 3, received
    assert sinks[OWN4].recv(100) == b"to-a4"
    assert sinks[OWN6].recv(100) == b"to-a6"
    assert sinks[SHARED4].recv(100) == b"to-b"
    assert _rx_packets(own.name) - rx_own == 2 and _rx_packets(shared.name) - rx_shared == 1
    assert stats_of(main)["tun_tx"] == 3

    # TUN -> L2TP: A's reader. A datagram waits on the shared socket first.
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.1", 0))
    queued = build_data_header(3, 5) + IP + udp4("10.9.0.9", SHARED4, 7000, b"queued")
    stranger.sendto(queued, dst)
    select.select([server], [], [], 2.0)
    reader = fw_cls(dp, server.fileno(), own.fileno(), receive_udp=False)
    stop = os.eventfd(0, os.EFD_NONBLOCK)
    thread = threading.Thread(target=reader.run, args=(stop,), daemon=True)
    thread.start()
    for host, remote, family in (
        (OWN4, OWN_PEER4, socket.AF_INET),
        (OWN6, OWN_PEER6, socket.AF_INET6),
        (OWN6_OTHER, OWN_PEER6, socket.AF_INET6),  # another identifier in the same /64
    ):
        with socket.socket(family, socket.SOCK_DGRAM) as client:
            client.bind((host, 0))
            client.sendto(b"from-" + host.encode(), (remote, 9000))
    got = []
    while len(got) < 3:
        data = lns.recv(2048)
        header, off = parse_header(data)
        if (header.tunnel_id, header.session_id) != (30, 40):
            raise AssertionError(header)
        framing, packet = data[off : off + 4], data[off + 4 :]
        source = packet[12:16] if packet[0] >> 4 == 4 else packet[8:24]
        if packet.endswith(b"from-" + str(ipaddress.ip_address(source)).encode()):
            got.append(framing)
    os.eventfd_write(stop, 1)
    thread.join(2.0)
    assert not thread.is_alive()
    os.close(stop)
    assert sorted(got) == sorted([IP, IP6, IP6]), got
    stats = stats_of(reader)
    # (The kernel may add packets of its own: only the socket's queue must be exact.)
    assert stats["udp_rx"] == 0 and stats["udp_tx"] >= 3 and stats["tun_rx"] >= 3, stats
    assert server.recv(4096, socket.MSG_DONTWAIT) == queued
    assert int(dp.counters[a]["tx_packets"]) >= 3 and int(dp.counters[b]["tx_packets"]) == 0
    print("ok")


@pytest.mark.parametrize("which", sorted(IMPLS))
def test_a_session_tun_device_in_a_namespace(which: str) -> None:
    from tools import run_in_new_netns

    out = run_in_new_netns(
        f"l2f-stun-{which}",
        [sys.executable, str(Path(__file__).resolve()), "SESSION_TUN", which],
        "a namespace and TUN devices",
    )
    assert out.strip().endswith("ok"), out


if __name__ == "__main__" and sys.argv[1:2] == ["SESSION_TUN"]:
    session_tun(sys.argv[2])
