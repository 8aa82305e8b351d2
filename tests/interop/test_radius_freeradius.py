"""l2tpfast's RADIUS client and DAE server against FreeRADIUS 3 in a network namespace.

Namespace b of a :class:`lab.NetnsPair` holds FreeRADIUS (tests/radiuslab.py: auth 1812, accounting
1813, client 127.0.0.1 with secret testing123) and, run with ``ip netns exec``, tests/radiusprobe.py,
which drives ``runtime/radius.py`` (RadiusService, DaeListener) and prints JSON. What this proves:

- PAP, CHAP-MD5 and MS-CHAPv2 Access-Requests are accepted with the right password and rejected
  with a wrong one; the Framed-IP-Address of the users file comes back; the MS-CHAP2-Success
  FreeRADIUS computes equals the authenticator response l2tpfast.ppp.auth.mschapv2 computes
  (RFC 2759 8.7), so the PPP peer's check of it passes.
- Accounting Start, Interim-Update and Stop are answered, and FreeRADIUS's detail file holds the
  Acct-Session-Id, the 64-bit octet counters as Octets + Gigawords (RFC 2869 5.1, 5.2), the
  packets, the Class echoed and the Acct-Terminate-Cause that were sent.
- Failover: with a first server where nothing listens, requests are retransmitted there, then
  answered by FreeRADIUS.
- DAE (RFC 5176): radclient's Disconnect-Request for a known session gets Disconnect-ACK, for an
  unknown one Disconnect-NAK with Error-Cause 503; with a Message-Authenticator as well.
- The shared secret never appears in what the probe logs (DEBUG) or prints.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lab
import pytest
from radiuslab import RADIUS_SECRET, FreeRadius
from tools import require_root, require_tool

from l2tpfast.ppp.auth.mschapv2 import generate_authenticator_response

pytestmark = pytest.mark.interop

PROBE = Path(__file__).resolve().parent.parent / "radiusprobe.py"
USERS = [("alice", "alice-pw", "198.51.100.77"), ("bob", "bob-pw", None)]
AUTH = [["127.0.0.1", 1812]]
ACCT = [["127.0.0.1", 1813]]
DAE_PORT = 3799


@pytest.fixture
def pair() -> Iterator[lab.NetnsPair]:
    require_root("network namespaces")
    for name, why in (
        ("ip", "network namespaces"),
        ("ethtool", "checksum offload off on the veth ends"),
        ("freeradius", "the RADIUS server"),
        ("radclient", "the DAE client"),
    ):
        require_tool(name, why)
    with lab.NetnsPair("radius") as p:
        yield p


@pytest.fixture
def radius(pair: lab.NetnsPair, tmp_path: Path) -> Iterator[FreeRadius]:
    with FreeRadius(pair, pair.b, USERS, workdir=tmp_path / "radius") as server:
        yield server


def _probe(pair: lab.NetnsPair, radius: FreeRadius, spec: dict[str, Any]) -> dict[str, Any]:
    spec = {"auth": AUTH, "acct": ACCT, "secret": RADIUS_SECRET, "timeout": 1.0, "retries": 2, **spec}
    done = pair.run(pair.b, sys.executable, str(PROBE), json.dumps(spec), check=False, timeout=90)
    context = f"probe stderr:\n{done.stderr[-3000:]}\nfreeradius:\n{radius.log()[-3000:]}"
    assert done.returncode == 0, context
    # The secret is in no log line (DEBUG) and in nothing printed.
    assert RADIUS_SECRET not in done.stderr and RADIUS_SECRET not in done.stdout
    out: dict[str, Any] = json.loads(done.stdout)
    return out


def _detail_records(radius: FreeRadius) -> list[dict[str, str]]:
    """The records of FreeRADIUS's detail file(s) for client 127.0.0.1: attribute -> value text."""
    files = sorted((radius.workdir / "radacct" / "127.0.0.1").glob("detail-*"))
    assert files, f"no detail file under {radius.workdir / 'radacct'}"
    records: list[dict[str, str]] = []
    for path in files:
        for block in path.read_text().split("\n\n"):
            lines = [line for line in block.splitlines() if line.strip()]
            if not lines:
                continue
            record = {}
            for line in lines[1:]:  # the first line is the time stamp header
                name, _, value = line.strip().partition(" = ")
                record[name] = value.strip('"')
            records.append(record)
    return records


