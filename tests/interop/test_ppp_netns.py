"""PPP end to end: our LAC's PPP client against our LNS, 100 sessions, in two namespaces.

Namespace a runs ``l2tpfast run`` as LAC with ``[ppp]`` credentials and ``sessions = 100``; b runs
the LNS with a users file, an IPv4 pool and one shared TUN device. Every session must bring
LCP, CHAP and IPCP up and get its own pool address; then, through every session:

- ping from the session's address (LAC side) to the LNS's address, and from the LNS namespace to
  the session's address (ICMP both ways);
- a UDP datagram from each session's address to an echo socket behind the LNS's TUN device, and
  its echo back, so each session carries traffic both ways.

LCP echo keepalive runs every second and both ends must have sent and answered Echo-Requests.
Two calls with a wrong password are refused (CDN), counted by the LNS, and the other 100
sessions stay up on the same tunnel. Closing the tunnel tears everything down: no session, no
address left in the pool, no subscriber address left on the LAC's TUN device. tshark judges the
capture of the tunnel.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import lab
import pytest
from daemon import LNS_ADDRESS, SESSIONS, Ours, lac_config, lns_config, sessions_of, up_addresses
from tools import require_tool

pytestmark = pytest.mark.interop


ECHO_SERVER = textwrap.dedent(
    """
    import socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sys.argv[1], int(sys.argv[2])))
    s.settimeout(30)
    print("ready", flush=True)
    n = 0
    try:
        while True:
            data, peer = s.recvfrom(2048)
            s.sendto(data, peer)
            n += 1
    except socket.timeout:
        pass
    """
)

# One UDP socket per session address: each datagram leaves through its own session (the LAC's
# fast path routes by source address) and its echo comes back through the same one.
UDP_CLIENTS = textwrap.dedent(
    """
    import select, socket, sys, time
    dst, port = sys.argv[1], int(sys.argv[2])
    addresses = sys.argv[3:]
    socks = {}
    for a in addresses:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((a, 0))
        s.setblocking(False)
        socks[s.fileno()] = (a, s)
    answered = set()
    for attempt in range(3):
        for fd, (a, s) in socks.items():
            if a not in answered:
                s.sendto(b"from " + a.encode(), (dst, port))
        deadline = time.monotonic() + 3
        while len(answered) < len(addresses) and time.monotonic() < deadline:
            ready, _, _ = select.select(list(socks), [], [], 0.2)
            for fd in ready:
                a, s = socks[fd]
                data = s.recv(2048)
                if data == b"from " + a.encode():
                    answered.add(a)
        if len(answered) == len(addresses):
            break
    print("answered", len(answered), "of", len(addresses), flush=True)
    print("missing", sorted(set(addresses) - answered), flush=True)
    """
)

# ping each address at once (bounded: 2 tries, 2 s each), report the ones that did not answer.
PINGS = textwrap.dedent(
    """
    import subprocess, sys
    dst_mode = sys.argv[1] == "to"
    target = sys.argv[2]
    addresses = sys.argv[3:]
    def command(a):
        if dst_mode:
            return ["ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "2", a]
        return ["ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "2", "-I", a, target]
    procs = {a: subprocess.Popen(command(a), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for a in addresses}
    failed = [a for a, p in procs.items() if p.wait(timeout=30) != 0]
    print("ping failed", len(failed), failed, flush=True)
    """
)


@pytest.fixture
def tools(tshark: str) -> str:
    for name, why in (
        ("ip", "namespaces"),
        ("ethtool", "checksum offload off"),
        ("tcpdump", "captures"),
        ("ping", "ICMP through the sessions"),
    ):
        require_tool(name, why)
    return tshark


def test_100_ppp_sessions_lac_to_lns(tools: str, pair: lab.NetnsPair, tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text('# user password\nsubscriber "correct horse"\n')
    with lab.Capture(pair, pair.b, tmp_path / "capture.pcap", capture_filter="udp port 1701") as capture:
        lns = Ours(pair, pair.b, tmp_path / "lns", lns_config(pair.b_addr, users))
        lac = Ours(pair, pair.a, tmp_path / "lac", lac_config(pair.a_addr, pair.b_addr))
        started = time.monotonic()
        lac_up = lac.wait("100 PPP sessions up", lambda s: len(up_addresses(s)) == SESSIONS, timeout=60)
        setup_seconds = time.monotonic() - started
        lns_up = lns.wait("100 PPP sessions up at the LNS", lambda s: len(up_addresses(s)) == SESSIONS)
        addresses = sorted(up_addresses(lac_up))
        assert len(set(addresses)) == SESSIONS, addresses
        assert sorted(up_addresses(lns_up)) == addresses, "both ends agree on every address"
        assert all(a.startswith("10.100.0.") and a != LNS_ADDRESS for a in addresses)
        lac.wait("addresses on the LAC's TUN", lambda s: s["dataplane"]["ppp"]["ip_batch_errors"] == 0)
        time.sleep(0.5)  # ip -batch applies the addresses asynchronously

        # ICMP both ways through every session.
        out = pair.run(pair.a, sys.executable, "-c", PINGS, "from", LNS_ADDRESS, *addresses).stdout
        assert "ping failed 0 " in out, out + lac.log()[-3000:]
        out = pair.run(pair.b, sys.executable, "-c", PINGS, "to", "-", *addresses).stdout
        assert "ping failed 0 " in out, out + lns.log()[-3000:]

        # UDP both ways through every session.
        echo_log = tmp_path / "echo.log"
        echo = pair.popen(pair.b, [sys.executable, "-c", ECHO_SERVER, LNS_ADDRESS, "7001"], log_path=echo_log)
        lab.wait_for_line(echo_log, "ready", 10.0, echo)
        out = pair.run(pair.a, sys.executable, "-c", UDP_CLIENTS, LNS_ADDRESS, "7001", *addresses).stdout
        assert f"answered {SESSIONS} of {SESSIONS}" in out, out
        lab.stop_process(echo)

        # Wrong passwords: refused and counted; the other sessions stay up on the same tunnel.
        tunnel_id = lac_up["tunnels"][0]["local_tunnel_id"]
        for _ in range(2):
            lac.ctl(
                "open-session", "--tunnel", str(tunnel_id), "--username", "subscriber", "--password", "wrong"
            )
        lns_after = lns.wait("2 refused", lambda s: s["dataplane"]["ppp"]["auth_rejected"] == 2)
        lac_after = lac.wait(
            "refused calls cleared",
            lambda s: len(sessions_of(s)) == SESSIONS and len(up_addresses(s)) == SESSIONS,
        )
        assert len(lac_after["tunnels"]) == 1 and lac_after["tunnels"][0]["local_tunnel_id"] == tunnel_id
        assert len(up_addresses(lns_after)) == SESSIONS

        # LCP keepalive: both ends send Echo-Requests and get replies (echo_interval = 1 s).
        for node in (lac, lns):
            status = node.wait(
                "LCP echo answered",
                lambda s: all(x["ppp"]["echo_replies"] >= 2 for x in sessions_of(s) if x.get("ppp")),
            )
            assert all(x["ppp"]["echo_sent"] >= 2 for x in sessions_of(status))

        # Clean teardown.
        lac.ctl("close-tunnel", str(tunnel_id))

        # RFC 2661 5.7: the StopCCN receiver keeps the tunnel a while ("closing") to re-ack.
        def gone(s: dict[str, Any]) -> bool:
            return not sessions_of(s) and all(t["state"] == "closing" for t in s["tunnels"])

        lns_end = lns.wait("all gone at the LNS", gone)
        lac.wait("all gone at the LAC", gone)
        assert lns_end["dataplane"]["ppp"]["pool"]["in_use"] == 0
        assert lns_end["dataplane"]["sessions"] == 0
        time.sleep(0.5)
        left = pair.run(pair.a, "ip", "-4", "addr", "show").stdout
        assert "10.100.0." not in left, left
        capture.stop()
    verdict = lab.judge(capture.path, tools)
    assert verdict.problems == [], verdict.table()
    print(f"100 PPP sessions up in {setup_seconds:.1f} s")


def test_ipv6cp_prefix_by_router_advertisement(tools: str, pair: lab.NetnsPair, tmp_path: Path) -> None:
    """IPv6CP, then one /64 per subscriber announced by Router Advertisement (RFC 5072, RFC 4861).

    The LNS sends the RA into the session; our LAC's fast path writes it to its TUN device, where
    a capture and tshark check it. An address in that /64 then carries ICMPv6 both ways: the LNS's
    fast path finds the session by the destination's /64, the LAC's by the source's.
    """
    users = tmp_path / "users"
    users.write_text('subscriber "correct horse"\n')
    lns_text = lns_config(pair.b_addr, users).replace("echo_interval = 1", "echo_interval = 1\nipv6 = true")
    lns_text += 'ipv6_pool = "2001:db8:100::/56"\nipv6_dns = ["2001:db8::53"]\n'
    lac_text = lac_config(pair.a_addr, pair.b_addr).replace(
        "echo_interval = 1", "echo_interval = 1\nipv6 = true"
    )
    lac_text = lac_text.replace(f"sessions = {SESSIONS}", "sessions = 2")
    lns = Ours(pair, pair.b, tmp_path / "lns", lns_text)
    lac = Ours(pair, pair.a, tmp_path / "lac", lac_text)
    lac.wait("the TUN device", lambda s: bool(s["dataplane"]["tun"]))
    tun = lac.status()["dataplane"]["tun"]
    with lab.Capture(pair, pair.a, tmp_path / "ra.pcap", iface=tun, capture_filter="icmp6") as capture:

        def v6_opened(x: dict[str, Any]) -> bool:
            return bool(x.get("ppp") and x["ppp"].get("ipv6cp") == "OPENED")

        def v6_up(s: dict[str, Any]) -> bool:
            up = [x for x in sessions_of(s) if v6_opened(x)]
            return len(up) == 2 and all(x["ppp"].get("prefix") for x in up)

        lns_up = lns.wait("IPv6CP up with a prefix", v6_up, timeout=20)
        lac.wait("IPv6CP up at the LAC", lambda s: sum(v6_opened(x) for x in sessions_of(s)) == 2)
        prefixes = sorted(x["ppp"]["prefix"] for x in sessions_of(lns_up))
        assert len(set(prefixes)) == 2 and all(
            p.startswith("2001:db8:100:") and p.endswith("/64") for p in prefixes
        )
        # The first RA may go out before tcpdump runs; the second round (RA_INITIAL_INTERVAL later)
        # is surely captured.
        lns.wait("RAs sent", lambda s: s["dataplane"]["ppp"]["router_advertisements"] >= 4, timeout=15)
        time.sleep(0.5)
        capture.stop()
    out = subprocess.run(
        [tools, "-r", str(capture.path), "-Y", "icmpv6.type == 134", "-T", "fields",
         "-e", "icmpv6.opt.prefix", "-e", "ipv6.hlim", "-e", "icmpv6.opt.rdnss"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    seen = {line.split("\t")[0] for line in out.splitlines() if line}
    assert {p.split("/")[0] for p in prefixes} <= seen, out
    assert all(
        line.split("\t")[1] == "255" and "2001:db8::53" in line for line in out.splitlines() if line
    ), out
    verdict = lab.judge(capture.path, tools)
    assert verdict.problems == [], verdict.table()

    # ICMPv6 through the first session, from an address in its /64.
    session = next(x for x in sessions_of(lns_up) if x["ppp"]["prefix"] == prefixes[0])
    lac_session = next(
        x for x in sessions_of(lac.status()) if x["peer_session_id"] == session["local_session_id"]
    )
    lac_tunnel = lac.status()["tunnels"][0]["local_tunnel_id"]
    mine = prefixes[0].split("/")[0] + "2"
    pair.run(pair.a, "ip", "-6", "addr", "add", f"{mine}/128", "dev", tun, "nodad")
    lac.ctl("route-add", str(lac_tunnel), str(lac_session["local_session_id"]), mine)
    pair.run(pair.b, "ip", "-6", "addr", "add", "2001:db8:ffff::1/128", "dev", "lo")
    pair.run(pair.a, "ip", "-6", "route", "add", "2001:db8:ffff::1/128", "dev", tun)
    ping = pair.run(pair.a, "ping", "-6", "-n", "-c", "3", "-i", "0.2", "-W", "2", "-I", mine,
                    "2001:db8:ffff::1", check=False)  # fmt: skip
    assert ping.returncode == 0, ping.stdout + ping.stderr + lac.log()[-2000:]
    ping = pair.run(pair.b, "ping", "-6", "-n", "-c", "3", "-i", "0.2", "-W", "2", "-I", "2001:db8:ffff::1",
                    mine, check=False)  # fmt: skip
    assert ping.returncode == 0, ping.stdout + ping.stderr + lns.log()[-2000:]


def test_lac_session_tun_devices(tools: str, pair: lab.NetnsPair, tmp_path: Path) -> None:
    """``[lac] session_tun``: each session its own TUN device (pppd's ppp0), traffic through each.
    The LNS asks for MS-CHAPv2 here (RFC 2759), so that method too runs between real daemons."""
    users = tmp_path / "users"
    users.write_text('subscriber "correct horse"\n')
    lns_text = lns_config(pair.b_addr, users).replace('auth = ["chap", "pap"]', 'auth = ["mschapv2"]')
    lns = Ours(pair, pair.b, tmp_path / "lns", lns_text)
    lac_text = lac_config(pair.a_addr, pair.b_addr).replace(
        f"sessions = {SESSIONS}", 'sessions = 3\nsession_tun = "ppp%d"'
    )
    lac = Ours(pair, pair.a, tmp_path / "lac", lac_text)
    lac_up = lac.wait("3 sessions up", lambda s: len(up_addresses(s)) == 3, timeout=20)
    lns_up = lns.wait("3 sessions up at the LNS", lambda s: len(up_addresses(s)) == 3)
    assert lns_up["dataplane"]["ppp"]["auth_accepted"] == 3
    assert lns.log().count("method=MSCHAPV2") == 3 and lac.log().count("method=MSCHAPV2") == 3
    links = pair.run(pair.a, "ip", "-o", "-4", "addr", "show").stdout
    for session in sessions_of(lac_up):
        address = session["ppp"]["address"]
        device = session["ppp"]["tun"]
        assert device.startswith("ppp") and re.search(rf"\b{device}\s+inet {address}/32", links), links
        ping = pair.run(
            pair.a, "ping", "-n", "-c", "2", "-i", "0.2", "-W", "2", "-I", device, LNS_ADDRESS, check=False
        )
        assert ping.returncode == 0, ping.stdout + ping.stderr + lac.log()[-2000:]
        ping = pair.run(pair.b, "ping", "-n", "-c", "2", "-i", "0.2", "-W", "2", address, check=False)
        assert ping.returncode == 0, ping.stdout + ping.stderr
    lac.ctl("close-tunnel", str(lac_up["tunnels"][0]["local_tunnel_id"]))
    lac.wait("sessions gone", lambda s: not sessions_of(s))
    time.sleep(0.3)
    left = pair.run(pair.a, "ip", "-o", "link", "show").stdout
    assert "ppp" not in left, left


def test_duplicate_logins_refused_when_configured(tools: str, pair: lab.NetnsPair, tmp_path: Path) -> None:
    """``[lns] duplicate_logins = false``: a second session of one user is refused (CDN), counted."""
    users = tmp_path / "users"
    users.write_text('subscriber "correct horse"\n')
    lns = Ours(pair, pair.b, tmp_path / "lns", lns_config(pair.b_addr, users) + "duplicate_logins = false\n")
    lac_text = lac_config(pair.a_addr, pair.b_addr).replace(f"sessions = {SESSIONS}", "sessions = 3")
    lac = Ours(pair, pair.a, tmp_path / "lac", lac_text)
    status = lns.wait("two refused", lambda s: s["dataplane"]["ppp"]["duplicate_logins_refused"] == 2)
    lns_final = lns.wait("one left", lambda s: len(sessions_of(s)) == 1 and len(up_addresses(s)) == 1)
    lac.wait("one left at the LAC", lambda s: len(sessions_of(s)) == 1 and len(up_addresses(s)) == 1)
    assert status["dataplane"]["ppp"]["auth_accepted"] == 1
    assert lns_final["dataplane"]["ppp"]["pool"]["in_use"] == 1
    text = subprocess.run(
        [sys.executable, "-m", "l2tpfast", "status", "-s", str(lns.sock)],
        capture_output=True, text=True, timeout=10, check=True,
    ).stdout  # fmt: skip
    assert re.search(r"PPP network user=subscriber 10\.100\.0\.\d+", text), text
    assert "PPP links network=1, logins accepted 1, refused 2" in text and "pool 1/253" in text, text


def test_lcp_keepalive_failure_ends_the_session(tools: str, pair: lab.NetnsPair, tmp_path: Path) -> None:
    """A subscriber that stops answering LCP Echo-Requests loses its session (CDN, RFC 1661 5.8).

    The LAC is frozen with SIGSTOP: after echo_failure (3) unanswered requests a second apart the
    LNS sends CDN (result 1, loss of carrier), frees the address and counts the failure.
    """
    users = tmp_path / "users"
    users.write_text('subscriber "correct horse"\n')
    # PAP here, so each method runs between real daemons in this file.
    lns_text = lns_config(pair.b_addr, users).replace("echo_failure = 5", "echo_failure = 3")
    lns_text = lns_text.replace('auth = ["chap", "pap"]', 'auth = ["pap"]')
    lns = Ours(pair, pair.b, tmp_path / "lns", lns_text)
    lac_text = lac_config(pair.a_addr, pair.b_addr).replace(f"sessions = {SESSIONS}", "sessions = 1")
    lac = Ours(pair, pair.a, tmp_path / "lac", lac_text)
    lns.wait("PPP up", lambda s: len(up_addresses(s)) == 1)
    assert "peer user='subscriber' method=PAP" in lns.log()
    with lab.Capture(pair, pair.b, tmp_path / "capture.pcap") as capture:
        lac.proc.send_signal(signal.SIGSTOP)
        try:
            status = lns.wait(
                "the session ended by keepalive", lambda s: s["dataplane"]["ppp"]["keepalive_failures"] == 1
            )
            status = lns.wait("no session left", lambda s: not sessions_of(s))
        finally:
            lac.proc.send_signal(signal.SIGCONT)
        time.sleep(0.3)
        capture.stop()
    assert status["dataplane"]["ppp"]["pool"]["in_use"] == 0
    closed = [e for e in status["events"] if e["event"] == "SessionClosed"]
    assert closed and closed[-1]["result_code"] == 1 and "keepalive" in (closed[-1]["message"] or ""), closed
    verdict = lab.judge(capture.path, tools)
    assert "CDN" in verdict.messages_from(pair.b_addr), verdict.table()
    # RFC 3145: the CDN says why PPP ended (8: LCP keepalive error), as tshark reads it.
    (cdn,) = [f for f in verdict.frames_detail if f.message == "CDN"]
    assert cdn.first("l2tp.avp.disconnect_code") == "8", cdn.fields
    assert closed[-1]["disconnect_cause"]["disconnect_code"] == 8
