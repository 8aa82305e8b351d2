"""The asyncio shell of RADIUS: the client's UDP socket and one timer (RFC 2865 3, RFC 2866 3), and
the Dynamic Authorization listener (RFC 5176 2.3, port 3799).

Only bytes, addresses and time pass through here. :class:`RadiusService` feeds a sans-IO
:class:`~l2tpfast.aaa.radius.client.RadiusClient`: one non-blocking UDP socket per address family
the servers use (normally one), bound to an ephemeral port, so retransmissions leave from the same
source port (RFC 2865 2.5); one loop timer, re-armed from ``get_timer()`` after every input.
:class:`DaeListener` feeds a :class:`~l2tpfast.aaa.radius.dae.DaeServer` and hands each verified
request to a callback, synchronously, then sends the answer the callback chose.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
from collections.abc import Callable, Hashable
from typing import Any

from l2tpfast.aaa.radius.client import (
    AccessAnswered,
    AccountingAnswered,
    Address,
    RadiusClient,
    RadiusSettings,
    Rand,
    RequestFailed,
)
from l2tpfast.aaa.radius.constants import ErrorCause
from l2tpfast.aaa.radius.dae import DaeRequest, DaeServer
from l2tpfast.aaa.radius.packet import AccessReply, AccountingRecord, SessionInfo
from l2tpfast.ppp.auth.base import AuthRequest

log = logging.getLogger(__name__)

#: Datagrams read per readable event, so one busy socket cannot starve the loop.
_BATCH = 64
_MAX_DATAGRAM = 65535

#: What the DAE callback returns: (ACK?, Error-Cause or None).
DaeVerdict = tuple[bool, int | None]


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _udp_socket(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            # One family per socket: no IPv4-mapped addresses to translate.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setblocking(False)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


class RadiusService:
    """RADIUS authentication and accounting for the daemon, over :class:`RadiusClient`."""

    def __init__(
        self,
        settings: RadiusSettings,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        source_address: str | None = None,
        rand: Rand = os.urandom,
    ) -> None:
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._client = RadiusClient(settings, rand)
        self._socks: dict[socket.AddressFamily, socket.socket] = {}
        self._auth: dict[Hashable, asyncio.Future[AccessReply | None]] = {}
        self._acct: dict[Hashable, asyncio.Future[bool]] = {}
        self._tokens = itertools.count(1)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._closed = False
        self.send_errors = 0
        families = {_family(s.host) for s in (*settings.auth_servers, *settings.acct_servers)}
        try:
            for family in sorted(families):
                if source_address is not None and _family(source_address) == family:
                    host = source_address
                else:
                    host = "::" if family == socket.AF_INET6 else "0.0.0.0"
                sock = _udp_socket(family, host, 0)
                self._socks[family] = sock
                self._loop.add_reader(sock.fileno(), self._on_readable, sock)
        except BaseException:
            self.close()
            raise

    @property
    def client(self) -> RadiusClient:
        return self._client

    @property
    def counters(self) -> dict[str, int]:
        return {**self._client.counters, "send_errors": self.send_errors}

    @property
    def local_addresses(self) -> list[Address]:
        """The (address, port) each socket is bound to."""
        return [sock.getsockname()[:2] for sock in self._socks.values()]

    async def authenticate(self, request: AuthRequest, session: SessionInfo) -> AccessReply | None:
        """The server's reply, or None when no server answered (or the request cannot be sent)."""
        if self._closed:
            return None
        token = next(self._tokens)
        future: asyncio.Future[AccessReply | None] = self._loop.create_future()
        self._auth[token] = future
        self._client.access_request(token, request, session, self._loop.time())
        self._service()
        try:
            return await future
        except asyncio.CancelledError:
            self._auth.pop(token, None)
            if not self._closed:
                self._client.cancel(token, self._loop.time())
                self._service()
            raise

    def account(self, record: AccountingRecord) -> asyncio.Future[bool]:
        """Send a record; the future (await it or not) says whether a server acknowledged it."""
        future: asyncio.Future[bool] = self._loop.create_future()
        if self._closed:
            future.set_result(False)
            return future
        token = next(self._tokens)
        self._acct[token] = future
        self._client.accounting_request(token, record, self._loop.time())
        self._service()
        return future

    def close(self) -> None:
        """Close the sockets; requests still outstanding end as unanswered."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for sock in self._socks.values():
            self._loop.remove_reader(sock.fileno())
            sock.close()
        self._socks.clear()
        for auth in self._auth.values():
            if not auth.done():
                auth.set_result(None)
        for acct in self._acct.values():
            if not acct.done():
                acct.set_result(False)
        self._auth.clear()
        self._acct.clear()

    # --- the loop's side -----------------------------------------------------------------------

    def _on_readable(self, sock: socket.socket) -> None:
        for _ in range(_BATCH):
            try:
                data, addr = sock.recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                # An ICMP error of an earlier send; the retransmission timer covers the loss.
                log.debug("radius: socket error %s", exc)
                continue
            self._client.receive_datagram(data, addr, self._loop.time())
        self._service()

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, None
        self._client.handle_timer(self._loop.time())
        self._service()

    def _service(self) -> None:
        if self._closed:
            return
        for data, addr in self._client.datagrams_to_send():
            sock = self._socks.get(_family(addr[0]))
            try:
                if sock is None:
                    raise OSError(f"no socket for {addr[0]}")
                sock.sendto(data, addr)
            except OSError as exc:
                self.send_errors += 1
                log.debug("radius: send to %s failed: %s", addr, exc)
        while (event := self._client.next_event()) is not None:
            if isinstance(event, AccessAnswered):
                self._resolve(self._auth.pop(event.token, None), event.reply)
            elif isinstance(event, AccountingAnswered):
                self._resolve(self._acct.pop(event.token, None), True)
            elif isinstance(event, RequestFailed):
                log.warning("radius: request failed: %s", event.reason)
                self._resolve(self._auth.pop(event.token, None), None)
                self._resolve(self._acct.pop(event.token, None), False)
        deadline = self._client.get_timer()
        if deadline != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = None if deadline is None else self._loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline

    @staticmethod
    def _resolve(future: asyncio.Future[Any] | None, value: object) -> None:
        if future is not None and not future.done():
            future.set_result(value)


class DaeListener:
    """The RFC 5176 port: verified requests go to ``on_request``, its verdict goes back as ACK/NAK."""

    def __init__(
        self,
        dae: DaeServer,
        host: str,
        port: int,
        on_request: Callable[[DaeRequest], DaeVerdict],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self.dae = dae
        self._on_request = on_request
        self._sock = _udp_socket(_family(host), host, port)
        self._loop.add_reader(self._sock.fileno(), self._on_readable)
        self.send_errors = 0

    @property
    def address(self) -> Address:
        host, port = self._sock.getsockname()[:2]
        return (host, port)

    def close(self) -> None:
        if self._sock.fileno() >= 0:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()

    def _on_readable(self) -> None:
        for _ in range(_BATCH):
            try:
                data, addr = self._sock.recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                log.debug("dae: socket error %s", exc)
                continue
            request = self.dae.receive_datagram(data, addr, self._loop.time())
            for response, dest in self.dae.datagrams_to_send():
                self._send(response, dest)
            if request is None:
                continue
            try:
                ack, error_cause = self._on_request(request)
            except Exception:
                # A bug in the handler: the client learns we could not act (RFC 5176 3.5).
                log.exception("dae: handler failed for %s request %d", request.kind, request.identifier)
                ack, error_cause = False, ErrorCause.RESOURCES_UNAVAILABLE
            log.info(
                "dae: %s request from %s (Acct-Session-Id %r): %s%s",
                request.kind,
                request.addr[0],
                request.acct_session_id,
                "ACK" if ack else "NAK",
                "" if error_cause is None else f" Error-Cause {error_cause}",
            )
            self._send(self.dae.build_response(request, ack, error_cause), request.addr)

    def _send(self, data: bytes, dest: Address) -> None:
        try:
            self._sock.sendto(data, dest)
        except OSError as exc:
            self.send_errors += 1
            log.debug("dae: send to %s failed: %s", dest, exc)
