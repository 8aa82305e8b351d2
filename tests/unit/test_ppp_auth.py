"""PPP authentication, both ends in memory: PAP (RFC 1334 2), CHAP-MD5 (RFC 1994), MS-CHAPv2 (RFC 2759)."""

from __future__ import annotations

import hashlib
import random
from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2tpfast.aaa.users import UsersFile
from l2tpfast.errors import LocalProtocolError
from l2tpfast.ppp.auth import (
    AuthDecision,
    Authenticator,
    AuthOutcome,
    AuthSettings,
    ChapRequest,
    MsChapV2Request,
    PapRequest,
    Peer,
    make_authenticator,
    make_peer,
    request_from_proxy,
)
from l2tpfast.ppp.auth.chap import chap_md5_response
from l2tpfast.ppp.auth.mschapv2 import (
    challenge_hash,
    challenge_response,
    check_authenticator_response,
    expand_des_key,
    generate_authenticator_response,
    generate_nt_response,
    hash_nt_password_hash,
    nt_password_hash,
    parse_success_message,
)
from l2tpfast.ppp.constants import AuthMethod, ChapCode, PapCode, Protocol
from l2tpfast.ppp.frame import build_packet, parse_packet

METHODS = [AuthMethod.PAP, AuthMethod.CHAP_MD5, AuthMethod.MSCHAPV2]
SETTINGS = AuthSettings(timeout=3.0, max_retries=4, name="lns")
USERS = UsersFile.parse('alice s3cret 10.100.0.7\n"bob smith" "pw with space"\n')


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# --- RFC 2759 9.2 and 9.3 ----------------------------------------------------------------------

AUTH_CHALLENGE = h("5B 5D 7C 7D 7B 3F 2F 3E 3C 2C 60 21 32 26 26 28")
PEER_CHALLENGE = h("21 40 23 24 25 5E 26 2A 28 29 5F 2B 3A 33 7C 7E")
NT_RESPONSE = h("82 30 9E CD 8D 70 8B 5E A0 8F AA 39 81 CD 83 54 42 33 11 4A 3D 85 D6 DF")
AUTH_RESPONSE = "S=407A5589115FD0D6209F510FE9C04566932CDA56"


def test_rfc2759_password_hash() -> None:
    assert "clientPass".encode("utf-16-le") == h(
        "63 00 6C 00 69 00 65 00 6E 00 74 00 50 00 61 00 73 00 73 00"
    )
    assert nt_password_hash("clientPass") == h("44 EB BA 8D 53 12 B8 D6 11 47 44 11 F5 69 89 AE")


def test_rfc2759_password_hash_hash() -> None:
    assert hash_nt_password_hash(nt_password_hash("clientPass")) == h(
        "41 C0 0C 58 4B D2 D9 1C 40 17 A2 A1 2F A5 9F 3F"
    )


def test_rfc2759_challenge_hash() -> None:
    assert challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, "User") == h("D0 2E 43 86 BC E9 12 26")
    # RFC 2759 8.2: a prepended domain name is not hashed.
    assert challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, "BIGCO\\User") == h("D0 2E 43 86 BC E9 12 26")


def test_rfc2759_nt_response() -> None:
    assert challenge_response(h("D0 2E 43 86 BC E9 12 26"), nt_password_hash("clientPass")) == NT_RESPONSE
    assert generate_nt_response(AUTH_CHALLENGE, PEER_CHALLENGE, "User", "clientPass") == NT_RESPONSE


def test_rfc2759_authenticator_response() -> None:
    response = generate_authenticator_response(
        "clientPass", NT_RESPONSE, PEER_CHALLENGE, AUTH_CHALLENGE, "User"
    )
    assert response == AUTH_RESPONSE
    args = ("clientPass", NT_RESPONSE, PEER_CHALLENGE, AUTH_CHALLENGE, "User")
    assert check_authenticator_response(*args, AUTH_RESPONSE)
    assert check_authenticator_response(*args, AUTH_RESPONSE.lower().replace("s=", "S="))
    assert not check_authenticator_response(*args, AUTH_RESPONSE[:-1] + "7")
    assert not check_authenticator_response("clientPasz", *args[1:], AUTH_RESPONSE)