def test_pap(pair: lab.NetnsPair, radius: FreeRadius) -> None:
    ops = [
        {"op": "pap", "user": "alice", "password": "alice-pw"},
        {"op": "pap", "user": "alice", "password": "wrong"},
        {"op": "pap", "user": "bob", "password": "bob-pw"},
    ]
    out = _probe(pair, radius, {"ops": ops})
    alice, wrong, bob = out["results"]
    assert alice["accepted"] and alice["framed_address"] == "198.51.100.77", alice
    assert wrong["answered"] and not wrong["accepted"] and wrong["code"] == 3, wrong
    assert bob["accepted"] and bob["framed_address"] is None, bob
    counters = out["counters"]
    assert (counters["accepts"], counters["rejects"], counters["retransmissions"]) == (2, 1, 0), counters
    assert counters["bad_authenticator"] == 0


def test_chap(pair: lab.NetnsPair, radius: FreeRadius) -> None:
    ops = [
        {"op": "chap", "user": "alice", "password": "alice-pw"},
        {"op": "chap", "user": "alice", "password": "wrong"},
    ]
    good, bad = _probe(pair, radius, {"ops": ops})["results"]
    assert good["accepted"] and good["framed_address"] == "198.51.100.77", good
    assert bad["answered"] and not bad["accepted"], bad


def test_mschapv2(pair: lab.NetnsPair, radius: FreeRadius) -> None:
    ops = [
        {"op": "mschapv2", "user": "bob", "password": "bob-pw"},
        {"op": "mschapv2", "user": "bob", "password": "wrong"},
    ]
    good, bad = _probe(pair, radius, {"ops": ops})["results"]
    assert good["accepted"], good
    expected = generate_authenticator_response(
        "bob-pw",
        bytes.fromhex(good["nt_response"]),
        bytes.fromhex(good["peer_challenge"]),
        bytes.fromhex(good["challenge"]),
        "bob",
    )
    # RFC 2548 2.3.3 from FreeRADIUS == RFC 2759 8.7 from l2tpfast.
    assert good["ms_chap2_success"] == expected, good
    assert not bad["accepted"] and bad["ms_chap_error"] and "E=691" in bad["ms_chap_error"], bad


def test_accounting(pair: lab.NetnsPair, radius: FreeRadius) -> None:
    session = {"session": "l2f-acct-0001", "user": "alice", "nas_port": 17, "class": ["cls-1"]}
    ops = [
        {"op": "acct", "status": "start", **session},
        {
            "op": "acct",
            "status": "interim",
            **session,
            "session_time": 60,
            "input_octets": 1000,
            "output_octets": 2000,
            "input_packets": 10,
            "output_packets": 20,
        },
        {
            "op": "acct",
            "status": "stop",
            **session,
            "session_time": 125,
            "input_octets": 3 * 2**32 + 4242,
            "output_octets": 2**32 + 7,
            "input_packets": 5000,
            "output_packets": 6000,
            "terminate_cause": 1,
        },
    ]
    out = _probe(pair, radius, {"ops": ops})
    assert [r["answered"] for r in out["results"]] == [True, True, True], out
    assert out["counters"]["accounting_responses"] == 3
    records = [r for r in _detail_records(radius) if r.get("Acct-Session-Id") == "l2f-acct-0001"]
    assert [r["Acct-Status-Type"] for r in records] == ["Start", "Interim-Update", "Stop"], records
    start, interim, stop = records
    assert start["User-Name"] == "alice" and start["NAS-Port"] == "17" and start["Class"] == "0x636c732d31"
    assert start["NAS-Identifier"] == "l2tpfast-probe"
    assert (interim["Acct-Input-Octets"], interim["Acct-Output-Octets"]) == ("1000", "2000")
    assert (interim["Acct-Input-Packets"], interim["Acct-Output-Packets"]) == ("10", "20")
    assert interim["Acct-Session-Time"] == "60"
    assert (stop["Acct-Input-Octets"], stop["Acct-Input-Gigawords"]) == ("4242", "3")
    assert (stop["Acct-Output-Octets"], stop["Acct-Output-Gigawords"]) == ("7", "1")
    assert (stop["Acct-Input-Packets"], stop["Acct-Output-Packets"]) == ("5000", "6000")
    assert stop["Acct-Terminate-Cause"] == "User-Request" and stop["Acct-Session-Time"] == "125"


