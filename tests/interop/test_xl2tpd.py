"""Our daemon against xl2tpd 1.3.18 in network namespaces, both ways, judged by tshark.

Namespace a (192.0.2.1) holds the LAC, b (192.0.2.2) the LNS. Our side is ``l2tpfast run`` with a
TOML file, observed as a user would: ``l2tpfast status --json`` (tunnels, sessions, counters and the
recent events) over its control socket. Every datagram between the two is captured on b and
decoded by tshark; no malformed packet and no expert warning is allowed.

xl2tpd cannot run pppd here (no /dev/ppp): it starts pppd at ICCN, pppd fails at once, and xl2tpd
sends CDN. So a session lives from ICCN to that CDN, and the tunnel stays up without sessions: our
Hello (hello_interval = 1 s) is then sent and acknowledged by xl2tpd. Teardown is tried from each
side: our StopCCN (``l2tpfast ctl close-tunnel``) and xl2tpd's (``d NAME`` as LAC, SIGINT as LNS).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lab
import pytest
from daemon import Ours, events_of
from tools import require_tool

pytestmark = pytest.mark.interop

SECRET = "interop-secret"
STEP = 10.0
HANDSHAKE = ["SCCRQ", "SCCRP", "SCCCN", "ICRQ", "ICRP", "ICCN"]


@dataclass(frozen=True)
class Case:
    name: str
    secret: str | None  # both ends
    hidden: bool  # our hide_avps and xl2tpd's "hidden bit"
    closer: str  # "us" or "xl2tpd"


CASES = [
    Case("plain", None, False, "us"),
    Case("auth", SECRET, False, "xl2tpd"),
    Case("hidden", SECRET, True, "us"),
]


@pytest.fixture
def tools(tshark: str) -> str:
    for name, why in (
        ("ip", "network namespaces"),
        ("ethtool", "checksum offload off on the veth ends"),
        ("tcpdump", "captures of every datagram"),
        ("xl2tpd", "the peer of these tests"),
    ):
        require_tool(name, why)
    return tshark


def _config(role: str, listen: str, secret: str | None, hidden: bool, host_name: str) -> str:
    lines = [
        "[node]",
        f'role = "{role}"',
        f'listen = "{listen}"',
        'control_socket = "@SOCK@"',
        "[tunnel]",
        f'host_name = "{host_name}"',
        "hello_interval = 1",
    ]
    if secret is not None:
        lines.append(f'secret = "{secret}"')
    if hidden:
        lines.append("hide_avps = true")
    if role == "lac":
        lines += ["[lac]", 'lns = "192.0.2.2"', "sessions = 1"]
    return "\n".join(lines) + "\n"


def _judge(verdict: lab.Verdict, ours: str, theirs: str, case: Case) -> None:
    assert verdict.problems == [], verdict.table()
    control = [m for m in verdict.messages if m not in ("ZLB", "data")]
    assert control[: len(HANDSHAKE)] == HANDSHAKE, verdict.table()
    assert "CDN" in verdict.messages_from(theirs), verdict.table()
    # Our Hello, and xl2tpd's ZLB whose Nr acknowledges it (RFC 2661 5.5, 5.8).
    hellos = [f for f in verdict.frames_detail if f.message == "HELLO" and f.src.startswith(ours)]
    assert hellos, verdict.table()
    acks = [
        f
        for f in verdict.frames_detail
        if f.src.startswith(theirs)
        and f.nr is not None
        and f.number > hellos[0].number
        and hellos[0].ns is not None
        and f.nr == (hellos[0].ns + 1) % 65536
    ]
    assert acks, f"xl2tpd never acknowledged our Hello\n{verdict.table()}"
    closer = ours if case.closer == "us" else theirs
    assert "StopCCN" in verdict.messages_from(closer), verdict.table()
    ours_frames = [
        f for f in verdict.frames_detail if f.src.startswith(ours) and f.message not in ("ZLB", "data")
    ]
    hidden = [f for f in ours_frames if "1" in f.fields.get("l2tp.avp.hidden", [])]
    if case.hidden:
        assert hidden, "hide_avps: some of our AVPs must carry H=1"
    else:
        assert not hidden
    if case.secret:
        sccrq_or_sccrp = [f for f in verdict.frames_detail if f.message in ("SCCRQ", "SCCRP")]
        # 5.1.1: both ends challenge and both answer (Challenge AVP 11, Challenge Response AVP 13).
        assert all("11" in f.fields.get("l2tp.avp.type", []) for f in sccrq_or_sccrp), verdict.table()


def _hello_then_teardown(ours: Ours, xl2tpd: lab.Xl2tpd, tunnel_id: int, case: Case) -> None:
    """Idle: our Hello goes out and xl2tpd acknowledges it. Then StopCCN from the side the case says."""
    ours.wait(
        "Hello acknowledged", lambda s: s["counters"].get("hello_sent", 0) >= 1 and s["tunnels"][0]["idle"]
    )
    if case.closer == "us":
        ours.ctl("close-tunnel", str(tunnel_id))
        xl2tpd.wait_log(lab.XL2TPD_STOPCCN_RECEIVED, STEP)
        ours.wait("StopCCN acknowledged", lambda s: not s["tunnels"])
        return
    if xl2tpd.lac_name is not None:
        xl2tpd.disconnect()  # "d NAME": StopCCN, result 1 "Goodbye!"
    else:
        xl2tpd.stop(graceful=True)  # SIGINT: StopCCN "Server closing"
    status = ours.wait("xl2tpd's StopCCN", lambda s: bool(events_of(s, "TunnelClosed")))
    (closed,) = events_of(status, "TunnelClosed")
    assert closed["by_peer"] and closed["result_code"] in (1, 6), closed


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_xl2tpd_lac_to_our_lns(tools: str, pair: lab.NetnsPair, tmp_path: Path, case: Case) -> None:
    with lab.Capture(pair, pair.b, tmp_path / "capture.pcap") as capture:
        ours = Ours(
            pair, pair.b, tmp_path / "ours", _config("lns", pair.b_addr, case.secret, case.hidden, "our-lns")
        )
        xl2tpd = lab.Xl2tpd.lac(
            pair,
            pair.a,
            lns_addr=pair.b_addr,
            secret=case.secret,
            challenge=case.secret is not None,
            hidden=case.hidden,
            workdir=tmp_path / "xl2tpd",
        )
        status = ours.wait(
            "session up and then closed by xl2tpd's CDN", lambda s: bool(events_of(s, "SessionClosed"))
        )
        (tunnel_up,) = events_of(status, "TunnelEstablished")
        assert tunnel_up["peer_host_name"] == "xl2tpd-lac" and tunnel_up["peer"][0] == pair.a_addr
        (session_up,) = events_of(status, "SessionEstablished")
        assert session_up["role"] == "lns" and session_up["call_type"] == "incoming"
        (closed,) = events_of(status, "SessionClosed")
        assert closed["by_peer"] and closed["was_established"]
        (tunnel,) = status["tunnels"]
        assert tunnel["state"] == "established" and tunnel["peer_host_name"] == "xl2tpd-lac"
        _hello_then_teardown(ours, xl2tpd, tunnel["local_tunnel_id"], case)
        capture.stop()
    _judge(lab.judge(capture.path, tools), pair.b_addr, pair.a_addr, case)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_our_lac_to_xl2tpd_lns(tools: str, pair: lab.NetnsPair, tmp_path: Path, case: Case) -> None:
    with lab.Capture(pair, pair.b, tmp_path / "capture.pcap") as capture:
        xl2tpd = lab.Xl2tpd.lns(
            pair,
            pair.b,
            listen_addr=pair.b_addr,
            secret=case.secret,
            challenge=case.secret is not None,
            hidden=case.hidden,
            workdir=tmp_path / "xl2tpd",
        )
        ours = Ours(
            pair, pair.a, tmp_path / "ours", _config("lac", pair.a_addr, case.secret, case.hidden, "our-lac")
        )
        status = ours.wait(
            "session up and then closed by xl2tpd's CDN", lambda s: bool(events_of(s, "SessionClosed"))
        )
        (tunnel_up,) = events_of(status, "TunnelEstablished")
        assert tunnel_up["peer_host_name"] == "xl2tpd-lns" and tunnel_up["initiator"]
        (session_up,) = events_of(status, "SessionEstablished")
        assert session_up["role"] == "lac" and session_up["call_type"] == "incoming"
        (closed,) = events_of(status, "SessionClosed")
        assert closed["by_peer"]
        xl2tpd.wait_log(lab.XL2TPD_SESSION_UP, STEP)
        (tunnel,) = status["tunnels"]
        # RFC 2661 8.1: a LAC sends from port 1701.
        assert tunnel["peer"] == f"{pair.b_addr}:1701"
        _hello_then_teardown(ours, xl2tpd, tunnel["local_tunnel_id"], case)
        capture.stop()
    verdict = lab.judge(capture.path, tools)
    _judge(verdict, pair.a_addr, pair.b_addr, case)
    assert all(f.src.endswith(":1701") for f in verdict.frames_detail), "both ends use port 1701"


def test_wrong_secret_both_ways(tools: str, pair: lab.NetnsPair, tmp_path: Path) -> None:
    """5.1.1: different secrets end in StopCCN; ours carries Result Code 4 (not authorized)."""
    with lab.Capture(pair, pair.b, tmp_path / "capture.pcap") as capture:
        lab.Xl2tpd.lns(
            pair,
            pair.b,
            listen_addr=pair.b_addr,
            secret="their-secret",
            challenge=True,
            workdir=tmp_path / "x",
        )
        ours = Ours(
            pair, pair.a, tmp_path / "ours", _config("lac", pair.a_addr, "our-secret", False, "our-lac")
        )
        status = ours.wait("tunnel refused", lambda s: bool(events_of(s, "TunnelClosed")))
        (closed,) = events_of(status, "TunnelClosed")
        assert not closed["by_peer"] and closed["result_code"] == 4, closed
        ours.wait("StopCCN acknowledged", lambda s: not s["tunnels"])
        capture.stop()
    verdict = lab.judge(capture.path, tools)
    assert verdict.problems == [], verdict.table()
    assert verdict.control()[:3] == ["SCCRQ", "SCCRP", "StopCCN"], verdict.table()
    stop = next(f for f in verdict.frames_detail if f.message == "StopCCN")
    assert stop.src.startswith(pair.a_addr) and stop.fields.get("l2tp.result_code") == ["4"], stop.fields
