"""Our LNS authenticates and accounts through a real FreeRADIUS; our LAC brings the calls.

Namespace b runs FreeRADIUS 3 (tests/radiuslab.py) and our LNS with ``[radius]``: the first
configured server is a port where nothing listens, so every first request fails over to
FreeRADIUS. Namespace a runs our LAC (PPP client, MS-CHAPv2 asked by the LNS). Checked:

- accept: alice logs in and gets her Framed-IP-Address (10.100.0.77) from FreeRADIUS, and traffic
  flows from that address;
- reject: a wrong password is refused (Access-Reject) and the call cleared;
- accounting: FreeRADIUS's detail file has Start, Interim-Update (Acct-Interim-Interval = 2 from
  the reply) and Stop for alice's Acct-Session-Id; the Stop's packets and octets are the fast
  path's counters of the session, and its IP packets are exactly the datagrams sent; Class is
  echoed; the LAC's Calling Number and TR-101 Agent-Circuit-Id/Agent-Remote-Id reach RADIUS;
- Session-Timeout (bob, 3 s) ends a session with a CDN and a Stop saying Session-Timeout;
- Idle-Timeout (carol, 2 s, no traffic) does the same with a Stop saying Idle-Timeout;
- a CoA-Request (RFC 5176) that sets Session-Timeout = 1 on a running session is ACKed and
  ends it a second later;
- Framed-Pool "gold" (dave) takes the address from ``[lns.pools] gold``;
- SIGTERM: the Stop of the session still up says Admin-Reboot, sent before the process exits;
- Disconnect-Request (RFC 5176) from radclient ends the session it names (ACK, Stop with
  Admin-Reset) and is NAKed with Error-Cause 503 for a session that does not exist.
"""

from __future__ import annotations

import signal
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import lab
import pytest
from daemon import LNS_ADDRESS, Ours, lac_config, lns_config, sessions_of, up_addresses
from radiuslab import RADIUS_SECRET, FreeRadius
from tools import require_tool

pytestmark = pytest.mark.interop

DATAGRAMS = 300
SIZE = 200  # UDP payload octets

SEND = textwrap.dedent(
    """
    import socket, sys, time
    src, dst, n, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    for i in range(n):
        s.sendto(bytes(size), (dst, 9))
        if i % 50 == 49:
            time.sleep(0.01)
    print("sent", n, flush=True)
    """
)


@pytest.fixture
def tools(tshark: str) -> str:
    for name, why in (
        ("ip", "namespaces"),
        ("freeradius", "the RADIUS server"),
        ("radclient", "RFC 5176 requests"),
    ):
        require_tool(name, why)
    return tshark


def radius_lns_config(listen: str) -> str:
    text = lns_config(listen, Path("/nonexistent"))
    text = "\n".join(line for line in text.splitlines() if not line.strip().startswith("users_file"))
    text = text.replace('auth = ["chap", "pap"]', 'auth = ["mschapv2", "chap", "pap"]')
    text = text.replace("echo_interval = 1", "echo_interval = 0")  # no LCP echoes: exact counters
    return text + textwrap.dedent(
        f"""
        [radius]
        servers = ["127.0.0.1:1", "127.0.0.1"]   # nothing answers on port 1: failover
        accounting_servers = ["127.0.0.1:1813"]
        secret = "{RADIUS_SECRET}"
        timeout = 0.3
        retries = 1
        min_interim_interval = 1
        dae_port = 3799
        dae_clients = ["127.0.0.1"]
        [lns.pools]
        gold = ["10.100.1.0/28"]
        """
    )


def records_of(radius: FreeRadius, session_id: str) -> list[dict[str, str]]:
    return [r for r in radius.accounting_records() if r.get("Acct-Session-Id") == session_id]


def wait_records(
    radius: FreeRadius, session_id: str, cond: Any, what: str, timeout: float = 15.0
) -> list[dict[str, str]]:
    deadline = time.monotonic() + timeout
    records: list[dict[str, str]] = []
    while time.monotonic() < deadline:
        records = records_of(radius, session_id)
        if cond(records):
            return records
        time.sleep(0.2)
    raise AssertionError(f"{what}: {records}\n{radius.log()[-3000:]}")


def lns_session(status: dict[str, Any], address: str) -> dict[str, Any]:
    (found,) = [s for s in sessions_of(status) if s.get("ppp") and s["ppp"]["address"] == address]
    return found


def radclient(pair: lab.NetnsPair, kind: str, attributes: str) -> str:
    command = f"echo '{attributes}' | radclient -r 1 -t 3 -x 127.0.0.1:3799 {kind} {RADIUS_SECRET}"
    done = pair.run(pair.b, "sh", "-c", command, check=False, timeout=30)
    return done.stdout + done.stderr


