"""A sans-IO Dynamic Authorization server: Disconnect-Request and CoA-Request (RFC 5176 2, 3).

Theory of operation. :class:`DaeServer` is the NAS end of RFC 5176. The shell hands it every
datagram (:meth:`~DaeServer.receive_datagram`); it returns a :class:`DaeRequest` for a request
that verifies, and the daemon decides (find the session, end it or change it), then
:meth:`~DaeServer.build_response` makes the ACK or NAK for the shell to send. Nothing here acts
on a session.

- Clients. A request is taken only from a configured client address, with that client's secret
  (RFC 5176 2.3: the same rules as RFC 2865 3, where a request "from a client for which the RADIUS
  server does not have a shared secret MUST be silently discarded"). Dropped and counted.
- Authenticity. The Request Authenticator is computed as for an Accounting-Request (RFC 5176 2.3,
  RFC 2866 3); a Message-Authenticator, when present, must verify too (RFC 5176 3.4). A request
  that fails either is silently discarded (RFC 5176 2.3, RFC 2865 3), counted.
- Duplicates. RFC 5176 2.3 asks the NAS to detect a retransmitted request the way RFC 5080 2.2.2
  describes: same client address and port, Identifier and Request Authenticator, within a short
  time. A duplicate is not handed up again; the response built for the first copy is queued for
  sending once more (:meth:`~DaeServer.datagrams_to_send`), so the daemon never acts twice.
  Responses are kept ``cache_time`` seconds (at most ``cache_size`` of them).
- Responses. Disconnect-ACK/NAK (41/42) and CoA-ACK/NAK (44/45) with the Response Authenticator
  of RFC 5176 2.3, Error-Cause (RFC 5176 3.5) when given, and the request's Proxy-State
  attributes copied in order (RFC 5176 3.1, RFC 2865 5.33). They carry no Message-Authenticator:
  RFC 5176 3.4 makes it optional, and implementations disagree on the authenticator it is
  computed with in these responses (RFC 5176 3.4 the Request Authenticator, FreeRADIUS 3's
  rad_sign() 16 zero octets), so a client could drop the response for it.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any, Literal

from l2tpfast.aaa.radius import _pyrad
from l2tpfast.aaa.radius._pyrad import Item, RawAttribute
from l2tpfast.aaa.radius.client import Address, canonical_host
from l2tpfast.aaa.radius.constants import Code
from l2tpfast.errors import LocalProtocolError

DAE_PORT = 3799
DaeKind = Literal["disconnect", "coa"]

COUNTERS = (
    "requests",
    "disconnect_requests",
    "coa_requests",
    "duplicates",
    "unknown_client",
    "bad_authenticator",
    "malformed",
    "unknown_code",
    "acks",
    "naks",
)


@dataclass(frozen=True)
class DaeRequest:
    """A verified Disconnect-Request or CoA-Request (RFC 5176 2.1, 2.2, 2.3)."""

    kind: DaeKind
    identifier: int
    #: The client's (address, port), where the response goes.
    addr: Address
    #: The Request Authenticator, needed for the response's.
    authenticator: bytes = field(repr=False)
    # RFC 5176 3: the session identification attributes.
    acct_session_id: str | None = None
    user_name: str | None = None
    framed_ip_address: IPv4Address | None = None
    nas_port: int | None = None
    calling_station_id: str | None = None
    # RFC 5176 3: the NAS identification attributes (the daemon checks them against its own).
    nas_identifier: str | None = None
    nas_ip_address: IPv4Address | None = None
    # CoA changes (RFC 5176 3.2): the authorization attributes of an Access-Accept.
    session_timeout: int | None = None
    idle_timeout: int | None = None
    acct_interim_interval: int | None = None
    class_values: tuple[bytes, ...] = ()
    #: RFC 2865 5.6 / RFC 5176 3.2 (Authorize-Only is 17).
    service_type: int | None = None
    #: RFC 5176 3.1, RFC 2865 5.33: copied into the response.
    proxy_state: tuple[bytes, ...] = field(default=(), repr=False)
    #: Every attribute: (Vendor-Id or 0, Type, Value).
    attributes: tuple[RawAttribute, ...] = field(default=(), repr=False)

    @property
    def identifies_session(self) -> bool:
        """Whether any session identification attribute is present (RFC 5176 3)."""
        return any(
            value is not None
            for value in (
                self.acct_session_id,
                self.user_name,
                self.framed_ip_address,
                self.nas_port,
                self.calling_station_id,
            )
        )


class DaeServer:
    """RFC 5176 Dynamic Authorization server without I/O (see the module docstring)."""

    def __init__(
        self,
        clients: Mapping[str, bytes],
        *,
        cache_time: float = 30.0,
        cache_size: int = 4096,
        require_message_authenticator: bool = False,
    ) -> None:
        self._secrets: dict[str, bytes] = {}
        for host, secret in clients.items():
            try:
                address = canonical_host(host)
            except ValueError:
                raise ValueError(f"DAE client {host!r}: not an IP address") from None
            if not secret:
                raise ValueError(f"DAE client {address}: the secret MUST NOT be empty (RFC 2865 3)")
            self._secrets[address] = secret
        self.cache_time = cache_time
        self.cache_size = cache_size
        self.require_message_authenticator = require_message_authenticator
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        #: (client address, port, Identifier, Request Authenticator) -> (expiry, response or None).
        self._seen: OrderedDict[tuple[str, int, int, bytes], tuple[float, bytes | None]] = OrderedDict()
        self._outbox: deque[tuple[bytes, Address]] = deque()

    def __repr__(self) -> str:
        return f"DaeServer(clients={sorted(self._secrets)}, counters={self.counters})"

    @property
    def clients(self) -> tuple[str, ...]:
        return tuple(self._secrets)

    def receive_datagram(self, data: bytes, addr: tuple[Any, ...], now: float) -> DaeRequest | None:
        """The verified request in ``data`` from ``addr``, or None (dropped, or a duplicate)."""
        self._expire(now)
        try:
            source: Address = (canonical_host(str(addr[0])), int(addr[1]))
        except (ValueError, IndexError, TypeError):
            self.counters["unknown_client"] += 1
            return None
        secret = self._secrets.get(source[0])
        if secret is None:
            self.counters["unknown_client"] += 1
            return None
        decoded = _pyrad.decode(data)
        if decoded is None:
            self.counters["malformed"] += 1
            return None
        if decoded.code not in (Code.DISCONNECT_REQUEST, Code.COA_REQUEST):
            self.counters["unknown_code"] += 1
            return None
        has_ma = decoded.has(0, _pyrad.MESSAGE_AUTHENTICATOR)
        if (self.require_message_authenticator and not has_ma) or not _pyrad.verify_request(
            decoded.data, secret
        ):
            self.counters["bad_authenticator"] += 1
            return None
        key = (source[0], source[1], decoded.identifier, decoded.authenticator)
        seen = self._seen.get(key)
        if seen is not None:
            # RFC 5176 2.3, RFC 5080 2.2.2: answer a retransmission again, do not act again.
            self.counters["duplicates"] += 1
            if seen[1] is not None:
                self._outbox.append((seen[1], source))
            return None
        self._remember(key, now, None)
        self.counters["requests"] += 1
        kind: DaeKind = "disconnect" if decoded.code == Code.DISCONNECT_REQUEST else "coa"
        self.counters[f"{kind}_requests"] += 1
        return _request(kind, decoded, source)

    def build_response(self, request: DaeRequest, ack: bool, error_cause: int | None = None) -> bytes:
        """The ACK or NAK for ``request``, remembered for its retransmissions (RFC 5176 2.3, 3.5)."""
        secret = self._secrets.get(request.addr[0])
        if secret is None:
            raise LocalProtocolError(f"no DAE client {request.addr[0]} to answer")
        if request.kind == "disconnect":
            code = Code.DISCONNECT_ACK if ack else Code.DISCONNECT_NAK
        else:
            code = Code.COA_ACK if ack else Code.COA_NAK
        items: list[Item] = [] if error_cause is None else [("Error-Cause", error_cause)]
        raw = [(_pyrad.PROXY_STATE, value) for value in request.proxy_state]
        data = _pyrad.encode_reply(code, request.identifier, secret, request.authenticator, items, raw)
        self.counters["acks" if ack else "naks"] += 1
        key = (request.addr[0], request.addr[1], request.identifier, request.authenticator)
        if key in self._seen:
            self._seen[key] = (self._seen[key][0], data)
        return data

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        """Cached responses to send again for retransmitted requests."""
        out = list(self._outbox)
        self._outbox.clear()
        return out

    def _remember(self, key: tuple[str, int, int, bytes], now: float, response: bytes | None) -> None:
        self._seen[key] = (now + self.cache_time, response)
        while len(self._seen) > self.cache_size:
            self._seen.popitem(last=False)

    def _expire(self, now: float) -> None:
        while self._seen:
            expiry, _ = next(iter(self._seen.values()))
            if expiry > now:
                return
            self._seen.popitem(last=False)


def _first(values: list[Any]) -> Any:
    return values[0] if values else None


def _request(kind: DaeKind, decoded: _pyrad.Decoded, source: Address) -> DaeRequest:
    attrs = decoded.attributes
    framed = _pyrad.ipv4_addresses(attrs, "Framed-IP-Address")
    nas_ip = _pyrad.ipv4_addresses(attrs, "NAS-IP-Address")
    return DaeRequest(
        kind=kind,
        identifier=decoded.identifier,
        addr=source,
        authenticator=decoded.authenticator,
        acct_session_id=_first(_pyrad.texts(attrs, "Acct-Session-Id")),
        user_name=_first(_pyrad.texts(attrs, "User-Name")),
        framed_ip_address=framed[0] if framed else None,
        nas_port=_first(_pyrad.integers(attrs, "NAS-Port")),
        calling_station_id=_first(_pyrad.texts(attrs, "Calling-Station-Id")),
        nas_identifier=_first(_pyrad.texts(attrs, "NAS-Identifier")),
        nas_ip_address=nas_ip[0] if nas_ip else None,
        session_timeout=_first(_pyrad.integers(attrs, "Session-Timeout")),
        idle_timeout=_first(_pyrad.integers(attrs, "Idle-Timeout")),
        acct_interim_interval=_first(_pyrad.integers(attrs, "Acct-Interim-Interval")),
        class_values=tuple(_pyrad.octets(attrs, "Class")),
        service_type=_first(_pyrad.integers(attrs, "Service-Type")),
        proxy_state=tuple(value for vendor, t, value in attrs if vendor == 0 and t == _pyrad.PROXY_STATE),
        attributes=attrs,
    )