def test_rfc2759_des_key_parity() -> None:
    password_hash = nt_password_hash("MyPw")
    assert password_hash == h("FC 15 6A F7 ED CD 6C 0E DD E3 33 7D 42 7F 4E AC")
    assert expand_des_key(password_hash[:7]) == h("FD 0B 5B 5E 7F 6E 34 D9")
    assert expand_des_key(password_hash[7:14]) == h("0E 6E 79 67 37 EA 08 FE")


@given(st.binary(min_size=7, max_size=7))
def test_des_key_has_odd_parity_and_keeps_the_bits(key: bytes) -> None:
    expanded = expand_des_key(key)
    assert all(bin(octet).count("1") % 2 == 1 for octet in expanded)
    bits = "".join(f"{octet:08b}"[:7] for octet in expanded)
    assert int(bits, 2) == int.from_bytes(key, "big")


def test_rfc1994_chap_md5_response() -> None:
    challenge = bytes(range(16))
    expected = hashlib.md5(b"\x2a" + b"secret" + challenge).digest()
    assert chap_md5_response(0x2A, b"secret", challenge) == expected
    assert chap_md5_response(0x12A, b"secret", challenge) == expected  # the Identifier is one octet


# --- the two ends in memory --------------------------------------------------------------------


class Pair:
    """An authenticator and a peer joined by two outboxes, with a fake clock."""

    def __init__(self, method: AuthMethod, username: str = "alice", password: str = "s3cret", seed: int = 1):
        rng = random.Random(seed)
        self.now = 100.0
        self.a_out: list[tuple[int, bytes]] = []
        self.p_out: list[tuple[int, bytes]] = []
        self.auth: Authenticator = make_authenticator(method, self.a_out, SETTINGS, rng.randbytes)
        self.peer: Peer = make_peer(method, username, password, self.p_out, SETTINGS, rng.randbytes)

    def start(self) -> None:
        self.auth.start(self.now)
        self.peer.start(self.now)

    def to_peer(self) -> list[bytes]:
        sent = [info for _, info in self.a_out]
        self.a_out.clear()
        for info in sent:
            self.peer.receive(info, self.now)
        return sent

    def to_auth(self) -> list[bytes]:
        sent = [info for _, info in self.p_out]
        self.p_out.clear()
        for info in sent:
            self.auth.receive(info, self.now)
        return sent

    def decide(self) -> AuthDecision:
        assert self.auth.pending is not None
        decision = USERS.authenticate(self.auth.pending)
        self.auth.complete(decision, self.now)
        return decision

    def run(self) -> None:
        """Exchange packets and decisions until nothing moves."""
        for _ in range(10):
            moved = bool(self.to_peer()) | bool(self.to_auth())
            if self.auth.pending is not None:
                self.decide()
                moved = True
            if not moved:
                return

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.auth.handle_timer(self.now)
        self.peer.handle_timer(self.now)


@pytest.mark.parametrize("method", METHODS)
def test_success(method: AuthMethod) -> None:
    pair = Pair(method)
    pair.start()
    pair.run()
    assert pair.auth.outcome == AuthOutcome(True, "alice", "")
    assert pair.peer.outcome is not None and pair.peer.outcome.succeeded
    assert pair.peer.outcome.username == "alice"
    assert pair.auth.decision is not None and pair.auth.decision.framed_address == IPv4Address("10.100.0.7")
    assert pair.auth.deadline is None and pair.peer.deadline is None
    expected = Protocol.PAP if method == AuthMethod.PAP else Protocol.CHAP
    assert pair.auth.protocol == expected == pair.peer.protocol
    assert pair.auth.method == method == pair.peer.method


@pytest.mark.parametrize("method", METHODS)
def test_names_with_spaces(method: AuthMethod) -> None:
    pair = Pair(method, "bob smith", "pw with space")
    pair.start()
    pair.run()
    assert pair.auth.outcome == AuthOutcome(True, "bob smith", "")
    assert pair.peer.outcome is not None and pair.peer.outcome.succeeded


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("username", "password"), [("alice", "wrong"), ("mallory", "s3cret")])
def test_wrong_password_or_unknown_user(method: AuthMethod, username: str, password: str) -> None:
    pair = Pair(method, username, password)
    pair.start()
    pair.run()
    assert pair.auth.outcome == AuthOutcome(False, username, "authentication failed")
    assert pair.peer.outcome is not None and not pair.peer.outcome.succeeded
    assert pair.peer.outcome.username == username
    assert "authentication failed" in pair.peer.outcome.message.lower()


