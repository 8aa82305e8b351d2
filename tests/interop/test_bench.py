"""``l2tpfast bench`` against our own LNS in namespaces, its report held to independent counters.

The LNS (``l2tpfast run``, users file, pool, CHAP) runs in namespace b; ``l2tpfast bench`` runs
in namespace a as a user runs it, with its sink started in namespace b. Its report must agree
with what the LNS host itself counted, read before and after the run:

- the TUN device's own statistics (``ip -s -j link``): what the LNS wrote into it (the kernel's
  rx) is what the sink received upstream, and what the kernel queued for the LNS to read (tx)
  is the downstream the sink sent plus the echoes of the latency probes;
- the LNS's counters (``status --json``): TUN packets each way, datagrams it sent, logins
  accepted and links up, the CPU of its process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import lab
import pytest
from daemon import LNS_ADDRESS, Ours, lns_config
from tools import require_tool

pytestmark = pytest.mark.interop

TUNNELS, PER_TUNNEL = 2, 5
RATE, SIZE, SECONDS = 2000, 300, 1.5


def _tun_stats(pair: lab.NetnsPair, device: str) -> dict[str, int]:
    out = pair.run(pair.b, "ip", "-s", "-j", "link", "show", device).stdout
    stats = json.loads(out)[0]["stats64"]
    return {"rx": int(stats["rx"]["packets"]), "tx": int(stats["tx"]["packets"])}


def _loops(ours: Ours) -> dict[str, int]:
    status = ours.status()
    loops = {k: int(v) for k, v in status["dataplane"]["loops"].items()}
    ppp = status["dataplane"]["ppp"]
    loops["links_up"] = int(ppp["links_up"])
    loops["auth_accepted"] = int(ppp["auth_accepted"])
    return loops


def _bench(pair: lab.NetnsPair, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return pair.run(
        pair.a, sys.executable, "-m", "l2tpfast", "bench", "--lns", pair.b_addr, "--secret", "ppp-secret",
        "--sink-netns", pair.b, "--sink-address", LNS_ADDRESS, *args,
        check=False, timeout=timeout,
    )  # fmt: skip


@pytest.fixture
def lns(pair: lab.NetnsPair, tmp_path: Path) -> Ours:
    require_tool("ip", "network namespaces")
    users = tmp_path / "users"
    users.write_text("".join(f"bench{n} pw{n}\n" for n in range(TUNNELS * PER_TUNNEL)))
    return Ours(pair, pair.b, tmp_path / "lns", lns_config(pair.b_addr, users))


def test_bench_report_agrees_with_the_lns_counters(pair: lab.NetnsPair, lns: Ours, tmp_path: Path) -> None:
    device = lns.status()["dataplane"]["tun"]
    # The kernel's own IPv6 packets (router solicitations, MLD) would go into the device at
    # times of its choosing and blur the counts: this LNS has no IPv6 pool, so none are wanted.
    pair.run(pair.b, "sysctl", "-q", "-w", f"net.ipv6.conf.{device}.disable_ipv6=1")
    tun0, loops0 = _tun_stats(pair, device), _loops(lns)
    # Into folders not made yet: the report is written wherever the operator asked.
    report_path, plot = tmp_path / "out" / "report.json", tmp_path / "plots" / "run"
    done = _bench(
        pair, "--tunnels", str(TUNNELS), "--sessions", str(PER_TUNNEL), "--setup-rate", "50",
        "--username", "bench{n}", "--password", "pw{n}",
        "--rate", str(RATE), "--size", str(SIZE), "--duration", str(SECONDS), "--direction", "both",
        "--lns-pid", str(lns.proc.pid), "--json", str(report_path), "--plot", str(plot),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + lns.log()[-2000:]
    tun1, loops1 = _tun_stats(pair, device), _loops(lns)
    report: dict[str, Any] = json.loads(report_path.read_text())
    d_tun = {k: tun1[k] - tun0[k] for k in tun0}
    d_lns = {k: loops1[k] - loops0[k] for k in loops0}

    # Setup: every call came up, at about the rate asked for, and the LNS agrees.
    setup = report["setup"]
    assert setup["up"] == TUNNELS * PER_TUNNEL and setup["failed"] == 0, setup
    assert d_lns["links_up"] == d_lns["auth_accepted"] == TUNNELS * PER_TUNNEL, d_lns
    assert 10 <= setup["rate"] <= 60, setup  # 50 calls/s asked; the last one's PPP adds a little
    assert 0 < setup["latency_ms"]["p50"] <= setup["latency_ms"]["max"] < 5000, setup

    (step,) = report["steps"]
    up, down = step["up"], step["down"]
    assert step["notes"] == [] and not step["harness_limited"], step
    # Offered as asked (the pacing), then delivered without loss at this low rate.
    for way in (up, down):
        assert abs(way["sent"] - RATE * SECONDS) <= 64, way
        assert way["delivered"] == way["sent"] and way["loss"] == 0.0, way
        assert way["late"] == 0, way
        assert way["octets"] == way["delivered"] * SIZE, way  # whole IP packets, as sent
        assert way["delivered_mbps"] == pytest.approx(way["delivered_pps"] * SIZE * 8 / 1e6, rel=1e-3)

    # Upstream: what the LNS wrote into its TUN device, by the device's count and by the LNS's,
    # is what the sink received.
    assert d_tun["rx"] == d_lns["tun_tx"] == up["delivered"], (d_tun, d_lns, up)
    # Downstream: the kernel queued for the LNS what the sink sent plus the probes' echoes; the
    # LNS read them all and sent each into its session, and the generator counted each.
    echoes = step["probes_echoed"]
    assert echoes > 0 and step["rtt_us"]["samples"] == echoes, step
    assert d_tun["tx"] == d_lns["tun_rx"], (d_tun, d_lns)
    assert d_lns["tun_rx"] - d_lns["no_route"] == d_lns["udp_tx"] == down["sent"] + echoes, (d_lns, down)
    assert down["delivered"] == down["sent"]

    # Round trips are plausible; the LNS's CPU was read from /proc and spread over the packets.
    rtt = step["rtt_us"]
    assert 0 < rtt["p50"] <= rtt["p99"] <= rtt["max"] < 1_000_000, rtt
    assert step["lns_cpu_seconds"] is not None and step["lns_cpu_seconds"] > 0, step
    cpu_us = step["lns_cpu_seconds"] * 1e6 / (up["delivered"] + down["delivered"])
    assert step["lns_cpu_us_per_packet"] == pytest.approx(cpu_us, rel=0.01)

    # The table and the plots.
    assert "sessions: 10/10 up" in done.stdout and "both" in done.stdout, done.stdout
    for suffix in ("-rate.png", "-latency.png"):
        data = Path(str(plot) + suffix).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", suffix
    # The bench cleared its calls: the LNS has no session left.
    lns.wait("sessions cleared", lambda s: not any(t["sessions"] for t in s["tunnels"]))


def test_bench_says_why_nothing_came_up(pair: lab.NetnsPair, lns: Ours) -> None:
    done = _bench(
        pair, "--sessions", "2", "--username", "bench0", "--password", "wrong", "--setup-timeout", "10",
        "--rate", "1000", "--duration", "1",
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "0/2 sessions up" in done.stdout, done.stdout
    assert "error: no session came up" in done.stderr, done.stderr
    status = lns.status()
    assert status["dataplane"]["ppp"]["auth_rejected"] == 2, status["dataplane"]["ppp"]
