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
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from typing import Any

from l2tpfast.config import DataplaneConfig, NodeConfig
from l2tpfast.control.endpoint import Endpoint
from l2tpfast.control.events import (
    Event,
    LinkInfoSet,
    SessionClosed,
    SessionConnected,
    SessionEstablished,
    TunnelClosed,
    TunnelEstablished,
    WanErrorNotified,
)
from l2tpfast.errors import L2TPError
from l2tpfast.runtime.ip115 import Ip115Transport
from l2tpfast.runtime.logs import ctx
from l2tpfast.runtime.udp import UdpTransport
from l2tpfast.wire.constants import CDNResult, SessionTarget, StopCCNResult

log = logging.getLogger("l2tpfast")

#: The longest management reply a client reads: `status` lists every session (100,000 at about
#: 600 octets each in JSON stays well inside).
MGMT_LIMIT = 256 * 1024 * 1024


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
    if isinstance(event, SessionConnected):
        return f"session {event.local_tunnel_id}:{event.local_session_id} connect message acknowledged"
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

    def __init__(
        self,
        config: NodeConfig,
        *,
        endpoint: Endpoint | None = None,
        config_path: str | None = None,
        load_counter: Any = None,
    ) -> None:
        self.config = config
        #: ``l2tpfast bench``: a LoadCounter that counts the IP packets sessions receive, in
        #: place of a TUN device (the generator LAC has none).
        self.load_counter = load_counter
        #: The file SIGHUP rereads (``l2tpfast run -c``); None: reload is refused.
        self.config_path = config_path
        self.reloads = 0
        #: ``run --log-level``: wins over the file's level, at start and on every reload.
        self.log_level_override: str | None = None
        self.endpoint = endpoint or Endpoint(config.endpoint)
        self.transport: UdpTransport | Ip115Transport | None = None
        self.dataplane: Any = None  # runtime.dataplane.DataPlane when [dataplane] is configured
        self.tun: Any = None
        self.ppp_frames = 0
        self.subscribers: Any = None  # runtime.subscribers.Subscribers when [ppp] is configured
        self._ppp_starts: list[tuple[SessionEstablished, int, str | None]] = []
        self._ppp_connected: list[tuple[int, int]] = []
        self.started_at = 0.0
        #: Data counters of the sessions that have closed, summed (``status``: dataplane.totals).
        self._closed_totals: dict[str, int] = {}
        self._rx_seen: dict[int, int] = {}
        self._activity_task: asyncio.Task[None] | None = None
        self.events: deque[dict[str, Any]] = deque(maxlen=1000)
        self.on_event: Callable[[Event], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._stop = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None
        self.metrics: Any = None  # runtime.metrics.MetricsServer with [metrics] enabled
        self.aaa: Any = None  # runtime.aaa.RadiusAaa with [radius]
        self.capture: Any = None  # runtime.pcap.ControlCapture with [log] control_pcap

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        dp_config = self.config.dataplane
        threads = dp_config.threads if dp_config is not None else 1
        if self.config.transport == "ip":
            self.transport = Ip115Transport(self.config.listen)
        else:
            self.transport = UdpTransport(self.config.listen, self.config.port, reuse_port=threads > 1)
        if dp_config is None:
            self._loop.add_reader(self.transport.fileno(), self._on_readable)
        else:
            self._start_dataplane(dp_config)
        host, port = self.transport.local_address
        if self.config.log.control_pcap:
            from l2tpfast.runtime.pcap import ControlCapture

            self.capture = ControlCapture(
                self.config.log.control_pcap, max_bytes=self.config.log.control_pcap_max_bytes
            )
            log.info("control messages captured to %s", self.config.log.control_pcap)
        if self.config.metrics is not None:
            from l2tpfast.runtime.metrics import MetricsServer

            self.metrics = MetricsServer(
                lambda: self.command({"cmd": "status", "events": 0}),
                self.config.metrics.listen,
                self.config.metrics.port,
            )
            await self.metrics.start()
            log.info("metrics on http://%s:%d/metrics", *self.metrics.address)
        log.info("listening on %s port %d as %s", host, port, self.config.role)
        if self.config.control_socket:
            path = self.config.control_socket
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            self._server = await asyncio.start_unix_server(self._serve_client, path=path)
        lac = self.config.lac
        self.started_at = self.now  # loop time = time.monotonic(): comparable across processes
        if lac is not None:
            for _ in range(lac.sessions):
                self.endpoint.open_session((lac.lns, lac.lns_port), self.now)
            if not lac.sessions:
                self.endpoint.open_tunnel((lac.lns, lac.lns_port), self.now)
            self._flush()

    def _start_dataplane(self, dp_config: DataplaneConfig) -> None:
        """The compiled forwarding loops own the socket(s); control messages come back per batch."""
        from l2tpfast._dataplane import DataPath
        from l2tpfast.runtime.dataplane import DataPlane
        from l2tpfast.runtime.tun import TunDevice

        assert self.transport is not None and self._loop is not None
        transports: list[Any] = [self.transport]
        for _ in range(dp_config.threads - 1):
            transports.append(
                UdpTransport(self.config.listen, self.transport.local_address[1], reuse_port=True)
            )
        if dp_config.tun:
            self.tun = TunDevice.open(dp_config.tun, mtu=dp_config.mtu)
            self.tun.up(list(dp_config.tun_addresses), queue=dp_config.tun_queue)
            log.info("TUN device %s up %s", self.tun.name, " ".join(dp_config.tun_addresses))
        path = DataPath(
            dp_config.max_sessions,
            reorder_window=dp_config.reorder_window,
            reorder_timeout=dp_config.reorder_timeout,
            # Our PPP client shares one TUN device among its sessions: a packet belongs to the
            # session whose address is its source. An LNS finds the session by destination.
            route_by="source" if self.config.ppp is not None and self.config.role == "lac" else "destination",
        )
        if self.config.ppp is not None:
            self._start_subscribers(path)
        dataplane = DataPlane(
            path,
            transports,
            tun=self.tun,
            batch=dp_config.batch,
            on_items=self._on_items,
            socket_buffer=dp_config.socket_buffer,
            gso=dp_config.gso,
            gro=dp_config.gro,
        )
        self.dataplane = dataplane
        if self.load_counter is not None:
            for forwarder in dataplane.forwarders:
                forwarder.sink = self.load_counter
        if self.subscribers is not None:
            self.subscribers.dataplane = dataplane
        self.dataplane.start(self._loop)
        self._activity_task = self._loop.create_task(self._activity())
        log.info("data plane: %d thread(s), batch %d", dp_config.threads, dp_config.batch)

    def _start_subscribers(self, path: Any) -> None:
        """PPP on every session; the data plane is handed over once it exists (``dataplane``)."""
        from l2tpfast.runtime.subscribers import Subscribers

        ppp, lns = self.config.ppp, self.config.lns
        assert ppp is not None and self.transport is not None
        backend = self._auth_backend()
        transport = self.transport

        def close_session(tid: int, sid: int, result: int, message: str, cause: Any = None) -> None:
            if tid in self.endpoint.tunnels and sid in self.endpoint.tunnels[tid].sessions:
                self.endpoint.close_session(
                    tid, sid, self.now, result_code=result, message=message, disconnect_cause=cause
                )
                self._flush_soon()

        aaa = None
        if self.config.radius is not None:
            from l2tpfast.runtime.aaa import RadiusAaa

            aaa = self.aaa = RadiusAaa(self.config.radius, lambda: self.now)
        self.subscribers = Subscribers(
            server=self.config.role == "lns",
            ppp=ppp,
            lns=lns,
            path=path,
            tun=self.tun,
            send=lambda data, peer, local: transport.send(data, peer, local),
            close_session=close_session,
            now=lambda: self.now,
            backend=backend,
            session_tun=self.config.lac.session_tun if self.config.lac is not None else None,
            mtu=self.config.dataplane.mtu if self.config.dataplane is not None else 1500,
            tun_queue=self.config.dataplane.tun_queue if self.config.dataplane is not None else 0,
            aaa=aaa,
        )
        self.subscribers.start()
        if aaa is not None:
            aaa.start(self.subscribers.dae_request)

    def _auth_backend(self) -> Any:
        """The users file, read again (start and SIGHUP), or None: everyone in."""
        ppp, lns = self.config.ppp, self.config.lns
        if self.config.role == "lns" and ppp is not None and ppp.auth and lns is not None and lns.users_file:
            from l2tpfast.aaa.users import UsersFile

            return UsersFile.load(lns.users_file)
        return None

    def _flush_soon(self) -> None:
        """A PPP link asked for a CDN from inside the control flush: run the core's outputs after it."""
        assert self._loop is not None
        self._loop.call_soon(self._flush)

    def _on_items(self, items: list[tuple[Any, ...]]) -> None:
        """What the forwarding loops handed up from one batch (in the asyncio thread)."""
        now = self.now
        frames: list[tuple[int, int, bytes]] = []
        for item in items:
            if item[0] == "control":
                _, data, peer, local = item
                if self.capture is not None:
                    self._capture(data, peer, local)
                self.endpoint.receive_datagram(data, peer, now, local)
            elif self.subscribers is not None:
                frames.append((item[1], item[2], item[3]))
            else:
                self.ppp_frames += 1  # no PPP configured: counted, then dropped
        self._flush()
        if frames:
            self.subscribers.frames(frames)

    async def _activity(self) -> None:
        """Data received is proof of life for its tunnel (RFC 2661 5.5): tell the core once a second."""
        while True:
            await asyncio.sleep(1.0)
            path = self.dataplane.path
            per_tunnel: dict[int, int] = {}
            for tunnel in self.endpoint.tunnels.values():
                for sid in tunnel.sessions:
                    slot = path.lookup(tunnel.local_tunnel_id, sid)
                    if slot >= 0:
                        rx = int(path.counters[slot]["rx_packets"])
                        per_tunnel[tunnel.local_tunnel_id] = per_tunnel.get(tunnel.local_tunnel_id, 0) + rx
            for tid, rx in per_tunnel.items():
                if rx != self._rx_seen.get(tid):
                    self.endpoint.note_activity(tid, self.now)
            self._rx_seen = per_tunnel
            self._flush()

    def _install_session(self, event: SessionEstablished) -> None:
        """Hand an established session to the fast path (and take it back when it closes)."""
        from l2tpfast.runtime.dataplane import address_row
        from l2tpfast.wire.constants import SessionFlag

        dp_config = self.config.dataplane
        assert dp_config is not None
        tunnel = self.endpoint.tunnels.get(event.local_tunnel_id)
        local = tunnel.local if tunnel is not None else None
        value = 0
        if event.role.value == "lns":
            # RFC 2661 5.4: the LNS decides; Sequencing Required from the LAC obliges it too.
            if dp_config.sequence_data or event.sequencing_required:
                value |= SessionFlag.SEQ_TX
        else:
            value |= SessionFlag.SEQ_TX_FOLLOW | (SessionFlag.SEQ_TX if event.sequencing_required else 0)
        slot = self.dataplane.path.add_session(
            event.local_tunnel_id,
            event.local_session_id,
            event.peer_tunnel_id,
            event.peer_session_id,
            address_row(event.peer[0], event.peer[1]),
            target=SessionTarget.TUN
            if self.tun is not None or self.load_counter is not None
            else SessionTarget.PPP,
            flags=value,
            local=address_row(local, 0) if local else None,
        )
        if self.subscribers is not None:
            # PPP starts once the ICCN is on the wire (see _flush), or our LCP could overtake it.
            self._ppp_starts.append((event, slot, local))

    def install_signal_handlers(self) -> None:
        assert self._loop is not None
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, self._stop.set)
        self._loop.add_signal_handler(signal.SIGHUP, self._on_sighup)

    def _on_sighup(self) -> None:
        try:
            self.reload()
        except L2TPError as exc:  # a broken file: keep running as before, and say why
            for line in str(exc).splitlines():
                log.error("reload refused, configuration unchanged: %s", line)

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Serve until stopped, then shut down cleanly."""
        await self.start()
        self.install_signal_handlers()
        await self._stop.wait()
        await self.shutdown()

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Clear every call, then every tunnel, each acknowledged or timed out, then let go.

        A CDN for every session first (RFC 2661 5.7, result 3: administrative), so the peer
        hears about each call and the accounting of each is closed with its own record; then
        StopCCN for every tunnel (result 6, shutting down). Each phase waits for the peer's
        acknowledgements, at most ``timeout`` seconds, before the next. ``close`` then removes
        the routes and TUN devices.
        """
        log.info("shutting down: %d tunnel(s), %d session(s)", *self._counts())
        if self.subscribers is not None and self.aaa is not None:
            from l2tpfast.aaa.radius.terminate import LocalCause

            self.subscribers.end_all(LocalCause.ADMIN_REBOOT)  # RFC 2866 5.10: Admin-Reboot
        for tunnel_id, tunnel in list(self.endpoint.tunnels.items()):
            if tunnel.closing:
                continue
            for session_id in list(tunnel.sessions):
                self.endpoint.close_session(
                    tunnel_id,
                    session_id,
                    self.now,
                    result_code=CDNResult.ADMINISTRATIVE,
                    message="node shutting down",
                )
        self._flush()
        await self._settle(timeout)
        for tunnel_id, tunnel in list(self.endpoint.tunnels.items()):
            if not tunnel.closing:
                self.endpoint.close_tunnel(
                    tunnel_id, self.now, result_code=StopCCNResult.SHUTTING_DOWN, message="node shutting down"
                )
        self._flush()
        await self._settle(timeout)
        if self.subscribers is not None:
            await self.subscribers.drain(timeout)
        self.close()
        log.info("stopped")

    def _counts(self) -> tuple[int, int]:
        tunnels = self.endpoint.tunnels.values()
        return len(tunnels), sum(len(t.sessions) for t in tunnels)

    async def _settle(self, timeout: float) -> None:
        """Until every control channel has nothing unacknowledged (bounded by ``timeout``)."""
        deadline = self.now + timeout
        while self.now < deadline and any(not t.channel.idle for t in self.endpoint.tunnels.values()):
            await asyncio.sleep(0.02)

    def reload(self) -> dict[str, Any]:
        """SIGHUP: reread the file, apply what can change without dropping sessions, say the rest.

        Keys marked reloadable in :mod:`l2tpfast.schema` take effect (for tunnels, sessions and
        RADIUS requests that start from now on); any other changed key keeps its running value
        and is reported as needing a restart. A file with an error changes nothing.
        """
        from l2tpfast.config import check_files, load_config
        from l2tpfast.reload import reload_plan

        if self.config_path is None:
            raise L2TPError("reload: this node was not started from a file")
        fresh = load_config(self.config_path)
        merged, applied, restart = reload_plan(self.config, fresh)
        check_files(merged)
        self.config = merged
        self.endpoint.settings = merged.endpoint
        if self.subscribers is not None:
            self.subscribers.reconfigure(merged.ppp, merged.lns, self._auth_backend())
        if self.aaa is not None and merged.radius is not None:
            self.aaa.reconfigure(merged.radius)
        from l2tpfast.runtime.logs import configure_logging

        configure_logging(self.log_level_override or merged.log.level, merged.log.format)
        self.reloads += 1
        for key in restart:
            log.warning("reload: %s changed but needs a restart; the running value stays", key)
        log.info("reloaded %s: %s", self.config_path, ", ".join(applied) or "no change")
        return {"applied": applied, "restart_needed": restart}

    def close(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None
        if self.capture is not None:
            self.capture.close()
            self.capture = None
        if self._timer is not None:
            self._timer.cancel()
        if self._activity_task is not None:
            self._activity_task.cancel()
            self._activity_task = None
        if self.subscribers is not None:
            self.subscribers.stop()
        if self.aaa is not None:
            self.aaa.close()
            self.aaa = None
        if self.dataplane is not None:
            self.dataplane.stop()
            for t in self.dataplane.transports[1:]:
                t.close()
            self.dataplane = None
        elif self.transport is not None and self._loop is not None:
            self._loop.remove_reader(self.transport.fileno())
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        if self.tun is not None:
            self.tun.close()
            self.tun = None
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
            if self.capture is not None:
                self._capture(item.data, item.peer, item.local)
            self.endpoint.receive_datagram(item.data, item.peer, now, item.local)
        self._flush()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.endpoint.handle_timer(self.now)
        self._flush()

    def _flush(self) -> None:
        # Events first: a session enters the fast path before the ICCN that establishes it
        # leaves, or the peer's first PPP frame (l2tpns sends LCP within 50 us of ICCN) finds
        # no session. Handling events may queue more datagrams (a CDN), so loop until quiet.
        while True:
            handled = self._handle_events()
            sent = 0
            if self.transport is not None:
                for tx in self.endpoint.datagrams_to_send():
                    self.transport.send(tx.data, tx.addr, tx.local)
                    if self.capture is not None:
                        self._capture(tx.data, tx.addr, tx.local, outgoing=True)
                    sent += 1
            starts, self._ppp_starts = self._ppp_starts, []
            for event, slot, local in starts:
                if self.dataplane.path.lookup(event.local_tunnel_id, event.local_session_id) == slot:
                    self.subscribers.session_established(event, slot, local)
            connected, self._ppp_connected = self._ppp_connected, []
            for key in connected:
                self.subscribers.session_connected(key)
            if not handled and not sent and not starts and not connected:
                break
        self._arm_timer()

    def _handle_events(self) -> int:
        handled = 0
        while (event := self.endpoint.next_event()) is not None:
            handled += 1
            log.info("%s", describe(event), extra=self._event_context(event))
            if self.dataplane is not None:
                if isinstance(event, SessionEstablished):
                    self._install_session(event)
                elif isinstance(event, SessionConnected):
                    if self.subscribers is not None:
                        self._ppp_connected.append((event.local_tunnel_id, event.local_session_id))
                elif isinstance(event, SessionClosed):
                    if self.subscribers is not None:
                        self.subscribers.session_closed(event)
                    self._retire_counters(event.local_tunnel_id, event.local_session_id)
                    self.dataplane.path.remove_session(event.local_tunnel_id, event.local_session_id)
            self.events.append(_jsonable(event))
            if self.on_event is not None:
                self.on_event(event)
        return handled

    def _capture(self, data: bytes, peer: Any, local: str | None, *, outgoing: bool = False) -> None:
        """One control message into the debugging pcap ([log] control_pcap), either way."""
        assert self.transport is not None
        host, port = self.transport.local_address
        ours = (local or host, port)
        src, dst = (ours, tuple(peer)) if outgoing else (tuple(peer), ours)
        try:
            if self.config.transport == "ip":
                self.capture.record_ip(data, src, dst, time.time())
            else:
                self.capture.record(data, src, dst, time.time())
        except ValueError as exc:  # e.g. a v4-mapped peer on a v6 wildcard: skip, never fail the node
            log.debug("control pcap: %s", exc)

    def _event_context(self, event: Event) -> dict[str, Any]:
        """IDs and peer of an event, for the log line (JSON fields or the text prefix)."""
        tid = getattr(event, "local_tunnel_id", None)
        tunnel = self.endpoint.tunnels.get(tid) if tid is not None else None
        peer = getattr(event, "peer", None) or (tunnel.peer if tunnel is not None else None)
        return ctx(
            tunnel_id=tid,
            session_id=getattr(event, "local_session_id", None),
            peer=peer,
            peer_tunnel_id=getattr(event, "peer_tunnel_id", None)
            or (tunnel.peer_tunnel_id if tunnel is not None else None),
            peer_session_id=getattr(event, "peer_session_id", None),
        )

    def _retire_counters(self, tunnel_id: int, session_id: int) -> None:
        """Keep a closing session's data counters in the node's totals (metrics never go back)."""
        path = self.dataplane.path
        slot = path.lookup(tunnel_id, session_id)
        if slot >= 0:
            row = path.counters[slot]
            for name in row.dtype.names:
                self._closed_totals[name] = self._closed_totals.get(name, 0) + int(row[name])

    def _arm_timer(self) -> None:
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

    def _route_add(self, tunnel_id: int, session_id: int, address: str) -> dict[str, Any]:
        """Traffic to ``address`` goes into this session (static, until IPCP assigns addresses)."""
        import ipaddress

        if self.dataplane is None:
            raise KeyError("no data plane: add a [dataplane] section")
        slot = self.dataplane.path.lookup(tunnel_id, session_id)
        if slot < 0:
            raise KeyError(f"no session {tunnel_id}:{session_id} in the data plane")
        ip = ipaddress.ip_address(address)
        self.dataplane.path.route_add(ip.packed, slot)
        if self.tun is not None:
            self.tun.add_route(f"{ip}/{ip.max_prefixlen}")
        return {"slot": slot}

    def _dataplane_status(self, result: dict[str, Any]) -> dict[str, Any]:
        from l2tpfast.wire.constants import DropReason

        path = self.dataplane.path
        for tunnel in result["tunnels"]:
            total: dict[str, int] = {}
            for session in tunnel["sessions"]:
                slot = path.lookup(tunnel["local_tunnel_id"], session["local_session_id"])
                if slot >= 0:
                    row = path.counters[slot]
                    session["counters"] = {name: int(row[name]) for name in row.dtype.names}
                    if self.subscribers is not None:
                        session["ppp"] = self.subscribers.session_status(
                            (tunnel["local_tunnel_id"], session["local_session_id"])
                        )
                    for name, value in session["counters"].items():
                        total[name] = total.get(name, 0) + value
            if total:
                tunnel["counters"] = total  # per tunnel: the sum of its sessions
        drops = {r.name.lower(): int(path.drops[r]) for r in DropReason if path.drops[r]}
        totals = dict(self._closed_totals)
        for tunnel in result["tunnels"]:
            for name, value in tunnel.get("counters", {}).items():
                totals[name] = totals.get(name, 0) + value
        return {
            "sessions": path.session_count(),
            # Every session since start, closed ones included: monotonic, for metrics.
            "totals": totals,
            "loops": self.dataplane.stats(),
            "drops": drops,
            "ppp_frames_unhandled": self.ppp_frames,
            "ppp": self.subscribers.status() if self.subscribers is not None else None,
            "tun": self.tun.name if self.tun is not None else None,
        }

    def command(self, request: dict[str, Any]) -> Any:
        """Run one management command (``l2tpfast ctl``) and return its result."""
        cmd = request["cmd"]
        ep = self.endpoint
        now = self.now
        result: Any
        if cmd == "status":
            result = ep.status()
            host, port = self.transport.local_address if self.transport else ("", 0)
            result["node"] = {
                "role": self.config.role,
                "listen": f"{host}:{port}",
                "pid": os.getpid(),
                "started_at": self.started_at,
            }
            if self.dataplane is not None:
                result["dataplane"] = self._dataplane_status(result)
            if self.aaa is not None:
                result["radius"] = self.aaa.status()
            wanted = int(request.get("events", 50))
            result["events"] = list(self.events)[-wanted:] if wanted > 0 else []
        elif cmd == "open-tunnel":
            result = {"tunnel_id": ep.open_tunnel(_peer(request), now)}
        elif cmd == "open-session":
            target: Any = int(request["tunnel_id"]) if "tunnel_id" in request else _peer(request)
            call = None
            if "call" in request:
                from l2tpfast.control.events import CallInfo

                given = dict(request["call"])
                call = CallInfo(
                    calling_number=_text(given.get("calling_number")),
                    called_number=_text(given.get("called_number")),
                    agent_circuit_id=_text(given.get("agent_circuit_id")),
                    agent_remote_id=_text(given.get("agent_remote_id")),
                )
            tid, sid = ep.open_session(target, now, call=call)
            if "username" in request:
                if self.subscribers is None or self.subscribers.server:
                    raise KeyError("credentials are for a LAC with a [ppp] section")
                self.subscribers.credentials[(tid, sid)] = (
                    str(request["username"]),
                    str(request.get("password", "")),
                )
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
        elif cmd == "route-add":
            result = self._route_add(
                int(request["tunnel_id"]), int(request["session_id"]), str(request["address"])
            )
        elif cmd == "stop":
            self._stop.set()
            result = {}
        elif cmd == "reload":
            result = self.reload()
        else:
            raise KeyError(f"unknown command {cmd!r}")
        self._flush()
        return result


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _peer(request: dict[str, Any]) -> tuple[str, int]:
    return (str(request["peer"]), int(request.get("port", 1701)))


async def request(path: str, payload: dict[str, Any], timeout: float = 10.0) -> Any:
    """Send one management command to a running node and return its result."""
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path, limit=MGMT_LIMIT), timeout)
    try:
        writer.write(json.dumps(payload).encode() + b"\n")
        await writer.drain()
        reply = json.loads(await asyncio.wait_for(reader.readline(), timeout))
    finally:
        writer.close()
    if not reply.get("ok"):
        raise L2TPError(reply.get("error", "management command failed"))
    return reply["result"]
