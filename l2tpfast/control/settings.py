"""Control-plane settings, and peer profiles that override them per peer.

Real peers differ (RFC 2661 leaves timers, windows and optional AVPs to the
implementation), so every knob of the tunnel can be set per peer address or
host name. The TOML loader of the operations layer fills these dataclasses;
the core only reads them.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
from dataclasses import dataclass, field

from l2tpfast._version import __version__
from l2tpfast.errors import ConfigError
from l2tpfast.wire.constants import AvpType, BearerCapability, FramingCapability

A = AvpType

#: AVPs we hide (RFC 2661 4.3) when ``hide_avps`` is on: identifiers and what a caller typed.
HIDDEN_WHEN_ASKED = frozenset(
    {
        A.ASSIGNED_TUNNEL_ID,
        A.ASSIGNED_SESSION_ID,
        A.CALL_SERIAL_NUMBER,
        A.CALLING_NUMBER,
        A.CALLED_NUMBER,
        A.PROXY_AUTHEN_NAME,
        A.PROXY_AUTHEN_CHALLENGE,
        A.PROXY_AUTHEN_RESPONSE,
    }
)

#: Optional AVPs a profile may leave out for a peer that chokes on them.
OMITTABLE = frozenset(
    {
        A.BEARER_CAPABILITIES,
        A.FIRMWARE_REVISION,
        A.VENDOR_NAME,
        A.RECEIVE_WINDOW_SIZE,
        A.TIE_BREAKER,
        A.BEARER_TYPE,
        A.CALLING_NUMBER,
        A.CALLED_NUMBER,
        A.RX_CONNECT_SPEED,
        A.SEQUENCING_REQUIRED,
        A.PPP_DISCONNECT_CAUSE_CODE,
        A.Q931_CAUSE_CODE,
    }
)


class ByteOrder(enum.Enum):
    """How a peer encodes Result and Error Codes (some Apple clients send them little-endian)."""

    BIG = "big"
    LITTLE = "little"
    #: Big-endian, unless a received value only makes sense swapped.
    AUTO = "auto"


def _firmware_revision() -> int:
    major, minor, *_ = (int(p) for p in [*__version__.split(".")[:2], "0"])
    return (major << 8) | minor


@dataclass(frozen=True, slots=True)
class TunnelSettings:
    """Everything the core needs to run one tunnel; a peer profile overrides any field."""

    host_name: str = "l2tpfast"
    vendor_name: str = "l2tpfast"
    firmware_revision: int = field(default_factory=_firmware_revision)
    framing_capabilities: int = FramingCapability.SYNC | FramingCapability.ASYNC
    bearer_capabilities: int = BearerCapability.DIGITAL | BearerCapability.ANALOG
    #: Tunnel secret (RFC 2661 5.1.1); with it we challenge the peer and answer its challenge.
    secret: bytes | None = None
    #: Hide the AVPs of HIDDEN_WHEN_ASKED (RFC 2661 4.3); needs ``secret``.
    hide_avps: bool = False
    #: Our Receive Window Size (RFC 2661 5.8), advertised in SCCRQ/SCCRP.
    receive_window: int = 8
    retransmit_initial: float = 1.0
    retransmit_cap: float = 8.0
    max_retries: int = 5
    #: Delay before a ZLB carries an ack that no reply piggybacked (RFC 2661 5.8).
    ack_delay: float = 0.05
    #: Send Hello after this long without any datagram from the peer (RFC 2661 5.5); 0: never.
    hello_interval: float = 60.0
    #: Send a Tie Breaker AVP in SCCRQ (RFC 2661 4.4.3): one tunnel per peer pair.
    tie_breaker: bool = True
    #: As LNS: ask the LAC to sequence data (Sequencing Required is an ICCN AVP the LAC sends;
    #: we honour it when received and send it as LAC when set).
    sequencing_required: bool = False
    omit_avps: frozenset[int] = frozenset()
    result_code_byte_order: ByteOrder = ByteOrder.AUTO
    max_sessions: int = 0  # per tunnel, 0: no limit
    #: As LAC: answer an OCRQ (start the "bearer") at once, as a virtual LAC does.
    auto_answer_outgoing: bool = True
    #: Accept ICRQ (LNS role) and OCRQ (LAC role) from this peer.
    accept_incoming_calls: bool = True
    accept_outgoing_calls: bool = True

    def __post_init__(self) -> None:
        if self.hide_avps and not self.secret:
            raise ConfigError(
                "hide_avps", "hiding AVPs needs a tunnel secret", "set secret or hide_avps = false"
            )
        if not 1 <= self.receive_window <= 0xFFFF:
            raise ConfigError("receive_window", f"{self.receive_window} is out of 1..65535 (RFC 2661 5.8)")
        if self.retransmit_initial <= 0:
            raise ConfigError("retransmit_initial", "must be positive", "RFC 2661 5.8 recommends 1 s")
        if self.retransmit_cap < 8:
            raise ConfigError(
                "retransmit_cap", f"{self.retransmit_cap} is below 8 s", "RFC 2661 5.8: cap >= 8 s"
            )
        if self.max_retries < 1:
            raise ConfigError("max_retries", "must be at least 1", "RFC 2661 5.8 recommends 5")
        if self.hello_interval < 0:
            raise ConfigError("hello_interval", "must be >= 0", "0 disables Hello")
        bad = set(self.omit_avps) - OMITTABLE
        if bad:
            names = ", ".join(
                sorted(AvpType(t).name if t in AvpType._value2member_map_ else str(t) for t in bad)
            )
            raise ConfigError("omit_avps", f"{names} cannot be left out", "only optional AVPs can")

    @property
    def retransmission_cycle(self) -> float:
        """Time from first send until the channel gives up: 31 s by default (RFC 2661 5.7)."""
        total, interval = 0.0, self.retransmit_initial
        for _ in range(self.max_retries + 1):
            total += interval
            interval = min(interval * 2, self.retransmit_cap)
        return total

    def hidden_types(self) -> frozenset[int]:
        return HIDDEN_WHEN_ASKED if self.hide_avps else frozenset()


@dataclass(frozen=True, slots=True)
class PeerProfile:
    """Overrides for peers matching an address, a network, or a host name (SCCRQ/SCCRP Host Name)."""

    name: str
    overrides: dict[str, object]
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    host_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        known = {f.name for f in dataclasses.fields(TunnelSettings)}
        for key in self.overrides:
            if key not in known:
                raise ConfigError(f"profiles.{self.name}.{key}", "unknown setting", f"one of {sorted(known)}")

    def matches(self, host: str, host_name: str | None) -> bool:
        if host_name is not None and host_name in self.host_names:
            return True
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(ip in net for net in self.networks)


@dataclass(frozen=True, slots=True)
class EndpointSettings:
    """Settings of a whole endpoint (LAC, LNS or both)."""

    tunnel: TunnelSettings = field(default_factory=TunnelSettings)
    profiles: tuple[PeerProfile, ...] = ()
    #: Accept SCCRQ from peers (an LNS does; a LAC that only dials out need not).
    accept_tunnels: bool = True
    max_tunnels: int = 0  # 0: no limit
    max_tunnels_per_peer: int = 16
    max_sessions: int = 0  # in all tunnels, 0: no limit

    def for_peer(self, host: str, host_name: str | None = None) -> TunnelSettings:
        """The default settings with the overrides of every matching profile, in order."""
        merged: dict[str, object] = {}
        for profile in self.profiles:
            if profile.matches(host, host_name):
                merged.update(profile.overrides)
        if not merged:
            return self.tunnel
        try:
            return dataclasses.replace(self.tunnel, **merged)  # type: ignore[arg-type]
        except TypeError as exc:
            raise ConfigError("profiles", str(exc)) from None