def test_lns_with_freeradius(tools: str, pair: lab.NetnsPair, tmp_path: Path) -> None:
    radius = FreeRadius(
        pair,
        pair.b,
        [
            ("alice", "alice-pw", "10.100.0.77"),
            ("bob", "bob-pw", None),
            ("carol", "carol-pw", None),
            ("dave", "dave-pw", None),
        ],
        workdir=tmp_path / "radius",
        replies={
            "alice": ["Acct-Interim-Interval = 2", 'Class = "plan-gold"'],
            "bob": ["Session-Timeout = 3"],
            "carol": ["Idle-Timeout = 2"],
            "dave": ['Framed-Pool = "gold"'],
        },
    )
    with radius:
        lns = Ours(pair, pair.b, tmp_path / "lns", radius_lns_config(pair.b_addr))
        lac_text = lac_config(pair.a_addr, pair.b_addr).replace("sessions = 100", "sessions = 0")
        lac_text = lac_text.replace('username = "subscriber"', 'username = "alice"')
        lac_text = lac_text.replace('password = "correct horse"', 'password = "alice-pw"')
        lac_text = lac_text.replace("echo_interval = 1", "echo_interval = 0")
        lac = Ours(pair, pair.a, tmp_path / "lac", lac_text)
        status = lac.wait("tunnel up", lambda s: any(t["state"] == "established" for t in s["tunnels"]))
        tunnel_id = str(status["tunnels"][0]["local_tunnel_id"])

        # Accept, with the address FreeRADIUS assigns, and the line IDs the LAC sends.
        lac.ctl(
            "open-session", "--tunnel", tunnel_id, "--calling-number", "0612345678",
            "--agent-circuit-id", "dslam7 eth 1/1/3:100", "--agent-remote-id", "cpe-alice",
        )  # fmt: skip
        lac.wait("alice up", lambda s: up_addresses(s) == ["10.100.0.77"], timeout=20)
        up = lns.wait("alice up at the LNS", lambda s: up_addresses(s) == ["10.100.0.77"])
        alice = lns_session(up, "10.100.0.77")
        acct_id = alice["ppp"]["acct_session_id"]
        assert alice["ppp"]["username"] == "alice" and acct_id
        assert "method=MSCHAPV2" in lns.log()
        assert up["radius"]["client_failovers"] >= 1 and up["radius"]["client_retransmissions"] >= 1, up[
            "radius"
        ]

        # Reject: the wrong password, refused by FreeRADIUS, and the call cleared.
        lac.ctl("open-session", "--tunnel", tunnel_id, "--username", "alice", "--password", "wrong")
        lns.wait("refused", lambda s: s["radius"]["access_rejected"] == 1 and len(sessions_of(s)) == 1)

        # Traffic from alice's address, through her session.
        time.sleep(0.5)  # the address reaches the LAC's TUN device by ip -batch
        out = pair.run(
            pair.a, sys.executable, "-c", SEND, "10.100.0.77", LNS_ADDRESS, str(DATAGRAMS), str(SIZE)
        )
        assert f"sent {DATAGRAMS}" in out.stdout
        records = wait_records(
            radius,
            acct_id,
            lambda r: any(x.get("Acct-Status-Type") == "Interim-Update" for x in r),
            "an interim",
        )
        time.sleep(0.5)
        before = lns_session(lns.status(), "10.100.0.77")
        lac.ctl("close-session", tunnel_id, str(_lac_session(lac, "10.100.0.77")))
        records = wait_records(
            radius, acct_id, lambda r: r and r[-1].get("Acct-Status-Type") == "Stop", "the Stop"
        )

        kinds = [r["Acct-Status-Type"] for r in records]
        assert kinds[0] == "Start" and kinds[-1] == "Stop" and "Interim-Update" in kinds, kinds
        start, stop = records[0], records[-1]
        assert start["User-Name"] == "alice" and start["Framed-IP-Address"] == "10.100.0.77"
        assert start["Calling-Station-Id"] == "0612345678"
        assert start.get("ADSL-Agent-Circuit-Id", "").endswith(
            ("dslam7 eth 1/1/3:100", _hex("dslam7 eth 1/1/3:100"))
        )
        assert start.get("ADSL-Agent-Remote-Id", "") in ("cpe-alice", _hex("cpe-alice"))
        assert stop["Class"] in ("plan-gold", _hex("plan-gold"))
        # The Stop counts what the fast path counted for the session, and its IP packets are the
        # datagrams sent (the rest are the PPP frames of the session's own negotiation).
        counters = before["counters"]
        assert int(stop["Acct-Input-Packets"]) == counters["rx_packets"]
        assert int(stop["Acct-Input-Octets"]) == counters["rx_bytes"]
        assert int(stop["Acct-Output-Packets"]) == counters["tx_packets"]
        assert int(stop["Acct-Output-Octets"]) == counters["tx_bytes"]
        assert int(stop["Acct-Input-Packets"]) - before["ppp"]["frames_in"] == DATAGRAMS
        assert int(stop["Acct-Input-Octets"]) >= DATAGRAMS * (SIZE + 28)
        # The LAC's CDN, result 3 ("administrative reasons", RFC 2661 4.4.2).
        assert stop["Acct-Terminate-Cause"] == "Admin-Reset", stop
        assert int(stop["Acct-Session-Time"]) >= 2

        # Session-Timeout: bob's session ends after 3 s, with a CDN from the LNS.
        lac.ctl("open-session", "--tunnel", tunnel_id, "--username", "bob", "--password", "bob-pw")
        status = lns.wait(
            "bob up",
            lambda s: any(x["ppp"]["username"] == "bob" for x in sessions_of(s) if x.get("ppp")),
            timeout=15,
        )
        bob = next(x for x in sessions_of(status) if x.get("ppp") and x["ppp"]["username"] == "bob")
        bob_id = bob["ppp"]["acct_session_id"]
        records = wait_records(
            radius, bob_id, lambda r: r and r[-1].get("Acct-Status-Type") == "Stop", "bob's Stop"
        )
        assert records[-1]["Acct-Terminate-Cause"] == "Session-Timeout"
        assert 3 <= int(records[-1]["Acct-Session-Time"]) <= 5
        assert lns.status()["radius"]["session_timeouts"] == 1

        # Disconnect-Request names a session by Acct-Session-Id: ACK, CDN, Stop with Admin-Reset.
        lac.ctl("open-session", "--tunnel", tunnel_id)
        status = lns.wait("alice again", lambda s: up_addresses(s) == ["10.100.0.77"], timeout=15)
        again = lns_session(status, "10.100.0.77")["ppp"]["acct_session_id"]
        answer = radclient(pair, "disconnect", f'Acct-Session-Id = "{again}"')
        assert "Received Disconnect-ACK" in answer, answer
        records = wait_records(
            radius, again, lambda r: r and r[-1].get("Acct-Status-Type") == "Stop", "the Stop"
        )
        assert records[-1]["Acct-Terminate-Cause"] == "Admin-Reset"
        lac.wait("the LAC sees it go", lambda s: not sessions_of(s))
        answer = radclient(pair, "disconnect", 'Acct-Session-Id = "no-such-session"')
        assert "Received Disconnect-NAK" in answer and "Session-Context-Not-Found" in answer, answer

        # Idle-Timeout: carol sends nothing and is cut after 2 s (LCP frames do not count).
        lac.ctl("open-session", "--tunnel", tunnel_id, "--username", "carol", "--password", "carol-pw")
        carol = _wait_user(lns, "carol")
        records = wait_records(radius, carol, lambda r: r and r[-1].get("Acct-Status-Type") == "Stop", "idle")
        assert records[-1]["Acct-Terminate-Cause"] == "Idle-Timeout"
        assert 2 <= int(records[-1]["Acct-Session-Time"]) <= 5

        # CoA-Request gives a running session a Session-Timeout of 1 s: ACK, and it ends so.
        lac.ctl("open-session", "--tunnel", tunnel_id)
        coa = _wait_user(lns, "alice")
        answer = radclient(pair, "coa", f'Acct-Session-Id = "{coa}", Session-Timeout = 1')
        assert "Received CoA-ACK" in answer, answer
        records = wait_records(radius, coa, lambda r: r and r[-1].get("Acct-Status-Type") == "Stop", "CoA")
        assert records[-1]["Acct-Terminate-Cause"] == "Session-Timeout"

        # Framed-Pool picks a named pool ([lns.pools] gold): dave's address comes from it.
        lac.ctl("open-session", "--tunnel", tunnel_id, "--username", "dave", "--password", "dave-pw")
        _wait_user(lns, "dave")
        status = lns.status()
        (dave,) = [x for x in _ppp(status) if x["ppp"]["username"] == "dave"]
        assert dave["ppp"]["address"].startswith("10.100.1."), dave["ppp"]
        assert status["dataplane"]["ppp"]["pools"]["gold"]["in_use"] == 1

        final = lns.status()["radius"]
        assert final["disconnect_requests"] == 2 and final["dae_naks"] == 1
        assert final["coa_requests"] == 1 and final["idle_timeouts"] == 1 and final["session_timeouts"] == 2
        # SIGTERM with dave up: his CDN, then his Stop saying Admin-Reboot (RFC 2866 5.10), before exit.
        lns.proc.send_signal(signal.SIGTERM)
        assert lns.proc.wait(timeout=30) == 0
        records = records_of(radius, dave["ppp"]["acct_session_id"])
        assert [r["Acct-Status-Type"] for r in records] == ["Start", "Stop"], records
        assert records[-1]["Acct-Terminate-Cause"] == "Admin-Reboot"
        assert "testing123" not in lns.log()  # the secret is never logged


def _wait_user(lns: Ours, username: str) -> str:
    """The Acct-Session-Id of the user's session, once its IPCP is up at the LNS."""

    def up(s: dict[str, Any]) -> bool:
        return any(x["ppp"]["username"] == username and x["ppp"]["ipcp"] == "OPENED" for x in _ppp(s))

    status = lns.wait(f"{username} up", up, timeout=15)
    (found,) = [x for x in _ppp(status) if x["ppp"]["username"] == username]
    return str(found["ppp"]["acct_session_id"])


def _ppp(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [x for x in sessions_of(status) if x.get("ppp")]


def _hex(text: str) -> str:
    return "0x" + text.encode().hex()


def _lac_session(lac: Ours, address: str) -> int:
    status = lac.status()
    (found,) = [s for s in sessions_of(status) if s.get("ppp") and s["ppp"]["address"] == address]
    return int(found["local_session_id"])
