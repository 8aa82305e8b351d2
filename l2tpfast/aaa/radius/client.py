"""A sans-IO RADIUS client: Identifiers, retransmission, failover and dead servers (RFC 2865 2.5, 3;
RFC 2866 2, 3, 5.2).

Theory of operation. :class:`RadiusClient` has the same shape as the control plane's Endpoint: in,
:meth:`~RadiusClient.access_request` and :meth:`~RadiusClient.accounting_request` (commands, each
with a caller's ``token``), :meth:`~RadiusClient.receive_datagram` and
:meth:`~RadiusClient.handle_timer`; out, :meth:`~RadiusClient.datagrams_to_send`,
:meth:`~RadiusClient.get_timer` and :meth:`~RadiusClient.next_event`. It never reads a clock and
owns no socket; the asyncio shell (``runtime/radius.py``) carries bytes and time.

- Identifiers. Each server address has its own 256 Identifiers (RFC 2865 2.5: "MAY keep track of
  IDs separately for each server"). A reply is matched by (source address, Identifier), so a reply
  from any other address, for an Identifier not outstanding there, is dropped and counted
  (``unknown_reply``). An Identifier still outstanding on a server is never given to another
  request; past 256 outstanding requests to one server, more requests wait in a queue for that
  server (instead of RFC 2865 2.5's other way, more source ports) and go out as replies free
  Identifiers. Identifiers are handed out in turn, so a freed one is reused as late as possible.
- Retransmission. An unanswered request is sent again, the same octets (same Identifier and
  Request Authenticator: RFC 2865 2.5, RFC 2866 3 "For retransmissions where the contents are
  identical, the Identifier MUST remain unchanged"), every ``timeout`` seconds, ``retries`` times.
- Failover. When the last retransmission goes unanswered the server is marked dead for
  ``dead_time`` and the request moves to the next server: a new Identifier there and a new packet.
  An Access-Request gets a new Request Authenticator (the next server may have another secret,
  and User-Password is hidden with both); an Accounting-Request gets its Acct-Delay-Time raised to
  the seconds since the record was handed in (RFC 2866 5.2), which changes the packet, so it
  needs "a new Identifier and Request Authenticator" (RFC 2866 4.1) anyway. When the request has
  been tried on every server, :class:`RequestFailed` ends it.
- Dead servers. A new request tries the live servers first, in the configured order, then the
  dead ones (a dead mark only reorders: with every server dead, requests still probe them all). A
  server that answers anything valid is live again at once; otherwise the mark expires after
  ``dead_time``.
- Replies. A reply is verified against the request it answers (its Response Authenticator, its
  Message-Authenticator, RFC 2865 3, RFC 3579 3.2); one that fails is dropped and counted
  (``bad_authenticator``) and the request keeps waiting. A duplicate of an answered reply finds no
  outstanding request: ``unknown_reply``.

Secrets travel only in :class:`RadiusServer` and are never in a repr, an event or a message.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import os
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address
from typing import Any

from l2tpfast.aaa.radius.constants import Code
from l2tpfast.aaa.radius.packet import (
    AccessReply,
    AccountingRecord,
    RadiusEncodeError,
    SessionInfo,
    build_access_request,
    build_accounting_request,
    parse_access_reply,
    parse_accounting_response,
)
from l2tpfast.errors import LocalProtocolError
from l2tpfast.ppp.auth.base import AuthRequest

Rand = Callable[[int], bytes]
Address = tuple[str, int]

AUTH_PORT = 1812
ACCT_PORT = 1813

COUNTERS = (
    "requests",
    "retransmissions",
    "timeouts",
    "failovers",
    "failed",
    "accepts",
    "rejects",
    "accounting_responses",
    "bad_authenticator",
    "unknown_reply",
    "malformed",
    "queued",
)


def canonical_host(host: str) -> str:
    """An IP address in its canonical text form; an IPv4-mapped IPv6 address as IPv4."""
    address = ipaddress.ip_address(host.partition("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


@dataclass(frozen=True)
class RadiusServer:
    """One RADIUS server: an IP address (no name: the core resolves nothing), a port and a secret."""

    host: str
    port: int
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        try:
            host = canonical_host(self.host)
        except ValueError:
            raise ValueError(f"RADIUS server {self.host!r}: not an IP address") from None
        object.__setattr__(self, "host", host)
        if not 0 < self.port < 65536:
            raise ValueError(f"RADIUS server {host}: port {self.port} out of range")
        if not self.secret:
            raise ValueError(f"RADIUS server {host}: the secret MUST NOT be empty (RFC 2865 3)")

    @property
    def address(self) -> Address:
        return (self.host, self.port)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class RadiusSettings:
    """Servers and timing of a :class:`RadiusClient`."""

    auth_servers: tuple[RadiusServer, ...] = ()
    acct_servers: tuple[RadiusServer, ...] = ()
    #: Seconds before a request is sent again.
    timeout: float = 3.0
    #: Retransmissions per server after the first transmission.
    retries: int = 3
    #: Seconds a server that did not answer is tried after the live ones.
    dead_time: float = 30.0
    #: RFC 2865 5.32 and 5.4; an Access-Request needs at least one of the two (RFC 2865 4.1).
    nas_identifier: str | None = "l2tpfast"
    nas_ip_address: IPv4Address | None = None
    #: Drop Access-Accept/Reject/Challenge without a Message-Authenticator (Blast-RADIUS).
    require_message_authenticator: bool = False

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ValueError(f"RADIUS timeout {self.timeout}: must be above 0")
        if self.retries < 0:
            raise ValueError(f"RADIUS retries {self.retries}: must be 0 or more")
        if self.dead_time < 0:
            raise ValueError(f"RADIUS dead_time {self.dead_time}: must be 0 or more")
        if not self.nas_identifier and self.nas_ip_address is None:
            raise ValueError("RADIUS needs a NAS-Identifier or a NAS-IP-Address (RFC 2865 4.1)")


# --- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccessAnswered:
    """A server answered an Access-Request (accepted or not: see ``reply.accepted``)."""

    token: Hashable
    reply: AccessReply
    server: str


@dataclass(frozen=True, slots=True)
class AccountingAnswered:
    """A server acknowledged an Accounting-Request with an Accounting-Response."""

    token: Hashable
    server: str


@dataclass(frozen=True, slots=True)
class RequestFailed:
    """No server answered, or the request cannot be sent at all: never a reason to grant access."""

    token: Hashable
    reason: str


RadiusEvent = AccessAnswered | AccountingAnswered | RequestFailed


# --- the client --------------------------------------------------------------------------------


@dataclass(eq=False)
class _Request:
    token: Hashable
    #: The Access-Request's content, or None for accounting.
    auth: tuple[AuthRequest, SessionInfo] | None
    record: AccountingRecord | None
    created: float
    servers: tuple[RadiusServer, ...]
    #: Indexes into ``servers`` in the order to try them; ``position`` is the current one.
    order: list[int]
    position: int = 0
    identifier: int = -1
    authenticator: bytes = b""
    data: bytes = b""
    #: Transmissions to the current server.
    sends: int = 0
    deadline: float | None = None
    #: The server address holding ``identifier``, while it does.
    holder: Address | None = None
    #: The server address whose queue the request waits in for a free Identifier.
    queued_at: Address | None = None
    done: bool = False

    @property
    def server(self) -> RadiusServer:
        return self.servers[self.order[self.position]]


class RadiusClient:
    """RADIUS authentication and accounting client without I/O (see the module docstring)."""

    def __init__(self, settings: RadiusSettings, rand: Rand = os.urandom) -> None:
        self.settings = settings
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self._rand = rand
        self._outbox: list[tuple[bytes, Address]] = []
        self._events: deque[RadiusEvent] = deque()
        self._pending: dict[tuple[Address, int], _Request] = {}
        self._by_token: dict[Hashable, _Request] = {}
        self._waiting: dict[Address, deque[_Request]] = {}
        self._next_identifier: dict[Address, int] = {}
        self._dead_until: dict[Address, float] = {}
        self._timers: list[tuple[float, int, _Request]] = []
        self._sequence = itertools.count()

    def __repr__(self) -> str:
        return f"RadiusClient(outstanding={len(self._by_token)}, counters={self.counters})"

    # --- commands ------------------------------------------------------------------------------

    def access_request(self, token: Hashable, request: AuthRequest, session: SessionInfo, now: float) -> None:
        """Ask the authentication servers about a PPP peer; answered by an event with ``token``."""
        self._submit(token, (request, session), None, self.settings.auth_servers, now)

    def accounting_request(self, token: Hashable, record: AccountingRecord, now: float) -> None:
        """Send an accounting record; acknowledged by an event with ``token``."""
        self._submit(token, None, record, self.settings.acct_servers, now)

    def cancel(self, token: Hashable, now: float) -> bool:
        """Forget an outstanding request (a late reply is then an ``unknown_reply``); False if none."""
        request = self._by_token.get(token)
        if request is None:
            return False
        holder = request.holder
        self._finish(request)
        if holder is not None:
            self._dispatch_waiting(holder, now)
        return True

    def is_dead(self, server: RadiusServer, now: float) -> bool:
        return self._dead_until.get(server.address, float("-inf")) > now

    @property
    def outstanding(self) -> int:
        return len(self._by_token)

    # --- I/O -----------------------------------------------------------------------------------

    def receive_datagram(self, data: bytes, addr: tuple[Any, ...], now: float) -> None:
        """A datagram from ``addr`` on our socket; replies that do not verify are dropped."""
        if len(data) < 20:
            self.counters["malformed"] += 1
            return
        try:
            source: Address = (canonical_host(str(addr[0])), int(addr[1]))
        except (ValueError, IndexError, TypeError):
            self.counters["unknown_reply"] += 1
            return
        request = self._pending.get((source, data[1]))
        if request is None:
            self.counters["unknown_reply"] += 1
            return
        server = request.server
        if request.auth is not None:
            if data[0] not in (Code.ACCESS_ACCEPT, Code.ACCESS_REJECT, Code.ACCESS_CHALLENGE):
                self.counters["malformed"] += 1
                return
            reply = parse_access_reply(
                data,
                request.authenticator,
                server.secret,
                require_message_authenticator=self.settings.require_message_authenticator,
            )
            if reply is None:
                self.counters["bad_authenticator"] += 1
                return
            self.counters["accepts" if reply.accepted else "rejects"] += 1
            self._finish(request)
            self._events.append(AccessAnswered(request.token, reply, str(server)))
        else:
            if data[0] != Code.ACCOUNTING_RESPONSE:
                self.counters["malformed"] += 1
                return
            if not parse_accounting_response(data, request.authenticator, server.secret):
                self.counters["bad_authenticator"] += 1
                return
            self.counters["accounting_responses"] += 1
            self._finish(request)
            self._events.append(AccountingAnswered(request.token, str(server)))
        # RFC 2865 2.6: a reply is the proof that a server is up.
        self._dead_until.pop(source, None)
        self._dispatch_waiting(source, now)

    def handle_timer(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            deadline, _, request = heapq.heappop(self._timers)
            if request.done or request.deadline != deadline:
                continue  # answered, cancelled or moved on since this entry was pushed
            self.counters["timeouts"] += 1
            if request.sends <= self.settings.retries:
                request.sends += 1
                self.counters["retransmissions"] += 1
                self._transmit(request, now)
            else:
                self._fail_over(request, now)

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        out, self._outbox = self._outbox, []
        return out

    def get_timer(self) -> float | None:
        while self._timers:
            deadline, _, request = self._timers[0]
            if not request.done and request.deadline == deadline:
                return deadline
            heapq.heappop(self._timers)
        return None

    def next_event(self) -> RadiusEvent | None:
        return self._events.popleft() if self._events else None

    # --- internals -----------------------------------------------------------------------------

    def _submit(
        self,
        token: Hashable,
        auth: tuple[AuthRequest, SessionInfo] | None,
        record: AccountingRecord | None,
        servers: tuple[RadiusServer, ...],
        now: float,
    ) -> None:
        if token in self._by_token:
            raise LocalProtocolError(f"RADIUS request token {token!r} is already outstanding")
        self.counters["requests"] += 1
        if not servers:
            kind = "authentication" if auth is not None else "accounting"
            self.counters["failed"] += 1
            self._events.append(RequestFailed(token, f"no RADIUS {kind} server configured"))
            return
        live = [i for i, s in enumerate(servers) if not self.is_dead(s, now)]
        dead = [i for i, s in enumerate(servers) if self.is_dead(s, now)]
        request = _Request(token, auth, record, now, servers, live + dead)
        self._by_token[token] = request
        self._start(request, now)

    def _start(self, request: _Request, now: float) -> None:
        """Send ``request`` to its current server with a new Identifier, or queue it there."""
        address = request.server.address
        identifier = self._allocate(address)
        if identifier is None:
            self.counters["queued"] += 1
            request.deadline, request.queued_at = None, address
            self._waiting.setdefault(address, deque()).append(request)
            return
        try:
            data = self._build(request, identifier, now)
        except (RadiusEncodeError, LocalProtocolError) as exc:
            self.counters["failed"] += 1
            self._finish(request)
            self._events.append(RequestFailed(request.token, str(exc)))
            return
        request.identifier, request.holder, request.data = identifier, address, data
        request.authenticator = data[4:20]
        self._pending[(address, identifier)] = request
        request.sends = 1
        self._transmit(request, now)

    def _build(self, request: _Request, identifier: int, now: float) -> bytes:
        settings, secret = self.settings, request.server.secret
        if request.auth is not None:
            auth, session = request.auth
            return build_access_request(
                auth,
                session,
                identifier,
                secret,
                self._rand(16),
                nas_identifier=settings.nas_identifier,
                nas_ip_address=settings.nas_ip_address,
            )
        assert request.record is not None
        # RFC 2866 5.2: the seconds this record has been trying to reach a server so far.
        record = replace(request.record, delay_time=request.record.delay_time + int(now - request.created))
        return build_accounting_request(
            record,
            identifier,
            secret,
            nas_identifier=settings.nas_identifier,
            nas_ip_address=settings.nas_ip_address,
        )

    def _transmit(self, request: _Request, now: float) -> None:
        assert request.holder is not None
        self._outbox.append((request.data, request.holder))
        request.deadline = now + self.settings.timeout
        heapq.heappush(self._timers, (request.deadline, next(self._sequence), request))

    def _allocate(self, address: Address) -> int | None:
        start = self._next_identifier.get(address)
        if start is None:
            start = self._rand(1)[0]
        for step in range(256):
            identifier = (start + step) & 0xFF
            if (address, identifier) not in self._pending:
                self._next_identifier[address] = (identifier + 1) & 0xFF
                return identifier
        return None

    def _release(self, request: _Request) -> Address | None:
        """Free the request's Identifier; the address that held it."""
        holder = request.holder
        if holder is not None:
            self._pending.pop((holder, request.identifier), None)
            request.holder, request.deadline = None, None
        return holder

    def _finish(self, request: _Request) -> None:
        request.done = True
        self._release(request)
        self._by_token.pop(request.token, None)
        if request.queued_at is not None:
            queue = self._waiting.get(request.queued_at)
            if queue is not None and request in queue:
                queue.remove(request)
            request.queued_at = None

    def _dispatch_waiting(self, address: Address, now: float) -> None:
        """Send what waits for an Identifier on ``address`` while Identifiers are free there."""
        queue = self._waiting.get(address)
        while queue and any((address, i) not in self._pending for i in range(256)):
            request = queue.popleft()
            request.queued_at = None
            self._start(request, now)
        if queue is not None and not queue:
            self._waiting.pop(address, None)

    def _fail_over(self, request: _Request, now: float) -> None:
        address = self._release(request)
        assert address is not None
        self._dead_until[address] = now + self.settings.dead_time
        # Requests queued for the dead server move on with this one.
        stranded = list(self._waiting.pop(address, ()))
        for moving in [request, *stranded]:
            moving.queued_at = None
            self._advance(moving, now)

    def _advance(self, request: _Request, now: float) -> None:
        request.position += 1
        if request.position < len(request.order):
            self.counters["failovers"] += 1
            self._start(request, now)
            return
        tried = len(request.order)
        self.counters["failed"] += 1
        self._finish(request)
        self._events.append(RequestFailed(request.token, f"no answer from {tried} RADIUS server(s)"))