def test_failover_to_the_second_server(pair: lab.NetnsPair, radius: FreeRadius) -> None:
    spec = {
        # Nothing listens on port 1: every transmission there goes unanswered.
        "auth": [["127.0.0.1", 1], ["127.0.0.1", 1812]],
        "acct": [["127.0.0.1", 2], ["127.0.0.1", 1813]],
        "timeout": 0.3,
        "retries": 1,
        "ops": [
            {"op": "pap", "user": "alice", "password": "alice-pw"},
            {"op": "acct", "status": "start", "session": "l2f-failover"},
        ],
    }
    out = _probe(pair, radius, spec)
    auth, acct = out["results"]
    assert auth["accepted"] and auth["framed_address"] == "198.51.100.77", auth
    assert acct["answered"], acct
    counters = out["counters"]
    # Per request: the first transmission and 1 retransmission to the silent server, then failover.
    assert (counters["retransmissions"], counters["timeouts"], counters["failovers"]) == (2, 4, 2), counters
    (record,) = [r for r in _detail_records(radius) if r.get("Acct-Session-Id") == "l2f-failover"]
    # RFC 2866 5.2: the record waited on the silent server before FreeRADIUS got it.
    assert int(record["Acct-Delay-Time"]) in (0, 1), record


def _radclient(pair: lab.NetnsPair, attributes: str) -> str:
    done = pair.run(
        pair.b,
        "radclient",
        "-x",
        "-r",
        "1",
        "-t",
        "3",
        f"127.0.0.1:{DAE_PORT}",
        "disconnect",
        RADIUS_SECRET,
        input=attributes,
        check=False,
        timeout=30,
    )
    return done.stdout + done.stderr


def test_dae_disconnect(pair: lab.NetnsPair, radius: FreeRadius, tmp_path: Path) -> None:
    log_path = tmp_path / "dae.log"
    spec = {"mode": "dae", "port": DAE_PORT, "secret": RADIUS_SECRET, "known": ["sess-known"], "seconds": 60}
    proc = pair.popen(pair.b, [sys.executable, str(PROBE), json.dumps(spec)], log_path=log_path)
    lab.wait_for_line(log_path, r"listening on 127\.0\.0\.1:3799", 10.0, proc)
    known = _radclient(pair, 'Acct-Session-Id = "sess-known"\n')
    unknown = _radclient(pair, 'Acct-Session-Id = "sess-unknown"\n')
    signed = _radclient(pair, 'Acct-Session-Id = "sess-known"\nMessage-Authenticator = 0x00\n')
    lab.stop_process(proc)
    log = log_path.read_text()
    assert re.search(r"Received Disconnect-ACK Id \d+ from 127\.0\.0\.1:3799", known), known + log
    assert re.search(r"Received Disconnect-NAK Id \d+ from 127\.0\.0\.1:3799", unknown), unknown + log
    assert re.search(r"Error-Cause = Session-Context-Not-Found", unknown), unknown
    assert re.search(r"Received Disconnect-ACK", signed), signed + log
    handled = [json.loads(line) for line in log.splitlines() if line.startswith('{"kind"')]
    assert [(h["acct_session_id"], h["ack"]) for h in handled] == [
        ("sess-known", True),
        ("sess-unknown", False),
        ("sess-known", True),
    ], log
    (counters,) = [
        json.loads(line)["counters"] for line in log.splitlines() if line.startswith('{"counters"')
    ]
    assert counters["requests"] == 3 and counters["bad_authenticator"] == 0, counters
    assert RADIUS_SECRET not in log