def test_mschapv2_failure_message_format() -> None:
    pair = Pair(AuthMethod.MSCHAPV2, password="wrong")
    pair.start()
    pair.to_peer()
    pair.to_auth()
    pair.decide()
    [(protocol, info)] = pair.a_out
    packet = parse_packet(info)
    assert (protocol, packet.code) == (Protocol.CHAP, ChapCode.FAILURE)
    challenge = pair.auth.challenge  # type: ignore[attr-defined]
    assert packet.data == f"E=691 R=0 C={challenge.hex().upper()} V=3 M=Authentication failed".encode()
    pair.to_peer()
    assert pair.peer.outcome == AuthOutcome(False, "alice", "E=691: Authentication failed")


def test_mschapv2_success_message_format() -> None:
    pair = Pair(AuthMethod.MSCHAPV2)
    pair.start()
    pair.to_peer()
    pair.to_auth()
    decision = pair.decide()
    packet = parse_packet(pair.a_out[0][1])
    assert packet.code == ChapCode.SUCCESS
    assert packet.data == f"{decision.authenticator_response} M=Access granted".encode()


def test_mschapv2_domain_prefix() -> None:
    # RFC 2759 4: the peer may send BIGCO\alice; only "alice" is hashed, and the users file
    # falls back to the bare name.
    pair = Pair(AuthMethod.MSCHAPV2, "BIGCO\\alice", "s3cret")
    pair.start()
    pair.run()
    assert pair.auth.outcome == AuthOutcome(True, "BIGCO\\alice", "")
    assert pair.peer.outcome is not None and pair.peer.outcome.succeeded


# --- timers and retransmission -----------------------------------------------------------------


@pytest.mark.parametrize("method", [AuthMethod.CHAP_MD5, AuthMethod.MSCHAPV2])
def test_challenge_resent_with_same_identifier_then_given_up(method: AuthMethod) -> None:
    pair = Pair(method)
    pair.auth.start(pair.now)
    first = pair.a_out[0][1]
    assert parse_packet(first).code == ChapCode.CHALLENGE
    assert pair.auth.deadline == pair.now + SETTINGS.timeout
    pair.advance(SETTINGS.timeout - 0.01)
    assert len(pair.a_out) == 1
    for _ in range(SETTINGS.max_retries):
        pair.advance(SETTINGS.timeout)
    # RFC 1994 4.1: one Challenge, retransmitted byte for byte (same Identifier and Value).
    assert [info for _, info in pair.a_out] == [first] * (1 + SETTINGS.max_retries)
    assert pair.auth.outcome is None
    pair.advance(SETTINGS.timeout)
    assert pair.auth.outcome == AuthOutcome(False, "", "no response")
    assert pair.auth.deadline is None
    assert len(pair.a_out) == 1 + SETTINGS.max_retries


@pytest.mark.parametrize("method", [AuthMethod.CHAP_MD5, AuthMethod.MSCHAPV2])
def test_response_to_a_retransmitted_challenge_is_accepted(method: AuthMethod) -> None:
    pair = Pair(method)
    pair.start()
    pair.a_out.clear()  # the first Challenge is lost
    pair.advance(SETTINGS.timeout)
    pair.run()
    assert pair.auth.outcome is not None and pair.auth.outcome.succeeded
    assert pair.peer.outcome is not None and pair.peer.outcome.succeeded


@pytest.mark.parametrize("method", [AuthMethod.CHAP_MD5, AuthMethod.MSCHAPV2])
def test_peer_gives_up_without_challenge(method: AuthMethod) -> None:
    pair = Pair(method)
    pair.peer.start(pair.now)
    assert pair.peer.deadline == pair.now + SETTINGS.timeout * (SETTINGS.max_retries + 1)
    pair.now = pair.peer.deadline
    pair.peer.handle_timer(pair.now)
    assert pair.peer.outcome == AuthOutcome(False, "alice", "no response")
    assert pair.p_out == []


