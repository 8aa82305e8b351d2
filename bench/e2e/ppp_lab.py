"""Our LAC and our LNS with PPP sessions in two network namespaces: `make demo` and the PPP benchmark.

``PppLab(sessions=N)`` makes namespaces ``<prefix>-lac`` and ``<prefix>-lns`` joined by a veth pair
(192.0.2.1 and 192.0.2.2), starts ``l2tpfast run`` in each (the LNS with a users file, a pool in
10.100.0.0/16 and one TUN device; the LAC with ``sessions = N`` and the PPP client's
credentials), and waits until every session has IPCP up. The LAC's fast path routes packets
from its TUN device by source address, so traffic sent from a session's address goes through
that session; traffic from the LNS namespace to a session's address goes back through it.

``relay mblast`` (bench/baseline/relay.c) is the load generator each way and ``relay recv`` the
sink; the daemons' own counters (``status --json``) give the per-second figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from l2tpfast.runtime.node import request

LNS_ADDRESS = "10.100.0.1"
LAC_UNDERLAY, LNS_UNDERLAY = "192.0.2.1", "192.0.2.2"
SINK_PORT = 9
USER, PASSWORD = "demo", "demo-password"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


class PppLab:
    """Two namespaces, two daemons, N PPP sessions; a context manager that always cleans up."""

    def __init__(
        self,
        sessions: int,
        workdir: Path,
        *,
        prefix: str = "l2f-ppp",
        threads: int = 1,
        echo_interval: float = 10,
    ) -> None:
        self.sessions = sessions
        self.workdir = workdir
        self.lac_ns, self.lns_ns = f"{prefix}-lac", f"{prefix}-lns"
        self.threads = threads
        self.echo_interval = echo_interval
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.addresses: list[str] = []
        self.setup_seconds = 0.0

    def __enter__(self) -> PppLab:
        try:
            self._namespaces()
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- set up ------------------------------------------------------------------------------

    def _namespaces(self) -> None:
        for ns in (self.lac_ns, self.lns_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
            ip("netns", "add", ns)
            ip("-n", ns, "link", "set", "lo", "up")
        veth_a, veth_b = f"v{os.getpid() % 100000}a", f"v{os.getpid() % 100000}b"
        ip("link", "add", veth_a, "type", "veth", "peer", "name", veth_b)
        ip("link", "set", veth_a, "netns", self.lac_ns)
        ip("link", "set", veth_b, "netns", self.lns_ns)
        ip("-n", self.lac_ns, "addr", "add", f"{LAC_UNDERLAY}/24", "dev", veth_a)
        ip("-n", self.lns_ns, "addr", "add", f"{LNS_UNDERLAY}/24", "dev", veth_b)
        ip("-n", self.lac_ns, "link", "set", veth_a, "up")
        ip("-n", self.lns_ns, "link", "set", veth_b, "up")

    def _config(self, role: str) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        users = self.workdir / "users"
        users.write_text(f"{USER} {PASSWORD}\n")
        common = f"""
            [node]
            role = "{role}"
            listen = "{LNS_UNDERLAY if role == "lns" else LAC_UNDERLAY}"
            control_socket = "{self.workdir / role}.sock"
            log_level = "warning"
            [tunnel]
            host_name = "demo-{role}"
            [limits]
            max_sessions = {self.sessions + 16}
            [dataplane]
            tun = "l2tp%d"
            threads = {self.threads}
            max_sessions = {max(1024, self.sessions + 16)}
            """
        if role == "lns":
            text = (
                common
                + f"""
            tun_addresses = ["{LNS_ADDRESS}/32"]
            [ppp]
            auth = ["chap"]
            echo_interval = {self.echo_interval}
            [lns]
            pool = ["10.100.0.0/16"]
            local_address = "{LNS_ADDRESS}"
            users_file = "{users}"
            """
            )
        else:
            text = (
                common
                + f"""
            [ppp]
            username = "{USER}"
            password = "{PASSWORD}"
            echo_interval = {self.echo_interval}
            [lac]
            lns = "{LNS_UNDERLAY}"
            sessions = {self.sessions}
            """
            )
        path = self.workdir / f"{role}.toml"
        path.write_text(textwrap.dedent(text))
        return path

    def _start(self) -> None:
        for role, ns in (("lns", self.lns_ns), ("lac", self.lac_ns)):
            config = self._config(role)
            log = open(self.workdir / f"{role}.log", "wb")  # noqa: SIM115 - lives as long as the daemon
            self.procs[role] = subprocess.Popen(
                ["ip", "netns", "exec", ns, sys.executable, "-m", "l2tpfast", "run", "-c", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self._wait(role, lambda s: True, 20, "the management socket")
        lac = self._wait(
            role="lac", cond=lambda s: len(up_addresses(s)) >= self.sessions, timeout=120, what="sessions up"
        )
        # From the LAC placing its calls to its last IPCP Opened, both by the daemon's own clock.
        self.setup_seconds = lac["dataplane"]["ppp"]["last_up_at"] - lac["node"]["started_at"]
        self.addresses = sorted(up_addresses(lac), key=lambda a: tuple(int(x) for x in a.split(".")))
        time.sleep(0.5)  # the LAC adds the addresses to its TUN device with `ip -batch`, asynchronously

    def _wait(self, role: str, cond: Any, timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            proc = self.procs[role]
            if proc.poll() is not None:
                raise RuntimeError(f"the {role} exited {proc.returncode}: {self.log(role)[-2000:]}")
            try:
                last = self.status(role)
                if cond(last):
                    return last  # type: ignore[no-any-return]
            except (OSError, RuntimeError, ValueError) as exc:
                last = exc
            time.sleep(0.05)
        raise RuntimeError(
            f"{role}: {what} not reached in {timeout} s ({str(last)[:500]})\n{self.log(role)[-2000:]}"
        )

    # --- use ---------------------------------------------------------------------------------

    def status(self, role: str) -> dict[str, Any]:
        return asyncio.run(request(str(self.workdir / f"{role}.sock"), {"cmd": "status", "events": 0}))  # type: ignore[no-any-return]

    def log(self, role: str) -> str:
        path = self.workdir / f"{role}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def exec(self, role: str, args: list[str], **kw: Any) -> subprocess.Popen[str]:
        ns = self.lac_ns if role == "lac" else self.lns_ns
        return subprocess.Popen(["ip", "netns", "exec", ns, *args], text=True, **kw)

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        for ns in (self.lac_ns, self.lns_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def up_addresses(status: dict[str, Any]) -> list[str]:
    return [
        s["ppp"]["address"]
        for t in status.get("tunnels", [])
        for s in t["sessions"]
        if s.get("ppp") and s["ppp"].get("ipcp") == "OPENED" and s["ppp"].get("address")
    ]


def tun_counts(status: dict[str, Any]) -> tuple[int, int]:
    """(packets the daemon wrote to its TUN device, packets it read from it)."""
    loops = status["dataplane"]["loops"]
    return int(loops.get("tun_tx", 0)), int(loops.get("tun_rx", 0))


def parse_json_line(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)  # type: ignore[no-any-return]
    raise ValueError(f"no JSON line in {text[-500:]!r}")
