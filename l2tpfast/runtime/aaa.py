"""RADIUS for the subscribers of an LNS: authentication, accounting, session limits, DAE.

The shell between :class:`~l2tpfast.runtime.subscribers.Subscribers` and the RADIUS client
(:mod:`l2tpfast.aaa.radius`, over :class:`~l2tpfast.runtime.radius.RadiusService`):

- Authentication (RFC 2865): the PPP link's request goes out as an Access-Request naming the
  session (Acct-Session-Id, NAS-Port, Calling/Called-Station-Id from the LAC's call AVPs,
  Agent-Circuit-Id/Agent-Remote-Id from its TR-101 AVPs); the answer becomes the link's
  :class:`~l2tpfast.ppp.auth.base.AuthDecision`. No answer from any server is a refusal.
- Accounting (RFC 2866, RFC 2869 5.16): Start when IPCP opens, Interim-Update every
  Acct-Interim-Interval (the server's, at least ``min_interim_interval``; else ours), Stop when
  the session ends, with octets and packets from the fast path's counters of the session and
  the Acct-Terminate-Cause of :func:`~l2tpfast.aaa.radius.terminate.acct_terminate_cause`.
- Session-Timeout and Idle-Timeout (RFC 2865 5.27, 5.28) end the session with a CDN.
- Dynamic authorization (RFC 5176): a Disconnect-Request ends the session it names; a
  CoA-Request changes its Session-Timeout, Idle-Timeout or interim interval.

The shared secret is handed to the client and never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from l2tpfast.aaa.radius.client import RadiusServer, RadiusSettings
from l2tpfast.aaa.radius.constants import ErrorCause
from l2tpfast.aaa.radius.dae import DaeRequest, DaeServer
from l2tpfast.aaa.radius.packet import AccessReply, AccountingRecord, SessionInfo, to_decision
from l2tpfast.aaa.radius.terminate import LocalCause, PppEnding, acct_terminate_cause
from l2tpfast.config import RadiusConfig
from l2tpfast.control.events import CallInfo, SessionClosed
from l2tpfast.ppp.auth import AuthDecision, AuthRequest
from l2tpfast.ppp.events import LinkClosed
from l2tpfast.wire.constants import CDNResult

log = logging.getLogger("l2tpfast.radius")

#: Counters of one session from the fast path: rx_* from the subscriber, tx_* to it.
Counters = dict[str, int]


@dataclass
class Accounting:
    """One subscriber's RADIUS state: who it is to the server and when the next things are due."""

    session: SessionInfo
    reply: AccessReply | None = None
    started_at: float = 0.0  # loop time of the Start
    interim: float = 0.0  # seconds between Interim-Updates; 0: none
    next_interim: float | None = None
    session_deadline: float | None = None
    idle_timeout: float | None = None
    idle_check: float | None = None
    #: Packets from the subscriber at the last idle check, and when they last changed.
    last_rx: int = -1
    last_active: float = 0.0
    started: bool = False
    stopped: bool = False
    #: Why we ended the session ourselves, when we did.
    local_cause: LocalCause | None = None
    class_values: tuple[bytes, ...] = field(default=(), repr=False)