def test_pap_peer_resends_with_new_identifier_then_gives_up() -> None:
    pair = Pair(AuthMethod.PAP)
    pair.peer.start(pair.now)
    for _ in range(SETTINGS.max_retries):
        pair.advance(SETTINGS.timeout)
    packets = [parse_packet(info) for _, info in pair.p_out]
    assert len(packets) == 1 + SETTINGS.max_retries
    assert {p.code for p in packets} == {PapCode.AUTHENTICATE_REQUEST}
    assert len({p.data for p in packets}) == 1
    # RFC 1334 2.2.1: "The Identifier field MUST be changed each time".
    identifiers = [p.identifier for p in packets]
    assert len(set(identifiers)) == len(identifiers)
    assert pair.peer.outcome is None
    pair.advance(SETTINGS.timeout)
    assert pair.peer.outcome == AuthOutcome(False, "alice", "no response")
    assert len(pair.p_out) == 1 + SETTINGS.max_retries


def test_pap_peer_accepts_an_answer_to_an_older_request() -> None:
    pair = Pair(AuthMethod.PAP)
    pair.start()
    first = pair.p_out[0][1]
    pair.advance(SETTINGS.timeout)
    pair.p_out.clear()
    pair.auth.receive(first, pair.now)
    pair.decide()
    pair.to_peer()
    assert pair.peer.outcome is not None and pair.peer.outcome.succeeded


def test_pap_peer_ignores_a_reply_to_an_identifier_it_never_used() -> None:
    pair = Pair(AuthMethod.PAP)
    pair.peer.start(pair.now)
    identifier = parse_packet(pair.p_out[0][1]).identifier
    pair.peer.receive(build_packet(PapCode.AUTHENTICATE_ACK, identifier ^ 0x80, b"\x00"), pair.now)
    assert pair.peer.outcome is None
    pair.peer.receive(build_packet(PapCode.AUTHENTICATE_NAK, identifier, b"\x05nope!"), pair.now)
    assert pair.peer.outcome == AuthOutcome(False, "alice", "nope!")


def test_pap_authenticator_waits_timeout_times_retries() -> None:
    pair = Pair(AuthMethod.PAP)
    pair.auth.start(pair.now)
    assert pair.a_out == []
    assert pair.auth.deadline == pair.now + SETTINGS.timeout * SETTINGS.max_retries
    pair.advance(SETTINGS.timeout * SETTINGS.max_retries - 0.01)
    assert pair.auth.outcome is None
    pair.advance(0.01)
    assert pair.auth.outcome == AuthOutcome(False, "", "no response")
    # A request that comes after giving up is not judged.
    pair.peer.start(pair.now)
    pair.to_auth()
    assert pair.auth.pending is None and pair.a_out == []


# --- duplicates and pending decisions ----------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("password", ["s3cret", "wrong"])
def test_duplicate_after_decision_gets_the_same_answer(method: AuthMethod, password: str) -> None:
    pair = Pair(method, password=password)
    pair.start()
    pair.to_peer()
    answer = list(pair.p_out)
    pair.to_auth()
    pair.decide()
    first_reply = parse_packet(pair.a_out[0][1])
    pair.a_out.clear()
    # RFC 1334 2.2.1, RFC 1994 4.1: the reply may have been lost; the peer asks again.
    for _, info in answer:
        pair.auth.receive(info, pair.now)
    [(_, info)] = pair.a_out
    again = parse_packet(info)
    assert again == first_reply
    assert pair.auth.outcome is not None and pair.auth.outcome.succeeded == (password == "s3cret")


@pytest.mark.parametrize("method", METHODS)
def test_pending_decision_completed_later(method: AuthMethod) -> None:
    pair = Pair(method)
    pair.start()
    pair.to_peer()
    answer = list(pair.p_out)
    pair.to_auth()
    request = pair.auth.pending
    assert request is not None
    assert pair.auth.deadline is None  # no timer while the backend decides
    # A resend while the decision is pending is ignored: no second request, nothing sent.
    pair.now += SETTINGS.timeout * 20  # RADIUS may take long; only the authenticator's timer runs
    pair.auth.handle_timer(pair.now)
    for _, info in answer:
        pair.auth.receive(info, pair.now)
    assert pair.auth.pending is request and pair.a_out == []
    assert pair.auth.outcome is None
    pair.decide()
    assert pair.auth.pending is None
    pair.to_peer()
    assert pair.auth.outcome is not None and pair.auth.outcome.succeeded
    assert pair.peer.outcome is not None and pair.peer.outcome.succeeded


