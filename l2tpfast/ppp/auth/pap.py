"""PAP, the Password Authentication Protocol, both ends (RFC 1334 2).

Theory of operation. The peer sends Authenticate-Request (Peer-ID, Password) at start and again
every ``timeout`` with a new Identifier (RFC 1334 2.2.1: "The Identifier field MUST be changed
each time an Authenticate-Request packet is issued") until an Ack or Nak for any of them comes
back, or ``max_retries`` resends have gone unanswered. The authenticator waits
``timeout * max_retries`` for a request, hands it to the link as :attr:`pending`, and answers
with Authenticate-Ack or -Nak when the decision arrives; later requests get the same reply Code
(RFC 1334 2.2.1 implementation note).
"""

from __future__ import annotations

import os

from l2tpfast.errors import LocalProtocolError
from l2tpfast.ppp.auth.base import (
    DEFAULT_SETTINGS,
    AuthDecision,
    Authenticator,
    AuthRequest,
    AuthSettings,
    Outbox,
    PapRequest,
    Peer,
    Rand,
    decode_message,
    decode_name,
    encode_message,
    encode_name,
    parse_control,
)
from l2tpfast.ppp.constants import AuthMethod, PapCode, Protocol


def build_authenticate_request(peer_id: bytes, password: bytes) -> bytes:
    """RFC 1334 2.2.1: the Data of an Authenticate-Request."""
    if len(peer_id) > 255 or len(password) > 255:
        raise LocalProtocolError("PAP Peer-ID and Password are at most 255 octets each")
    return bytes((len(peer_id),)) + peer_id + bytes((len(password),)) + password


def parse_authenticate_request(data: bytes) -> tuple[bytes, bytes] | None:
    """(Peer-ID, Password), or None when a length runs past the packet."""
    if len(data) < 1:
        return None
    id_length = data[0]
    if 1 + id_length + 1 > len(data):
        return None
    peer_id = data[1 : 1 + id_length]
    password_length = data[1 + id_length]
    start = 2 + id_length
    if start + password_length > len(data):
        return None
    return peer_id, data[start : start + password_length]


def build_reply(message: str) -> bytes:
    """RFC 1334 2.2.2: the Data of an Authenticate-Ack or -Nak."""
    text = encode_message(message)
    return bytes((len(text),)) + text


def parse_reply(data: bytes) -> str:
    """The Message of an Ack or Nak; a Msg-Length past the end takes what is there."""
    if not data:
        return ""
    # RFC 1334 2.2.2: the Message "MUST NOT affect operation of the protocol", so a bad
    # Msg-Length does not turn an Ack into a dropped packet.
    return decode_message(data[1 : 1 + data[0]])


class PapAuthenticator(Authenticator):
    method = AuthMethod.PAP
    protocol = Protocol.PAP

    def __init__(
        self, outbox: Outbox, settings: AuthSettings = DEFAULT_SETTINGS, rand: Rand = os.urandom
    ) -> None:
        super().__init__(outbox, settings, rand)
        self._identifier = 0
        self._reply: tuple[int, bytes] | None = None

    def start(self, now: float) -> None:
        if self.outcome is None and self.pending is None:
            self.deadline = now + self.settings.timeout * self.settings.max_retries

    def receive(self, information: bytes, now: float) -> None:
        packet = parse_control(information)
        if packet is None or packet.code != PapCode.AUTHENTICATE_REQUEST:
            return
        fields = parse_authenticate_request(packet.data)
        if fields is None:
            return
        if self._reply is not None:
            # RFC 1334 2.2.1: "the authenticator MUST allow repeated Authenticate-Request
            # packets after completing the Authentication phase" and return the same reply Code.
            self._send(self._reply[0], packet.identifier, self._reply[1])
            return
        if self.pending is not None:
            # A resend while the backend decides: answer the newest Identifier, the one the
            # peer is surely still waiting for.
            self._identifier = packet.identifier
            return
        if self.outcome is not None:
            return  # given up ("no response") before this came
        peer_id, password = fields
        self._identifier = packet.identifier
        self.pending = PapRequest(decode_name(peer_id), password, packet.identifier)
        self.deadline = None

    def _adopt(self, request: AuthRequest) -> None:
        if isinstance(request, PapRequest):
            self._identifier = request.identifier

    def complete(self, decision: AuthDecision, now: float) -> None:
        request = self._take_pending()
        self.decision = decision
        code = PapCode.AUTHENTICATE_ACK if decision.accepted else PapCode.AUTHENTICATE_NAK
        data = build_reply(decision.message)
        self._reply = (code, data)
        self._send(code, self._identifier, data)
        self._finish(decision.accepted, request.username, decision.message)

    def handle_timer(self, now: float) -> None:
        if self.deadline is None or now < self.deadline or self.outcome is not None:
            return
        if self.pending is None:
            self._finish(False, "", "no response")


class PapPeer(Peer):
    method = AuthMethod.PAP
    protocol = Protocol.PAP

    def __init__(
        self,
        username: str,
        password: str,
        outbox: Outbox,
        settings: AuthSettings = DEFAULT_SETTINGS,
        rand: Rand = os.urandom,
    ) -> None:
        super().__init__(username, password, outbox, settings, rand)
        self._request = build_authenticate_request(encode_name(username), password.encode("utf-8"))
        self._identifier: int | None = None
        self._sent: set[int] = set()
        self._retries = 0

    def start(self, now: float) -> None:
        if self._identifier is not None or self.outcome is not None:
            return
        self._identifier = self._random_identifier()
        self._transmit(now)

    def _transmit(self, now: float) -> None:
        assert self._identifier is not None
        self._sent.add(self._identifier)
        self._send(PapCode.AUTHENTICATE_REQUEST, self._identifier, self._request)
        self.deadline = now + self.settings.timeout

    def handle_timer(self, now: float) -> None:
        if self.deadline is None or now < self.deadline or self.outcome is not None:
            return
        if self._retries >= self.settings.max_retries:
            self._finish(False, self.username, "no response")
            return
        assert self._identifier is not None
        self._retries += 1
        self._identifier = (self._identifier + 1) & 0xFF
        self._transmit(now)

    def receive(self, information: bytes, now: float) -> None:
        packet = parse_control(information)
        if packet is None or self.outcome is not None:
            return
        if packet.code not in (PapCode.AUTHENTICATE_ACK, PapCode.AUTHENTICATE_NAK):
            return
        # RFC 1334 2.2.2: the reply copies the Identifier of the request it answers; a reply
        # to any of our requests will do, as a slow authenticator answers an older one.
        if packet.identifier not in self._sent:
            return
        message = parse_reply(packet.data)
        if packet.code == PapCode.AUTHENTICATE_ACK:
            self._finish(True, self.username, message)
        else:
            self._finish(False, self.username, message or "authentication failed")