class RadiusAaa:
    """RADIUS for one LNS; built on start (it binds sockets), closed on shutdown."""

    def __init__(self, config: RadiusConfig, now: Callable[[], float]) -> None:
        secret = config.secret.encode()
        self.config = config
        self._now = now
        self.settings = _settings(config)
        self._service: Any = None
        self._dae: Any = None
        self._pending: set[asyncio.Future[bool]] = set()
        # Acct-Session-Id (RFC 2866 5.5): unique across restarts, the start time and a counter.
        self._ids = itertools.count(1)
        self._epoch = f"{int(time.time()):08x}"
        self._secret = secret
        self.counters = {
            "access_accepted": 0,
            "access_rejected": 0,
            "access_unanswered": 0,
            "accounting_sent": 0,
            "accounting_unanswered": 0,
            "session_timeouts": 0,
            "idle_timeouts": 0,
            "disconnect_requests": 0,
            "coa_requests": 0,
            "dae_naks": 0,
        }

    def start(self, on_dae: Callable[[DaeRequest], tuple[bool, int | None]]) -> None:
        """Bind the RADIUS client's socket and the DAE port (in the running loop)."""
        from l2tpfast.runtime.radius import DaeListener, RadiusService

        self._service = RadiusService(self.settings)
        if self.config.dae_port:
            clients = {host: self._secret for host in self.config.dae_clients}
            self._dae = DaeListener(DaeServer(clients), self.config.dae_listen, self.config.dae_port, on_dae)
            log.info(
                "RADIUS dynamic authorization on %s port %d", self.config.dae_listen, self.config.dae_port
            )
        servers = ", ".join(str(s) for s in self.settings.auth_servers)
        log.info("RADIUS servers %s (accounting %s)", servers, self.config.accounting)

    def reconfigure(self, config: RadiusConfig) -> None:
        """SIGHUP: servers, secret and timing for requests from now on (the client is rebuilt)."""
        if config == self.config:
            return
        from l2tpfast.runtime.radius import RadiusService

        old = self._service
        self.config, self.settings, self._secret = config, _settings(config), config.secret.encode()
        if self._dae is not None:
            self._dae.dae = DaeServer({host: self._secret for host in config.dae_clients})
        if old is not None:
            self._service = RadiusService(self.settings)
            # Requests in flight on the old client end as unanswered; accounting is retried by
            # nobody, which the counters show (accounting_unanswered).
            old.close()

    def close(self) -> None:
        if self._dae is not None:
            self._dae.close()
            self._dae = None
        if self._service is not None:
            self._service.close()
            self._service = None

    async def drain(self, timeout: float) -> None:
        """Wait (bounded) until the accounting records in flight are answered or given up."""
        if self._pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*self._pending, return_exceptions=True), timeout)

    def status(self) -> dict[str, int]:
        out = dict(self.counters)
        if self._service is not None:
            out.update({f"client_{k}": v for k, v in self._service.counters.items()})
        if self._dae is not None:
            out.update({f"dae_{k}": v for k, v in self._dae.dae.counters.items() if isinstance(v, int)})
        return out

    # --- authentication ---------------------------------------------------------------------

    def session_info(
        self, key: tuple[int, int], call: CallInfo | None, username: str, address: IPv4Address | None = None
    ) -> SessionInfo:
        """What RADIUS is told about the session (RFC 2865 5, RFC 4679 4)."""
        tid, sid = key
        call = call or CallInfo()
        return SessionInfo(
            acct_session_id=f"{self._epoch}{next(self._ids):08x}",
            # RFC 2865 5.5: a number for the "port"; the tunnel and session IDs make it unique.
            nas_port=(tid << 16) | sid,
            username=username,
            calling_station_id=call.calling_number,
            called_station_id=call.called_number,
            agent_circuit_id=call.agent_circuit_id.encode() if call.agent_circuit_id else None,
            agent_remote_id=call.agent_remote_id.encode() if call.agent_remote_id else None,
            framed_address=address,
        )

    async def authenticate(
        self, request: AuthRequest, session: SessionInfo
    ) -> tuple[AuthDecision, AccessReply | None]:
        reply = await self._service.authenticate(request, session) if self._service is not None else None
        if reply is None:
            self.counters["access_unanswered"] += 1
            return AuthDecision(False, "no RADIUS server answered"), None
        self.counters["access_accepted" if reply.accepted else "access_rejected"] += 1
        return to_decision(reply), reply

    # --- accounting -------------------------------------------------------------------------

    def accounting_for(self, session: SessionInfo, reply: AccessReply | None) -> Accounting:
        acct = Accounting(session, reply, class_values=reply.class_values if reply is not None else ())
        interval = reply.acct_interim_interval if reply is not None else None
        if interval:
            # RFC 2869 5.16: "MUST NOT be smaller than 60"; the floor is configurable for labs.
            acct.interim = max(float(interval), self.config.min_interim_interval)
        else:
            acct.interim = self.config.interim_interval
        if reply is not None and reply.session_timeout:
            acct.session_deadline = float(reply.session_timeout)  # relative until start()
        if reply is not None and reply.idle_timeout:
            acct.idle_timeout = float(reply.idle_timeout)
        return acct

    def started(self, acct: Accounting, counters: Counters, address: IPv4Address | None) -> None:
        """IPCP is up: the service starts (RFC 2866 5.1 Start); timers from now."""
        now = self._now()
        acct.session = _with_address(acct.session, address)
        acct.started, acct.started_at = True, now
        if acct.session_deadline is not None:
            acct.session_deadline += now
        if acct.interim:
            acct.next_interim = now + acct.interim
        if acct.idle_timeout is not None:
            acct.last_rx, acct.last_active = counters.get("rx_packets", 0), now
            acct.idle_check = now + min(acct.idle_timeout, 10.0)
        self._send(acct, "start", counters)

    def interim(self, acct: Accounting, counters: Counters) -> None:
        self._send(acct, "interim", counters)
        acct.next_interim = self._now() + acct.interim if acct.interim else None

    def stopped(self, acct: Accounting, counters: Counters, terminate_cause: int) -> None:
        if acct.started and not acct.stopped:
            acct.stopped = True
            self._send(acct, "stop", counters, terminate_cause)

    def _send(self, acct: Accounting, status: str, counters: Counters, cause: int | None = None) -> None:
        if not self.config.accounting or self._service is None:
            return
        record = AccountingRecord(
            status=status,  # type: ignore[arg-type]
            session=acct.session,
            session_time=int(self._now() - acct.started_at) if status != "start" else 0,
            input_octets=counters.get("rx_bytes", 0),
            input_packets=counters.get("rx_packets", 0),
            output_octets=counters.get("tx_bytes", 0),
            output_packets=counters.get("tx_packets", 0),
            terminate_cause=cause,
            class_values=acct.class_values,
            event_timestamp=int(time.time()),
        )
        future: asyncio.Future[bool] = self._service.account(record)
        self.counters["accounting_sent"] += 1
        self._pending.add(future)
        future.add_done_callback(self._accounted)

    def _accounted(self, future: asyncio.Future[bool]) -> None:
        self._pending.discard(future)
        if not future.cancelled() and not future.result():
            self.counters["accounting_unanswered"] += 1

    def apply_coa(self, acct: Accounting, request: DaeRequest) -> None:
        """RFC 5176 3.2: new limits for a running session."""
        now = self._now()
        if request.session_timeout is not None:
            acct.session_deadline = (
                acct.started_at + request.session_timeout if request.session_timeout else None
            )
        if request.idle_timeout is not None:
            acct.idle_timeout = float(request.idle_timeout) or None
            acct.idle_check = now + min(acct.idle_timeout, 10.0) if acct.idle_timeout else None
        if request.acct_interim_interval is not None:
            acct.interim = max(float(request.acct_interim_interval), self.config.min_interim_interval)
            acct.next_interim = now + acct.interim
        if request.class_values:
            acct.class_values = request.class_values


