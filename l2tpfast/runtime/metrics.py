"""Prometheus metrics of a node, taken from the very dict ``l2tpfast status --json`` prints.

:class:`StatusCollector` turns one call of ``snapshot()`` (``ControlNode.command({"cmd": "status"})``)
into metric families at each scrape, so a scrape and ``status --json`` never disagree and no second
set of counters has to be kept in step. It lives in a private
:class:`~prometheus_client.CollectorRegistry` (:func:`build_registry`), never the global one.

:class:`MetricsServer` answers ``GET /metrics`` from the asyncio loop that owns the state: the
endpoint, its tunnels and the fast path's counters are read only in that thread.
``prometheus_client.start_http_server`` would scrape from a thread of its own, concurrently with the
loop. The server speaks just enough HTTP/1.0 and 1.1 (RFC 9112 2-3): one request per connection, a
bounded request head, a read timeout, GET and HEAD only. The body is the text format 0.0.4.

Every section of the status dict may be missing (a LAC without ``[dataplane]``, a node without
``[ppp]``, no RADIUS): its families are then left out, not reported as zero. Where a total comes
from a sum over the tunnels or sessions that exist now, it drops when one of them goes away, and
Prometheus reads the drop as a counter reset; node-wide totals in the dict, when there, win.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from l2tpfast._version import __version__
from l2tpfast.control.session import SessionState
from l2tpfast.control.tunnel import TunnelState
from l2tpfast.ppp.link import Phase
from l2tpfast.wire.constants import DropReason
from l2tpfast.wire.dtypes import SESSION_COUNTERS_DTYPE

__all__ = ["CONTENT_TYPE", "MetricsServer", "Snapshot", "StatusCollector", "build_registry"]

log = logging.getLogger("l2tpfast.metrics")

#: What returns the status dict; called once per scrape, in the asyncio loop's thread.
Snapshot = Callable[[], Mapping[str, Any]]

#: The Prometheus text format generate_latest writes (prometheus-client 0.20's CONTENT_TYPE_LATEST;
#: later releases name version 1.0.0 there, for the same text when no name needs escaping).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

PREFIX = "l2tpfast_"
#: A request head (request line and header fields) longer than this is refused with 431.
MAX_REQUEST_HEAD = 8192
#: Connections served at once; more are closed at once (a scraper needs one).
MAX_CLIENTS = 16

# Tunnel and session states of the status dict; "closing" is the tunnel still sending StopCCN.
_TUNNEL_STATES = (*(s.value for s in TunnelState), "closing")
_SESSION_STATES = tuple(s.value for s in SessionState)

# Per-session counters of the fast path (wire/dtypes.py SESSION_COUNTERS_DTYPE) -> family, help,
# labels. rx/tx pairs share a family with a direction label. A field added to the dtype later and
# not named here is still exported, as l2tpfast_data_session_<field>_total.
_SESSION_COUNTERS: dict[str, tuple[str, str, dict[str, str]]] = {
    "rx_packets": ("data_packets", "L2TP data packets of sessions", {"direction": "rx"}),
    "tx_packets": ("data_packets", "L2TP data packets of sessions", {"direction": "tx"}),
    "rx_bytes": ("data_bytes", "L2TP data payload octets of sessions", {"direction": "rx"}),
    "tx_bytes": ("data_bytes", "L2TP data payload octets of sessions", {"direction": "tx"}),
    "out_of_order": (
        "data_out_of_order_packets",
        "Sequenced data packets received ahead of the expected Ns (RFC 2661 5.4)",
        {},
    ),
    "duplicates": (
        "data_duplicate_packets",
        "Sequenced data packets dropped as duplicate or too late (RFC 2661 5.4)",
        {},
    ),
    "reorder_timeouts": (
        "data_reorder_timeouts",
        "Reorder buffers released because the missing packet did not come in time",
        {},
    ),
    "dropped": ("data_session_dropped_packets", "Data packets of known sessions dropped", {}),
}

# The forwarding loops' counters (dataplane.loops, FORWARDER_STATS) -> family, help, labels.
_LOOP_COUNTERS: dict[str, tuple[str, str, dict[str, str]]] = {
    "batches": ("dataplane_batches", "Receive batches handled by the forwarding loops", {}),
    "udp_rx": ("dataplane_socket_datagrams", "Datagrams through the L2TP sockets", {"direction": "rx"}),
    "udp_tx": ("dataplane_socket_datagrams", "Datagrams through the L2TP sockets", {"direction": "tx"}),
    "tun_rx": ("dataplane_tun_packets", "Packets through the TUN device", {"direction": "rx"}),
    "tun_tx": ("dataplane_tun_packets", "Packets through the TUN device", {"direction": "tx"}),
    "tun_errors": ("dataplane_errors", "System call errors of the forwarding loops", {"kind": "tun"}),
    "send_errors": ("dataplane_errors", "System call errors of the forwarding loops", {"kind": "send"}),
    "recv_errors": ("dataplane_errors", "System call errors of the forwarding loops", {"kind": "recv"}),
    "truncated": (
        "dataplane_discarded",
        "Datagrams and packets the loops discarded",
        {"reason": "truncated"},
    ),
    "no_session": (
        "dataplane_discarded",
        "Datagrams and packets the loops discarded",
        {"reason": "no_session"},
    ),
    "no_route": ("dataplane_discarded", "Datagrams and packets the loops discarded", {"reason": "no_route"}),
    "gso_messages": ("dataplane_gso_messages", "UDP GSO messages sent, each a run of datagrams", {}),
    "gso_datagrams": ("dataplane_gso_datagrams", "Datagrams sent inside UDP GSO messages", {}),
    "gro_messages": ("dataplane_gro_messages", "Coalesced UDP GRO runs received", {}),
    "gro_datagrams": ("dataplane_gro_datagrams", "Datagrams received inside UDP GRO runs", {}),
}

# Subscribers.status() keys with a family of their own (or no number to export).
_PPP_SPECIAL = {"links", "pool", "last_up_at", "auth_accepted", "auth_rejected", "keepalive_failures"}
# Help texts of the other Subscribers.status() counters (a key not named here still gets exported).
_PPP_HELP = {
    "links_started": "PPP links started on a session",
    "links_up": "PPP links that reached the network phase with an address",
    "pool_exhausted": "Subscribers refused because the address pool was empty",
    "duplicate_logins_refused": "Logins refused because the user was already connected",
    "frames_in": "PPP frames received for the PPP engine",
    "frames_out": "PPP frames sent by the PPP engine",
    "frames_unknown_session": "PPP frames for a session without a PPP link",
    "router_advertisements": "Router Advertisements sent (RFC 4861)",
    "ip_batch_errors": "Failed batches of address and route changes",
}
# Endpoint counters with a family of their own; the rest go to l2tpfast_control_events_total.
_CHANNEL_COUNTERS = {
    "retransmissions": ("control_retransmissions", "Control messages retransmitted (RFC 2661 5.8)"),
    "duplicates": ("control_duplicate_messages", "Duplicate control messages received (RFC 2661 5.8)"),
    "out_of_order": (
        "control_out_of_order_messages",
        "Control messages received ahead of the expected Ns (RFC 2661 5.8)",
    ),
}

_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_]")


def _name(part: str) -> str:
    """A metric name component: letters, digits and underscores, no ``_total`` at the end."""
    safe = _NAME_UNSAFE.sub("_", part).lower()
    return safe.removesuffix("_total")


def _number(value: Any) -> float | None:
    """The value as a sample, or None for what is not a count (None, bool, text, dicts)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


