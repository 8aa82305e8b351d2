"""The generator's LAC: our own LAC (a :class:`~l2tpfast.runtime.node.ControlNode` in this
process) whose sessions carry the harness's packets instead of a TUN device's.

It opens N tunnels to the LNS and places M calls (ICRQ, RFC 2661 7.4.1) on each at the setup
rate, round robin over the tunnels. Each call brings up PPP as a subscriber would: LCP, the
authentication the LNS asks for (PAP, CHAP or MS-CHAPv2) with the configured credentials, and
IPCP for an address (RFC 1661, 1334, 1994, 1332). A call's setup time runs from placing it to
its IPCP Opened. The compiled receive loop counts the IP packets that arrive in the sessions
(``ControlNode(load_counter=...)``); the control plane (Hellos, LCP echoes) goes on as usual
while traffic runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from l2tpfast.config import parse_config
from l2tpfast.control.events import Event, SessionClosed, TunnelClosed
from l2tpfast.runtime.node import ControlNode


@dataclass
class Call:
    tunnel_id: int
    session_id: int
    placed_at: float
    up_at: float | None = None
    address: IPv4Address | None = None
    slot: int = -1
    index: int = -1
    closed: str | None = None  # why it ended (before or after it came up)


@dataclass
class SetupResult:
    placed: int = 0
    up: int = 0
    failed: int = 0
    seconds: float = 0.0  # first call placed .. last IPCP Opened
    latencies: list[float] = field(default_factory=list)  # seconds, one a call that came up
    failures: dict[str, int] = field(default_factory=dict)  # reason -> calls

    @property
    def rate(self) -> float:
        return self.up / self.seconds if self.seconds > 0 else 0.0


def numbered(template: str, n: int) -> str:
    """``{n}`` in a user name or password is the call's number (0..): one RADIUS user each."""
    return template.replace("{n}", str(n))


class BenchLac:
    """N tunnels x M PPP sessions to one LNS, in this process."""

    def __init__(
        self,
        lns: str,
        *,
        lns_port: int = 1701,
        listen: str = "0.0.0.0",
        port: int = 0,
        sessions: int,
        load_counter: Any,
        username: str = "bench",
        password: str = "bench",
        secret: str | None = None,
        hello_interval: float = 60.0,
        echo_interval: float = 10.0,
        batch: int = 64,
    ) -> None:
        self.lns = (lns, lns_port)
        self.username = username
        self.password = password
        tunnel: dict[str, Any] = {"host_name": "l2tpfast-bench", "hello_interval": hello_interval}
        if secret:
            tunnel["secret"] = secret
        raw: dict[str, Any] = {
            "node": {"role": "lac", "listen": listen, "port": port, "log_level": "warning"},
            "tunnel": tunnel,
            "limits": {"max_sessions": 0, "max_tunnels_per_peer": 0},
            "dataplane": {
                "batch": batch,
                "max_sessions": max(1024, sessions + 16),
                "socket_buffer": 32 * 1024 * 1024,
                # An LNS that sends with GSO is read a run at a time: the harness's cheapest receive.
                "gro": True,
            },
            "ppp": {"username": username, "password": password, "echo_interval": echo_interval},
            "lac": {"lns": lns, "lns_port": lns_port, "sessions": 0},
        }
        # Parsed for its checks; then [lac] goes (the bench places its own calls) and so does the
        # TUN device: the LoadCounter takes the sessions' IP packets.
        parsed = parse_config(raw)
        assert parsed.dataplane is not None
        self.config = dataclasses.replace(
            parsed, lac=None, dataplane=dataclasses.replace(parsed.dataplane, tun="")
        )
        self.node = ControlNode(self.config, load_counter=load_counter)
        self.calls: dict[tuple[int, int], Call] = {}
        self.up: list[Call] = []  # in the order they came up: the session index
        self.tunnel_ids: list[int] = []
        self.tunnels_closed: set[int] = set()
        self._changed = asyncio.Event()

    async def start(self) -> None:
        await self.node.start()
        assert self.node.subscribers is not None
        self.node.subscribers.on_up = self._on_up
        self.node.on_event = self._on_event

    @property
    def now(self) -> float:
        return self.node.now

    @property
    def path(self) -> Any:
        return self.node.dataplane.path

    def fileno(self) -> int:
        assert self.node.transport is not None
        return self.node.transport.fileno()

    def _on_up(self, key: tuple[int, int], address: IPv4Address) -> None:
        call = self.calls.get(key)
        if call is None or call.up_at is not None:
            return
        call.up_at = self.now
        call.address = address
        call.slot = self.path.lookup(*key)
        call.index = len(self.up)
        self.up.append(call)
        self._changed.set()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, SessionClosed):
            call = self.calls.get((event.local_tunnel_id, event.local_session_id))
            if call is not None and call.closed is None:
                call.closed = f"CDN result {event.result_code}" + (
                    f" ({event.message})" if getattr(event, "message", "") else ""
                )
                self._changed.set()
        elif isinstance(event, TunnelClosed):
            self.tunnels_closed.add(event.local_tunnel_id)
            for call in self.calls.values():
                if call.tunnel_id == event.local_tunnel_id and call.closed is None:
                    call.closed = f"tunnel closed, StopCCN result {event.result_code}"
            self._changed.set()

    async def setup(self, tunnels: int, per_tunnel: int, rate: float, timeout: float) -> SetupResult:
        """Open the tunnels, place the calls at ``rate`` a second (0: all at once), wait for them."""
        loop_start = self.now
        for _ in range(tunnels):
            self.tunnel_ids.append(
                self.node.command({"cmd": "open-tunnel", "peer": self.lns[0], "port": self.lns[1]})[
                    "tunnel_id"
                ]
            )
        total = tunnels * per_tunnel
        for n in range(total):
            if rate > 0:
                wait = loop_start + n / rate - self.now
                if wait > 0:
                    await asyncio.sleep(wait)
            tid = self.tunnel_ids[n % tunnels]
            if tid in self.tunnels_closed:
                continue  # its tunnel is gone: counted below as calls never placed
            answer = self.node.command(
                {
                    "cmd": "open-session",
                    "tunnel_id": tid,
                    "username": numbered(self.username, n),
                    "password": numbered(self.password, n),
                }
            )
            key = (answer["tunnel_id"], answer["session_id"])
            self.calls[key] = Call(key[0], key[1], self.now)
        deadline = self.now + timeout
        while self.now < deadline:
            if all(c.up_at is not None or c.closed is not None for c in self.calls.values()):
                break
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(0.5, max(0.01, deadline - self.now)))
        result = SetupResult(placed=len(self.calls), up=len(self.up))
        for call in self.calls.values():
            if call.up_at is None:
                reason = call.closed or f"not up within {timeout:g} s"
                result.failures[reason] = result.failures.get(reason, 0) + 1
        result.failed = total - result.up
        if total > len(self.calls):
            result.failures["never placed (tunnel down)"] = total - len(self.calls)
        if self.up:
            first = min(c.placed_at for c in self.calls.values())
            result.seconds = max(c.up_at or 0.0 for c in self.up) - first
            result.latencies = [(c.up_at or 0.0) - c.placed_at for c in self.up]
        return result

    def sessions_lost(self) -> int:
        """Sessions that came up and have since been closed (by the LNS, mostly)."""
        return sum(1 for c in self.up if c.closed is not None)

    async def close(self, timeout: float = 5.0) -> None:
        """Clear the calls and tunnels (CDN, StopCCN) and stop the node."""
        await self.node.shutdown(timeout)
        self.node.close()