def terminate_cause(acct: Accounting, closed: LinkClosed | None, event: SessionClosed, *, lns: bool) -> int:
    """RFC 2866 5.10 Acct-Terminate-Cause of a session that ended: our own reason first (timeouts,
    Disconnect-Request, shutdown), then how PPP ended here, then what the CDN or StopCCN said."""
    ppp = None
    if closed is not None and not event.by_peer:
        if closed.reason.startswith("keepalive"):
            ppp = PppEnding.KEEPALIVE_LOST
        elif closed.reason.startswith("looped"):
            ppp = PppEnding.LOOPBACK
        elif closed.by_peer:
            ppp = PppEnding.PEER_TERMINATE
    return acct_terminate_cause(
        local=acct.local_cause,
        ppp=ppp,
        disconnect_cause=event.disconnect_cause if event.by_peer else None,
        cdn_result=None if event.tunnel_closed else event.result_code,
        cdn_by_peer=event.by_peer,
        stopccn_by_peer=event.by_peer,
        lns=lns,
    )


def names_session(
    request: DaeRequest, acct: Accounting, username: str | None, address: IPv4Address | None
) -> bool:
    """RFC 5176 3: a session matches when every identification attribute given matches it."""
    return (
        (request.acct_session_id is None or request.acct_session_id == acct.session.acct_session_id)
        and (request.user_name is None or request.user_name == username)
        and (request.framed_ip_address is None or request.framed_ip_address == address)
        and (request.nas_port is None or request.nas_port == acct.session.nas_port)
    )


#: RFC 5176 3.5 Error-Cause values the LNS answers with.
SESSION_NOT_FOUND = ErrorCause.SESSION_CONTEXT_NOT_FOUND
MISSING_ATTRIBUTE = ErrorCause.MISSING_ATTRIBUTE


def _with_address(session: SessionInfo, address: IPv4Address | None) -> SessionInfo:
    return dataclasses.replace(session, framed_address=address) if address is not None else session


def _settings(config: RadiusConfig) -> RadiusSettings:
    secret = config.secret.encode()
    return RadiusSettings(
        auth_servers=tuple(RadiusServer(host, port, secret) for host, port in config.servers),
        acct_servers=tuple(RadiusServer(host, port, secret) for host, port in config.accounting_servers),
        timeout=config.timeout,
        retries=config.retries,
        dead_time=config.dead_time,
        nas_identifier=config.nas_identifier,
        nas_ip_address=config.nas_ip_address,
    )