@pytest.mark.parametrize("method", METHODS)
def test_pending_request_contents(method: AuthMethod) -> None:
    pair = Pair(method)
    pair.start()
    pair.to_peer()
    pair.to_auth()
    request = pair.auth.pending
    kind = {
        AuthMethod.PAP: PapRequest,
        AuthMethod.CHAP_MD5: ChapRequest,
        AuthMethod.MSCHAPV2: MsChapV2Request,
    }
    assert isinstance(request, kind[method])
    assert request.username == "alice"
    if isinstance(request, PapRequest):
        assert request.password == b"s3cret"
        assert "s3cret" not in repr(request)
    elif isinstance(request, ChapRequest):
        assert len(request.challenge) == 16
        assert request.response == chap_md5_response(request.identifier, b"s3cret", request.challenge)
    else:
        assert len(request.authenticator_challenge) == 16 and len(request.peer_challenge) == 16
        nt = generate_nt_response(request.authenticator_challenge, request.peer_challenge, "alice", "s3cret")
        assert request.nt_response == nt


@pytest.mark.parametrize("method", METHODS)
def test_complete_without_pending_is_misuse(method: AuthMethod) -> None:
    pair = Pair(method)
    pair.start()
    with pytest.raises(LocalProtocolError):
        pair.auth.complete(AuthDecision(True), pair.now)


@pytest.mark.parametrize("method", [AuthMethod.CHAP_MD5, AuthMethod.MSCHAPV2])
def test_peer_answers_same_challenge_alike_and_new_challenge_anew(method: AuthMethod) -> None:
    pair = Pair(method)
    pair.peer.start(pair.now)
    challenge = build_packet(ChapCode.CHALLENGE, 7, b"\x10" + bytes(range(16)) + b"lns")
    pair.peer.receive(challenge, pair.now)
    pair.peer.receive(challenge, pair.now)
    first, second = (parse_packet(info) for _, info in pair.p_out)
    assert first == second and first.identifier == 7 and first.code == ChapCode.RESPONSE
    pair.peer.receive(build_packet(ChapCode.CHALLENGE, 8, b"\x10" + bytes(range(16)) + b"lns"), pair.now)
    third = parse_packet(pair.p_out[2][1])
    assert third.identifier == 8 and third.data != first.data
    value_size = 16 if method == AuthMethod.CHAP_MD5 else 49
    assert third.data[0] == value_size and third.data[1 + value_size :] == b"alice"


def test_response_with_other_identifier_is_dropped() -> None:
    pair = Pair(AuthMethod.CHAP_MD5)
    pair.start()
    pair.to_peer()
    [(_, info)] = pair.p_out
    packet = parse_packet(info)
    pair.auth.receive(build_packet(packet.code, packet.identifier ^ 1, packet.data), pair.now)
    assert pair.auth.pending is None
    pair.auth.receive(info + b"padding", pair.now)  # RFC 1661 5: octets past Length are padding
    assert pair.auth.pending is not None


def test_mschapv2_authenticator_drops_response_of_wrong_size() -> None:
    pair = Pair(AuthMethod.MSCHAPV2)
    pair.start()
    identifier = parse_packet(pair.a_out[0][1]).identifier
    pair.auth.receive(build_packet(ChapCode.RESPONSE, identifier, b"\x10" + bytes(16) + b"alice"), pair.now)
    assert pair.auth.pending is None


