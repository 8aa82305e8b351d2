"""`l2tpfast run` as a user runs it: two daemons on loopback, `status`, `ctl`, and SIGTERM.

SIGTERM must stop a node cleanly: StopCCN (Result Code 6, shutting down) to every peer, wait for
the acknowledgement, exit 0; the peer reports the tunnel and its sessions closed by the peer.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from l2tpfast.runtime.udp import UdpTransport

pytestmark = pytest.mark.interop


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "l2tpfast", *args], capture_output=True, text=True, timeout=20, check=False
    )


def _status(sock: Path) -> dict[str, Any]:
    out = _cli("status", "--json", "-s", str(sock))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def _wait(sock: Path, cond: Any, what: str, timeout: float = 10.0) -> dict[str, Any]:
    end = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < end:
        try:
            status = _status(sock)
        except AssertionError:
            time.sleep(0.1)
            continue
        if cond(status):
            return status
        time.sleep(0.1)
    raise AssertionError(f"{what}: not seen\n{json.dumps(status)[:2000]}")


def test_sigterm_sends_stopccn_and_the_peer_sees_it(tmp_path: Path) -> None:
    with UdpTransport("127.0.0.1", 0) as probe:
        port = probe.local_address[1]
    lns_sock, lac_sock = tmp_path / "lns.sock", tmp_path / "lac.sock"
    (tmp_path / "lns.toml").write_text(
        f'[node]\nrole = "lns"\nlisten = "127.0.0.1"\nport = {port}\ncontrol_socket = "{lns_sock}"\n'
        '[tunnel]\nhost_name = "lns"\nsecret = "s"\n'
    )
    (tmp_path / "lac.toml").write_text(
        f'[node]\nrole = "lac"\nlisten = "127.0.0.2"\nport = {port}\ncontrol_socket = "{lac_sock}"\n'
        '[tunnel]\nhost_name = "lac"\nsecret = "s"\n'
        f'[lac]\nlns = "127.0.0.1"\nlns_port = {port}\nsessions = 2\n'
    )
    procs = {}
    try:
        for name in ("lns", "lac"):
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "l2tpfast", "run", "-c", str(tmp_path / f"{name}.toml")],
                stdout=open(tmp_path / f"{name}.log", "w"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
            )
            if name == "lns":
                _wait(lns_sock, lambda s: True, "the LNS up")
        _wait(
            lns_sock, lambda s: len(s["tunnels"]) == 1 and len(s["tunnels"][0]["sessions"]) == 2, "2 calls up"
        )
        # ctl: a third call, then close one
        out = _cli("ctl", "-s", str(lac_sock), "open-session", f"127.0.0.1:{port}")
        assert out.returncode == 0, out.stderr
        ids = json.loads(out.stdout)
        _wait(lns_sock, lambda s: len(s["tunnels"][0]["sessions"]) == 3, "3 calls up")
        out = _cli("ctl", "-s", str(lac_sock), "close-session", str(ids["tunnel_id"]), str(ids["session_id"]))
        assert out.returncode == 0, out.stderr
        _wait(lns_sock, lambda s: len(s["tunnels"][0]["sessions"]) == 2, "call closed")
        bad = _cli("ctl", "-s", str(lac_sock), "close-session", "1", "2")
        assert bad.returncode == 1 and "no" in bad.stderr
        procs["lac"].send_signal(signal.SIGTERM)
        assert procs["lac"].wait(timeout=10) == 0
        status = _wait(
            lns_sock, lambda s: any(e["event"] == "TunnelClosed" for e in s["events"]), "the LAC's StopCCN"
        )
        (closed,) = [e for e in status["events"] if e["event"] == "TunnelClosed"]
        assert closed["by_peer"] and closed["result_code"] == 6 and closed["message"] == "node shutting down"
        gone = [e for e in status["events"] if e["event"] == "SessionClosed"]
        assert len(gone) == 3 and all(e["by_peer"] for e in gone)
        assert not lac_sock.exists(), "the control socket is removed on exit"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)
