"""TunDevice (l2tpfast.runtime.tun) on real TUN devices, each test in a network namespace of its own.

A test creates the namespace ``l2f-tun-<pid>-<n>`` and runs one scenario of this very file in it
(``ip netns exec NS python test_tun.py SCENARIO``), since a process cannot enter a namespace for
one test and leave it again. The scenario opens the device, moves packets through it and prints
what it saw as one JSON object; the test asserts on that, and deletes the namespace also when the
scenario fails. Needs root and /dev/net/tun: under CI their absence fails, elsewhere it skips.

What these tests found about TUN here (Linux 6.x): once a device is up, the kernel gives it an
IPv6 link-local address, even with IPv4 addresses alone, and sends Router Solicitations and MLD
reports into it, so a reader meets packets it did not ask for; a write() while the link is down
fails with EIO, and one that is not IPv4/IPv6 by its first nibble with EINVAL, both counted in
rx_dropped (TunDevice.write returns False for both).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import itertools
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tools import require, require_tool

from l2tpfast.runtime import tun
from l2tpfast.runtime.tun import TunDevice

#: Bounds a scenario's wait for one packet; the kernel delivers at once, so this only bounds a failure.
WAIT = 2.0
#: Bounds a whole scenario (interpreter start, a few `ip` runs, a few packets).
SCENARIO_TIMEOUT = 5.0
TESTS_DIR = Path(__file__).resolve().parent.parent
_counter = itertools.count()

# Addresses of the scenarios: the TUN's own, and a prefix routed into it (RFC 5737, RFC 3849).
TUN4, TUN4_PREFIX, FAR4 = "10.0.0.1", "10.0.0.1/24", "198.51.100.7"
ROUTE4 = "198.51.100.0/24"
TUN6, TUN6_PREFIX, FAR6 = "2001:db8::1", "2001:db8::1/64", "2001:db8:ffff::7"
ROUTE6 = "2001:db8:ffff::/48"
TO_TUN_PORT, FROM_TUN_PORT, FAR_PORT = 5000, 6000, 4000


# --- packets built by hand ------------------------------------------------------------------------


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): one's complement of the one's complement sum."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _udp(pseudo: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    length = 8 + len(payload)
    checksum = _checksum(pseudo + struct.pack("!HHHH", sport, dport, length, 0) + payload)
    # RFC 768: a computed zero is sent as all ones; zero means "no checksum" (forbidden in IPv6).
    return struct.pack("!HHHH", sport, dport, length, checksum or 0xFFFF) + payload


def ipv4_udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    """An IPv4/UDP packet with both checksums right (RFC 791 3.1, RFC 768)."""
    s, d = ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed
    udp = _udp(s + d + struct.pack("!BBH", 0, socket.IPPROTO_UDP, 8 + len(payload)), sport, dport, payload)
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, socket.IPPROTO_UDP, 0, s, d)
    return header[:10] + struct.pack("!H", _checksum(header)) + header[12:] + udp


def ipv6_udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    """An IPv6/UDP packet; the UDP checksum covers the RFC 8200 8.1 pseudo-header."""
    s, d = ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed
    length = 8 + len(payload)
    udp = _udp(s + d + struct.pack("!I3xB", length, socket.IPPROTO_UDP), sport, dport, payload)
    return struct.pack("!IHBB16s16s", 6 << 28, length, socket.IPPROTO_UDP, 64, s, d) + udp


def udp_of(packet: bytes) -> tuple[int, int, int, bytes] | None:
    """(IP version, source port, destination port, payload) of an IPv4/IPv6 UDP packet, else None."""
    version = packet[0] >> 4
    if version == 4 and packet[9] == socket.IPPROTO_UDP:
        udp = packet[(packet[0] & 0x0F) * 4 :]
    elif version == 6 and packet[6] == socket.IPPROTO_UDP:
        udp = packet[40:]
    else:
        return None
    sport, dport, length = struct.unpack_from("!HHH", udp)
    return version, sport, dport, udp[8:length]


def test_hand_built_checksums_verify() -> None:
    """Summed with its checksum in place, a header or segment gives zero (RFC 1071 1)."""
    packet = ipv4_udp("192.0.2.1", "192.0.2.2", 1, 2, b"odd")
    assert _checksum(packet[:20]) == 0
    pseudo = packet[12:20] + struct.pack("!BBH", 0, 17, len(packet) - 20)
    assert _checksum(pseudo + packet[20:]) == 0
    assert udp_of(packet) == (4, 1, 2, b"odd")
    packet6 = ipv6_udp("2001:db8::1", "2001:db8::2", 3, 4, b"payload")
    pseudo6 = packet6[8:40] + struct.pack("!I3xB", len(packet6) - 40, 17)
    assert _checksum(pseudo6 + packet6[40:]) == 0
    assert udp_of(packet6) == (6, 3, 4, b"payload")


# --- the scenarios, run inside the namespace ------------------------------------------------------


def _link(name: str) -> dict[str, Any]:
    out = subprocess.run(["ip", "-j", "addr", "show", "dev", name], capture_output=True, timeout=WAIT)
    link: dict[str, Any] = json.loads(out.stdout)[0]
    return link


def _read_udp_to(device: TunDevice, port: int) -> tuple[bytes | None, int]:
    """The first packet read that is UDP to `port`, and how many other packets came before it."""
    others = 0
    deadline = time.monotonic() + WAIT
    while (remaining := deadline - time.monotonic()) > 0 and others < 100:
        select.select([device], [], [], remaining)
        packet = device.read()
        if packet is None:
            continue
        parsed = udp_of(packet)
        if parsed is not None and parsed[2] == port:
            return packet, others
        others += 1  # Router Solicitations, MLD reports
    return None, others


def _recv(sock: socket.socket) -> tuple[bytes, str] | None:
    ready, _, _ = select.select([sock], [], [], WAIT)
    if not ready:
        return None
    data, peer = sock.recvfrom(65535)
    return data, peer[0]


def _gone(name: str) -> bool:
    deadline = time.monotonic() + WAIT
    while os.path.exists(f"/sys/class/net/{name}"):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _send_error(sock: socket.socket, data: bytes, to: tuple[str, int]) -> int:
    try:
        sock.sendto(data, to)
    except OSError as exc:
        return exc.errno or -1
    return 0


def _traffic(family: int, own: str, prefix: str, far: str, route: str, make: Callable[..., bytes]) -> Any:
    out: dict[str, Any] = {}
    device = TunDevice.open(mtu=1400)
    out["name"] = device.name
    out["read_before_up"] = device.read()
    device.up([prefix])
    device.add_route(route)
    out["link"] = _link(device.name)
    out["stats_before"] = device.stats()
    with socket.socket(family, socket.SOCK_DGRAM) as sender, socket.socket(family, socket.SOCK_DGRAM) as rx:
        sender.bind((own, FAR_PORT))
        sender.sendto(b"to the tun", (far, TO_TUN_PORT))
        packet, out["others"] = _read_udp_to(device, TO_TUN_PORT)
        out["read"] = packet.hex() if packet is not None else None

        rx.bind((own, FROM_TUN_PORT))
        written = make(far, own, FAR_PORT, FROM_TUN_PORT, b"from the tun")
        out["written_len"] = len(written)
        out["write"] = device.write(written)
        out["received"] = _recv(rx)
        out["stats_after"] = device.stats()

        out["garbage_write"] = device.write(b"\x00\x01\x02")
        out["stats_garbage"] = device.stats()
        device.del_route(route)
        out["after_del_route"] = errno.errorcode.get(_send_error(sender, b"x", (far, TO_TUN_PORT)), "sent")
    device.set_mtu(1280)
    out["mtu_after_set"] = _link(device.name)["mtu"]
    device.close()
    device.close()  # twice is harmless
    out["gone_after_close"] = _gone(out["name"])
    return out


def scenario_ipv4() -> Any:
    return _traffic(socket.AF_INET, TUN4, TUN4_PREFIX, FAR4, ROUTE4, ipv4_udp)


def scenario_ipv6() -> Any:
    return _traffic(socket.AF_INET6, TUN6, TUN6_PREFIX, FAR6, ROUTE6, ipv6_udp)


def _open_error(name: str, **kw: Any) -> list[Any]:
    try:
        TunDevice.open(name, **kw).close()
    except OSError as exc:
        return [exc.errno, str(exc)]
    return [0, "opened"]


def scenario_queues() -> Any:
    out: dict[str, Any] = {}
    with TunDevice.open("l2f-mq%d", multi_queue=True) as first:
        with TunDevice.open(first.name, multi_queue=True) as second:
            out["names"] = [first.name, second.name]
            out["distinct_fds"] = first.fileno() != second.fileno()
            out["single_on_multi"] = _open_error(first.name)
        out["after_one_queue_closed"] = os.path.exists(f"/sys/class/net/{first.name}")
    out["gone_after_last_queue"] = _gone(out["names"][0])
    with TunDevice.open("l2f-sq") as single:
        out["busy"] = _open_error(single.name)
        out["multi_on_single"] = _open_error(single.name, multi_queue=True)
        out["write_while_down"] = single.write(ipv4_udp(FAR4, TUN4, 1, 2, b"x"))
        out["stats_down"] = single.stats()
        try:
            single.up(["10.0.0.300/24"])
        except OSError as exc:
            out["bad_address"] = str(exc)
    return out


SCENARIOS: dict[str, Callable[[], Any]] = {
    "ipv4": scenario_ipv4,
    "ipv6": scenario_ipv6,
    "queues": scenario_queues,
}


# --- the tests ------------------------------------------------------------------------------------


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=WAIT, check=True)


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace with lo up; deleted afterwards, with whatever still runs in it."""
    require_tool("ip", "network namespaces and TUN configuration")
    require(os.geteuid() == 0, "TUN devices and network namespaces need root (CAP_NET_ADMIN)")
    require(os.path.exists(tun.TUN_PATH), f"no {tun.TUN_PATH}: load the tun module (`modprobe tun`)")
    name = f"l2f-tun-{os.getpid()}-{next(_counter)}"
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, timeout=WAIT)
        for pid in pids.stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        _ip("netns", "del", name)
        assert name not in _ip("netns", "list").stdout.split()