@pytest.mark.parametrize(
    ("proof", "sent"),
    [
        (AUTH_RESPONSE, AUTH_RESPONSE),
        (AUTH_RESPONSE.lower(), AUTH_RESPONSE),
        (AUTH_RESPONSE[2:], AUTH_RESPONSE),
        (None, None),
        ("S=123", None),
    ],
)
def test_mschapv2_authenticator_checks_the_backend_proof(proof: str | None, sent: str | None) -> None:
    pair = Pair(AuthMethod.MSCHAPV2)
    pair.start()
    pair.to_peer()
    pair.to_auth()
    pair.auth.complete(AuthDecision(True, authenticator_response=proof), pair.now)
    packet = parse_packet(pair.a_out[0][1])
    if sent is None:
        # RFC 2759 5: the peer would end the session on a Success without a proof.
        assert packet.code == ChapCode.FAILURE
        assert pair.auth.outcome == AuthOutcome(False, "alice", "no authenticator response")
    else:
        assert packet.code == ChapCode.SUCCESS and packet.data.startswith(sent.encode() + b" M=")
        assert pair.auth.outcome is not None and pair.auth.outcome.succeeded


# --- MS-CHAPv2 Success as servers in the field send it -----------------------------------------


def _mschapv2_peer_with_answer() -> tuple[Peer, int, str]:
    """A peer that has answered a Challenge, its Identifier and the proof a server must send."""
    outbox: list[tuple[int, bytes]] = []
    peer = make_peer(
        AuthMethod.MSCHAPV2, "User", "clientPass", outbox, SETTINGS, lambda n: PEER_CHALLENGE[:n]
    )
    peer.start(0.0)
    peer.receive(build_packet(ChapCode.CHALLENGE, 0x33, b"\x10" + AUTH_CHALLENGE), 0.0)
    value = parse_packet(outbox[0][1]).data[1:50]
    assert value == PEER_CHALLENGE + bytes(8) + NT_RESPONSE + b"\x00"
    return peer, 0x33, AUTH_RESPONSE


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{s} M=Access granted", "Access granted"),
        ("{s}M=Success. Logging you in...", "Success. Logging you in..."),  # Windows Server 2019
        ("{s}", ""),
        ("{lower}", ""),
        ("{lower} M=ok", "ok"),
        ("s={hex} M=ok", "ok"),
        ("{s} M=ok\x00", "ok"),
        ("{s}\r\n", ""),
        ("{s}\x00", ""),
        ("\x00{s} M=ok", "ok"),
        ("M=Welcome {s}", ""),
    ],
)
def test_mschapv2_peer_accepts_field_variants_of_success(template: str, message: str) -> None:
    peer, identifier, proof = _mschapv2_peer_with_answer()
    lower = "S=" + proof[2:].lower()
    data = template.format(s=proof, lower=lower, hex=proof[2:]).encode()
    peer.receive(build_packet(ChapCode.SUCCESS, identifier, data), 1.0)
    assert peer.outcome == AuthOutcome(True, "User", message)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"S=" + b"0" * 40 + b" M=ok", "authenticator response mismatch"),
        ("S=" + AUTH_RESPONSE[2:-1] + "7 M=ok", "authenticator response mismatch"),
        (b"M=Access granted", "authenticator response missing"),
        (b"", "authenticator response missing"),
        ("S=" + AUTH_RESPONSE[2:-1], "authenticator response missing"),
    ],
)
def test_mschapv2_peer_rejects_wrong_or_missing_proof(data: bytes | str, reason: str) -> None:
    peer, identifier, _ = _mschapv2_peer_with_answer()
    raw = data.encode() if isinstance(data, str) else data
    peer.receive(build_packet(ChapCode.SUCCESS, identifier, raw), 1.0)
    assert peer.outcome == AuthOutcome(False, "User", reason)


def test_mschapv2_peer_ignores_success_for_an_unanswered_identifier() -> None:
    peer, identifier, proof = _mschapv2_peer_with_answer()
    peer.receive(build_packet(ChapCode.SUCCESS, identifier + 1, proof.encode()), 1.0)
    assert peer.outcome is None


def test_parse_success_message() -> None:
    assert parse_success_message(b"S=" + b"a" * 40 + b" M=hi") == ("S=" + "A" * 40, "hi")
    assert parse_success_message(b"nothing here") == (None, "nothing here")


