"""UDP generic segmentation offload (src_pyx/gso.pxi, the UDP_SEGMENT cmsg of udp(7)) in the
LoadGenerator's and the Forwarder's sends.

On loopback (lo has checksum offload): runs of equal datagrams to one peer leave as GSO
messages and still arrive one by one, octet for octet, in order; ``Forwarder(gso=False)`` sends
the same without. A refused GSO send is sent again datagram by datagram: EINVAL (SO_NO_CHECK on
the socket) leaves GSO on, EIO (a UDP-Lite socket) switches it off for good. In a network
namespace the test creates: the same across a veth pair, with checksum offload on and off.

Run as a script (``python test_gso.py VETH``) this file is the part that runs in the namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import ipaddress
import json
import os
import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dpkit import stats_of
from sockkit import BIG_BUFFER, drain, grow, receiving, wait_for

from l2tpfast._dataplane import DataPath, Forwarder, LoadCounter, LoadGenerator
from l2tpfast.runtime.dataplane import address_row
from l2tpfast.wire.constants import SessionTarget

BENCH = struct.Struct("!4sIIB3xQ")
PPP_IP = b"\xff\x03\x00\x21"
SOL_UDP = 17
UDP_SEGMENT = 103
SO_NO_CHECK = 11
# Route keys of the sessions in the Forwarder tests (inside the TUN packets only, never sent).
SUBSCRIBERS = ["127.1.0.1", "127.1.0.2", "127.1.0.3", "127.1.0.4"]


def checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ip_packet(destination: str, number: int, size: int) -> bytes:
    """A ``size``-octet IPv4/UDP packet to ``destination`` (valid header checksum)."""
    body = number.to_bytes(4, "big") * ((size - 28) // 4)
    head = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        size,
        number,
        0x4000,
        64,
        17,
        0,
        ipaddress.IPv4Address("127.9.0.1").packed,
        ipaddress.IPv4Address(destination).packed,
    )
    head = head[:10] + struct.pack("!H", checksum(head)) + head[12:]
    packet = head + struct.pack("!HHHH", 4000, 5000, size - 20, 0) + body
    assert len(packet) == size
    return packet


def data_header(tunnel_id: int, session_id: int) -> bytes:
    """An RFC 2661 3.1 data header without Length or sequence numbers."""
    return struct.pack("!BBHH", 0x00, 0x02, tunnel_id, session_id)


@contextlib.contextmanager
def tun_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """An AF_UNIX datagram pair standing in for a TUN device: one read() is one packet."""
    device, host = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        device.setblocking(False)
        host.setblocking(False)
        yield device, host
    finally:
        device.close()
        host.close()


def tun_forwarder(
    udp_fd: int, tun_fd: int, peer: tuple[str, int], **kwargs: Any
) -> tuple[Forwarder, DataPath, list[int]]:
    """A Forwarder whose sessions (routed by destination, one per SUBSCRIBERS address) all go
    to ``peer``: what an LNS sends down its sessions from its TUN device."""
    path = DataPath(16, route_by="destination")
    slots = []
    for i, subscriber in enumerate(SUBSCRIBERS):
        slot = path.add_session(1, 10 + i, 100, 200 + i, address_row(*peer), target=SessionTarget.TUN)
        path.route_add(ipaddress.IPv4Address(subscriber).packed, slot)
        slots.append(slot)
    return Forwarder(path, udp_fd, tun_fd, **kwargs), path, slots


def forward_from_tun(fw: Forwarder, host: socket.socket, peer: socket.socket, count: int = 64) -> list[bytes]:
    """Write ``count`` equal packets into the TUN side, run the Forwarder until they all went
    out, and check what ``peer`` got: one datagram each, header + PPP + the packet, in order."""
    before = stats_of(fw)
    packets = [ip_packet(SUBSCRIBERS[j % len(SUBSCRIBERS)], j, 200) for j in range(count)]
    for packet in packets:
        host.send(packet)
    got: list[bytes] = []
    end = time.monotonic() + 5.0
    for _ in range(1000):
        fw.run_once(udp=False, tun=True)
        if stats_of(fw)["tun_rx"] - before["tun_rx"] >= count:
            select.select([peer], [], [], 0.05)
            got += drain(peer)
        if len(got) >= count or time.monotonic() > end:
            break
    assert len(got) == count, (len(got), stats_of(fw))
    for j, data in enumerate(got):
        assert data == data_header(100, 200 + j % len(SUBSCRIBERS)) + PPP_IP + packets[j], j
    stats = {name: value - before[name] for name, value in stats_of(fw).items()}
    assert stats["tun_rx"] == count and stats["udp_tx"] == count
    assert stats["send_errors"] == 0 and stats["no_route"] == 0 and stats["udp_rx"] == 0
    return got


# --- on loopback ----------------------------------------------------------------------------------


def test_generator_runs_leave_as_gso_messages(udp_socket: Callable[..., socket.socket]) -> None:
    out, peer = udp_socket(), udp_socket(BIG_BUFFER)
    n, size = 8, 200
    path = DataPath(16)
    gen = LoadGenerator(out.fileno(), n, path, 64)
    for i in range(n):
        slot = path.add_session(1, 10 + i, 100, 200 + i, address_row(*peer.getsockname()))
        gen.set_session(i, bytes([127, 0, 0, 2]), bytes([127, 0, 0, 3]), 4000, 5000, slot)
    assert gen.gso_stats == (0, 0)
    sent, _ = gen.run(0, size, 0.1, 0, 1)
    runs, carried = gen.gso_stats
    assert runs > 0 and carried > runs and carried <= sent, (runs, carried, sent)
    datagrams = drain(peer)
    assert len(datagrams) == sent  # every datagram on its own, none lost
    seqs: list[list[int]] = [[] for _ in range(n)]
    for data in datagrams:
        assert len(data) == 6 + 4 + size
        i = struct.unpack_from("!H", data, 4)[0] - 200
        assert data[:6] == data_header(100, 200 + i) and data[6:10] == PPP_IP
        assert struct.unpack_from("!H", data, 10 + 2)[0] == size  # the IP packet is whole
        magic, index, seq, _, _ = BENCH.unpack_from(data, 10 + 28)
        assert (magic, index) == (b"L2FB", i)
        seqs[i].append(seq)
    for i in range(n):
        assert sorted(seqs[i]) == list(range(len(seqs[i]))), i  # each once, none missing
    assert max(map(len, seqs)) - min(map(len, seqs)) <= 1


def test_plain_bursts_to_different_peers_are_one_gso_message_each(
    udp_socket: Callable[..., socket.socket],
) -> None:
    out = udp_socket()
    sinks = [udp_socket(BIG_BUFFER >> 2) for _ in range(4)]
    gen = LoadGenerator(out.fileno(), len(sinks), None, 64)
    for i, sink in enumerate(sinks):
        gen.set_session(i, bytes(4), socket.inet_aton("127.0.0.1"), 0, sink.getsockname()[1])
    sent, _ = gen.run(0, 100, 0.03, 0, 4)
    # Batches of 64 are 16 bursts of 4; consecutive bursts go to different peers.
    assert gen.gso_stats == (sent // 4, sent)
    for i, sink in enumerate(sinks):
        datagrams = drain(sink)
        assert len(datagrams) == sent // len(sinks)
        fields = [BENCH.unpack_from(d)[1:3] for d in datagrams]
        assert fields == [(i, seq) for seq in range(len(datagrams))]  # in order, only its own


@pytest.mark.parametrize("gso", [True, False])
def test_forwarder_tun_side_sends_a_run_as_one_message(
    gso: bool, udp_socket: Callable[..., socket.socket]
) -> None:
    server, peer = udp_socket(), udp_socket(BIG_BUFFER >> 4)
    with tun_pair() as (device, host):
        fw, path, slots = tun_forwarder(server.fileno(), device.fileno(), peer.getsockname(), gso=gso)
        assert fw.gso is gso
        forward_from_tun(fw, host, peer)
        if gso:
            runs, carried = fw.gso_stats
            assert runs >= 1 and carried == 64, fw.gso_stats
        else:
            assert fw.gso_stats == (0, 0)
        assert fw.gso is gso
        assert [int(path.counters[s]["tx_packets"]) for s in slots] == [16] * 4


def test_raw_forwarder_has_no_gso(udp_socket: Callable[..., socket.socket]) -> None:
    server = udp_socket()
    assert Forwarder(DataPath(4), server.fileno(), raw=True).gso is False
    assert Forwarder(DataPath(4), server.fileno(), raw=True, gso=True).gso_stats == (0, 0)
    assert Forwarder(DataPath(4), server.fileno()).gso is True


def test_gso_refused_for_the_socket_stays_on(udp_socket: Callable[..., socket.socket]) -> None:
    """SO_NO_CHECK: the kernel answers a GSO send EINVAL (it needs the UDP checksum); the run is
    sent again datagram by datagram, and GSO stays on (EINVAL is about this message)."""
    server, peer = udp_socket(), udp_socket(BIG_BUFFER >> 4)
    server.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
    with pytest.raises(OSError) as refused:  # what the kernel says to such a message
        server.sendmsg(
            [bytes(100), bytes(100)], [(SOL_UDP, UDP_SEGMENT, struct.pack("=H", 100))], 0, peer.getsockname()
        )
    assert refused.value.errno == errno.EINVAL
    with tun_pair() as (device, host):
        fw, _, _ = tun_forwarder(server.fileno(), device.fileno(), peer.getsockname())
        forward_from_tun(fw, host, peer)
        assert fw.gso_stats == (0, 0) and fw.gso is True
        forward_from_tun(fw, host, peer)  # and again: still tried, still sent
        assert fw.gso_stats == (0, 0) and fw.gso is True


def test_gso_refused_with_eio_switches_itself_off(udp_socket: Callable[..., socket.socket]) -> None:
    """The kernel answers EIO where GSO cannot work (no checksum offload before Linux 6.11,
    IPsec, UDP-Lite): the run is sent datagram by datagram and GSO is off from then on. A
    UDP-Lite socket gets EIO on every kernel that still has UDP-Lite."""
    try:
        server = udp_socket(0, socket.IPPROTO_UDPLITE)
        peer = udp_socket(BIG_BUFFER, socket.IPPROTO_UDPLITE)
    except OSError as exc:
        pytest.skip(f"this kernel has no UDP-Lite ({exc}), the one way to get EIO on loopback")
    with pytest.raises(OSError) as refused:
        server.sendmsg(
            [bytes(100), bytes(100)], [(SOL_UDP, UDP_SEGMENT, struct.pack("=H", 100))], 0, peer.getsockname()
        )
    assert refused.value.errno == errno.EIO
    with tun_pair() as (device, host):
        fw, _, _ = tun_forwarder(server.fileno(), device.fileno(), peer.getsockname())
        assert fw.gso is True
        forward_from_tun(fw, host, peer)
        assert fw.gso is False and fw.gso_stats == (0, 0)
    # The generator: every datagram arrives all the same.
    counter = LoadCounter(4)
    gen = LoadGenerator(server.fileno(), 4, None, 64)
    for i in range(4):
        gen.set_session(i, bytes(4), socket.inet_aton("127.0.0.1"), 0, peer.getsockname()[1])
    with receiving(peer, counter):
        sent, _ = gen.run(0, 200, 0.05)
        wait_for(lambda: int(counter.totals[0]) >= sent)
    assert gen.gso_stats == (0, 0) and int(gen.stats[1]) == 0  # no send errors
    assert int(counter.totals[0]) == sent and int(counter.totals[2]) == 0


# --- across a veth pair, in a namespace -------------------------------------------------------------

CLONE_NEWNET = 0x40000000
NEAR, FAR = "10.77.0.1", "10.77.0.2"
SINK_PORT, PROBE_PORT, FW_PORT = 9000, 9001, 9002


def veth_fallback() -> dict[str, Any]:
    """Inside the namespace run_in_new_netns made: its end of a veth pair is l2fa (NEAR), the
    other end, l2fb (FAR), is in a second namespace this thread enters to open the sockets there
    (two addresses of one namespace would talk over lo, not the veth)."""
    libc = ctypes.CDLL(None, use_errno=True)

    def enter(fd: int) -> None:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")

    def ip(*args: str, **kwargs: Any) -> None:
        subprocess.run(["ip", *args], check=True, **kwargs)

    ip("link", "set", "lo", "up")
    made = subprocess.run(
        ["ip", "link", "add", "l2fa", "type", "veth", "peer", "name", "l2fb"],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        return {"missing": f"no veth devices here: `ip link add ... type veth` said {made.stderr.strip()!r}"}
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare")
    far = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    enter(home)
    ip("link", "set", "l2fb", "netns", f"/proc/self/fd/{far}", pass_fds=(far,))
    enter(far)
    ip("link", "set", "lo", "up")
    ip("addr", "add", f"{FAR}/24", "dev", "l2fb")
    ip("link", "set", "l2fb", "up")
    sinks = {}
    for port in (SINK_PORT, PROBE_PORT, FW_PORT):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((FAR, port))
        grow(s)
        sinks[port] = s
    enter(home)
    os.close(far)
    os.close(home)
    ip("addr", "add", f"{NEAR}/24", "dev", "l2fa")
    ip("link", "set", "l2fa", "up")
    near = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    near.bind((NEAR, 0))
    # Resolve the neighbour first (a flat-out burst would overflow the queue of an unresolved one).
    near.sendto(b"hello", (FAR, PROBE_PORT))
    assert select.select([sinks[PROBE_PORT]], [], [], 5.0)[0], "nothing crossed the veth"
    assert sinks[PROBE_PORT].recv(100) == b"hello"
    for s in sinks.values():
        s.setblocking(False)
    results: dict[str, Any] = {}
    for phase in ("on", "off"):
        if phase == "off":
            off = subprocess.run(
                ["ethtool", "-K", "l2fa", "tx", "off"], capture_output=True, text=True, check=False
            )
            if off.returncode != 0:
                return {"missing": f"`ethtool -K l2fa tx off` failed: {off.stderr.strip()!r}"}
        results[phase] = veth_phase(near, sinks)
    near.close()
    for s in sinks.values():
        s.close()
    return results


def veth_phase(near: socket.socket, sinks: dict[int, socket.socket]) -> dict[str, Any]:
    features = subprocess.run(["ethtool", "-k", "l2fa"], capture_output=True, text=True, check=True).stdout
    (checksumming,) = [
        line.split(":")[1].split()[0] for line in features.splitlines() if line.startswith("tx-checksumming:")
    ]
    # What the kernel itself answers to a GSO message on this route now.
    try:
        near.sendmsg(
            [bytes(100), bytes(100)], [(SOL_UDP, UDP_SEGMENT, struct.pack("=H", 100))], 0, (FAR, PROBE_PORT)
        )
        refused = 0
    except OSError as exc:
        refused = exc.errno or -1
    # The generator, plain UDP, four sessions to one socket across the veth.
    counter = LoadCounter(4)
    gen = LoadGenerator(near.fileno(), 4, None, 64)
    for i in range(4):
        gen.set_session(i, bytes(4), socket.inet_aton(FAR), 0, SINK_PORT)
    with receiving(sinks[SINK_PORT], counter):
        sent, _ = gen.run(0, 200, 0.05)
        with contextlib.suppress(AssertionError):
            wait_for(lambda: int(counter.totals[0]) >= sent)
    # The Forwarder's TUN side, 64 packets to a peer across the veth.
    with tun_pair() as (device, host):
        fw, _, _ = tun_forwarder(near.fileno(), device.fileno(), (FAR, FW_PORT))
        gso_before = fw.gso
        forward_from_tun(fw, host, sinks[FW_PORT])
        fw_after = {"gso": fw.gso, "gso_stats": fw.gso_stats}
    return {
        "tx_checksumming": checksumming,
        "refused": refused,
        "sent": sent,
        "received": int(counter.totals[0]),
        "late": int(counter.totals[2]),
        "send_errors": int(gen.stats[1]),
        "gso_stats": gen.gso_stats,
        "fw_gso_before": gso_before,
        "fw": fw_after,
    }


def test_fallback_across_a_veth_pair_without_checksum_offload() -> None:
    from tools import require, require_root, require_tool, run_in_new_netns

    why = "a veth pair in a network namespace, checksum offload turned off"
    require_root(why)
    require_tool("ethtool", why)
    out = run_in_new_netns(
        "l2f-gso", [sys.executable, str(Path(__file__).resolve()), "VETH"], why, timeout=60.0
    )
    results = json.loads(out.strip().splitlines()[-1])
    require("missing" not in results, results.get("missing", ""))
    on, off = results["on"], results["off"]
    for phase in (on, off):
        assert phase["sent"] > 0 and phase["received"] == phase["sent"], phase  # every datagram
        assert phase["late"] == 0 and phase["send_errors"] == 0, phase
        assert phase["fw_gso_before"] is True
    assert (on["tx_checksumming"], off["tx_checksumming"]) == ("on", "off")
    # Checksum offload on (a veth's default): GSO messages went out.
    assert on["refused"] == 0 and on["gso_stats"][0] > 0, on
    assert on["fw"]["gso"] is True and on["fw"]["gso_stats"][0] >= 1, on
    if off["refused"] == errno.EIO:
        # The kernel refuses GSO without checksum offload: the senders switched it off.
        assert off["gso_stats"][0] == 0, off
        assert off["fw"] == {"gso": False, "gso_stats": [0, 0]}, off
    else:
        # Since Linux 6.11 ("udp: Allow GSO transmit from devices with no checksum offload") the
        # kernel segments and checksums in software: nothing to fall back from, GSO stays on.
        assert off["refused"] == 0, off
        assert off["gso_stats"][0] > 0 and off["fw"]["gso"] is True, off


if __name__ == "__main__" and sys.argv[1:2] == ["VETH"]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: tools
    print(json.dumps(veth_fallback()))
