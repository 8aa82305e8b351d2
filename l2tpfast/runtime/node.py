"""The asyncio shell of the control plane (STYLE.md 1, layer 3).

It carries bytes and time between the UDP socket and the sans-IO
:class:`~l2tpfast.control.endpoint.Endpoint`, keeps one timer for it, logs its
events, and answers the management socket (``l2tpfast status``/``ctl``). It
decides nothing the RFC decides. Control traffic is light, so one reader
callback per readiness drains the socket in a batch; data messages go to the
fast path in a later layer and only count as proof of life here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from typing import Any

from l2tpfast.config import NodeConfig
from l2tpfast.control.endpoint import Endpoint
from l2tpfast.control.events import (
    Event,
    LinkInfoSet,
    SessionClosed,
    SessionEstablished,
    TunnelClosed,
    TunnelEstablished,
    WanErrorNotified,
)
from l2tpfast.errors import L2TPError
from l2tpfast.runtime.udp import UdpTransport
from l2tpfast.wire.constants import CDNResult, StopCCNResult

log = logging.getLogger("l2tpfast")


def describe(event: Event) -> str:
    """One log line per event, with the IDs and the peer (STYLE.md: every line names them)."""
    if isinstance(event, TunnelEstablished):
        return (
            f"tunnel {event.local_tunnel_id}/{event.peer_tunnel_id} established with "
            f"{event.peer[0]}:{event.peer[1]} host={event.peer_host_name!r}"
        )
    if isinstance(event, TunnelClosed):
        who = "peer" if event.by_peer else "local"
        return (
            f"tunnel {event.local_tunnel_id}/{event.peer_tunnel_id} closed ({who}) "
            f"result={event.result_code} error={event.error_code} {event.message or ''}".rstrip()
        )
    if isinstance(event, SessionEstablished):
        return (
            f"session {event.local_tunnel_id}:{event.local_session_id}/{event.peer_session_id} established "
            f"({event.role.value} {event.call_type.value} call {event.call.call_serial_number})"
        )
    if isinstance(event, SessionClosed):
        who = "peer" if event.by_peer else "local"
        return (
            f"session {event.local_tunnel_id}:{event.local_session_id}/{event.peer_session_id} "
            f"closed ({who}) result={event.result_code} error={event.error_code} "
            f"{event.message or ''}".rstrip()
        )
    if isinstance(event, LinkInfoSet):
        return f"session {event.local_tunnel_id}:{event.local_session_id} SLI accm={event.accm}"
    if isinstance(event, WanErrorNotified):
        return f"session {event.local_tunnel_id}:{event.local_session_id} WEN {event.call_errors}"
    return repr(event)


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {"event": type(value).__name__, **{k: _jsonable(v) for k, v in asdict(value).items()}}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "value") and not isinstance(value, int | str):
        return value.value
    return value


class ControlNode:
    """One L2TP node: an Endpoint, its UDP socket, its timer and its management socket."""

    def __init__(self, config: NodeConfig, *, endpoint: Endpoint | None = None) -> None:
        self.config = config
        self.endpoint = endpoint or Endpoint(config.endpoint)
        self.transport: UdpTransport | None = None
        self.events: deque[dict[str, Any]] = deque(maxlen=1000)
        self.on_event: Callable[[Event], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._stop = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.transport = UdpTransport(self.config.listen, self.config.port)
        self._loop.add_reader(self.transport.fileno(), self._on_readable)
        host, port = self.transport.local_address
        log.info("listening on %s port %d as %s", host, port, self.config.role)
        if self.config.control_socket:
            path = self.config.control_socket
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            self._server = await asyncio.start_unix_server(self._serve_client, path=path)
        lac = self.config.lac
        if lac is not None:
            for _ in range(lac.sessions):
                self.endpoint.open_session((lac.lns, lac.lns_port), self.now)
            if not lac.sessions:
                self.endpoint.open_tunnel((lac.lns, lac.lns_port), self.now)
            self._flush()

    def install_signal_handlers(self) -> None:
        assert self._loop is not None
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, self._stop.set)

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Serve until stopped, then shut down cleanly."""
        await self.start()
        self.install_signal_handlers()
        await self._stop.wait()
        await self.shutdown()

    async def shutdown(self, timeout: float = 5.0) -> None:
        """StopCCN for every tunnel (result 6, shutting down), then wait for the acks (bounded)."""
        for tunnel_id, tunnel in list(self.endpoint.tunnels.items()):
            if not tunnel.closing:
                self.endpoint.close_tunnel(
                    tunnel_id, self.now, result_code=StopCCNResult.SHUTTING_DOWN, message="node shutting down"
                )
        self._flush()
        deadline = self.now + timeout
        while self.now < deadline and any(not t.channel.idle for t in self.endpoint.tunnels.values()):
            await asyncio.sleep(0.05)
        self.close()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.transport is not None and self._loop is not None:
            self._loop.remove_reader(self.transport.fileno())
            self.transport.close()
            self.transport = None
        if self._server is not None:
            self._server.close()
            self._server = None
            if self.config.control_socket:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.config.control_socket)

    @property
    def now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    # --- the core's inputs and outputs -----------------------------------------------------

    def _on_readable(self) -> None:
        assert self.transport is not None
        now = self.now
        for item in self.transport.recv_batch(256):
            self.endpoint.receive_datagram(item.data, item.peer, now, item.local)
        self._flush()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.endpoint.handle_timer(self.now)
        self._flush()

    def _flush(self) -> None:
        if self.transport is not None:
            for tx in self.endpoint.datagrams_to_send():
                self.transport.send(tx.data, tx.addr, tx.local)
        while (event := self.endpoint.next_event()) is not None:
            log.info("%s", describe(event))
            self.events.append(_jsonable(event))
            if self.on_event is not None:
                self.on_event(event)
        when = self.endpoint.get_timer()
        if when != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = when
            self._timer = None if when is None else self._loop.call_at(when, self._on_timer)  # type: ignore[union-attr]

    # --- management socket: one JSON object per line each way ----------------------------------

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 10.0)
            try:
                request = json.loads(line)
                reply = {"ok": True, "result": self.command(request)}
            except (ValueError, KeyError, TypeError, L2TPError) as exc:
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            writer.write(json.dumps(_jsonable(reply)).encode() + b"\n")
            await writer.drain()
        finally:
            writer.close()

    def command(self, request: dict[str, Any]) -> Any:
        """Run one management command (``l2tpfast ctl``) and return its result."""
        cmd = request["cmd"]
        ep = self.endpoint
        now = self.now
        result: Any
        if cmd == "status":
            result = ep.status()
            host, port = self.transport.local_address if self.transport else ("", 0)
            result["node"] = {"role": self.config.role, "listen": f"{host}:{port}", "pid": os.getpid()}
            result["events"] = list(self.events)[-int(request.get("events", 50)) :]
        elif cmd == "open-tunnel":
            result = {"tunnel_id": ep.open_tunnel(_peer(request), now)}
        elif cmd == "open-session":
            target: Any = int(request["tunnel_id"]) if "tunnel_id" in request else _peer(request)
            tid, sid = ep.open_session(target, now)
            result = {"tunnel_id": tid, "session_id": sid}
        elif cmd == "close-session":
            ep.close_session(
                int(request["tunnel_id"]),
                int(request["session_id"]),
                now,
                result_code=int(request.get("result_code", CDNResult.ADMINISTRATIVE)),
            )
            result = {}
        elif cmd == "close-tunnel":
            ep.close_tunnel(int(request["tunnel_id"]), now)
            result = {}
        elif cmd == "stop":
            self._stop.set()
            result = {}
        else:
            raise KeyError(f"unknown command {cmd!r}")
        self._flush()
        return result


def _peer(request: dict[str, Any]) -> tuple[str, int]:
    return (str(request["peer"]), int(request.get("port", 1701)))


async def request(path: str, payload: dict[str, Any], timeout: float = 10.0) -> Any:
    """Send one management command to a running node and return its result."""
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), timeout)
    try:
        writer.write(json.dumps(payload).encode() + b"\n")
        await writer.drain()
        reply = json.loads(await asyncio.wait_for(reader.readline(), timeout))
    finally:
        writer.close()
    if not reply.get("ok"):
        raise L2TPError(reply.get("error", "management command failed"))
    return reply["result"]
