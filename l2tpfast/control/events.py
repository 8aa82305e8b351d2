"""Events the control-plane core reports (STYLE.md 1): past-tense frozen dataclasses.

The shell reads them with ``Endpoint.next_event()``; the data plane learns of
sessions from :class:`SessionEstablished` and :class:`SessionClosed`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from l2tpfast.wire.avp import Accm, CallErrors, PppDisconnectCause, Q931Cause

Address = tuple[str, int]


class Role(enum.Enum):
    LAC = "lac"
    LNS = "lns"


class CallType(enum.Enum):
    """RFC 2661 7.4 incoming calls (ICRQ from the LAC), 7.5 outgoing calls (OCRQ from the LNS)."""

    INCOMING = "incoming"
    OUTGOING = "outgoing"


@dataclass(frozen=True, slots=True)
class ProxyInfo:
    """Proxy LCP and proxy authentication (RFC 2661 4.4.5), as the LAC negotiated them."""

    initial_received_lcp_confreq: bytes | None = None
    last_sent_lcp_confreq: bytes | None = None
    last_received_lcp_confreq: bytes | None = None
    authen_type: int | None = None
    authen_name: str | None = None
    authen_challenge: bytes | None = None
    authen_id: int | None = None
    authen_response: bytes | None = None

    @property
    def has_lcp(self) -> bool:
        return self.last_sent_lcp_confreq is not None and self.last_received_lcp_confreq is not None


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What the ICRQ/ICCN or OCRQ/OCCN said about the call (RFC 2661 4.4.4, 4.4.5)."""

    call_serial_number: int = 0
    bearer_type: int | None = None
    framing_type: int | None = None
    calling_number: str | None = None
    called_number: str | None = None
    sub_address: str | None = None
    physical_channel_id: int | None = None
    tx_connect_speed: int | None = None
    rx_connect_speed: int | None = None
    private_group_id: bytes | None = None
    minimum_bps: int | None = None
    maximum_bps: int | None = None
    #: Broadband Forum TR-101 line identification a carrier LAC adds to ICRQ (vendor 3561
    #: AVPs 1 and 2); an LNS hands them to RADIUS as Agent-Circuit-Id/Agent-Remote-Id (RFC 4679).
    agent_circuit_id: str | None = None
    agent_remote_id: str | None = None


class Event:
    """Base of every control-plane event."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class TunnelEstablished(Event):
    local_tunnel_id: int
    peer_tunnel_id: int
    peer: Address
    local: str | None
    peer_host_name: str
    peer_vendor_name: str | None
    initiator: bool


@dataclass(frozen=True, slots=True)
class TunnelClosed(Event):
    """The tunnel is gone for its users (StopCCN sent or received, or the peer stopped answering)."""

    local_tunnel_id: int
    peer_tunnel_id: int
    peer: Address
    result_code: int
    error_code: int | None
    message: str | None
    by_peer: bool


@dataclass(frozen=True, slots=True)
class SessionEstablished(Event):
    local_tunnel_id: int
    local_session_id: int
    peer_tunnel_id: int
    peer_session_id: int
    peer: Address
    role: Role
    call_type: CallType
    call: CallInfo
    sequencing_required: bool
    proxy: ProxyInfo | None


@dataclass(frozen=True, slots=True)
class SessionConnected(Event):
    """The peer acknowledged our ICCN (or OCCN): it has the session, so data we send now is taken.

    Follows :class:`SessionEstablished` on the side that sent the connect message; a PPP client
    starts LCP at the latest here (RFC 2661 7.4.1 makes the call up when ICCN is sent, but an LNS
    that has not read the ICCN yet drops data for the session).
    """

    local_tunnel_id: int
    local_session_id: int


@dataclass(frozen=True, slots=True)
class SessionClosed(Event):
    local_tunnel_id: int
    local_session_id: int
    peer_session_id: int
    result_code: int
    error_code: int | None
    message: str | None
    q931_cause: Q931Cause | None
    by_peer: bool
    #: The session had reached established (data may have flowed).
    was_established: bool
    #: RFC 3145: why PPP ended, when the CDN said so (ours or the peer's).
    disconnect_cause: PppDisconnectCause | None = None
    #: The call ended with its tunnel (StopCCN, or the tunnel failed), not by a CDN of its own.
    tunnel_closed: bool = False


@dataclass(frozen=True, slots=True)
class LinkInfoSet(Event):
    """SLI received (RFC 2661 6.14): the ACCM the LAC's PPP peer negotiated."""

    local_tunnel_id: int
    local_session_id: int
    accm: Accm


@dataclass(frozen=True, slots=True)
class WanErrorNotified(Event):
    """WEN received (RFC 2661 6.13): the LAC's cumulative line error counters."""

    local_tunnel_id: int
    local_session_id: int
    call_errors: CallErrors
