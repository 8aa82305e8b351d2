"""Two l2tpfast daemons that dial each other at the same moment end with one tunnel (RFC 2661 4.4.3).

Both run ``l2tpfast run`` as LACs that also accept tunnels, on 127.0.0.1 and 127.0.0.2 (same port);
each places one call at start. A starts first: its SCCRQ finds nobody and waits for its first
retransmission (1 s). B starts meanwhile and dials A at once, so A is in wait-ctl-reply when B's
SCCRQ arrives: the SCCRQs cross every time. The Tie Breaker AVP decides which tunnel survives, the
loser discards its own, and both calls come up on the one tunnel left.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from l2tpfast.runtime.udp import UdpTransport

pytestmark = pytest.mark.interop


def _config(path: Path, me: str, peer: str, port: int, sock: Path) -> None:
    path.write_text(
        f"""
[node]
role = "lac"
listen = "{me}"
port = {port}
control_socket = "{sock}"
[tunnel]
host_name = "node-{me}"
secret = "tie-secret"
[limits]
accept_tunnels = true
[lac]
lns = "{peer}"
lns_port = {port}
sessions = 1
"""
    )


def _status(sock: Path) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "l2tpfast", "status", "--json", "-s", str(sock)],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("attempt", range(3))
def test_simultaneous_open_gives_one_tunnel(tmp_path: Path, attempt: int) -> None:
    with UdpTransport("127.0.0.1", 0) as probe:
        port = probe.local_address[1]
    socks = [tmp_path / "a.sock", tmp_path / "b.sock"]
    _config(tmp_path / "a.toml", "127.0.0.1", "127.0.0.2", port, socks[0])
    _config(tmp_path / "b.toml", "127.0.0.2", "127.0.0.1", port, socks[1])
    logs = [open(tmp_path / f"{n}.log", "w") for n in "ab"]  # noqa: SIM115
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "l2tpfast",
                "run",
                "-c",
                str(tmp_path / f"{n}.toml"),
                "--log-level",
                "debug",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for n, log in zip("ab", logs, strict=True)
    ]
    try:
        deadline = time.monotonic() + 20
        statuses: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                statuses = [_status(s) for s in socks]
            except (subprocess.CalledProcessError, json.JSONDecodeError):
                continue
            tunnels = [[t for t in st["tunnels"] if t["state"] != "closing"] for st in statuses]  # type: ignore[attr-defined]
            sessions_up = [
                sum(1 for t in ts for s in t["sessions"] if s["state"] == "established") for ts in tunnels
            ]
            if all(len(ts) == 1 and ts[0]["state"] == "established" for ts in tunnels) and sessions_up == [
                2,
                2,
            ]:
                break
        else:
            logs_text = "\n".join((tmp_path / f"{n}.log").read_text() for n in "ab")
            raise AssertionError(
                f"not one tunnel with both calls: {json.dumps(statuses)[:2000]}\n{logs_text}"
            )
        (ta,), (tb,) = tunnels
        assert ta["local_tunnel_id"] == tb["peer_tunnel_id"] and tb["local_tunnel_id"] == ta["peer_tunnel_id"]
        assert ta["initiator"] != tb["initiator"], "exactly one side initiated the surviving tunnel"
        counters = [st["counters"] for st in statuses]  # type: ignore[index]
        lost = sum(c.get("tie_breaker_lost", 0) for c in counters)  # type: ignore[attr-defined]
        assert lost == 1, f"exactly one side discards its tunnel on the tie breaker: {counters}"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in logs:
            log.close()