def run_scenario(ns: str, scenario: str) -> Any:
    """Run SCENARIO of this file in `ns`; what it printed as JSON. Leaves no device behind."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])}
    command = ["ip", "netns", "exec", ns, sys.executable, __file__, scenario]
    done = subprocess.run(command, capture_output=True, text=True, timeout=SCENARIO_TIMEOUT, env=env)
    assert done.returncode == 0, f"scenario {scenario} exited {done.returncode}:\n{done.stderr[-3000:]}"
    links = json.loads(_ip("-n", ns, "-j", "link", "show").stdout)
    assert [link["ifname"] for link in links] == ["lo"], "the scenario left a device behind"
    return json.loads(done.stdout.splitlines()[-1])


def _check_traffic(out: dict[str, Any], version: int, own: str, prefix: str, far: str) -> None:
    # The kernel filled in '%d' of the default name.
    assert out["name"] == "l2tp0"
    assert out["read_before_up"] is None

    link = out["link"]
    assert {"UP", "LOWER_UP", "POINTOPOINT", "NOARP"} <= set(link["flags"])
    assert link["mtu"] == 1400
    own_addrs = [(a["local"], a["prefixlen"]) for a in link["addr_info"] if a["scope"] == "global"]
    assert own_addrs == [(own, int(prefix.split("/")[1]))]

    # A datagram of a socket, routed into the TUN, comes out of read() as the raw IP packet.
    assert out["read"] is not None, f"nothing to {far} came out of the TUN ({out['others']} other packets)"
    packet = bytes.fromhex(out["read"])
    assert packet[0] >> 4 == version
    if version == 4:
        assert packet[9] == socket.IPPROTO_UDP
        assert (packet[12:16], packet[16:20]) == (socket.inet_aton(own), socket.inet_aton(far))
    else:
        assert packet[6] == socket.IPPROTO_UDP
        assert (packet[8:24], packet[24:40]) == (
            socket.inet_pton(socket.AF_INET6, own),
            socket.inet_pton(socket.AF_INET6, far),
        )
    assert udp_of(packet) == (version, FAR_PORT, TO_TUN_PORT, b"to the tun")

    # A packet written into the TUN reaches the socket bound to the TUN's address.
    assert out["write"] is True
    assert out["received"] == ["from the tun", far]

    before, after = out["stats_before"], out["stats_after"]
    assert after["rx_packets"] - before["rx_packets"] == 1
    assert after["rx_bytes"] - before["rx_bytes"] == out["written_len"]
    assert after["tx_packets"] - before["tx_packets"] >= 1
    assert after["tx_bytes"] - before["tx_bytes"] >= len(packet)

    # Neither IPv4 nor IPv6: dropped and counted, not raised.
    assert out["garbage_write"] is False
    assert out["stats_garbage"]["rx_dropped"] == after["rx_dropped"] + 1
    assert out["after_del_route"] == "ENETUNREACH"
    assert out["mtu_after_set"] == 1280
    assert out["gone_after_close"] is True


def test_ipv4_through_the_tun(netns: str) -> None:
    _check_traffic(run_scenario(netns, "ipv4"), 4, TUN4, TUN4_PREFIX, FAR4)


def test_ipv6_through_the_tun(netns: str) -> None:
    _check_traffic(run_scenario(netns, "ipv6"), 6, TUN6, TUN6_PREFIX, FAR6)


def test_queues_and_open_errors(netns: str) -> None:
    out = run_scenario(netns, "queues")
    # IFF_MULTI_QUEUE: a second open of the same name is a second queue of the same device.
    assert out["names"] == ["l2f-mq0", "l2f-mq0"]
    assert out["distinct_fds"] is True
    assert out["after_one_queue_closed"] is True
    assert out["gone_after_last_queue"] is True
    code, message = out["single_on_multi"]
    assert code == errno.EINVAL and "l2f-mq0" in message and "multi-queue" in message
    code, message = out["busy"]
    assert code == errno.EBUSY and "l2f-sq" in message and "choose another name" in message
    code, message = out["multi_on_single"]
    assert code == errno.EINVAL and "l2f-sq" in message and "without multi-queue" in message
    # A write while the link is down is dropped (EIO) and counted.
    assert out["write_while_down"] is False
    assert out["stats_down"]["rx_dropped"] == 1
    # A failing `ip` names the device, the command and what ip said.
    assert "TUN l2f-sq: `ip addr add 10.0.0.300/24 dev l2f-sq` exited" in out["bad_address"]
    assert "10.0.0.300" in out["bad_address"].rpartition(":")[2]


def test_missing_clone_device_names_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tun, "TUN_PATH", str(tmp_path / "tun"))
    with pytest.raises(OSError) as caught:
        TunDevice.open("l2f%d")
    assert caught.value.errno == errno.ENOENT
    assert "l2f%d" in str(caught.value) and "load the tun module" in str(caught.value)


@pytest.mark.parametrize("name", ["", "a" * 16, "a/b", "a\0b"])
def test_bad_names_are_refused_before_the_kernel(name: str) -> None:
    with pytest.raises(ValueError, match="TUN device name"):
        TunDevice.open(name)


if __name__ == "__main__":
    print(json.dumps(SCENARIOS[sys.argv[1]](), default=lambda v: v.decode() if isinstance(v, bytes) else v))
