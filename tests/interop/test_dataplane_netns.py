"""Data through our LAC and our LNS, TUN to TUN, in two network namespaces (issue: data plane).

Namespace a runs ``l2tpfast run`` as LAC, b as LNS, both with the compiled data plane and a TUN
device (a: 10.77.0.2/24, b: 10.77.0.1/24). A session comes up; each side routes the other's TUN
address into it (``l2tpfast ctl route-add``, static until IPCP assigns addresses). Then UDP
datagrams go from a socket in a to a socket in b through the tunnel, and back, over UDP/IPv4,
UDP/IPv6 and L2TP over IP (protocol 115). Every datagram must arrive, in order, and the counters of
both daemons (``status --json``) must agree with what was sent. The UDP captures are judged by
tshark.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import lab
import pytest
from daemon import Ours
from tools import require_tool

pytestmark = pytest.mark.interop

COUNT = 200

SENDER = textwrap.dedent(
    """
    import socket, sys, time
    src, dst, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    for i in range(count):
        s.sendto(b"seq %06d " % i + bytes(64), (dst, port))
        if i % 50 == 49:
            time.sleep(0.01)  # stay below the socket queues of a 2-core test machine
    """
)
RECEIVER = textwrap.dedent(
    """
    import socket, sys
    addr, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    s.settimeout(10)
    print("ready", flush=True)
    got = []
    try:
        while len(got) < count:
            got.append(int(s.recv(2048)[4:10]))
    except socket.timeout:
        pass
    print("got", len(got), "inorder", got == sorted(got), flush=True)
    """
)


@pytest.fixture
def tools(tshark: str) -> str:
    for name, why in (("ip", "namespaces"), ("ethtool", "checksum offload off"), ("tcpdump", "captures")):
        require_tool(name, why)
    return tshark


def _config(role: str, listen: str, lns: str, transport: str, tun_addr: str) -> str:
    text = f"""
        [node]
        role = "{role}"
        listen = "{listen}"
        transport = "{transport}"
        control_socket = "@SOCK@"
        [tunnel]
        host_name = "our-{role}"
        secret = "dataplane-secret"
        [dataplane]
        tun = "l2tp%d"
        tun_addresses = ["{tun_addr}"]
        sequence_data = true
        """
    if role == "lac":
        text += f"""
        [lac]
        lns = "{lns}"
        sessions = 1
        """
    return textwrap.dedent(text)


def _flow(pair: lab.NetnsPair, tmp_path: Path, ns_from: str, ns_to: str, src: str, dst: str, tag: str) -> str:
    log = tmp_path / f"receiver-{tag}.log"
    receiver = pair.popen(ns_to, [sys.executable, "-c", RECEIVER, dst, "7000", str(COUNT)], log_path=log)
    lab.wait_for_line(log, "ready", 10.0, receiver)
    pair.run(ns_from, sys.executable, "-c", SENDER, src, dst, "7000", str(COUNT))
    return lab.wait_for_line(log, "^got", 20.0, receiver)


def _session_ids(status: dict[str, Any]) -> tuple[int, int]:
    (tunnel,) = status["tunnels"]
    (session,) = tunnel["sessions"]
    return tunnel["local_tunnel_id"], session["local_session_id"]


@pytest.mark.parametrize("transport", ["udp4", "udp6", "ip"])
def test_lac_to_lns_tun_to_tun(tools: str, pair: lab.NetnsPair, tmp_path: Path, transport: str) -> None:
    v6 = transport == "udp6"
    lac_addr, lns_addr = (pair.a_addr6, pair.b_addr6) if v6 else (pair.a_addr, pair.b_addr)
    kind = "ip" if transport == "ip" else "udp"
    capture_filter = "ip proto 115" if kind == "ip" else "udp port 1701"
    with lab.Capture(pair, pair.b, tmp_path / "capture.pcap", capture_filter=capture_filter) as capture:
        lns = Ours(pair, pair.b, tmp_path / "lns", _config("lns", lns_addr, "", kind, "10.77.0.1/24"))
        lac = Ours(pair, pair.a, tmp_path / "lac", _config("lac", lac_addr, lns_addr, kind, "10.77.0.2/24"))
        up = lac.wait("session up", lambda s: any(e["event"] == "SessionEstablished" for e in s["events"]))
        lns_status = lns.wait("session up", lambda s: bool(s["tunnels"] and s["tunnels"][0]["sessions"]))
        lac.ctl("route-add", *map(str, _session_ids(up)), "10.77.0.1")
        lns.ctl("route-add", *map(str, _session_ids(lns_status)), "10.77.0.2")
        upstream = _flow(pair, tmp_path, pair.a, pair.b, "10.77.0.2", "10.77.0.1", "up")
        downstream = _flow(pair, tmp_path, pair.b, pair.a, "10.77.0.1", "10.77.0.2", "down")
        # Upstream again: the LAC has now seen the LNS's S bit and sequences its data too.
        upstream2 = _flow(pair, tmp_path, pair.a, pair.b, "10.77.0.2", "10.77.0.1", "up2")
        lac_final, lns_final = lac.status(), lns.status()
        capture.stop()
    assert f"got {COUNT} inorder True" in upstream, upstream + lac.log()[-2000:] + lns.log()[-2000:]
    assert f"got {COUNT} inorder True" in downstream, downstream + lac.log()[-2000:] + lns.log()[-2000:]
    assert f"got {COUNT} inorder True" in upstream2, upstream2 + lac.log()[-2000:] + lns.log()[-2000:]
    lac_counters = lac_final["tunnels"][0]["sessions"][0]["counters"]
    lns_counters = lns_final["tunnels"][0]["sessions"][0]["counters"]
    # Each side sent COUNT data packets into the session and received COUNT from it; the kernel
    # may add a few of its own (IPv6 router solicitations from the TUN devices are not routed in).
    assert lac_counters["tx_packets"] == 2 * COUNT and lns_counters["rx_packets"] == 2 * COUNT, (
        lac_counters,
        lns_counters,
    )
    assert lns_counters["tx_packets"] == COUNT and lac_counters["rx_packets"] == COUNT, (
        lac_counters,
        lns_counters,
    )
    assert lns_final["dataplane"]["loops"]["tun_tx"] == 2 * COUNT
    assert lac_final["dataplane"]["loops"]["tun_tx"] == COUNT
    verdict = lab.judge(capture.path, tools)
    assert verdict.problems == [], verdict.table()
    if kind == "udp":
        # tcpdump may miss some of a burst; the daemons' counters above are the exact figures.
        data = [f for f in verdict.frames_detail if f.message == "data"]
        assert len(data) >= COUNT // 2, len(data)
        # RFC 2661 5.4: the LNS decides (sequence_data): all its data carries Ns; the LAC follows once
        # it has seen the S bit, so its upstream packets sent before that carry none.
        lns_data = [f for f in data if f.src.startswith(lns_addr) or f.src.startswith(f"[{lns_addr}]")]
        assert lns_data and all(f.ns is not None for f in lns_data)
        first = lns_data[0].number
        later = [f for f in data if f not in lns_data and f.number > first + 5]
        assert later and all(f.ns is not None for f in later), "the LAC follows the LNS's S bit"
