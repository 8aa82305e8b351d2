"""Ip115Transport (l2tpfast.runtime.ip115): L2TPv2 over IP protocol 115 between two namespaces.

Each network test runs a receiver scenario of this very file in namespace b and a sender scenario
in namespace a of a ``lab.NetnsPair`` (``ip netns exec NS python test_ip115.py SCENARIO ...``);
each prints what it saw as one JSON line, and the test asserts on that. The receiver answers every
datagram from the address it arrived at, so one exchange tests both directions and the choice of
source on a wildcard bind. Raw sockets and namespaces need root: under CI its absence fails,
elsewhere it skips.

What tshark 4.0 makes of this framing: it decodes IP protocol 115 as L2TPv3 over IP (RFC 3931
4.1.1.1), takes the first four bytes of our L2TPv2 header (flags and Ver, then the Length or the
Tunnel ID) for a Session ID, "Pseudowire Type: Unknown (0)", and shows the rest as Data. That is
wrong but not malformed, so the capture test asserts no malformed frame and then reads the payload
with the l2tp dissector disabled.
"""

from __future__ import annotations

import itertools
import json
import os
import select
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lab
import pytest
from tools import require, require_tool

from l2tpfast.runtime.ip115 import IPPROTO_L2TP, Ip115Transport, Received, ipv4_payload
from l2tpfast.wire.header import build_control_header, build_data_header

#: Bounds every wait for a datagram or a process; delivery between namespaces is immediate.
WAIT = 4.0
#: tshark reads the eight frames in well under a second; this bounds a hang.
TSHARK_TIMEOUT = 5.0
TESTS_DIR = Path(__file__).resolve().parent.parent
_counter = itertools.count()
# A second address on b's veth, so that a wildcard receiver has two to answer from.
B_EXTRA4, B_EXTRA6 = "192.0.2.3", "2001:db8::3"

PPP_LCP = bytes.fromhex("ff03c021010100040000")  # address, control, LCP Configure-Request
ZLB = build_control_header(tunnel_id=7, session_id=0, ns=3, nr=5, payload_length=0)
DATA = build_data_header(tunnel_id=7, session_id=9, ns=1, length=True, payload_length=len(PPP_LCP)) + PPP_LCP
BIG = build_data_header(tunnel_id=7, session_id=9, payload_length=1400) + bytes(range(256)) * 5 + bytes(120)
PAYLOADS = [ZLB, DATA, BIG]
#: No IP options beyond 40 bytes fit; NOP NOP NOP EOL makes IHL 6 (RFC 791 3.1).
IP_OPTIONS_NOPS = b"\x01\x01\x01\x00"


def _ip_packet(ihl_words: int, payload: bytes, version: int = 4) -> memoryview:
    header = bytes([version << 4 | ihl_words]) + bytes(ihl_words * 4 - 1)
    return memoryview(header + payload)


# --- without a network ----------------------------------------------------------------------------


def test_ipv4_payload_skips_the_header_by_ihl() -> None:
    for ihl in (5, 6, 15):
        packet = _ip_packet(ihl, DATA)
        payload = ipv4_payload(packet)
        assert payload is not None and bytes(payload) == DATA
        # A view into the buffer it was given: no copy on the way.
        assert payload.obj is packet.obj


@pytest.mark.parametrize(
    ("packet", "why"),
    [
        (memoryview(bytes(19)), "shorter than a header"),
        (_ip_packet(5, DATA, version=6), "not version 4"),
        (_ip_packet(4, DATA), "IHL below 5"),
        (memoryview(bytes([0x4F]) + bytes(40)), "IHL past the end"),
    ],
)
def test_ipv4_payload_refuses_broken_headers(packet: memoryview, why: str) -> None:
    assert ipv4_payload(packet) is None, why


# --- scenarios, run inside a namespace ------------------------------------------------------------


def _as_json(item: Received) -> list[Any]:
    return [item.data.hex(), list(item.peer), item.local]


