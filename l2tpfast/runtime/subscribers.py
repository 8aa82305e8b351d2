"""PPP on top of established sessions: the shell around :class:`~l2tpfast.ppp.link.PppLink`.

The control node creates one link per session when it is established and gives it the PPP
frames the fast path hands up (LCP, authentication, NCPs: never IP, which the fast path moves
between the session and the TUN device itself). This module carries frames and time to the
links, asks the authentication backend, hands out pool addresses, and tells the fast path and
the kernel where each address lives:

- LNS (server links): the whole pool is routed into the TUN device once, at start; each
  session's address goes into the fast path's route table (destination -> session) when IPCP
  opens, with a source check so a subscriber cannot send with another's address. An address
  from outside the pool (a users-file entry) gets a /32 kernel route of its own.
- LAC (client links, our PPP client and load generator): one shared TUN device; the address
  IPCP gave each session is added to the device and routed by SOURCE address in the fast path.

A link that dies (Terminate, keepalive lost, authentication failed) ends its session with a
CDN (RFC 2661 5.7 CDN is the way to end a call); a session that ends takes its link down.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Network
from typing import Any

import numpy as np

from l2tpfast.aaa.pool import AddressPool, PrefixPool
from l2tpfast.config import LnsConfig, PppConfig
from l2tpfast.control.events import SessionClosed, SessionEstablished
from l2tpfast.ppp.auth import AuthBackend, AuthDecision, AuthRequest, AuthSettings
from l2tpfast.ppp.constants import Protocol
from l2tpfast.ppp.events import (
    Authenticated,
    AuthenticationFailed,
    AuthenticationRequested,
    LinkClosed,
    NetworkDown,
    NetworkUp,
    PppEvent,
)
from l2tpfast.ppp.fsm import FsmSettings
from l2tpfast.ppp.lcp import LcpSettings
from l2tpfast.ppp.link import LinkSettings, PppLink
from l2tpfast.runtime.aaa import RadiusSessions
from l2tpfast.runtime.logs import ctx
from l2tpfast.wire.avp import PppDisconnectCause
from l2tpfast.wire.constants import MAX_DATA_HEADER, CDNResult, SessionFlag

log = logging.getLogger("l2tpfast.ppp")

SessionKey = tuple[int, int]  # (local_tunnel_id, local_session_id)

#: Router Advertisements (RFC 4861 6.2.1, 6.2.4): the first RA_INITIAL_COUNT at RA_INITIAL_INTERVAL
#: (a subscriber's stack may not be listening yet when IPv6CP opens), then every RA_INTERVAL; the
#: router lifetime outlasts three intervals.
RA_INITIAL_COUNT = 3
RA_INITIAL_INTERVAL = 4.0
RA_INTERVAL = 600.0
RA_ROUTER_LIFETIME = 1800

#: PPP control frames one session may hand to Python: a burst, then this many a second. A login
#: takes a few dozen; a flood beyond this is dropped and counted, so one subscriber cannot take
#: the control plane's time from the others.
FRAME_BURST = 200
FRAME_RATE = 100.0


#: RFC 3145 3.2 Disconnect Codes we send, and the Direction field (1: peer, 2: local initiated).
DISCONNECT_NORMAL = 3  # LCP Terminate-Request
DISCONNECT_LCP_MAGIC = 7  # looped-back link (magic number collision)
DISCONNECT_LCP_KEEPALIVE = 8  # LCP Echo-Requests unanswered
DIRECTION_PEER, DIRECTION_LOCAL = 1, 2


def disconnect_cause(event: LinkClosed) -> PppDisconnectCause | None:
    """The RFC 3145 PPP Disconnect Cause Code for a dead link, when one fits; the CDN carries it."""
    if event.reason.startswith("keepalive"):
        return PppDisconnectCause(DISCONNECT_LCP_KEEPALIVE, Protocol.LCP, DIRECTION_LOCAL, event.reason)
    if event.reason.startswith("looped"):
        return PppDisconnectCause(DISCONNECT_LCP_MAGIC, Protocol.LCP, DIRECTION_LOCAL, event.reason)
    if event.by_peer:
        return PppDisconnectCause(DISCONNECT_NORMAL, Protocol.LCP, DIRECTION_PEER, event.reason)
    return None


class AllowAll:
    """The backend when ``[ppp] auth = []``: nobody is asked for credentials."""

    def authenticate(self, request: Any) -> AuthDecision:
        return AuthDecision(True, "no authentication")


class IpCommands:
    """Address and route changes batched into one ``ip -batch`` run, off the event loop."""

    def __init__(self) -> None:
        self._queue: list[str] = []
        self._running: asyncio.Task[None] | None = None
        self.errors = 0

    def add(self, command: str) -> None:
        self._queue.append(command)
        if self._running is None or self._running.done():
            self._running = asyncio.get_running_loop().create_task(self._drain())

    async def wait(self, timeout: float) -> None:
        """Until every queued command has run, at most ``timeout`` seconds."""
        if self._running is not None and not self._running.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._running), timeout)

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            # -force: one failing line (an address already gone) does not stop the others.
            pipe, devnull = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
            proc = await asyncio.create_subprocess_exec(
                "ip", "-force", "-batch", "-", stdin=pipe, stdout=devnull, stderr=pipe
            )
            _, err = await proc.communicate("\n".join(batch).encode() + b"\n")
            if proc.returncode:
                self.errors += 1
                log.warning("ip -batch: %s", err.decode(errors="replace").strip()[:500])


@dataclass
class Subscriber:
    """One session's PPP link and what was set up for it."""

    key: SessionKey
    slot: int
    peer: tuple[str, int]
    local: str | None
    link: PppLink
    address: IPv4Address | None = None  # server: the peer's; client: ours
    routed: bool = False
    kernel_route: bool = False
    peer_route: IPv4Address | None = None
    #: Client: LCP waits for the LNS's first frame or its acknowledgement of our ICCN.
    waiting: bool = False
    #: Server: the subscriber's IPv6 /64, and when the next Router Advertisement is due.
    prefix: IPv6Network | None = None
    ra_sent: int = 0
    ra_next: float | None = None
    #: Client with ``[lac] session_tun``: the session's own TUN device.
    tun: Any = None
    username: str | None = None
    #: What the LAC said about the call (numbers, TR-101 line IDs): RADIUS hears it.
    call: Any = None
    #: RADIUS: the session's accounting and limits (runtime.aaa.Accounting).
    acct: Any = None
    #: PPP frames to and from the link (the fast path counts them among the data, too).
    frames_in: int = 0
    frames_out: int = 0
    #: How PPP ended (the LinkClosed event), for the Acct-Terminate-Cause.
    closed: LinkClosed | None = None
    #: Server: the pool the address came from (None: from outside every pool).
    pool: AddressPool | None = None
    #: Token bucket of PPP frames handed up (FRAME_BURST, FRAME_RATE a second).
    tokens: float = FRAME_BURST
    refilled_at: float = 0.0


