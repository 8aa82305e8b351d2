"""`l2tpfast run` as a user runs it: two daemons on loopback, `status`, `ctl`, SIGHUP and SIGTERM.

SIGTERM must stop a node cleanly: a CDN (Result Code 3, administrative) for every session, then
StopCCN (Result Code 6, shutting down) to every peer, each acknowledged, exit 0; the peer reports
each session and the tunnel closed by the peer. SIGHUP rereads the file: what can change does,
what cannot is named in the log.
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


def _wait_log(path: Path, needle: str, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if needle in path.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not in {path}:\n{path.read_text()[-2000:]}")


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
        # SIGHUP: a reloadable key (hello_interval) and one that needs a restart (port).
        text = (tmp_path / "lac.toml").read_text()
        (tmp_path / "lac.toml").write_text(
            text.replace('secret = "s"', 'secret = "s"\nhello_interval = 7').replace(
                f"port = {port}\ncontrol", f"port = {port + 1}\ncontrol"
            )
        )
        procs["lac"].send_signal(signal.SIGHUP)
        _wait_log(tmp_path / "lac.log", "reloaded")
        log_text = (tmp_path / "lac.log").read_text()
        assert "tunnel.hello_interval" in log_text.split("reloaded")[1].splitlines()[0]
        assert "node.port changed but needs a restart" in log_text
        (tmp_path / "lac.toml").write_text("[node]\nrole = 'nonsense'\n")
        procs["lac"].send_signal(signal.SIGHUP)
        _wait_log(tmp_path / "lac.log", "reload refused")
        assert "node.role" in (tmp_path / "lac.log").read_text().split("reload refused")[1].splitlines()[0]
        _wait(lns_sock, lambda s: len(s["tunnels"][0]["sessions"]) == 2, "calls still up after reloads")
        procs["lac"].send_signal(signal.SIGTERM)
        assert procs["lac"].wait(timeout=10) == 0
        status = _wait(
            lns_sock, lambda s: any(e["event"] == "TunnelClosed" for e in s["events"]), "the LAC's StopCCN"
        )
        (closed,) = [e for e in status["events"] if e["event"] == "TunnelClosed"]
        assert closed["by_peer"] and closed["result_code"] == 6 and closed["message"] == "node shutting down"
        gone = [e for e in status["events"] if e["event"] == "SessionClosed"]
        assert len(gone) == 3 and all(e["by_peer"] for e in gone)
        # Each call was cleared by its own CDN (result 3) before the StopCCN.
        assert [(e["result_code"], e["message"]) for e in gone[1:]] == [(3, "node shutting down")] * 2
        order = [e["event"] for e in status["events"] if e["event"] in ("SessionClosed", "TunnelClosed")]
        assert order == ["SessionClosed"] * 3 + ["TunnelClosed"]
        assert not lac_sock.exists(), "the control socket is removed on exit"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)
