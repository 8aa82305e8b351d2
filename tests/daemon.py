"""``l2tpfast run`` as a user runs it, inside a namespace of a :class:`lab.NetnsPair`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lab

STEP = 10.0

#: The PPP lab (our LAC against our LNS): calls placed, the LNS's own address on every link.
SESSIONS = 100
LNS_ADDRESS = "10.100.0.1"


class Ours:
    """``l2tpfast run`` in a namespace, and ``l2tpfast status``/``ctl`` against it."""

    def __init__(self, pair: lab.NetnsPair, ns: str, workdir: Path, config: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.sock = workdir / "l2tpfast.sock"
        self.log_path = workdir / "l2tpfast.log"
        path = workdir / "l2tpfast.toml"
        path.write_text(config.replace("@SOCK@", str(self.sock)))
        check = subprocess.run(
            [sys.executable, "-m", "l2tpfast", "check-config", str(path)], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stderr
        self.proc = pair.popen(
            ns,
            [sys.executable, "-m", "l2tpfast", "run", "-c", str(path), "--log-level", "debug"],
            log_path=self.log_path,
        )
        lab.wait_for_line(self.log_path, "listening on", STEP, self.proc)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def status(self) -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, "-m", "l2tpfast", "status", "--json", "--events", "1000", "-s", str(self.sock)],
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert out.returncode == 0, out.stderr + self.log()[-3000:]
        return json.loads(out.stdout)  # type: ignore[no-any-return]

    def ctl(self, *args: str) -> Any:
        out = subprocess.run(
            [sys.executable, "-m", "l2tpfast", "ctl", "-s", str(self.sock), *args],
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def events(self) -> list[dict[str, Any]]:
        return self.status()["events"]  # type: ignore[no-any-return]

    def wait(
        self, what: str, cond: Callable[[dict[str, Any]], bool], timeout: float = STEP
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.status()
            if cond(status):
                return status
            time.sleep(0.1)
        raise AssertionError(
            f"{what}: not seen in {timeout} s\n{json.dumps(status)[:3000]}\n{self.log()[-3000:]}"
        )


def events_of(status: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The recent events of one kind in a ``status --json`` result."""
    return [e for e in status["events"] if e["event"] == kind]


# --- the PPP lab: our LAC (PPP client, CHAP) against our LNS (users file, pool) -------------


def lns_config(listen: str, users: Path) -> str:
    return textwrap.dedent(
        f"""
        [node]
        role = "lns"
        listen = "{listen}"
        control_socket = "@SOCK@"
        [tunnel]
        host_name = "our-lns"
        secret = "ppp-secret"
        [dataplane]
        tun = "l2tp%d"
        tun_addresses = ["{LNS_ADDRESS}/32"]
        [ppp]
        auth = ["chap", "pap"]
        echo_interval = 1
        echo_failure = 5
        [lns]
        pool = ["10.100.0.0/24"]
        local_address = "{LNS_ADDRESS}"
        dns = ["192.0.2.53", "192.0.2.54"]
        users_file = "{users}"
        """
    )


def lac_config(listen: str, lns: str) -> str:
    return textwrap.dedent(
        f"""
        [node]
        role = "lac"
        listen = "{listen}"
        control_socket = "@SOCK@"
        [tunnel]
        host_name = "our-lac"
        secret = "ppp-secret"
        [dataplane]
        tun = "l2tp%d"
        [ppp]
        username = "subscriber"
        password = "correct horse"
        echo_interval = 1
        echo_failure = 5
        [lac]
        lns = "{lns}"
        sessions = {SESSIONS}
        """
    )


def sessions_of(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for t in status["tunnels"] for s in t["sessions"]]


def up_addresses(status: dict[str, Any]) -> list[str]:
    return [
        s["ppp"]["address"]
        for s in sessions_of(status)
        if s.get("ppp") and s["ppp"]["phase"] == "network" and s["ppp"]["ipcp"] == "OPENED"
    ]
