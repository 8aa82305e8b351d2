"""IPV6CP: IPv6 over PPP (RFC 5072 3, 4.1) on the RFC 1661 4 automaton.

The only option negotiated is the Interface-Identifier (RFC 5072 4.1), compared with the one in
our last Configure-Request:

- different and non-zero: Ack;
- different but zero: Nak with a non-zero identifier for the peer, unlike ours;
- equal and non-zero: Nak with a different non-zero identifier;
- both zero: Reject ("a unique interface identifier cannot be negotiated").

Identifiers we make up are random with the "u" bit zero (4.1 case 3). IPv6-Compression-Protocol
(RFC 5172) and unknown options are rejected. A peer that sent no identifier gets ours appended to
one Nak, and never again (4.1: "the peer MUST NOT send another Configure-Nak with this option").
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from l2tpfast.ppp.constants import Code, Ipv6cpOption, Protocol
from l2tpfast.ppp.frame import Option
from l2tpfast.ppp.fsm import Automaton, FsmSettings, Layer, options_subset

__all__ = ["Ipv6cp", "Ipv6cpHandler", "Ipv6cpSettings", "new_identifier"]

_ZERO = bytes(8)
#: RFC 5072 4.1: bit 6 in canonical order, the universal/local bit of the first octet.
_U_BIT = 0x02 << 56


def new_identifier(rand: Callable[[int], bytes], *avoid: bytes | None) -> bytes:
    """A random non-zero identifier with the "u" bit (bit 6, RFC 5072 4.1 case 3) zero."""
    value = 0
    for _ in range(16):
        value = int.from_bytes(rand(8), "big") & ~_U_BIT
        if value and value.to_bytes(8, "big") not in avoid:
            return value.to_bytes(8, "big")
    # A degenerate ``rand`` (tests, a broken source): step until the value is usable.
    while not value or value.to_bytes(8, "big") in avoid:
        value = (value + 1) & ~_U_BIT & 0xFFFFFFFFFFFFFFFF
    return value.to_bytes(8, "big")


@dataclass(frozen=True)
class Ipv6cpSettings:
    #: Our tentative identifier, 8 octets; None makes up a random one.
    local_identifier: bytes | None = None
    #: Given to a peer that proposes zero or our own identifier; None makes one up.
    peer_identifier: bytes | None = None


class Ipv6cpHandler:
    """IPV6CP Configuration Options for one end (RFC 5072 4.1)."""

    def __init__(self, settings: Ipv6cpSettings, rand: Callable[[int], bytes] = os.urandom) -> None:
        for name in ("local_identifier", "peer_identifier"):
            value = getattr(settings, name)
            if value is not None and (len(value) != 8 or value == _ZERO):
                raise ValueError(f"Ipv6cpSettings.{name} must be 8 octets, not all zero")
        self.settings = settings
        self.rand = rand
        self.identifier = settings.local_identifier or new_identifier(rand)
        self.want_identifier = True
        self._sent: list[Option] = []
        self._last_nak: bytes | None = None
        self._hint_sent = False
        self.reset()

    def reset(self) -> None:
        self.want_identifier = True
        self._hint_sent = False

    def build_request(self) -> list[Option]:
        options: list[Option] = []
        if self.want_identifier:
            options.append((Ipv6cpOption.INTERFACE_IDENTIFIER, self.identifier))
        self._sent = options
        return options

    def _suggest(self) -> bytes:
        # RFC 5072 4.1: the suggestion "MUST be different from the interface identifier of
        # the last Configure-Request sent to the peer".
        configured = self.settings.peer_identifier
        if configured is not None and configured != self.identifier:
            suggestion = configured
        else:
            suggestion = new_identifier(self.rand, self.identifier)
        self._last_nak = suggestion
        return suggestion

    def receive_request(self, options: list[Option]) -> tuple[Code, list[Option]]:
        rejects: list[Option] = []
        naks: list[Option] = []
        seen = False
        ours = self.identifier if self.want_identifier else _ZERO
        for option in options:
            kind, value = option
            if kind == Ipv6cpOption.INTERFACE_IDENTIFIER and len(value) == 8 and not seen:
                seen = True
                if value == _ZERO and ours == _ZERO:
                    rejects.append(option)  # RFC 5072 4.1: both zero
                elif value in (_ZERO, ours):
                    naks.append((kind, self._suggest()))
            else:
                # IPv6-Compression-Protocol, unknown options, bad lengths, a second identifier
                # (4.1: "exactly one instance").
                rejects.append(option)
        if rejects:
            return Code.CONFIGURE_REJECT, rejects
        if not seen and not self._hint_sent:
            # RFC 5072 4.1: "the option SHOULD be appended to a Configure-Nak", once.
            self._hint_sent = True
            naks.append((Ipv6cpOption.INTERFACE_IDENTIFIER, self._suggest()))
        if naks:
            return Code.CONFIGURE_NAK, naks
        return Code.CONFIGURE_ACK, options

    def receive_ack(self, options: list[Option]) -> bool:
        return options == self._sent

    def receive_nak(self, options: list[Option]) -> None:
        for kind, value in options:
            if kind != Ipv6cpOption.INTERFACE_IDENTIFIER or len(value) != 8:
                continue
            if value == _ZERO or value == self._last_nak:
                # RFC 5072 4.1: equal to the one we sent in our last Nak: "a new interface
                # identifier MUST be chosen".
                self.identifier = new_identifier(self.rand, self.identifier, value)
            else:
                # RFC 5072 4.1: "a new Configure-Request MUST be sent with the identifier value
                # suggested in the last Configure-Nak from the peer".
                self.identifier = value
            self.want_identifier = True

    def receive_reject(self, options: list[Option]) -> bool:
        if not options_subset(options, self._sent):
            return False
        if any(kind == Ipv6cpOption.INTERFACE_IDENTIFIER for kind, _ in options):
            # RFC 5072 4.1: "MUST NOT contain the interface-identifier option" again.
            self.want_identifier = False
        return True


class Ipv6cp(Automaton):
    """The IPV6CP automaton; after Opened: ``local_identifier``, ``peer_identifier``."""

    def __init__(
        self,
        layer: Layer,
        outbox: list[tuple[int, bytes]],
        settings: Ipv6cpSettings = Ipv6cpSettings(),
        fsm: FsmSettings = FsmSettings(),  # noqa: B008 - frozen, so sharing is safe
        *,
        rand: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.settings = settings
        self.option_handler = Ipv6cpHandler(settings, rand)
        super().__init__(Protocol.IPV6CP, self.option_handler, layer, outbox, fsm)
        self.local_identifier: bytes | None = None
        self.peer_identifier: bytes | None = None

    def _acked_by_peer(self, options: list[Option]) -> None:
        self.local_identifier = _identifier(options)

    def _acked_to_peer(self, options: list[Option]) -> None:
        self.peer_identifier = _identifier(options)


def _identifier(options: list[Option]) -> bytes | None:
    for kind, value in options:
        if kind == Ipv6cpOption.INTERFACE_IDENTIFIER and len(value) == 8 and value != _ZERO:
            return value
    return None
