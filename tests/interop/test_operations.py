"""What an operator watches: the Prometheus endpoint, JSON log lines and the control pcap.

Our LNS (namespace b) runs with ``[metrics] enabled``, ``[log] format = "json"`` and a control
pcap; our LAC (namespace a) brings up PPP sessions and sends UDP through each. The test scrapes
``/metrics`` while traffic flows and sees the data counters move; once the traffic stops, a
scrape and ``l2tpfast status --json`` agree exactly. Every log line is a JSON object, and the
lines about a tunnel or session carry its IDs and peer. tshark reads the control pcap.
"""

from __future__ import annotations

import json
import sys
import textwrap
import time
from pathlib import Path

import lab
import pytest
from daemon import LNS_ADDRESS, SESSIONS, Ours, lac_config, lns_config, up_addresses
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.interop

CALLS = 10
METRICS_PORT = 9612

# UDP from every session address to the LNS for a while (the LNS answers ICMP port unreachable,
# so both directions count); bounded by time.
TRAFFIC = textwrap.dedent(
    """
    import socket, sys, time
    dst, seconds = sys.argv[1], float(sys.argv[2])
    socks = []
    for a in sys.argv[3:]:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((a, 0))
        socks.append(s)
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        for s in socks:
            s.sendto(b"x" * 100, (dst, 9))
            n += 1
        time.sleep(0.002)
    print("sent", n, flush=True)
    """
)


def scrape(pair: lab.NetnsPair) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """GET /metrics inside the LNS namespace; (sample name, labels) -> value."""
    url = f"http://{LNS_ADDRESS}:{METRICS_PORT}/metrics"
    script = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"
    text = pair.run(pair.b, sys.executable, "-c", script).stdout
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_metrics_logs_and_pcap_of_a_running_lns(
    capture_tools: str, pair: lab.NetnsPair, tmp_path: Path
) -> None:
    users = tmp_path / "users"
    users.write_text('subscriber "correct horse"\n')
    pcap = tmp_path / "control.pcap"
    lns_text = lns_config(pair.b_addr, users) + textwrap.dedent(
        f"""
        [metrics]
        enabled = true
        listen = "{LNS_ADDRESS}"
        port = {METRICS_PORT}
        [log]
        format = "json"
        control_pcap = "{pcap}"
        """
    )
    lns = Ours(pair, pair.b, tmp_path / "lns", lns_text)
    lac_text = lac_config(pair.a_addr, pair.b_addr).replace(f"sessions = {SESSIONS}", f"sessions = {CALLS}")
    lac = Ours(pair, pair.a, tmp_path / "lac", lac_text)
    up = lac.wait("calls up", lambda s: len(up_addresses(s)) == CALLS, timeout=30)
    lns.wait("calls up at the LNS", lambda s: len(up_addresses(s)) == CALLS)
    addresses = up_addresses(up)
    time.sleep(0.5)  # the LAC's addresses reach its TUN device by ip -batch

    # During traffic: the counters move between two scrapes.
    traffic = pair.popen(
        pair.a,
        [sys.executable, "-c", TRAFFIC, LNS_ADDRESS, "3", *addresses],
        log_path=tmp_path / "traffic.log",
    )
    time.sleep(0.7)
    first = scrape(pair)
    time.sleep(1.0)
    second = scrape(pair)
    assert traffic.wait(timeout=20) == 0
    for direction in ("rx", "tx"):
        a = value(first, "l2tpfast_data_packets_total", direction=direction)
        b = value(second, "l2tpfast_data_packets_total", direction=direction)
        assert b > a > 0, (direction, a, b)
    assert value(second, "l2tpfast_data_bytes_total", direction="rx") > value(
        first, "l2tpfast_data_bytes_total", direction="rx"
    )

    # Quiet again: a scrape and status --json tell the same story. The last datagrams may still
    # be on their way through the LAC under load, so wait until a scrape, the status and a
    # second scrape all agree (bounded); they must agree once nothing moves.
    def seen(samples: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> list[float]:
        return [
            value(samples, f"l2tpfast_data_{kind}_total", direction=d)
            for kind in ("packets", "bytes")
            for d in ("rx", "tx")
        ]

    for _ in range(20):
        samples = scrape(pair)
        status = lns.status()
        again = scrape(pair)
        totals = status["dataplane"]["totals"]
        wanted = [totals[f"{d}_{kind}"] for kind in ("packets", "bytes") for d in ("rx", "tx")]
        if seen(samples) == wanted == seen(again):
            break
        time.sleep(0.5)
    assert value(samples, "l2tpfast_data_packets_total", direction="rx") == totals["rx_packets"]
    assert value(samples, "l2tpfast_data_packets_total", direction="tx") == totals["tx_packets"]
    assert value(samples, "l2tpfast_data_bytes_total", direction="rx") == totals["rx_bytes"]
    assert value(samples, "l2tpfast_data_bytes_total", direction="tx") == totals["tx_bytes"]
    sent = int((tmp_path / "traffic.log").read_text().split()[1])
    assert totals["rx_packets"] >= sent  # every datagram the LAC sent reached the LNS (plus PPP frames)
    assert value(samples, "l2tpfast_sessions", state="established") == CALLS
    assert value(samples, "l2tpfast_tunnels", state="established") == len(status["tunnels"]) == 1
    assert value(samples, "l2tpfast_dataplane_sessions") == status["dataplane"]["sessions"] == CALLS
    ppp = status["dataplane"]["ppp"]
    assert value(samples, "l2tpfast_ppp_authentications_total", result="accepted") == ppp["auth_accepted"]
    assert value(samples, "l2tpfast_ppp_links", phase="network") == ppp["links"]["network"] == CALLS
    for reason, n in status["dataplane"]["drops"].items():
        assert value(samples, "l2tpfast_data_dropped_datagrams_total", reason=reason) == n

    # Closing calls never makes a counter go back (a session's counts stay in the totals).
    before = value(samples, "l2tpfast_data_packets_total", direction="rx")
    tunnel_id = up["tunnels"][0]["local_tunnel_id"]
    lac.ctl("close-tunnel", str(tunnel_id))
    lns.wait("calls gone", lambda s: s["dataplane"]["sessions"] == 0)
    assert value(scrape(pair), "l2tpfast_data_packets_total", direction="rx") >= before
    lab.stop_process(lns.proc)

    # JSON lines, with IDs and the peer on every line about a tunnel or a session.
    lines = [json.loads(line) for line in lns.log().splitlines() if line.strip()]
    assert lines and all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
    about = [line for line in lines if line["msg"].startswith(("tunnel ", "session "))]
    assert len(about) >= 3 * CALLS, [line["msg"] for line in lines][:20]
    assert all("tunnel_id" in line and "peer" in line for line in about), about[:3]
    assert all(line["peer"].startswith(pair.a_addr) for line in about)
    sessions = [line for line in about if line["msg"].startswith("session ")]
    assert all("session_id" in line for line in sessions)
    auth = [line for line in lines if "PPP authenticated" in line["msg"]]
    assert len(auth) == CALLS and {line.get("username") for line in auth} == {"subscriber"}

    # The control pcap: tshark reads every message, none malformed.
    verdict = lab.judge(pcap, capture_tools)
    assert verdict.problems == [], verdict.table()
    control = verdict.control()
    assert control[:3] == ["SCCRQ", "SCCRP", "SCCCN"], control[:10]
    assert control.count("ICRQ") == control.count("ICRP") == control.count("ICCN") == CALLS
    assert "StopCCN" in control
    assert all(f.dst.startswith(pair.a_addr) or f.src.startswith(pair.a_addr) for f in verdict.frames_detail)