class _Families:
    """Families by name, created on first use, so that labelled samples of one family group."""

    def __init__(self) -> None:
        self._by_name: dict[str, tuple[CounterMetricFamily | GaugeMetricFamily, tuple[str, ...]]] = {}

    def counter(self, name: str, doc: str, labels: Mapping[str, str], value: float) -> None:
        self._add(CounterMetricFamily, name, doc, labels, value)

    def gauge(self, name: str, doc: str, labels: Mapping[str, str], value: float) -> None:
        self._add(GaugeMetricFamily, name, doc, labels, value)

    def _add(
        self,
        kind: type[CounterMetricFamily | GaugeMetricFamily],
        name: str,
        doc: str,
        labels: Mapping[str, str],
        value: float,
    ) -> None:
        names = tuple(labels)
        found = self._by_name.get(name)
        if found is None:
            family = kind(PREFIX + name, doc, labels=names)
            self._by_name[name] = (family, names)
        else:
            family, known = found
            # A key of a free-form section (RADIUS, PPP) that maps onto a name already in use with
            # another type or labels would make the exposition invalid: the first one wins.
            if not isinstance(family, kind) or known != names:
                log.debug("metric %s%s: %r left out, the name is taken", PREFIX, name, dict(labels))
                return
        family.add_metric(list(labels.values()), value)

    def __iter__(self) -> Iterator[Metric]:
        return (family for family, _names in self._by_name.values())


