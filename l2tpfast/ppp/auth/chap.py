"""CHAP with MD5, both ends (RFC 1994 4); the Challenge/Response flow MS-CHAPv2 reuses.

Theory of operation. The authenticator sends a Challenge (a 16-octet random Value and our Name)
and resends that same packet every ``timeout`` until a Response with its Identifier arrives or
``max_retries`` resends have gone unanswered. A resend is a retransmission of one Challenge, not
a new one, so a late Response to the first copy is as good as one to the last. The Response
becomes :attr:`pending`; :meth:`complete` answers Success or Failure, and any later Response
with the same Identifier gets the same Code again (RFC 1994 4.1 implementation note).

The peer answers every Challenge: a new Identifier or Value gets a new Response, a repeated one
gets the Response sent before (the authenticator's copy of our answer was lost, not its
question). It accepts Success or Failure for any Identifier it has answered, and gives up when
no Challenge or reply arrives for ``timeout * (max_retries + 1)``, the time the authenticator
itself keeps trying. The method-specific parts (the Response Value, what Success means) are
the ``_make_*`` and ``_handle_*`` hooks that :mod:`~l2tpfast.ppp.auth.mschapv2` overrides.
"""

from __future__ import annotations

import hashlib
import os

from l2tpfast.ppp.auth.base import (
    DEFAULT_SETTINGS,
    AuthDecision,
    Authenticator,
    AuthRequest,
    AuthSettings,
    ChapRequest,
    MsChapV2Request,
    Outbox,
    Peer,
    Rand,
    decode_message,
    decode_name,
    encode_message,
    encode_name,
    parse_control,
)
from l2tpfast.ppp.constants import AuthMethod, ChapCode, Protocol

CHALLENGE_LENGTH = 16


def chap_md5_response(identifier: int, secret: bytes, challenge: bytes) -> bytes:
    """RFC 1994 4.1: MD5 over the Identifier, then the secret, then the Challenge Value."""
    return hashlib.md5(bytes((identifier & 0xFF,)) + secret + challenge).digest()


def build_value_name(value: bytes, name: bytes) -> bytes:
    """RFC 1994 4.1: Value-Size, Value, Name (the Data of a Challenge or Response)."""
    return bytes((len(value),)) + value + name


def parse_value_name(data: bytes) -> tuple[bytes, bytes] | None:
    """(Value, Name), or None for an empty Value or a Value-Size past the packet."""
    if not data or data[0] == 0 or 1 + data[0] > len(data):
        return None
    return data[1 : 1 + data[0]], data[1 + data[0] :]


class ChapAuthenticator(Authenticator):
    method = AuthMethod.CHAP_MD5
    protocol = Protocol.CHAP

    def __init__(
        self, outbox: Outbox, settings: AuthSettings = DEFAULT_SETTINGS, rand: Rand = os.urandom
    ) -> None:
        super().__init__(outbox, settings, rand)
        self.identifier: int | None = None
        self.challenge = b""
        self._challenge_packet = b""
        self._retries = 0
        self._reply: tuple[int, bytes] | None = None

    def start(self, now: float) -> None:
        if self.identifier is not None or self.outcome is not None:
            return
        self.identifier = self._random_identifier()
        # RFC 1994 4.1: "The Challenge Value MUST be changed each time a Challenge is sent".
        self.challenge = self._rand(CHALLENGE_LENGTH)
        data = build_value_name(self.challenge, encode_name(self.settings.name))
        self._send(ChapCode.CHALLENGE, self.identifier, data)
        self._challenge_packet = self.outbox[-1][1]
        self.deadline = now + self.settings.timeout

    def handle_timer(self, now: float) -> None:
        if self.deadline is None or now < self.deadline or self.outcome is not None:
            return
        if self.pending is not None:
            return
        if self._retries >= self.settings.max_retries:
            self._finish(False, "", "no response")
            return
        # RFC 1994 4.1: "Additional Challenge packets MUST be sent until a valid Response packet
        # is received, or an optional retry counter expires."
        self._retries += 1
        self.outbox.append((self.protocol, self._challenge_packet))
        self.deadline = now + self.settings.timeout

    def receive(self, information: bytes, now: float) -> None:
        packet = parse_control(information)
        if packet is None or packet.code != ChapCode.RESPONSE:
            return
        # RFC 1994 4.1: the Response copies the Challenge's Identifier; another is stale.
        if self.identifier is None or packet.identifier != self.identifier:
            return
        fields = parse_value_name(packet.data)
        if fields is None:
            return
        if self._reply is not None:
            # RFC 1994 4.1: "any Response packets received having the current Challenge
            # Identifier MUST return the same reply Code previously returned".
            self._send(self._reply[0], packet.identifier, self._reply[1])
            return
        if self.pending is not None or self.outcome is not None:
            return  # deciding already, or given up ("no response") before this came
        value, name = fields
        request = self._make_request(packet.identifier, value, decode_name(name))
        if request is None:
            return
        self.pending = request
        self.deadline = None

    def _adopt(self, request: AuthRequest) -> None:
        if isinstance(request, ChapRequest):
            self.identifier, self.challenge = request.identifier, request.challenge
        elif isinstance(request, MsChapV2Request):
            self.identifier, self.challenge = request.identifier, request.authenticator_challenge

    def complete(self, decision: AuthDecision, now: float) -> None:
        request = self._take_pending()
        assert self.identifier is not None
        self.decision = decision
        succeeded, code, data, message = self._make_reply(decision)
        self._reply = (code, data)
        self._send(code, self.identifier, data)
        self._finish(succeeded, request.username, message)

    def _make_request(self, identifier: int, value: bytes, username: str) -> AuthRequest | None:
        return ChapRequest(username, identifier, self.challenge, value)

    def _make_reply(self, decision: AuthDecision) -> tuple[bool, int, bytes, str]:
        """(succeeded, Code, Data, outcome message) for a decision."""
        if decision.accepted:
            return (
                True,
                ChapCode.SUCCESS,
                encode_message(decision.message or "Access granted"),
                decision.message,
            )
        text = decision.message or "Authentication failed"
        return False, ChapCode.FAILURE, encode_message(text), text