def _collect(transports: list[Ip115Transport], count: int) -> list[tuple[Ip115Transport, Received]]:
    got: list[tuple[Ip115Transport, Received]] = []
    deadline = time.monotonic() + WAIT
    while len(got) < count and (remaining := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select(transports, [], [], remaining)
        for transport in ready:
            got += [(transport, item) for item in transport.recv_batch()]
    return got


def scenario_echo(bind: str, count: str) -> Any:
    """Receive `count` datagrams on `bind`, answer each with b"re:" + data from where it came."""
    with Ip115Transport(bind) as transport:
        # A plain raw socket beside it gets a copy of each packet with its IPv4 header.
        raw = socket.socket(transport.family, socket.SOCK_RAW, IPPROTO_L2TP)
        raw.setblocking(False)
        print("ready", transport.local_address, flush=True)
        got = _collect([transport], int(count))
        for _, item in got:
            transport.send(b"re:" + item.data, item.peer, local=item.local)
        headers = []
        for _ in range(len(got)):
            try:
                headers.append(raw.recv(65535).hex())
            except BlockingIOError:
                break
        raw.close()
        return {
            "local_address": transport.local_address,
            "got": [_as_json(item) for _, item in got],
            "raw": headers,
        }


def scenario_send(bind: str, to: str, options: str, *payloads_hex: str) -> Any:
    """Send each payload from `bind` to `to` (with port 1701, which must not matter); collect replies."""
    with Ip115Transport(bind) as transport:
        if options:
            # IP options lengthen the IPv4 header, so the receiver must read IHL.
            with socket.socket(fileno=os.dup(transport.fileno())) as same:
                same.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, bytes.fromhex(options))
        sent = [transport.send(bytes.fromhex(p), (to, 1701)) for p in payloads_hex]
        replies = _collect([transport], len(payloads_hex))
        return {"sent": sent, "replies": [_as_json(item) for _, item in replies]}


SCENARIOS: dict[str, Callable[..., Any]] = {"echo": scenario_echo, "send": scenario_send}


# --- the tests ------------------------------------------------------------------------------------


@pytest.fixture
def pair() -> Iterator[lab.NetnsPair]:
    """A NetnsPair with a second address on b; no namespace of it outlives the test."""
    require_tool("ip", "network namespaces for the protocol-115 tests")
    require_tool("ethtool", "checksum offload off on the veth ends of a NetnsPair")
    require(os.geteuid() == 0, "raw sockets and network namespaces need root (CAP_NET_RAW, CAP_NET_ADMIN)")
    with lab.NetnsPair() as netns_pair:
        netns_pair.run(netns_pair.b, "ip", "addr", "add", f"{B_EXTRA4}/24", "dev", netns_pair.b_if)
        netns_pair.run(netns_pair.b, "ip", "addr", "add", f"{B_EXTRA6}/64", "dev", netns_pair.b_if, "nodad")
        yield netns_pair
    assert not {netns_pair.a, netns_pair.b} & set(lab.netns_list())


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])}


def exchange(
    pair: lab.NetnsPair,
    tmp_path: Path,
    *,
    bind_b: str,
    bind_a: str,
    to: str,
    payloads: list[bytes],
    options: str = "",
) -> tuple[Any, Any]:
    """Start the echo receiver in b, run the sender in a; what each saw."""
    log = tmp_path / f"echo-{next(_counter)}.log"
    receiver = pair.popen(
        pair.b, [sys.executable, __file__, "echo", bind_b, str(len(payloads))], log_path=log, env=_env()
    )
    lab.wait_for_line(log, "^ready", WAIT, receiver)
    sent = pair.run(
        pair.a,
        sys.executable,
        __file__,
        "send",
        bind_a,
        to,
        options,
        *[p.hex() for p in payloads],
        env=_env(),
        timeout=WAIT + 1,
    )
    receiver.wait(WAIT + 1)
    assert receiver.returncode == 0, log.read_text()
    return json.loads(log.read_text().splitlines()[-1]), json.loads(sent.stdout.splitlines()[-1])


def _expect(payloads: list[bytes], peer: str, local: str) -> list[Any]:
    return [[p.hex(), [peer, 0], local] for p in payloads]


def test_ipv4_wildcard_exchange(pair: lab.NetnsPair, tmp_path: Path) -> None:
    received, sender = exchange(
        pair, tmp_path, bind_b="0.0.0.0", bind_a=pair.a_addr, to=B_EXTRA4, payloads=PAYLOADS
    )
    assert received["local_address"] == ["0.0.0.0", 0]
    # Byte for byte, from the sender's address, port 0, to the address it was sent to.
    assert received["got"] == _expect(PAYLOADS, pair.a_addr, B_EXTRA4)
    assert sender["sent"] == [True] * len(PAYLOADS)
    # The wildcard receiver answered from the address it was reached at (IP_PKTINFO).
    assert sender["replies"] == _expect([b"re:" + p for p in PAYLOADS], B_EXTRA4, pair.a_addr)