class RadiusSessions:
    """RADIUS for :class:`~l2tpfast.runtime.subscribers.Subscribers` (a mixin of it): accounting
    timers, Session-Timeout and Idle-Timeout, Disconnect/CoA-Request, the Stop's cause."""

    # Provided by Subscribers.
    server: bool
    path: Any
    aaa: Any
    by_key: dict[tuple[int, int], Any]
    _timers: list[tuple[float, int, tuple[int, int]]]
    _seq: int
    _close_session: Callable[..., None]

    def _arm(self) -> None:
        raise NotImplementedError

    def _ctx(self, sub: Any) -> dict[str, Any]:
        raise NotImplementedError

    def counters_of(self, sub: Any) -> dict[str, int]:
        """The fast path's counters of the session (rx: from the subscriber, tx: to it)."""
        row = self.path.counters[sub.slot]
        return {name: int(row[name]) for name in ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes")}

    def _terminate_cause(self, sub: Any, event: SessionClosed) -> int:
        return terminate_cause(sub.acct, sub.closed, event, lns=self.server)

    def end_all(self, cause: Any) -> None:
        """The node is going down: every session's Stop says so (terminate.LocalCause)."""
        for sub in self.by_key.values():
            if sub.acct is not None and sub.acct.local_cause is None:
                sub.acct.local_cause = cause

    def _end(self, sub: Any, cause: Any, message: str) -> None:
        sub.acct.local_cause = cause
        self._close_session(*sub.key, CDNResult.ADMINISTRATIVE, message)

    def _acct_due(self, sub: Any, now: float) -> None:
        """Interim-Update, Session-Timeout and Idle-Timeout of one session (RFC 2865 5.27, 5.28)."""
        acct = sub.acct
        if acct is None or not acct.started or acct.stopped or acct.local_cause is not None:
            return
        if acct.session_deadline is not None and acct.session_deadline <= now:
            self.aaa.counters["session_timeouts"] += 1
            self._end(sub, LocalCause.SESSION_TIMEOUT, "Session-Timeout")
            return
        if acct.idle_check is not None and acct.idle_check <= now and acct.idle_timeout:
            # Idle: no IP from the subscriber (its PPP frames, LCP echoes, do not count).
            rx = self.counters_of(sub)["rx_packets"] - sub.frames_in
            if rx != acct.last_rx:
                acct.last_rx, acct.last_active = rx, now
            if now - acct.last_active >= acct.idle_timeout:
                self.aaa.counters["idle_timeouts"] += 1
                self._end(sub, LocalCause.IDLE_TIMEOUT, "Idle-Timeout")
                return
            acct.idle_check = now + min(acct.idle_timeout, 10.0)
        if acct.next_interim is not None and acct.next_interim <= now:
            self.aaa.interim(acct, self.counters_of(sub))
        self._schedule_acct(sub)

    def _schedule_acct(self, sub: Any) -> None:
        acct = sub.acct
        times = [t for t in (acct.session_deadline, acct.idle_check, acct.next_interim) if t is not None]
        if times:
            self._seq += 1
            heapq.heappush(self._timers, (min(times), self._seq, sub.key))
            self._arm()

    def find(self, request: Any) -> list[Any]:
        """The sessions a Disconnect/CoA-Request names (RFC 5176 3: every attribute given must match)."""
        return [
            sub
            for sub in self.by_key.values()
            if sub.acct is not None and names_session(request, sub.acct, sub.username, sub.address)
        ]

    def dae_request(self, request: Any) -> tuple[bool, int | None]:
        """RFC 5176: end (Disconnect) or change (CoA) the named sessions; ACK, or NAK with why."""
        kind = request.kind
        self.aaa.counters["disconnect_requests" if kind == "disconnect" else "coa_requests"] += 1
        if not request.identifies_session:
            self.aaa.counters["dae_naks"] += 1
            return False, MISSING_ATTRIBUTE
        subs = self.find(request)
        if not subs:
            self.aaa.counters["dae_naks"] += 1
            return False, SESSION_NOT_FOUND
        for sub in subs:
            if kind == "disconnect":
                log.info(
                    "session %d:%d Disconnect-Request from %s",
                    *sub.key,
                    request.addr[0],
                    extra=self._ctx(sub),
                )
                self._end(sub, LocalCause.ADMIN_RESET, "RADIUS Disconnect-Request")
            else:
                self.aaa.apply_coa(sub.acct, request)
                self._schedule_acct(sub)
                log.info(
                    "session %d:%d CoA-Request from %s applied",
                    *sub.key,
                    request.addr[0],
                    extra=self._ctx(sub),
                )
        return True, None