def link_settings(ppp: PppConfig, lns: LnsConfig | None, *, server: bool) -> LinkSettings:
    fsm = FsmSettings(
        restart_timer=ppp.restart_timer, max_configure=ppp.max_configure, max_failure=ppp.max_failure
    )
    lcp = LcpSettings(
        mru=ppp.mru,
        auth_methods=ppp.auth if server else (),
        echo_interval=ppp.echo_interval,
        echo_failure=ppp.echo_failure,
        fsm=fsm,
    )
    return LinkSettings(
        lcp=lcp,
        auth=AuthSettings(timeout=ppp.restart_timer),
        ncp_fsm=fsm,
        ipv6cp=ppp.ipv6,
        local_address=lns.local_address if lns is not None else None,
        dns=lns.dns if lns is not None else (),
        nbns=lns.nbns if lns is not None else (),
        request_dns=ppp.request_dns,
        username=ppp.username,
        password=ppp.password,
        proxy=ppp.proxy,
    )


class Subscribers(RadiusSessions):
    """The PPP links of one node, keyed by session."""

    def __init__(
        self,
        *,
        server: bool,
        ppp: PppConfig,
        lns: LnsConfig | None,
        path: Any,
        tun: Any,
        send: Callable[[bytes, tuple[str, int], str | None], object],
        close_session: Callable[..., None],
        now: Callable[[], float],
        backend: AuthBackend | None = None,
        session_tun: str | None = None,
        dataplane: Any = None,
        mtu: int = 1500,
        tun_queue: int = 0,
        aaa: Any = None,
    ) -> None:
        self.server = server
        #: runtime.aaa.RadiusAaa with [radius]: authentication, accounting, limits, DAE.
        self.aaa = aaa
        self._tasks: set[asyncio.Task[None]] = set()
        self.ppp = ppp
        self.lns = lns
        self.path = path
        self.tun = tun
        self._send = send
        self._close_session = close_session
        self._now = now
        self.settings = link_settings(ppp, lns, server=server)
        self.backend: AuthBackend = backend if backend is not None else AllowAll()
        self.pool: AddressPool | None = None
        if server and lns is not None and lns.pool:
            exclude = [lns.local_address] if lns.local_address is not None else []
            self.pool = AddressPool(lns.pool, exclude=exclude, key="lns.pool")
        #: Named pools ([lns.pools]) a RADIUS Framed-Pool picks (RFC 2869 5.18).
        self.pools: dict[str, AddressPool] = {}
        if server and lns is not None:
            for name, ranges in lns.pools:
                self.pools[name] = AddressPool(ranges, exclude=exclude, key=f"lns.pools.{name}")
        self.prefix_pool: PrefixPool | None = None
        if server and lns is not None and lns.ipv6_pool is not None:
            self.prefix_pool = PrefixPool(lns.ipv6_pool)
        self.session_tun = session_tun
        self.dataplane = dataplane
        self.mtu = mtu
        self.tun_queue = tun_queue
        self.ip = IpCommands()
        self.by_key: dict[SessionKey, Subscriber] = {}
        self.by_slot: dict[int, Subscriber] = {}
        self.by_user: dict[str, set[SessionKey]] = {}
        #: LAC: per-call credentials given with ``ctl open-session --username``, until the call is up.
        self.credentials: dict[SessionKey, tuple[str, str]] = {}
        self._peer_routes: dict[IPv4Address, int] = {}
        #: When the last link reached IPCP Opened (loop time, time.monotonic()): setup rates.
        self.last_up_at: float | None = None
        #: Called with (session key, its address) when a link reaches IPCP Opened and is routed
        #: (``l2tpfast bench`` times its setups so).
        self.on_up: Callable[[SessionKey, IPv4Address], None] | None = None
        self.counters = {
            "links_started": 0,
            "links_up": 0,
            "auth_accepted": 0,
            "auth_rejected": 0,
            "keepalive_failures": 0,
            "pool_exhausted": 0,
            "unknown_pool": 0,
            "duplicate_logins_refused": 0,
            "frames_in": 0,
            "frames_out": 0,
            "frames_unknown_session": 0,
            "frames_rate_limited": 0,
            "router_advertisements": 0,
        }
        # One frame at a time through DataPath.encapsulate: its arguments, allocated once.
        self._slots = np.zeros(1, dtype=np.uint32)
        self._protocols = np.zeros(1, dtype=np.uint32)
        self._lengths = np.zeros(1, dtype=np.uint32)
        self._headers = np.zeros((1, MAX_DATA_HEADER), dtype=np.uint8)
        self._header_lengths = np.zeros(1, dtype=np.uint8)
        self._timers: list[tuple[float, int, SessionKey]] = []
        self._timer_handle: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._seq = 0

    # --- start and stop ----------------------------------------------------------------------

    def start(self) -> None:
        """LNS: route the whole pool into the TUN device once (the fast path finds the session)."""
        for pool in self._all_pools():
            if self.tun is None:
                break
            for first, last in pool.ranges:
                for net in ipaddress.summarize_address_range(IPv4Address(first), IPv4Address(last)):
                    self.ip.add(f"route replace {net} dev {self.tun.name}")
        if self.prefix_pool is not None and self.tun is not None:
            self.ip.add(f"route replace {self.prefix_pool.network} dev {self.tun.name}")

    def reconfigure(self, ppp: PppConfig | None, lns: LnsConfig | None, backend: AuthBackend | None) -> None:
        """SIGHUP: new link settings and credentials for sessions from now on; running links keep theirs.

        The pools are not among the reloadable keys (``reload.reload_plan`` keeps them)."""
        if ppp is None:
            return
        self.ppp, self.lns = ppp, lns
        self.settings = link_settings(ppp, lns, server=self.server)
        self.backend = backend if backend is not None else AllowAll()

    async def drain(self, timeout: float) -> None:
        """Wait (bounded) for the queued route and address removals to reach the kernel, and for
        the accounting Stops in flight to be answered."""
        await self.ip.wait(timeout)
        if self.aaa is not None:
            await self.aaa.drain(timeout)

    def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._timer_handle is not None:
            self._timer_handle.cancel()
            self._timer_handle = None

    # --- from the control node ---------------------------------------------------------------

    def session_established(self, event: SessionEstablished, slot: int, local: str | None) -> None:
        key = (event.local_tunnel_id, event.local_session_id)
        settings = self.settings
        if key in self.credentials:
            username, password = self.credentials.pop(key)
            settings = dataclasses.replace(settings, username=username, password=password)
        link = PppLink(settings, server=self.server)
        sub = Subscriber(key, slot, event.peer, local, link, call=event.call, refilled_at=self._now())
        self.by_key[key] = sub
        self.by_slot[slot] = sub
        self.counters["links_started"] += 1
        if self.server:
            link.start(self._now(), proxy=event.proxy)
            self._pump(sub)
        else:
            # Our PPP client starts LCP on the LNS's first frame, or when the LNS acknowledges our
            # ICCN (session_connected), whichever is first. Sent at once, our Configure-Request can
            # reach the LNS before it has read the ICCN (it queues behind the control window, or
            # shares a receive batch with it) and be dropped, which costs a Restart time (3 s).
            sub.waiting = True

    def session_connected(self, key: SessionKey) -> None:
        """The peer has acknowledged our ICCN: it knows the session now."""
        sub = self.by_key.get(key)
        if sub is not None and sub.waiting:
            sub.waiting = False
            sub.link.start(self._now())
            self._pump(sub)

    def session_closed(self, event: SessionClosed) -> None:
        self.credentials.pop((event.local_tunnel_id, event.local_session_id), None)
        sub = self.by_key.pop((event.local_tunnel_id, event.local_session_id), None)
        if sub is None:
            return
        if sub.acct is not None and self.aaa is not None:
            # Counters first: the node takes the session out of the fast path after this.
            self.aaa.stopped(sub.acct, self.counters_of(sub), self._terminate_cause(sub, event))
        self.by_slot.pop(sub.slot, None)
        sub.link.lower_down(self._now())
        self._release(sub)

    def frames(self, items: list[tuple[int, int, bytes]]) -> None:
        """(slot, protocol, information) handed up by the fast path, one batch."""
        now = self._now()
        touched: dict[int, Subscriber] = {}
        for slot, protocol, information in items:
            sub = self.by_slot.get(slot)
            if sub is None:
                self.counters["frames_unknown_session"] += 1
                continue
            sub.tokens = min(FRAME_BURST, sub.tokens + (now - sub.refilled_at) * FRAME_RATE)
            sub.refilled_at = now
            if sub.tokens < 1.0:
                self.counters["frames_rate_limited"] += 1
                continue
            sub.tokens -= 1.0
            self.counters["frames_in"] += 1
            sub.frames_in += 1
            if sub.waiting:
                sub.waiting = False
                sub.link.start(now)
            sub.link.receive(protocol, information, now)
            touched[slot] = sub
        for sub in touched.values():
            self._pump(sub)

    def status(self) -> dict[str, Any]:
        """Counters and links by phase, for ``l2tpfast status``."""
        links: dict[str, int] = {}
        for sub in self.by_key.values():
            links[sub.link.phase.value] = links.get(sub.link.phase.value, 0) + 1
        out: dict[str, Any] = {
            "links": links,
            **self.counters,
            "ip_batch_errors": self.ip.errors,
            "last_up_at": self.last_up_at,
        }
        if self.pool is not None or self.pools:
            pools = self._all_pools()
            out["pool"] = {"size": sum(p.size for p in pools), "in_use": sum(p.in_use for p in pools)}
            if self.pools:
                out["pools"] = {name: {"size": p.size, "in_use": p.in_use} for name, p in self.pools.items()}
        return out

    def session_status(self, key: SessionKey) -> dict[str, Any] | None:
        sub = self.by_key.get(key)
        if sub is None:
            return None
        return {
            **sub.link.status(),
            "address": str(sub.address) if sub.address else None,
            "prefix": str(sub.prefix) if sub.prefix else None,
            "tun": sub.tun.name if sub.tun is not None else None,
            "frames_in": sub.frames_in,
            "frames_out": sub.frames_out,
            "acct_session_id": sub.acct.session.acct_session_id if sub.acct is not None else None,
        }

    @staticmethod
    def _ctx(sub: Subscriber) -> dict[str, Any]:
        """The log context of a subscriber's lines: IDs, peer and user (JSON fields, text prefix)."""
        return ctx(tunnel_id=sub.key[0], session_id=sub.key[1], peer=sub.peer, username=sub.username)

    # --- the links' outputs ------------------------------------------------------------------

    def _pump(self, sub: Subscriber) -> None:
        link = sub.link
        while True:
            frames = link.frames_to_send()
            for protocol, information in frames:
                self._send_frame(sub, protocol, information)
            event = link.next_event()
            if event is None and not frames:
                break
            if event is not None:
                self._on_event(sub, event)
        when = link.get_timer()
        if when is not None:
            self._seq += 1
            heapq.heappush(self._timers, (when, self._seq, sub.key))
            self._arm()

    def _send_frame(self, sub: Subscriber, protocol: int, information: bytes) -> None:
        """PPP framing and the L2TP data header from the fast path's session (its Ns when sequenced)."""
        self._slots[0], self._protocols[0], self._lengths[0] = sub.slot, protocol, len(information)
        if not self.path.encapsulate(
            self._slots, self._protocols, self._lengths, self._headers, self._header_lengths
        ):
            return
        header = bytes(self._headers[0, : self._header_lengths[0]])
        self._send(header + information, sub.peer, sub.local)
        self.counters["frames_out"] += 1
        sub.frames_out += 1

    def _on_event(self, sub: Subscriber, event: PppEvent) -> None:
        tid, sid = sub.key
        if isinstance(event, AuthenticationRequested):
            self._authenticate(sub, event)
        elif isinstance(event, Authenticated):
            sub.username = event.username or sub.username
            log.info(
                "session %d:%d PPP authenticated %s user=%r method=%s",
                tid, sid, "to peer" if event.local else "peer", event.username,
                event.method.name if event.method is not None else "proxy",
                extra=self._ctx(sub),
            )  # fmt: skip
        elif isinstance(event, AuthenticationFailed):
            if not event.local:
                self.counters["auth_rejected"] += 1
            log.warning(
                "session %d:%d PPP authentication failed user=%r (%s)",
                tid,
                sid,
                event.username,
                event.message,
                extra=self._ctx(sub),
            )
        elif isinstance(event, NetworkUp):
            try:
                self._network_up(sub, event)
            except OSError as exc:
                # A TUN device or route the host refused: this session cannot carry traffic.
                log.error("session %d:%d cannot be set up: %s", tid, sid, exc, extra=self._ctx(sub))
                self._close_session(tid, sid, CDNResult.TEMPORARY_NO_FACILITIES, "no TUN device or route")
        elif isinstance(event, NetworkDown):
            log.info(
                "session %d:%d PPP %s down", tid, sid, Protocol(event.protocol).name, extra=self._ctx(sub)
            )
        elif isinstance(event, LinkClosed):
            sub.closed = event
            if event.reason.startswith("keepalive"):
                self.counters["keepalive_failures"] += 1
            log.info("session %d:%d PPP link closed (%s)", tid, sid, event.reason, extra=self._ctx(sub))
            if sub.key in self.by_key:
                result = CDNResult.LOSS_OF_CARRIER if event.reason.startswith(("keepalive", "looped")) else (
                    CDNResult.ADMINISTRATIVE if event.by_peer else CDNResult.GENERAL_ERROR
                )  # fmt: skip
                self._close_session(tid, sid, result, f"PPP: {event.reason}", disconnect_cause(event))

    def _authenticate(self, sub: Subscriber, event: AuthenticationRequested) -> None:
        request = event.request
        if request is not None and self.aaa is not None:
            # RADIUS answers later; the link waits (its authenticator keeps its own timeout).
            task = asyncio.get_running_loop().create_task(self._radius_authenticate(sub, request))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        decision = self.backend.authenticate(request) if request is not None else AuthDecision(True)
        self._decide(sub, request, decision)

    async def _radius_authenticate(self, sub: Subscriber, request: AuthRequest) -> None:
        info = self.aaa.session_info(sub.key, sub.call, request.username)
        decision, reply = await self.aaa.authenticate(request, info)
        if self.by_key.get(sub.key) is not sub:
            return  # the session ended while the server thought
        if decision.accepted:
            sub.acct = self.aaa.accounting_for(info, reply)
        self._decide(sub, request, decision)
        self._pump(sub)

    def _all_pools(self) -> list[AddressPool]:
        return ([self.pool] if self.pool is not None else []) + list(self.pools.values())

    def _pool_for(self, sub: Subscriber, decision: AuthDecision) -> AddressPool | None:
        """The pool a login takes its address from: the RADIUS Framed-Pool's, else the default."""
        name = decision.attributes.get("framed_pool")
        if not isinstance(name, str):
            return self.pool
        if name not in self.pools:
            self.counters["unknown_pool"] += 1
            log.warning("session %d:%d Framed-Pool %r is not in [lns.pools]: default pool", *sub.key, name)
            return self.pool
        return self.pools[name]

    def _decide(self, sub: Subscriber, request: AuthRequest | None, decision: AuthDecision) -> None:
        username = request.username if request is not None else None
        duplicate = username is not None and bool(self.by_user.get(username))
        if decision.accepted and duplicate and self.lns is not None and not self.lns.duplicate_logins:
            self.counters["duplicate_logins_refused"] += 1
            decision = AuthDecision(False, "duplicate login")
        address: IPv4Address | None = None
        pool = self._pool_for(sub, decision)
        if decision.accepted and pool is not None:
            wanted = decision.framed_address
            # A given address is held in the pool that contains it, or (outside every pool: its
            # own kernel route when IPCP opens) in the chosen one, so no two sessions share it.
            holder = next((p for p in self._all_pools() if wanted is not None and p.contains(wanted)), pool)
            if wanted is not None and holder.reserve(wanted, sub.key):
                address, pool = wanted, holder
            else:
                address = pool.allocate(sub.key)
            sub.pool = pool
            if address is None:
                self.counters["pool_exhausted"] += 1
                decision = AuthDecision(False, "no address available")
        if decision.accepted:
            self.counters["auth_accepted"] += 1
            sub.address = address
            if username is not None:
                sub.username = username
                self.by_user.setdefault(username, set()).add(sub.key)
        else:
            sub.acct = None
        sub.link.complete_authentication(decision, self._now(), peer_address=address)

    def _network_up(self, sub: Subscriber, event: NetworkUp) -> None:
        tid, sid = sub.key
        link = sub.link
        flags = self.path.get_flags(sub.slot) & ~(SessionFlag.ACFC | SessionFlag.PFC)
        peer = link.lcp.peer_options
        # RFC 1661 6.5, 6.6: the peer asked to receive compressed headers; we may send them.
        if peer.acfc:
            flags |= SessionFlag.ACFC
        if peer.pfc:
            flags |= SessionFlag.PFC
        self.path.set_flags(sub.slot, flags)
        if event.protocol != Protocol.IPCP:
            self._ipv6_up(sub, event)
            return
        self.counters["links_up"] += 1
        self.last_up_at = self._now()
        if self.server:
            address = event.peer_address
            if address is None:
                return
            sub.address = address
            self.path.route_add(address.packed, sub.slot)
            self.path.set_source(sub.slot, address.packed)
            if not any(p.contains(address) for p in self._all_pools()):
                self.ip.add(f"route replace {address}/32 dev {self.tun.name}")
                sub.kernel_route = True
            if sub.acct is not None and not sub.acct.started:
                self.aaa.started(sub.acct, self.counters_of(sub), address)
                self._schedule_acct(sub)
        elif self.session_tun is not None:
            address = event.local_address
            if address is None:
                return
            sub.address = address
            self._own_tun(sub, address, event.peer_address)
        else:
            address = event.local_address
            if address is None:
                return
            sub.address = address
            self.path.route_add(address.packed, sub.slot)
            if self.tun is not None:
                self.ip.add(f"address replace {address}/32 dev {self.tun.name}")
                sub.kernel_route = True
            # The far end's address goes into the shared TUN device (any session can reach it:
            # the fast path picks the session by source); one route however many sessions use it.
            if event.peer_address is not None and self.tun is not None:
                sub.peer_route = event.peer_address
                count = self._peer_routes.get(event.peer_address, 0)
                if count == 0:
                    self.ip.add(f"route replace {event.peer_address}/32 dev {self.tun.name}")
                self._peer_routes[event.peer_address] = count + 1
        sub.routed = True
        log.info(
            "session %d:%d PPP up user=%r address=%s peer=%s dns=%s",
            tid, sid, sub.username, event.local_address if not self.server else address,
            event.peer_address, ",".join(map(str, event.dns)) or "-",
            extra=self._ctx(sub),
        )  # fmt: skip
        if self.on_up is not None and sub.address is not None:
            self.on_up(sub.key, sub.address)

    def _own_tun(self, sub: Subscriber, address: IPv4Address, peer: IPv4Address | None) -> None:
        """A TUN device for this session alone (``[lac] session_tun``), as pppd's pppN."""
        from l2tpfast.runtime.tun import TunDevice

        assert self.session_tun is not None and self.dataplane is not None
        device = TunDevice.open(self.session_tun, mtu=min(self.mtu, self.link_mru(sub)))
        try:
            device.up([f"{address}/32"], queue=self.tun_queue)
            if peer is not None:
                device.add_route(f"{peer}/32", append=True)
        except OSError:
            device.close()
            raise
        sub.tun = device
        self.path.route_add(address.packed, sub.slot)
        self.path.set_tun(sub.slot, device.fileno())
        self.dataplane.add_tun_reader(device)
        log.info("session %d:%d TUN device %s", *sub.key, device.name, extra=self._ctx(sub))

    @staticmethod
    def link_mru(sub: Subscriber) -> int:
        """The largest IP packet the peer takes (its MRU, RFC 1661 6.1)."""
        return int(sub.link.lcp.peer_options.mru)

    def _ipv6_up(self, sub: Subscriber, event: NetworkUp) -> None:
        """IPv6CP is up: the server gives the subscriber its /64 by Router Advertisement."""
        tid, sid = sub.key
        log.info(
            "session %d:%d PPP IPv6CP up local=%s peer=%s",
            tid, sid, (event.local_identifier or b"").hex(), (event.peer_identifier or b"").hex(),
            extra=self._ctx(sub),
        )  # fmt: skip
        if not self.server or self.prefix_pool is None or sub.prefix is not None:
            return
        prefix = self.prefix_pool.allocate(sub.key)
        if prefix is None:
            self.counters["pool_exhausted"] += 1
            log.warning("session %d:%d IPv6 pool exhausted: no prefix", tid, sid, extra=self._ctx(sub))
            return
        sub.prefix = prefix
        self.path.route_add(prefix.network_address.packed, sub.slot)  # the fast path keys on the /64
        self._send_ra(sub, self._now())
        log.info("session %d:%d IPv6 prefix %s", tid, sid, prefix, extra=self._ctx(sub))

    def _send_ra(self, sub: Subscriber, now: float) -> None:
        """RFC 4861 6.2.4: a few Router Advertisements at first, then one every RA_INTERVAL."""
        from l2tpfast.ppp.ra import build_router_advertisement

        ipv6cp = sub.link.ipv6cp
        if sub.prefix is None or ipv6cp is None or ipv6cp.local_identifier is None:
            return
        packet = build_router_advertisement(
            source_identifier=ipv6cp.local_identifier,
            prefix=sub.prefix,
            router_lifetime=RA_ROUTER_LIFETIME,
            mtu=min(self.mtu, self.link_mru(sub)),
            dns=self.lns.ipv6_dns if self.lns is not None else (),
        )
        self._send_frame(sub, Protocol.IPV6, packet)
        sub.ra_sent += 1
        self.counters["router_advertisements"] += 1
        sub.ra_next = now + (RA_INITIAL_INTERVAL if sub.ra_sent < RA_INITIAL_COUNT else RA_INTERVAL)
        self._seq += 1
        heapq.heappush(self._timers, (sub.ra_next, self._seq, sub.key))
        self._arm()

    def _release(self, sub: Subscriber) -> None:
        if sub.prefix is not None:
            self.path.route_del(sub.prefix.network_address.packed)
            if self.prefix_pool is not None:
                self.prefix_pool.release(sub.prefix)
            sub.prefix = None
        sub.ra_next = None
        if sub.tun is not None:
            if self.dataplane is not None:
                self.dataplane.remove_tun_reader(sub.tun)
            self.path.set_tun(sub.slot, -1)
            sub.tun.close()
            sub.tun = None
        if sub.routed and sub.address is not None:
            self.path.route_del(sub.address.packed)
        if sub.kernel_route and sub.address is not None and self.tun is not None:
            verb = f"route del {sub.address}/32 dev" if self.server else f"address del {sub.address}/32 dev"
            self.ip.add(f"{verb} {self.tun.name}")
        if sub.peer_route is not None and self.tun is not None:
            count = self._peer_routes.get(sub.peer_route, 1) - 1
            if count <= 0:
                self._peer_routes.pop(sub.peer_route, None)
                self.ip.add(f"route del {sub.peer_route}/32 dev {self.tun.name}")
            else:
                self._peer_routes[sub.peer_route] = count
        if self.server and sub.address is not None and sub.pool is not None:
            sub.pool.release(sub.address)
        if sub.username is not None:
            keys = self.by_user.get(sub.username)
            if keys is not None:
                keys.discard(sub.key)
                if not keys:
                    del self.by_user[sub.username]

    # --- one timer for all links -------------------------------------------------------------

    def _arm(self) -> None:
        if not self._timers:
            return
        when = self._timers[0][0]
        if self._timer_at is not None and self._timer_at <= when:
            return
        if self._timer_handle is not None:
            self._timer_handle.cancel()
        self._timer_at = when
        self._timer_handle = asyncio.get_running_loop().call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer_handle = None
        self._timer_at = None
        now = self._now()
        due: dict[SessionKey, Subscriber] = {}
        while self._timers and self._timers[0][0] <= now:
            _, _, key = heapq.heappop(self._timers)
            sub = self.by_key.get(key)
            if sub is not None:
                due[key] = sub
        for sub in due.values():
            if sub.ra_next is not None and sub.ra_next <= now:
                self._send_ra(sub, now)
            if sub.acct is not None:
                self._acct_due(sub, now)
            when = sub.link.get_timer()
            if when is not None and when <= now:
                sub.link.handle_timer(now)
            self._pump(sub)
        self._arm()
