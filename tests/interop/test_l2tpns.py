"""Our LAC against l2tpns 2.4.1 (with FreeRADIUS) in network namespaces, judged by tshark.

Namespace a (192.0.2.1) holds our ``l2tpfast run`` as LAC with a data plane, b (192.0.2.2) holds
FreeRADIUS and l2tpns (tests/radiuslab.py). What this proves, before our LAC speaks PPP:

- the control plane: our SCCRQ/SCCCN/ICRQ/ICCN bring up a tunnel and a session with l2tpns, with
  and without tunnel authentication (l2tp_secret / our ``secret``, RFC 2661 5.1.1), and our StopCCN
  (``l2tpfast ctl close-tunnel``) ends it;
- the data plane: l2tpns's LCP Configure-Request, sent right after ICCN in an L2TP data message,
  reaches our data plane and is handed up as a PPP frame (``ppp_frames_unhandled`` without a
  ``[ppp]`` section). That it asks for CHAP or PAP as ``radius_authtypes`` says is checked in the
  capture. The very first one arrives within ~50 us of our ICCN: the session must be in our data
  path before ICCN leaves (test_first_lcp_request_reaches_dataplane);
- PPP end to end (test_ppp_through_l2tpns): our LAC's PPP client brings a session up with PAP and
  with CHAP (l2tpns asks FreeRADIUS), gets its address by IPCP (the RADIUS Framed-IP-Address or
  one from l2tpns's pool), and IP packets sent through the session come out of l2tpns's tun0 and
  back, both ways;
- the lab: FreeRADIUS accepts a configured user and rejects a wrong password (radtest, PAP and
  CHAP), so the end-to-end PPP test only has to plug our PPP engine in.

Every datagram on the veth of b is decoded by tshark; no malformed packet and no expert warning is
allowed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import lab
import pytest
from daemon import Ours, events_of
from radiuslab import FreeRadius, L2tpns
from tools import require_root, require_tool

pytestmark = pytest.mark.interop

SECRET = "l2tpns-secret"
STEP = 10.0
HANDSHAKE = ["SCCRQ", "SCCRP", "SCCCN", "ICRQ", "ICRP", "ICCN"]
USERS = [("alice", "alice-pw", "198.51.100.77"), ("bob", "bob-pw", None)]


@pytest.fixture
def tools(tshark: str) -> str:
    require_root("network namespaces")
    for name, why in (
        ("ip", "network namespaces"),
        ("ethtool", "checksum offload off on the veth ends"),
        ("tcpdump", "captures of every datagram"),
        ("l2tpns", "the LNS of these tests"),
        ("freeradius", "the RADIUS server of l2tpns"),
        ("radtest", "probes of the RADIUS server"),
    ):
        require_tool(name, why)
    return tshark


@pytest.fixture
def pair() -> Iterator[lab.NetnsPair]:
    with lab.NetnsPair("l2tpns") as p:
        yield p


def _lac_config(secret: str | None) -> str:
    text = f"""
        [node]
        role = "lac"
        listen = "{lab.NetnsPair.a_addr}"
        control_socket = "@SOCK@"
        [tunnel]
        host_name = "our-lac"
        {f'secret = "{secret}"' if secret else ""}
        [lac]
        lns = "{lab.NetnsPair.b_addr}"
        sessions = 1
        [dataplane]
        tun = "l2tp%d"
        """
    return textwrap.dedent(text)


def _lcp_requests(pcap: Path, tshark: str) -> list[str]:
    """The LCP Configure-Requests in the capture, as ``tshark -V`` prints each (PPP part only)."""
    done = subprocess.run(
        [tshark, "-r", str(pcap), "-Y", "lcp && ppp.code == 1", "-V", "-O", "lcp"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return [block for block in done.stdout.split("\n\n") if "PPP Link Control Protocol" in block]


@dataclass(frozen=True)
class Case:
    name: str
    secret: str | None  # l2tpns's l2tp_secret and ours
    authtypes: str  # l2tpns's radius_authtypes
    auth_protocol: str  # what its LCP Configure-Request asks for


CASES = [
    Case("plain-chap", None, "chap,pap", "Challenge Handshake Authentication Protocol (0xc223)"),
    Case("auth-pap", SECRET, "pap", "Password Authentication Protocol (0xc023)"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_our_lac_to_l2tpns(tools: str, pair: lab.NetnsPair, tmp_path: Path, case: Case) -> None:
    with (
        FreeRadius(pair, pair.b, USERS, workdir=tmp_path / "radius"),
        L2tpns(
            pair,
            pair.b,
            workdir=tmp_path / "l2tpns",
            l2tp_secret=case.secret,
            radius_authtypes=case.authtypes,
        ) as l2tpns,
        lab.Capture(pair, pair.b, tmp_path / "capture.pcap") as capture,
    ):
        ours = Ours(pair, pair.a, tmp_path / "ours", _lac_config(case.secret))
        # Not always the first LCP frame: see test_first_lcp_request_reaches_dataplane. l2tpns
        # resends it ~3 s later, well within STEP.
        status = ours.wait(
            "session up and an LCP frame from l2tpns",
            lambda s: bool(events_of(s, "SessionEstablished")) and s["dataplane"]["ppp_frames_unhandled"] > 0,
        )
        (tunnel_up,) = events_of(status, "TunnelEstablished")
        assert tunnel_up["initiator"] and tunnel_up["peer"][0] == pair.b_addr, tunnel_up
        (session_up,) = events_of(status, "SessionEstablished")
        assert session_up["role"] == "lac" and session_up["call_type"] == "incoming", session_up
        (tunnel,) = status["tunnels"]
        assert tunnel["state"] == "established" and tunnel["peer"] == f"{pair.b_addr}:1701", tunnel
        (session,) = tunnel["sessions"]
        assert session["state"] == "established", session
        l2tpns.wait_log(r"Received ICCN", STEP)
        l2tpns.wait_log(r"LCP: send ConfigReq", STEP)
        ours.ctl("close-tunnel", str(tunnel["local_tunnel_id"]))
        status = ours.wait("StopCCN acknowledged", lambda s: not s["tunnels"])
        (closed,) = events_of(status, "TunnelClosed")
        assert not closed["by_peer"], closed
        l2tpns.wait_log(r"Received StopCCN", STEP)
        capture.stop()
    verdict = lab.judge(capture.path, tools)
    assert verdict.problems == [], verdict.table()
    assert verdict.control()[: len(HANDSHAKE)] == HANDSHAKE, verdict.table()
    assert "StopCCN" in verdict.messages_from(pair.a_addr), verdict.table()
    assert "data" in verdict.messages_from(pair.b_addr), f"no LCP from l2tpns\n{verdict.table()}"
    if case.secret is not None:
        # 5.1.1: we challenge in SCCRQ and l2tpns answers in SCCRP (Challenge Response, AVP 13).
        sccrp = next(f for f in verdict.frames_detail if f.message == "SCCRP")
        assert "13" in sccrp.fields.get("l2tp.avp.type", []), sccrp.fields
    first_request = _lcp_requests(capture.path, tools)[0]
    for option in ("Maximum Receive Unit", "Magic Number", case.auth_protocol):
        assert option in first_request, first_request


def test_first_lcp_request_reaches_dataplane(tools: str, pair: lab.NetnsPair, tmp_path: Path) -> None:
    """l2tpns sends LCP right after ICCN (RFC 2661 7.4.1: the session is up for the LAC once ICCN is sent)."""
    with (
        FreeRadius(pair, pair.b, USERS, workdir=tmp_path / "radius"),
        L2tpns(pair, pair.b, workdir=tmp_path / "l2tpns") as l2tpns,
    ):
        ours = Ours(pair, pair.a, tmp_path / "ours", _lac_config(None))
        try:
            l2tpns.wait_log(r"LCP: send ConfigReq", STEP)
            status = ours.wait(
                "the first LCP frame handed up or dropped",
                lambda s: (
                    s["dataplane"]["ppp_frames_unhandled"] + s["dataplane"]["drops"].get("unknown_session", 0)
                    > 0
                ),
            )
        finally:
            # While l2tpns still acknowledges our StopCCN; later we would wait out the grace period.
            lab.stop_process(ours.proc)
        assert status["dataplane"]["drops"] == {}, status["dataplane"]


def test_freeradius_fixture(tools: str, pair: lab.NetnsPair) -> None:
    """The RADIUS server of the lab accepts the users it was given and nothing else."""
    with FreeRadius(pair, pair.b, USERS, extra_client=(pair.a_addr, "extra-secret")) as radius:
        alice = radius.radtest("alice", "alice-pw")
        assert alice.answer == "Access-Accept", alice.output + radius.log()[-3000:]
        assert "Framed-IP-Address = 198.51.100.77" in alice.output, alice.output
        for username, password, chap, answer in (
            ("bob", "bob-pw", True, "Access-Accept"),
            ("alice", "wrong", False, "Access-Reject"),
            ("bob", "wrong", True, "Access-Reject"),
            ("mallory", "alice-pw", False, "Access-Reject"),
        ):
            result = radius.radtest(username, password, chap=chap)
            assert result.answer == answer, (username, password, chap, result.output, radius.log()[-3000:])
        # The extra client: the other namespace, with its own secret.
        result = radius.radtest("bob", "bob-pw", ns=pair.a, server=pair.b_addr, secret="extra-secret")
        assert result.answer == "Access-Accept", result.output + radius.log()[-3000:]


PPP_CASES = [
    # (id, radius_authtypes, user, the address IPCP must give: RADIUS Framed-IP-Address or the pool)
    ("pap-framed-ip", "pap", "alice", "198.51.100.77"),
    ("chap-pool", "chap", "bob", None),
]
L2TPNS_PEER = "10.99.0.1"  # l2tpns's own IPCP address: not its bind address, which is our underlay

UDP_ECHO = textwrap.dedent(
    """
    import socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sys.argv[1], int(sys.argv[2])))
    s.settimeout(20)
    print("ready", flush=True)
    try:
        while True:
            data, peer = s.recvfrom(2048)
            s.sendto(data, peer)
    except socket.timeout:
        pass
    """
)
UDP_PING = textwrap.dedent(
    """
    import socket, sys
    src, dst, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.settimeout(2)
    ok = 0
    for i in range(count):
        s.sendto(b"ping %d" % i, (dst, port))
        try:
            ok += s.recv(2048) == b"ping %d" % i
        except socket.timeout:
            pass
    print("echoed", ok, "of", count, flush=True)
    """
)


def _tun_stats(pair: lab.NetnsPair, ns: str, dev: str) -> dict[str, int]:
    out = {}
    for name in ("rx_packets", "tx_packets"):
        out[name] = int(pair.run(ns, "cat", f"/sys/class/net/{dev}/statistics/{name}").stdout)
    return out


@pytest.mark.parametrize(("case", "authtypes", "user", "framed"), PPP_CASES, ids=[c[0] for c in PPP_CASES])
def test_ppp_through_l2tpns(
    tools: str, pair: lab.NetnsPair, tmp_path: Path, case: str, authtypes: str, user: str, framed: str | None
) -> None:
    require_tool("ping", "ICMP through the session")
    password = dict((u, p) for u, p, _ in USERS)[user]
    config = _lac_config(SECRET) + textwrap.dedent(
        f"""
        [ppp]
        username = "{user}"
        password = "{password}"
        echo_interval = 2
        """
    )
    pair.run(pair.b, "ip", "addr", "add", f"{L2TPNS_PEER}/32", "dev", "lo")
    with (
        FreeRadius(pair, pair.b, USERS, workdir=tmp_path / "radius"),
        L2tpns(
            pair,
            pair.b,
            workdir=tmp_path / "l2tpns",
            l2tp_secret=SECRET,
            radius_authtypes=authtypes,
            peer_address=L2TPNS_PEER,
        ) as l2tpns,
        lab.Capture(pair, pair.b, tmp_path / "capture.pcap") as capture,
    ):
        ours = Ours(pair, pair.a, tmp_path / "ours", config)
        status = ours.wait(
            "PPP up with l2tpns",
            lambda s: any(
                (x.get("ppp") or {}).get("ipcp") == "OPENED" for t in s["tunnels"] for x in t["sessions"]
            ),
            timeout=20,
        )
        (session,) = status["tunnels"][0]["sessions"]
        address = session["ppp"]["address"]
        assert session["ppp"]["username"] is None or session["ppp"]["username"] == user
        if framed is not None:
            assert address == framed, session
        else:
            assert address.startswith("198.51.100."), session
        time.sleep(0.5)  # the address is added to our TUN device by `ip -batch`
        before = _tun_stats(pair, pair.b, l2tpns.tun)
        # UDP from our session address to an address behind l2tpns's tun0, and the echo back.
        echo_log = tmp_path / "echo.log"
        echo = pair.popen(pair.b, [sys.executable, "-c", UDP_ECHO, L2TPNS_PEER, "7002"], log_path=echo_log)
        lab.wait_for_line(echo_log, "ready", STEP, echo)
        out = pair.run(pair.a, sys.executable, "-c", UDP_PING, address, L2TPNS_PEER, "7002", "20").stdout
        assert "echoed 20 of 20" in out, out + ours.log()[-3000:] + l2tpns.log()[-3000:]
        lab.stop_process(echo)
        # ICMP from the LNS namespace to our address: into tun0, through l2tpns and back. From
        # l2tpns's IPCP address: our reply to it goes into the session (to the bind address, it
        # would take the veth, which is our underlay).
        ping = pair.run(
            pair.b, "ping", "-n", "-c", "5", "-i", "0.2", "-W", "2", "-I", L2TPNS_PEER, address, check=False
        )
        assert ping.returncode == 0, ping.stdout + ping.stderr
        after = _tun_stats(pair, pair.b, l2tpns.tun)
        # tun0 rx: what l2tpns wrote (our packets coming out); tx: what it read to send to us.
        assert after["rx_packets"] - before["rx_packets"] >= 20 + 5, (before, after)
        assert after["tx_packets"] - before["tx_packets"] >= 20 + 5, (before, after)
        l2tpns.wait_log(r"IPCP|ipcp", STEP)
        tunnel_id = status["tunnels"][0]["local_tunnel_id"]
        ours.ctl("close-tunnel", str(tunnel_id))
        ours.wait("StopCCN acknowledged", lambda s: not s["tunnels"])
        capture.stop()
    verdict = lab.judge(capture.path, tools)
    assert verdict.problems == [], verdict.table()