def test_mschapv2_peer_failure_variants() -> None:
    for data, message in [
        (b"E=691 R=1 C=" + b"0" * 32 + b" V=3 M=bad password", "E=691: bad password"),
        (b"E=648 R=0 V=3", "E=648: E=648 R=0 V=3"),
        (b"no format at all", "no format at all"),
        (b"", "authentication failed"),
    ]:
        peer, identifier, _ = _mschapv2_peer_with_answer()
        peer.receive(build_packet(ChapCode.FAILURE, identifier, data), 1.0)
        assert peer.outcome == AuthOutcome(False, "User", message), data


# --- bad input never raises --------------------------------------------------------------------


def _started_ends() -> list[Authenticator | Peer]:
    ends: list[Authenticator | Peer] = []
    for method in METHODS:
        pair = Pair(method)
        pair.start()
        pair.to_peer()
        ends += [pair.auth, pair.peer]
    return ends


@settings(max_examples=300)
@given(st.binary(max_size=80))
def test_random_bytes_never_raise(data: bytes) -> None:
    for end in _started_ends():
        end.receive(data, 200.0)
        end.handle_timer(200.0)


@settings(max_examples=300)
@given(st.integers(0, 8), st.integers(0, 255), st.binary(max_size=70), st.binary(max_size=4))
def test_random_packets_never_raise(code: int, identifier: int, data: bytes, padding: bytes) -> None:
    for end in _started_ends():
        end.receive(build_packet(code, identifier, data) + padding, 200.0)
        if isinstance(end, Authenticator) and end.pending is not None:
            end.complete(USERS.authenticate(end.pending), 200.0)


@settings(max_examples=300)
@given(st.sampled_from([ChapCode.SUCCESS, ChapCode.FAILURE]), st.binary(max_size=120))
def test_mschapv2_peer_any_reply_text_never_raises(code: int, data: bytes) -> None:
    peer, identifier, _ = _mschapv2_peer_with_answer()
    peer.receive(build_packet(code, identifier, data), 1.0)
    assert peer.outcome is not None
    if peer.outcome.succeeded:
        assert code == ChapCode.SUCCESS and AUTH_RESPONSE.encode() in data.upper()


def test_receive_before_start_never_raises() -> None:
    for method in METHODS:
        pair = Pair(method)
        for code in range(1, 5):
            pair.auth.receive(build_packet(code, 0, b"\x05alice\x06s3cret"), 0.0)
            pair.peer.receive(build_packet(code, 0, b"\x05alice\x06s3cret"), 0.0)
        assert pair.auth.outcome is None


# --- L2TP proxy authentication (RFC 2661 4.4.5) ------------------------------------------------


def test_request_from_proxy_pap() -> None:
    request = request_from_proxy(3, "alice", b"", 9, b"s3cret")
    assert request == PapRequest("alice", b"s3cret", 9)
    assert USERS.authenticate(request).accepted


def test_request_from_proxy_chap_md5() -> None:
    challenge = bytes(range(16, 32))
    response = hashlib.md5(b"\x09s3cret" + challenge).digest()
    request = request_from_proxy(2, "alice", challenge, 9, response)
    assert request == ChapRequest("alice", 9, challenge, response)
    assert USERS.authenticate(request).accepted
    other_identifier = request_from_proxy(2, "alice", challenge, 10, response)
    assert other_identifier is not None and not USERS.authenticate(other_identifier).accepted


def test_request_from_proxy_mschapv2() -> None:
    response = PEER_CHALLENGE + bytes(8) + NT_RESPONSE + b"\x00"
    request = request_from_proxy(2, "User", AUTH_CHALLENGE, 0x33, response)
    assert request == MsChapV2Request("User", 0x33, AUTH_CHALLENGE, PEER_CHALLENGE, NT_RESPONSE)
    decision = UsersFile.parse("User clientPass").authenticate(request)
    assert decision.accepted and decision.authenticator_response == AUTH_RESPONSE


@pytest.mark.parametrize("authen_type", [0, 1, 4, 5, 99])
def test_request_from_proxy_other_types(authen_type: int) -> None:
    assert request_from_proxy(authen_type, "alice", b"x" * 16, 1, b"y" * 16) is None


def test_request_from_proxy_chap_without_challenge() -> None:
    assert request_from_proxy(2, "alice", b"", 1, b"y" * 16) is None
    assert request_from_proxy(2, "alice", b"x" * 16, 1, b"") is None
