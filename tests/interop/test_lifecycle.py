"""SIGTERM to an LNS with 100 PPP sessions up: every call cleared, then the tunnel, then the host.

The LNS (namespace b) must send a CDN for each of the 100 sessions (Result Code 3,
administrative), then StopCCN (Result Code 6, shutting down), each acknowledged by our LAC in
namespace a; tshark on the veth sees all 101 messages, and only then does the process exit 0.
Afterwards the LNS namespace has no TUN device and no route to the pool, and the LAC reports
each session and the tunnel closed by the peer with those codes, its addresses gone.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import lab
import pytest
from daemon import SESSIONS, Ours, lac_config, lns_config, sessions_of, up_addresses
from tools import require_tool

pytestmark = pytest.mark.interop


def test_sigterm_clears_100_sessions_then_the_tunnel(
    capture_tools: str, pair: lab.NetnsPair, tmp_path: Path
) -> None:
    users = tmp_path / "users"
    users.write_text('subscriber "correct horse"\n')
    with lab.Capture(pair, pair.b, tmp_path / "capture.pcap") as capture:
        lns = Ours(pair, pair.b, tmp_path / "lns", lns_config(pair.b_addr, users))
        lac = Ours(pair, pair.a, tmp_path / "lac", lac_config(pair.a_addr, pair.b_addr))
        lac.wait("100 PPP sessions up", lambda s: len(up_addresses(s)) == SESSIONS, timeout=60)
        status = lns.wait("100 up at the LNS", lambda s: len(up_addresses(s)) == SESSIONS)
        tun = status["dataplane"]["tun"]
        assert tun and tun in pair.run(pair.b, "ip", "link", "show").stdout
        assert "10.100.0.128/26" in pair.run(pair.b, "ip", "route", "show", "dev", tun).stdout  # the pool

        started = time.monotonic()
        lns.proc.send_signal(signal.SIGTERM)
        assert lns.proc.wait(timeout=30) == 0, lns.log()[-3000:]
        stop_seconds = time.monotonic() - started
        assert "Traceback" not in lns.log()

        def torn_down(s: dict[str, Any]) -> bool:
            return not sessions_of(s) and all(t["state"] == "closing" for t in s["tunnels"])

        lac_end = lac.wait("the LAC sees everything go", torn_down)
        time.sleep(0.3)
        capture.stop()

    # The LAC's account of it.
    closed = [e for e in lac_end["events"] if e["event"] == "SessionClosed"]
    assert len(closed) == SESSIONS, closed[:3]
    assert {(e["by_peer"], e["result_code"], e["message"]) for e in closed} == {
        (True, 3, "node shutting down")
    }
    (tunnel_closed,) = [e for e in lac_end["events"] if e["event"] == "TunnelClosed"]
    assert (tunnel_closed["by_peer"], tunnel_closed["result_code"]) == (True, 6)
    assert lac_end["dataplane"]["ppp"]["links"] == {}
    assert "10.100.0." not in pair.run(pair.a, "ip", "-4", "addr", "show").stdout

    # The LNS host: no TUN device, no route to the pool.
    assert tun not in pair.run(pair.b, "ip", "link", "show").stdout
    assert "10.100.0." not in pair.run(pair.b, "ip", "route", "show").stdout

    # The wire, judged by tshark: 100 CDNs (one per session, result 3), then the StopCCN, each acked.
    verdict = lab.judge(capture.path, capture_tools)
    assert verdict.problems == [], verdict.table()
    sent = [f for f in verdict.frames_detail if f.src.rpartition(":")[0] == pair.b_addr]
    cdns = [f for f in sent if f.message == "CDN"]
    assert len(cdns) == SESSIONS, verdict.table()[-3000:]
    assert len({f.session_id for f in cdns}) == SESSIONS  # every session, once
    assert {f.first("l2tp.result_code") for f in cdns} == {"3"}
    stops = [f for f in sent if f.message == "StopCCN"]
    assert len(stops) == 1 and stops[0].number > max(f.number for f in cdns)
    assert stops[0].first("l2tp.result_code") == "6"
    last_ns = stops[0].ns
    acked = [
        f
        for f in verdict.frames_detail
        if f.src.rpartition(":")[0] == pair.a_addr
        and f.nr is not None
        and last_ns is not None
        and f.nr > last_ns
    ]
    assert acked, "the LAC acknowledged the StopCCN"
    print(f"SIGTERM to exit with {SESSIONS} sessions: {stop_seconds:.2f} s")


def test_sighup_rereads_the_users_file_and_keeps_sessions(pair: lab.NetnsPair, tmp_path: Path) -> None:
    """A user added to the users file can log in after SIGHUP; the session already up stays up."""
    require_tool("ip", "namespaces")
    users = tmp_path / "users"
    users.write_text('subscriber "correct horse"\n')
    lns = Ours(pair, pair.b, tmp_path / "lns", lns_config(pair.b_addr, users))
    lac_text = lac_config(pair.a_addr, pair.b_addr).replace(f"sessions = {SESSIONS}", "sessions = 1")
    lac = Ours(pair, pair.a, tmp_path / "lac", lac_text)
    status = lac.wait("one session up", lambda s: len(up_addresses(s)) == 1, timeout=20)
    tunnel_id = str(status["tunnels"][0]["local_tunnel_id"])
    first = sessions_of(status)[0]["local_session_id"]

    lac.ctl("open-session", "--tunnel", tunnel_id, "--username", "newbie", "--password", "pw")
    lns.wait("newbie refused", lambda s: s["dataplane"]["ppp"]["auth_rejected"] == 1)

    users.write_text('subscriber "correct horse"\nnewbie pw\n')
    lns.proc.send_signal(signal.SIGHUP)
    lab.wait_for_line(lns.log_path, "reloaded", 10.0, lns.proc)
    lac.ctl("open-session", "--tunnel", tunnel_id, "--username", "newbie", "--password", "pw")
    status = lns.wait("newbie in", lambda s: len(up_addresses(s)) == 2, timeout=20)
    users_up = {s["ppp"]["username"] for s in sessions_of(status) if s.get("ppp")}
    assert users_up == {"subscriber", "newbie"}
    lac_now = lac.status()
    assert first in [s["local_session_id"] for s in sessions_of(lac_now)], "the first session stayed up"
    assert not [
        e for e in lac_now["events"] if e["event"] == "SessionClosed" and e["local_session_id"] == first
    ]