class StatusCollector(Collector):
    """Metric families from one status dict per scrape (the shape of ``l2tpfast status --json``)."""

    def __init__(
        self,
        snapshot: Snapshot,
        *,
        version: str = __version__,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._snapshot = snapshot
        self._version = version
        # node.started_at is loop time (time.monotonic()); fixing the offset once keeps the start
        # time steady from scrape to scrape instead of jittering by the time between two reads.
        self._wall_offset = wall_clock() - monotonic()

    def describe(self) -> Iterable[Metric]:
        # Nothing to check for clashes in a private registry; and describing by collecting would
        # call snapshot() at registration time.
        return ()

    def collect(self) -> Iterator[Metric]:
        status = self._snapshot()
        out = _Families()
        info = InfoMetricFamily(
            PREFIX + "build", "The l2tpfast release running", value={"version": self._version}
        )
        yield info
        node = _mapping(status.get("node"))
        yield from self._node(node)
        tunnels = [t for t in status.get("tunnels") or () if isinstance(t, Mapping)]
        _control(out, tunnels, _mapping(status.get("counters")))
        dataplane = status.get("dataplane")
        if isinstance(dataplane, Mapping):
            _dataplane(out, dataplane, tunnels)
        ppp = status.get("ppp")
        if not isinstance(ppp, Mapping) and isinstance(dataplane, Mapping):
            ppp = dataplane.get("ppp")
        if isinstance(ppp, Mapping):
            _ppp(out, ppp)
        radius = status.get("radius")
        if isinstance(radius, Mapping):
            for key, value in sorted(radius.items()):
                number = _number(value)
                if number is not None:
                    out.counter(f"radius_{_name(str(key))}", f"RADIUS client: {key}", {}, number)
        yield from out

    def _node(self, node: Mapping[str, Any]) -> Iterator[Metric]:
        if not node:
            return
        role, listen = node.get("role"), node.get("listen")
        if isinstance(role, str) and isinstance(listen, str):
            yield InfoMetricFamily(
                PREFIX + "node",
                "The node's role and listening address",
                value={"role": role, "listen": listen},
            )
        started_unix = _number(node.get("started_at_unix"))
        if started_unix is None:
            started = _number(node.get("started_at"))
            if started is not None and started > 0:
                started_unix = started + self._wall_offset
        if started_unix is not None:
            yield GaugeMetricFamily(
                PREFIX + "start_time_seconds",
                "When the node started, in seconds since the Unix epoch",
                value=started_unix,
            )


def _control(out: _Families, tunnels: list[Mapping[str, Any]], counters: Mapping[str, Any]) -> None:
    """Tunnels and sessions by state, the reliable channel's counters, the endpoint's counters."""
    by_state = dict.fromkeys(_TUNNEL_STATES, 0)
    sessions_by_state = dict.fromkeys(_SESSION_STATES, 0)
    for tunnel in tunnels:
        state = str(tunnel.get("state"))
        by_state[state] = by_state.get(state, 0) + 1
        for session in tunnel.get("sessions") or ():
            s_state = str(session.get("state"))
            sessions_by_state[s_state] = sessions_by_state.get(s_state, 0) + 1
    for state, n in by_state.items():
        out.gauge("tunnels", "Control connections by state (RFC 2661 7.2)", {"state": state}, n)
    for state, n in sessions_by_state.items():
        out.gauge("sessions", "Sessions by state (RFC 2661 7.4, 7.5)", {"state": state}, n)
    for key, (name, doc) in _CHANNEL_COUNTERS.items():
        value = _number(counters.get(key))
        if value is None:
            value = sum(_number(t.get(key)) or 0.0 for t in tunnels)
        out.counter(name, doc, {}, value)
    for key, raw in sorted(counters.items()):
        value = _number(raw)
        if key not in _CHANNEL_COUNTERS and value is not None:
            out.counter(
                "control_events", "Control plane events counted by the endpoint", {"event": key}, value
            )


def _dataplane(out: _Families, dataplane: Mapping[str, Any], tunnels: list[Mapping[str, Any]]) -> None:
    """Sessions in the fast path, their traffic, drops by reason, the forwarding loops."""
    sessions = _number(dataplane.get("sessions"))
    if sessions is not None:
        out.gauge("dataplane_sessions", "Sessions in the data plane's table", {}, sessions)
    totals = _mapping(dataplane.get("totals"))
    sums: dict[str, float] = {}
    # Summing 100,000 sessions costs a third of a second of the loop: only when totals lack a field.
    if any(field not in totals for field in SESSION_COUNTERS_DTYPE.names or ()):
        for tunnel in tunnels:
            for session in tunnel.get("sessions") or ():
                for field, raw in _mapping(session.get("counters")).items():
                    sums[field] = sums.get(field, 0.0) + (_number(raw) or 0.0)
    # The dtype's fields first, in their order, then any other the totals or rows carry.
    for field in dict.fromkeys((*(SESSION_COUNTERS_DTYPE.names or ()), *totals, *sums)):
        value = _number(totals.get(field))
        if value is None:
            value = sums.get(field, 0.0)
        name, doc, labels = _SESSION_COUNTERS.get(
            field, (f"data_session_{_name(field)}", f"Session counter {field}, summed", {})
        )
        out.counter(name, doc, labels, value)
    drops = _mapping(dataplane.get("drops"))
    reasons = [r.name.lower() for r in DropReason]
    for reason in [*reasons, *(str(k) for k in drops if k not in reasons)]:
        value = _number(drops.get(reason)) or 0.0  # status lists only the reasons seen
        out.counter("data_dropped_datagrams", "Datagrams the data path dropped", {"reason": reason}, value)
    for key, raw in _mapping(dataplane.get("loops")).items():
        value = _number(raw)
        if value is None:
            continue
        name, doc, labels = _LOOP_COUNTERS.get(
            key, (f"dataplane_loop_{_name(key)}", f"Forwarding loop counter {key}", {})
        )
        out.counter(name, doc, labels, value)
    unhandled = _number(dataplane.get("ppp_frames_unhandled"))
    if unhandled is not None:
        out.counter(
            "ppp_frames_unhandled", "PPP frames dropped because no [ppp] is configured", {}, unhandled
        )


def _ppp(out: _Families, ppp: Mapping[str, Any]) -> None:
    """Authentication results, keepalive failures, links by phase, the address pool."""
    for result in ("accepted", "rejected"):
        value = _number(ppp.get(f"auth_{result}"))
        if value is not None:
            out.counter("ppp_authentications", "PPP authentications by result", {"result": result}, value)
    failures = _number(ppp.get("keepalive_failures"))
    if failures is not None:
        out.counter(
            "ppp_keepalive_failures", "PPP links closed for unanswered LCP Echo-Requests", {}, failures
        )
    links = _mapping(ppp.get("links"))
    phases = [p.value for p in Phase]
    for phase in [*phases, *(str(k) for k in links if k not in phases)]:
        out.gauge(
            "ppp_links", "PPP links by phase (RFC 1661 3.2)", {"phase": phase}, _number(links.get(phase)) or 0
        )
    pool = _mapping(ppp.get("pool"))
    size, in_use = _number(pool.get("size")), _number(pool.get("in_use"))
    if size is not None:
        out.gauge("ppp_pool_addresses", "Addresses in the subscriber pool", {}, size)
    if in_use is not None:
        out.gauge("ppp_pool_addresses_in_use", "Addresses of the pool assigned to a subscriber", {}, in_use)
    for key, raw in sorted(ppp.items()):
        value = _number(raw)
        if key not in _PPP_SPECIAL and value is not None:
            out.counter(f"ppp_{_name(key)}", _PPP_HELP.get(key, f"PPP counter {key}"), {}, value)


def build_registry(snapshot: Snapshot, *, process: bool = True) -> CollectorRegistry:
    """A private registry with the status collector and, if ``process``, the standard process_* set."""
    registry = CollectorRegistry()
    registry.register(StatusCollector(snapshot))
    if process:
        ProcessCollector(registry=registry)
    return registry


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}
_REQUEST_LINE = re.compile(rb"([A-Z]+) (\S+) HTTP/1\.[01]")