class ChapPeer(Peer):
    method = AuthMethod.CHAP_MD5
    protocol = Protocol.CHAP

    def __init__(
        self,
        username: str,
        password: str,
        outbox: Outbox,
        settings: AuthSettings = DEFAULT_SETTINGS,
        rand: Rand = os.urandom,
    ) -> None:
        super().__init__(username, password, outbox, settings, rand)
        #: Identifier -> (Challenge Value, Response Data) for every Challenge answered.
        self._responses: dict[int, tuple[bytes, bytes]] = {}

    def _patience(self) -> float:
        return self.settings.timeout * (self.settings.max_retries + 1)

    def start(self, now: float) -> None:
        if self.outcome is None and self.deadline is None:
            self.deadline = now + self._patience()

    def handle_timer(self, now: float) -> None:
        if self.deadline is not None and now >= self.deadline and self.outcome is None:
            self._finish(False, self.username, "no response")

    def receive(self, information: bytes, now: float) -> None:
        packet = parse_control(information)
        if packet is None:
            return
        if packet.code == ChapCode.CHALLENGE:
            self._handle_challenge(packet.identifier, packet.data, now)
        elif packet.code in (ChapCode.SUCCESS, ChapCode.FAILURE):
            if self.outcome is not None or packet.identifier not in self._responses:
                return
            if packet.code == ChapCode.SUCCESS:
                self._handle_success(packet.identifier, packet.data)
            else:
                self._handle_failure(packet.data)

    def _handle_challenge(self, identifier: int, data: bytes, now: float) -> None:
        fields = parse_value_name(data)
        if fields is None:
            return
        value, _name = fields
        answered = self._responses.get(identifier)
        if answered is None or answered[0] != value:
            response = self._make_response(identifier, value)
            if response is None:
                return
            answered = (value, response)
            self._responses[identifier] = answered
        # RFC 1994 4.1: "Whenever a Challenge packet is received, the peer MUST transmit a CHAP
        # packet with the Code field set to 2 (Response)", also after Success (a rechallenge).
        self._send(ChapCode.RESPONSE, identifier, answered[1])
        if self.outcome is None:
            self.deadline = now + self._patience()

    def _make_response(self, identifier: int, challenge: bytes) -> bytes | None:
        digest = chap_md5_response(identifier, self._password.encode("utf-8"), challenge)
        return build_value_name(digest, encode_name(self.username))

    def _handle_success(self, identifier: int, data: bytes) -> None:
        self._finish(True, self.username, decode_message(data))

    def _handle_failure(self, data: bytes) -> None:
        self._finish(False, self.username, decode_message(data) or "authentication failed")