def test_ipv4_header_with_options_is_skipped(pair: lab.NetnsPair, tmp_path: Path) -> None:
    received, _ = exchange(
        pair,
        tmp_path,
        bind_b=pair.b_addr,
        bind_a=pair.a_addr,
        to=pair.b_addr,
        payloads=[DATA],
        options=IP_OPTIONS_NOPS.hex(),
    )
    assert received["got"] == _expect([DATA], pair.a_addr, pair.b_addr)
    (raw,) = [bytes.fromhex(h) for h in received["raw"]]
    # What the kernel handed a raw socket: a 24-byte IPv4 header (IHL 6) before our bytes.
    assert raw[0] == 0x46 and raw[9] == IPPROTO_L2TP and raw[20:24] == IP_OPTIONS_NOPS
    assert raw[24:] == DATA


def test_ipv6_wildcard_exchange(pair: lab.NetnsPair, tmp_path: Path) -> None:
    received, sender = exchange(
        pair, tmp_path, bind_b="::", bind_a=pair.a_addr6, to=B_EXTRA6, payloads=PAYLOADS
    )
    assert received["local_address"] == ["::", 0]
    assert received["got"] == _expect(PAYLOADS, pair.a_addr6, B_EXTRA6)
    # IPv6 raw sockets give the payload alone: the raw copy is exactly our bytes.
    assert [bytes.fromhex(h) for h in received["raw"]] == PAYLOADS
    # Port 1701 in the peer would be EINVAL on an IPv6 raw socket (sin6_port is read as a protocol).
    assert sender["sent"] == [True] * len(PAYLOADS)
    assert sender["replies"] == _expect([b"re:" + p for p in PAYLOADS], B_EXTRA6, pair.a_addr6)


def test_ipv6_specific_bind(pair: lab.NetnsPair, tmp_path: Path) -> None:
    received, sender = exchange(
        pair, tmp_path, bind_b=pair.b_addr6, bind_a=pair.a_addr6, to=pair.b_addr6, payloads=[ZLB]
    )
    assert received["local_address"] == [pair.b_addr6, 0]
    assert received["got"] == _expect([ZLB], pair.a_addr6, pair.b_addr6)
    assert sender["replies"] == _expect([b"re:" + ZLB], pair.b_addr6, pair.a_addr6)


def test_tshark_reads_the_capture(pair: lab.NetnsPair, tmp_path: Path) -> None:
    """tshark sees IP protocol 115 with our exact bytes as payload, and nothing malformed.

    tshark 4.0.17 shows each frame as "eth:ethertype:ip:l2tp:data", "Layer 2 Tunneling Protocol
    version 3", Session ID 0xc802000c for the ZLB (our flags, Ver and Length) and 0x48020016 for
    the data message, then the remaining bytes as Data.
    """
    tshark = require_tool("tshark", "the independent judge of what goes on the wire")
    require_tool("tcpdump", "the capture of the protocol-115 test")
    pcap = tmp_path / "ip115.pcap"
    payloads = [ZLB, DATA]
    with lab.Capture(
        pair, pair.b, pcap, capture_filter=f"ip proto {IPPROTO_L2TP} or ip6 proto {IPPROTO_L2TP}"
    ):
        exchange(pair, tmp_path, bind_b=pair.b_addr, bind_a=pair.a_addr, to=pair.b_addr, payloads=payloads)
        exchange(pair, tmp_path, bind_b=pair.b_addr6, bind_a=pair.a_addr6, to=pair.b_addr6, payloads=payloads)

    verdict = lab.judge(pcap, tshark, timeout=TSHARK_TIMEOUT)
    assert verdict.problems == []  # no malformed frame, no expert warning or error
    decoded = lab.tshark_fields(tshark, pcap, "-e", "frame.protocols", "-e", "l2tp.sid")
    # Per family: our two datagrams, then the two replies.
    expected = payloads + [b"re:" + p for p in payloads]
    protocols = ["eth:ethertype:ip:l2tp:data"] * 4 + ["eth:ethertype:ipv6:l2tp:data"] * 4
    assert decoded == [[proto, f"0x{p[:4].hex()}"] for proto, p in zip(protocols, expected * 2, strict=True)]

    plain = lab.tshark_fields(
        tshark, pcap, "--disable-protocol", "l2tp", "-e", "ip.proto", "-e", "ipv6.nxt", "-e", "data.data"
    )
    assert plain == [[str(IPPROTO_L2TP), "", p.hex()] for p in expected] + [
        ["", str(IPPROTO_L2TP), p.hex()] for p in expected
    ]


if __name__ == "__main__":
    print(json.dumps(SCENARIOS[sys.argv[1]](*sys.argv[2:])))