class MetricsServer:
    """``GET /metrics`` over HTTP/1.x, served by the asyncio loop that owns the node's state."""

    def __init__(
        self,
        snapshot: Snapshot,
        host: str,
        port: int,
        *,
        registry: CollectorRegistry | None = None,
        read_timeout: float = 10.0,
    ) -> None:
        self.registry = registry if registry is not None else build_registry(snapshot)
        self.host = host
        self.port = port
        self.read_timeout = read_timeout
        self.scrapes = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        # limit bounds readuntil(): a head without its blank line beyond it raises LimitOverrunError.
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=MAX_REQUEST_HEAD)
        host, port = self.address
        log.info("metrics on http://%s:%d/metrics", f"[{host}]" if ":" in host else host, port)

    @property
    def address(self) -> tuple[str, int]:
        """The bound host and port (the real port when 0 was asked for)."""
        assert self._server is not None and self._server.sockets, "MetricsServer.start() first"
        name = self._server.sockets[0].getsockname()
        return str(name[0]), int(name[1])

    def close(self) -> None:
        """Stop listening and drop the connections being served."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()

    async def wait_closed(self) -> None:
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def scrape(self) -> bytes:
        """The body of one scrape: every family of the registry in the text format."""
        self.scrapes += 1
        return generate_latest(self.registry)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._writers) >= MAX_CLIENTS:
            writer.close()
            return
        self._writers.add(writer)
        try:
            reply = await self._reply(reader)
            if reply is not None:
                writer.write(reply)
                await asyncio.wait_for(writer.drain(), self.read_timeout)
        except (ConnectionError, TimeoutError):
            pass  # the client went away or stopped reading; nothing to tell it
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), self.read_timeout)

    async def _reply(self, reader: asyncio.StreamReader) -> bytes | None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.read_timeout)
        except asyncio.LimitOverrunError:
            return _response(431, b"request head too long\n")
        except asyncio.IncompleteReadError:
            return None  # closed before a whole request: nobody to answer
        except TimeoutError:
            return _response(408, b"no request within the read timeout\n")
        request_line, *fields = head[:-4].split(b"\r\n")
        match = _REQUEST_LINE.fullmatch(request_line)
        # RFC 9112 5: every field line is "name: value"; anything else makes the request invalid.
        if match is None or any(b":" not in f or f[:1] in b" \t" for f in fields):
            return _response(400, b"bad request\n")
        method, target = match[1], match[2]
        if method not in (b"GET", b"HEAD"):
            return _response(405, b"only GET and HEAD\n", extra=b"Allow: GET, HEAD\r\n")
        if target.split(b"?", 1)[0] != b"/metrics":
            return _response(404, b"not found; metrics are at /metrics\n")
        try:
            body = self.scrape()
        except Exception:
            log.exception("metrics scrape failed")
            return _response(500, b"scrape failed; see the node's log\n")
        return _response(200, body, content_type=CONTENT_TYPE.encode(), head_only=method == b"HEAD")


def _response(
    code: int,
    body: bytes,
    *,
    content_type: bytes = b"text/plain; charset=utf-8",
    extra: bytes = b"",
    head_only: bool = False,
) -> bytes:
    head = (
        f"HTTP/1.1 {code} {_REASONS[code]}\r\n".encode()
        + b"Content-Type: "
        + content_type
        + b"\r\n"
        + f"Content-Length: {len(body)}\r\n".encode()
        + extra
        + b"Connection: close\r\n\r\n"
    )
    return head if head_only else head + body
