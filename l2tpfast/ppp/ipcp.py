"""IPCP: IPv4 addresses over PPP (RFC 1332 3, RFC 1877 1) on the RFC 1661 4 automaton.

Options: IP-Address (RFC 1332 3.3), the name-server addresses of RFC 1877 1.1-1.4 (129-132).
IP-Addresses (RFC 1332 3.1, deprecated in favour of IP-Address) and IP-Compression-Protocol
(3.2, Van Jacobson compression, which the data path does not do) are rejected.

Two roles. The server (the LNS) has an address for the peer: it Naks any other IP-Address with
it, and appends it to a Nak when the peer sent none (RFC 1332 3.3 "SHOULD be appended"); it
answers requests for name servers (RFC 1877: "the remote peer specifies the address by NAKing
this option"). The client asks with 0.0.0.0 (3.3: "a request that the peer provide the
IP-Address information") and adopts what the Nak says. Either role acknowledges a non-zero
peer address it has no opinion on, and rejects a 0.0.0.0 it cannot fill in: the option is then
"not acceptable for negotiation" (RFC 1661 5.4) and the peer goes without an address.
If the peer never takes our Nak, Max-Failure (RFC 1661 4.6) turns it into a Reject, so the
peer ends without the option: ``peer_address`` is None and the owner decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from l2tpfast.ppp.constants import Code, IpcpOption, Protocol
from l2tpfast.ppp.frame import Option
from l2tpfast.ppp.fsm import Automaton, FsmSettings, Layer, options_subset

__all__ = ["Ipcp", "IpcpHandler", "IpcpSettings"]

_ZERO = IPv4Address(0)
_SERVER_OPTIONS = (
    IpcpOption.PRIMARY_DNS,
    IpcpOption.PRIMARY_NBNS,
    IpcpOption.SECONDARY_DNS,
    IpcpOption.SECONDARY_NBNS,
)


@dataclass(frozen=True)
class IpcpSettings:
    #: Our address. Client: None asks the peer for one with 0.0.0.0 (RFC 1332 3.3).
    local_address: IPv4Address | None = None
    #: The address the peer must use (server: the one assigned); None accepts any non-zero one.
    peer_address: IPv4Address | None = None
    #: Primary and secondary DNS to offer (RFC 1877 1.1, 1.3); options without one are rejected.
    dns: tuple[IPv4Address, ...] = ()
    #: Primary and secondary NBNS to offer (RFC 1877 1.2, 1.4).
    nbns: tuple[IPv4Address, ...] = ()
    #: Client: ask for DNS (129, 131) with 0.0.0.0 and take the Nak'ed values.
    request_dns: bool = False
    #: Client: the same for NBNS (130, 132).
    request_nbns: bool = False
    #: True on the LNS.
    server: bool = False


class IpcpHandler:
    """IPCP Configuration Options for one end."""

    def __init__(self, settings: IpcpSettings) -> None:
        self.settings = settings
        self.address: IPv4Address | None = None
        self.want_address = True
        #: Name-server options we request, by type, with the value to send next.
        self.servers: dict[int, IPv4Address] = {}
        self._sent: list[Option] = []
        self.reset()

    def reset(self) -> None:
        s = self.settings
        self.address = s.local_address
        # A server with no address of its own sends no IP-Address; a client always asks.
        self.want_address = s.local_address is not None or not s.server
        self.servers = {}
        if s.request_dns:
            self.servers[IpcpOption.PRIMARY_DNS] = _ZERO
            self.servers[IpcpOption.SECONDARY_DNS] = _ZERO
        if s.request_nbns:
            self.servers[IpcpOption.PRIMARY_NBNS] = _ZERO
            self.servers[IpcpOption.SECONDARY_NBNS] = _ZERO

    def build_request(self) -> list[Option]:
        options: list[Option] = []
        if self.want_address:
            options.append((IpcpOption.IP_ADDRESS, (self.address or _ZERO).packed))
        for kind in _SERVER_OPTIONS:
            if kind in self.servers:
                options.append((kind, self.servers[kind].packed))
        self._sent = options
        return options

    def _offer(self, kind: int) -> IPv4Address | None:
        s = self.settings
        table = s.dns if kind in (IpcpOption.PRIMARY_DNS, IpcpOption.SECONDARY_DNS) else s.nbns
        index = 0 if kind in (IpcpOption.PRIMARY_DNS, IpcpOption.PRIMARY_NBNS) else 1
        return table[index] if index < len(table) else None

    def receive_request(self, options: list[Option]) -> tuple[Code, list[Option]]:
        s = self.settings
        rejects: list[Option] = []
        naks: list[Option] = []
        seen_address = False
        for option in options:
            kind, value = option
            if kind == IpcpOption.IP_ADDRESS and len(value) == 4 and not seen_address:
                seen_address = True
                address = IPv4Address(value)
                if s.peer_address is not None:
                    if address != s.peer_address:
                        naks.append((kind, s.peer_address.packed))  # RFC 1332 3.3
                elif address == _ZERO:
                    rejects.append(option)  # asked for an address we do not have to give
            elif kind in _SERVER_OPTIONS and len(value) == 4:
                offer = self._offer(kind)
                if offer is None:
                    rejects.append(option)  # RFC 1877 1: by default no address is provided
                elif IPv4Address(value) != offer:
                    naks.append((kind, offer.packed))  # RFC 1877 1.1-1.4
            else:
                # IP-Addresses (3.1, deprecated), IP-Compression-Protocol (3.2, no VJ),
                # unknown options, bad lengths, a second IP-Address.
                rejects.append(option)
        if not seen_address and s.server and s.peer_address is not None:
            # RFC 1332 3.3: "If negotiation about the remote IP-address is required, and the
            # peer did not provide the option ..., the option SHOULD be appended to a Nak."
            naks.append((IpcpOption.IP_ADDRESS, s.peer_address.packed))
        # RFC 1661 5.3, 5.4: Rejects take precedence over Naks.
        if rejects:
            return Code.CONFIGURE_REJECT, rejects
        if naks:
            return Code.CONFIGURE_NAK, naks
        return Code.CONFIGURE_ACK, options

    def receive_ack(self, options: list[Option]) -> bool:
        return options == self._sent

    def receive_nak(self, options: list[Option]) -> None:
        s = self.settings
        # A server keeps its configured address; a peer that disagrees ends by rejecting it.
        accept_local = not s.server or s.local_address is None
        for kind, value in options:
            if len(value) != 4:
                continue
            address = IPv4Address(value)
            if kind == IpcpOption.IP_ADDRESS and accept_local and address != _ZERO:
                self.address = address
                self.want_address = True  # RFC 1332 3.3: also when Nak'ed as a hint
            elif kind in self.servers and address != _ZERO:
                self.servers[kind] = address

    def receive_reject(self, options: list[Option]) -> bool:
        if not options_subset(options, self._sent):
            return False
        for kind, _ in options:
            if kind == IpcpOption.IP_ADDRESS:
                self.want_address = False
            else:
                self.servers.pop(kind, None)  # RFC 1877: the peer has none to give
        return True


class Ipcp(Automaton):
    """The IPCP automaton; after Opened: ``local_address``, ``peer_address``, ``dns``, ``nbns``."""

    def __init__(
        self,
        layer: Layer,
        outbox: list[tuple[int, bytes]],
        settings: IpcpSettings,
        fsm: FsmSettings = FsmSettings(),  # noqa: B008 - frozen, so sharing is safe
    ) -> None:
        self.settings = settings
        self.option_handler = IpcpHandler(settings)
        super().__init__(Protocol.IPCP, self.option_handler, layer, outbox, fsm)
        self.local_address: IPv4Address | None = None
        self.peer_address: IPv4Address | None = None
        self.dns: tuple[IPv4Address, ...] = ()
        self.nbns: tuple[IPv4Address, ...] = ()

    def _acked_by_peer(self, options: list[Option]) -> None:
        values = {kind: IPv4Address(value) for kind, value in options if len(value) == 4}
        address = values.get(IpcpOption.IP_ADDRESS)
        self.local_address = address if address != _ZERO else None
        self.dns = _nonzero(values.get(IpcpOption.PRIMARY_DNS), values.get(IpcpOption.SECONDARY_DNS))
        self.nbns = _nonzero(values.get(IpcpOption.PRIMARY_NBNS), values.get(IpcpOption.SECONDARY_NBNS))

    def _acked_to_peer(self, options: list[Option]) -> None:
        self.peer_address = None
        for kind, value in options:
            if kind == IpcpOption.IP_ADDRESS and len(value) == 4:
                self.peer_address = IPv4Address(value)


def _nonzero(*addresses: IPv4Address | None) -> tuple[IPv4Address, ...]:
    return tuple(a for a in addresses if a is not None and a != _ZERO)
