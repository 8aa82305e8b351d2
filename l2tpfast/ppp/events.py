"""Events of one PPP link (past-tense frozen dataclasses, like the control plane's)."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from l2tpfast.ppp.auth.base import AuthRequest
from l2tpfast.ppp.constants import AuthMethod


class PppEvent:
    """Base of every PPP link event."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class AuthenticationRequested(PppEvent):
    """The authenticator needs a decision: answer with ``PppLink.complete_authentication``.

    ``request`` is None when the link requires no authentication; the answer still carries the
    address the peer gets.
    """

    request: AuthRequest | None
    proxied: bool = False


@dataclass(frozen=True, slots=True)
class Authenticated(PppEvent):
    """One direction of authentication succeeded (``local``: we proved ourselves to the peer)."""

    username: str
    method: AuthMethod | None
    local: bool


@dataclass(frozen=True, slots=True)
class AuthenticationFailed(PppEvent):
    username: str
    method: AuthMethod | None
    message: str
    local: bool


@dataclass(frozen=True, slots=True)
class NetworkUp(PppEvent):
    """An NCP reached Opened: IPCP (addresses) or IPv6CP (interface identifiers)."""

    protocol: int
    local_address: IPv4Address | None = None
    peer_address: IPv4Address | None = None
    dns: tuple[IPv4Address, ...] = ()
    local_identifier: bytes | None = None
    peer_identifier: bytes | None = None


@dataclass(frozen=True, slots=True)
class NetworkDown(PppEvent):
    protocol: int


@dataclass(frozen=True, slots=True)
class LinkClosed(PppEvent):
    """The link is dead: the session carrying it should end (CDN). Emitted once."""

    reason: str
    by_peer: bool
