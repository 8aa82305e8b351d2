"""The PPP link of one session (``l2tpfast.ppp.link``): phases, authentication, NCPs, proxy LCP.

A server link (the LNS) and a client link (our LAC's PPP client) are wired together in memory
with a fake clock; frames cross through the frame codec, so every exchange is real bytes. The
server's authentication requests are answered by a users file, as the daemon does.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2tpfast.aaa.users import UsersFile
from l2tpfast.control.events import ProxyInfo
from l2tpfast.errors import PppError
from l2tpfast.ppp.auth import AuthDecision
from l2tpfast.ppp.auth.chap import chap_md5_response
from l2tpfast.ppp.constants import AuthMethod, ChapCode, Code, LcpOption, PapCode, Protocol
from l2tpfast.ppp.events import (
    Authenticated,
    AuthenticationFailed,
    AuthenticationRequested,
    NetworkUp,
    PppEvent,
)
from l2tpfast.ppp.frame import build_frame, build_options, parse_frame, parse_options, parse_packet
from l2tpfast.ppp.lcp import LcpSettings
from l2tpfast.ppp.link import LinkSettings, Phase, PppLink, lcp_options_from_confreq

LNS_ADDRESS = IPv4Address("10.100.0.1")
ASSIGNED = IPv4Address("10.100.0.7")
DNS = (IPv4Address("192.0.2.53"), IPv4Address("192.0.2.54"))
USERS = UsersFile.parse('alice "wonder land"\nbob builder 10.100.0.99\n')


def rand_of(seed: int) -> Callable[[int], bytes]:
    rng = random.Random(seed)
    return lambda n: bytes(rng.randrange(256) for _ in range(n))


def server_settings(*methods: AuthMethod, **kw: object) -> LinkSettings:
    lcp = LcpSettings(auth_methods=methods or (AuthMethod.CHAP_MD5,), echo_interval=0)
    return replace(LinkSettings(lcp=lcp, local_address=LNS_ADDRESS, dns=DNS), **kw)  # type: ignore[arg-type]


def client_settings(username: str = "alice", password: str = "wonder land", **kw: object) -> LinkSettings:
    lcp = LcpSettings(echo_interval=0)
    return replace(LinkSettings(lcp=lcp, username=username, password=password), **kw)  # type: ignore[arg-type]


@dataclass
class Wire:
    """Two links and the frames between them; ``run`` moves frames until both are quiet."""

    server: PppLink
    client: PppLink
    now: float = 0.0
    server_events: list[PppEvent] = field(default_factory=list)
    client_events: list[PppEvent] = field(default_factory=list)
    to_client: list[tuple[int, bytes]] = field(default_factory=list)
    to_server: list[tuple[int, bytes]] = field(default_factory=list)
    answer: bool = True

    def run(self, limit: int = 200) -> None:
        for _ in range(limit):
            moved = self._move(self.server, self.client, self.to_client, self.server_events, server=True)
            moved |= self._move(self.client, self.server, self.to_server, self.client_events, server=False)
            if not moved:
                return
        raise AssertionError("links did not go quiet")

    def _move(
        self,
        src: PppLink,
        dst: PppLink,
        log: list[tuple[int, bytes]],
        events: list[PppEvent],
        *,
        server: bool,
    ) -> bool:
        moved = False
        while (event := src.next_event()) is not None:
            moved = True
            events.append(event)
            if server and isinstance(event, AuthenticationRequested) and self.answer:
                self.decide(event)
        for protocol, info in src.frames_to_send():
            moved = True
            log.append((protocol, info))
            # Through the frame codec, with the compressed forms too (both must be accepted).
            frame = build_frame(protocol, info, acfc=len(log) % 2 == 0, pfc=protocol < 0x100)
            dst.receive(*parse_frame(frame), self.now)
        return moved

    def decide(self, event: AuthenticationRequested) -> None:
        decision = USERS.authenticate(event.request) if event.request is not None else AuthDecision(True)
        address = decision.framed_address or ASSIGNED
        self.server.complete_authentication(decision, self.now, peer_address=address)

    def advance(self, seconds: float, step: float = 0.25) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now = min(end, self.now + step)
            for link in (self.server, self.client):
                t = link.get_timer()
                if t is not None and t <= self.now:
                    link.handle_timer(self.now)
            self.run()


def make_wire(server: LinkSettings, client: LinkSettings, *, start: bool = True) -> Wire:
    w = Wire(PppLink(server, server=True, rand=rand_of(1)), PppLink(client, server=False, rand=rand_of(2)))
    if start:
        w.server.start(0.0)
        w.client.start(0.0)
        w.run()
    return w


def kinds(events: list[PppEvent], kind: type) -> list[PppEvent]:
    return [e for e in events if isinstance(e, kind)]


@pytest.mark.parametrize("method", [AuthMethod.PAP, AuthMethod.CHAP_MD5, AuthMethod.MSCHAPV2])
def test_full_link_each_method(method: AuthMethod) -> None:
    w = make_wire(server_settings(method), client_settings())
    assert w.server.phase is Phase.NETWORK and w.client.phase is Phase.NETWORK
    assert w.server.is_up and w.client.is_up
    (up_s,) = kinds(w.server_events, NetworkUp)
    (up_c,) = kinds(w.client_events, NetworkUp)
    assert up_s.peer_address == ASSIGNED and up_s.local_address == LNS_ADDRESS
    assert up_c.local_address == ASSIGNED and up_c.peer_address == LNS_ADDRESS
    assert up_c.dns == DNS  # RFC 1877 through the Nak
    (auth,) = kinds(w.server_events, Authenticated)
    assert auth.username == "alice" and auth.method == method  # type: ignore[attr-defined]
    assert kinds(w.client_events, Authenticated)
    assert w.server.lcp.local_options.auth == method
    # Phases in order on the wire: nothing of the NCP before authentication ended (RFC 1661 3.5).
    protocols = [p for p, _ in w.to_client]
    auth_protocol = Protocol.PAP if method == AuthMethod.PAP else Protocol.CHAP
    last_auth = max(i for i, p in enumerate(protocols) if p == auth_protocol)
    first_ipcp = protocols.index(Protocol.IPCP)
    assert first_ipcp > last_auth


def test_server_prefers_its_first_method_and_client_naks_to_another() -> None:
    server = server_settings(AuthMethod.MSCHAPV2, AuthMethod.PAP)
    client = client_settings(lcp=LcpSettings(echo_interval=0, accept_auth=(AuthMethod.PAP,)))
    w = make_wire(server, client)
    assert w.server.is_up
    assert w.server.lcp.local_options.auth == AuthMethod.PAP


@pytest.mark.parametrize("method", [AuthMethod.PAP, AuthMethod.CHAP_MD5, AuthMethod.MSCHAPV2])
def test_wrong_password_is_refused_and_the_link_closes(method: AuthMethod) -> None:
    w = make_wire(server_settings(method), client_settings(password="wrong"))
    w.advance(10)
    (failed,) = kinds(w.server_events, AuthenticationFailed)
    assert failed.username == "alice" and not failed.local  # type: ignore[attr-defined]
    assert kinds(w.client_events, AuthenticationFailed)
    assert w.server.closed is not None and w.server.phase is Phase.DEAD
    assert w.client.closed is not None
    assert w.server.ipcp is None  # the network phase was never entered
    assert not kinds(w.server_events, NetworkUp)


def test_users_file_address_is_the_one_ipcp_assigns() -> None:
    w = make_wire(server_settings(AuthMethod.CHAP_MD5), client_settings("bob", "builder"))
    (up_c,) = kinds(w.client_events, NetworkUp)
    assert up_c.local_address == IPv4Address("10.100.0.99")


def test_no_authentication_still_asks_the_shell_for_an_address() -> None:
    server = replace(server_settings(), lcp=LcpSettings(auth_methods=(), echo_interval=0))
    w = make_wire(server, client_settings(username=""))
    (asked,) = kinds(w.server_events, AuthenticationRequested)
    assert asked.request is None  # type: ignore[attr-defined]
    assert w.client.is_up and kinds(w.client_events, NetworkUp)[0].local_address == ASSIGNED  # type: ignore[attr-defined]


def test_decision_may_come_later_as_radius_would() -> None:
    w = make_wire(server_settings(AuthMethod.CHAP_MD5), client_settings(), start=False)
    w.answer = False
    w.server.start(0.0)
    w.client.start(0.0)
    w.run()
    (asked,) = kinds(w.server_events, AuthenticationRequested)
    assert w.server.phase is Phase.AUTHENTICATE and not w.client.is_up
    w.now = 1.0
    w.decide(asked)  # type: ignore[arg-type]
    w.run()
    assert w.server.is_up and w.client.is_up


def test_client_without_credentials_closes_when_asked_to_authenticate() -> None:
    w = make_wire(server_settings(AuthMethod.PAP), client_settings(username="", password=""))
    w.advance(10)
    assert w.client.closed is not None and "credentials" in w.client.closed.reason
    assert not w.server.is_up


def test_peer_that_never_answers_the_challenge_times_out() -> None:
    w = make_wire(server_settings(AuthMethod.CHAP_MD5), client_settings(), start=False)
    w.server.start(0.0)
    w.client.start(0.0)
    # Deliver LCP only; drop every CHAP frame the server sends (3 s x 11 Challenges, then give up).
    for _ in range(100):
        for protocol, info in w.server.frames_to_send():
            if protocol != Protocol.CHAP:
                w.client.receive(protocol, info, w.now)
        for protocol, info in w.client.frames_to_send():
            w.server.receive(protocol, info, w.now)
        while (e := w.server.next_event()) is not None:
            w.server_events.append(e)
        w.client.next_event()
        w.now += 0.5
        for link in (w.server, w.client):
            t = link.get_timer()
            if t is not None and t <= w.now:
                link.handle_timer(w.now)
    assert kinds(w.server_events, AuthenticationFailed)
    assert w.server.closed is not None


def test_unknown_protocol_is_protocol_rejected_once_lcp_is_open() -> None:
    w = make_wire(server_settings(), client_settings())
    w.server.receive(Protocol.CCP, b"\x01\x01\x00\x04", w.now)  # RFC 1962 CCP Configure-Request
    ((protocol, info),) = w.server.frames_to_send()
    packet = parse_packet(info)
    assert protocol == Protocol.LCP and packet.code == Code.PROTOCOL_REJECT
    assert packet.data[:2] == Protocol.CCP.to_bytes(2, "big")
    assert w.server.counters["protocol_rejects_sent"] == 1


def test_ncp_before_the_network_phase_is_discarded() -> None:
    w = make_wire(server_settings(), client_settings(), start=False)
    w.server.start(0.0)
    w.server.frames_to_send()
    w.server.receive(Protocol.IPCP, b"\x01\x01\x00\x0a\x03\x06\x00\x00\x00\x00", 0.0)
    assert w.server.frames_to_send() == []  # RFC 1661 3.4: silently discarded
    assert w.server.counters["dropped"] == 1


def test_ipv6cp_when_both_ends_enable_it() -> None:
    w = make_wire(server_settings(ipv6cp=True), client_settings(ipv6cp=True))
    ups = {e.protocol: e for e in kinds(w.client_events, NetworkUp)}  # type: ignore[attr-defined]
    assert set(ups) == {Protocol.IPCP, Protocol.IPV6CP}
    v6 = ups[Protocol.IPV6CP]
    assert v6.local_identifier and v6.peer_identifier and v6.local_identifier != v6.peer_identifier  # type: ignore[attr-defined]


def test_ipv6cp_rejected_by_a_peer_without_it_leaves_ipv4_up() -> None:
    w = make_wire(server_settings(ipv6cp=True), client_settings())
    assert w.server.is_up and w.client.is_up
    assert [e.protocol for e in kinds(w.server_events, NetworkUp)] == [Protocol.IPCP]  # type: ignore[attr-defined]


def test_keepalive_failure_closes_the_link() -> None:
    server = replace(
        server_settings(), lcp=LcpSettings(auth_methods=(AuthMethod.PAP,), echo_interval=1, echo_failure=3)
    )
    w = make_wire(server, client_settings())
    w.advance(3)
    assert w.server.lcp.echo_replies >= 2 and w.server.closed is None
    # The client goes silent.
    w.client = PppLink(client_settings(), server=False)
    end = w.now + 10
    while w.now < end and w.server.closed is None:
        w.now += 0.5
        t = w.server.get_timer()
        if t is not None and t <= w.now:
            w.server.handle_timer(w.now)
        w.server.frames_to_send()
    assert w.server.closed is not None and w.server.closed.reason.startswith("keepalive")
    assert not w.server.closed.by_peer


def test_peer_terminate_request_closes_by_peer() -> None:
    w = make_wire(server_settings(), client_settings())
    w.client.close(w.now, "User request")
    w.run()
    assert w.server.closed is None  # RFC 1661 4.1 zrc: Stopping for one Restart time first
    w.advance(4)
    assert w.server.closed is not None and w.server.closed.by_peer
    assert w.server.closed.reason == "User request"
    assert w.client.closed is not None and not w.client.closed.by_peer


# --- proxy LCP and proxy authentication (RFC 2661 4.4.5) -------------------------------------

CLIENT_MAGIC = b"\x11\x22\x33\x44"
LAC_MAGIC = b"\x55\x66\x77\x88"


def proxy_info(*, authen_type: int = 2, response: bytes | None = None, with_auth: bool = True) -> ProxyInfo:
    sent = [(LcpOption.MRU, b"\x05\xd4"), (LcpOption.MAGIC_NUMBER, LAC_MAGIC)]
    if with_auth:
        sent.append((LcpOption.AUTH_PROTOCOL, b"\xc2\x23\x05" if authen_type == 2 else b"\xc0\x23"))
    received = [(LcpOption.MAGIC_NUMBER, CLIENT_MAGIC), (LcpOption.PFC, b""), (LcpOption.ACFC, b"")]
    challenge = bytes(range(16))
    if response is None:
        response = chap_md5_response(7, b"wonder land", challenge) if authen_type == 2 else b"wonder land"
    return ProxyInfo(
        initial_received_lcp_confreq=build_options(received),
        last_sent_lcp_confreq=build_options(sent),
        last_received_lcp_confreq=build_options(received),
        authen_type=authen_type if with_auth else None,
        authen_name="alice" if with_auth else None,
        authen_challenge=challenge if with_auth and authen_type == 2 else None,
        authen_id=7 if with_auth else None,
        authen_response=response if with_auth else None,
    )


def start_proxied(info: ProxyInfo, **kw: object) -> tuple[PppLink, list[PppEvent]]:
    link = PppLink(server_settings(AuthMethod.CHAP_MD5, **kw), server=True, rand=rand_of(3))
    link.start(0.0, proxy=info)
    events: list[PppEvent] = []
    while (e := link.next_event()) is not None:
        events.append(e)
        if isinstance(e, AuthenticationRequested):
            decision = USERS.authenticate(e.request) if e.request is not None else AuthDecision(True)
            link.complete_authentication(decision, 0.0, peer_address=ASSIGNED)
    return link, events


@pytest.mark.parametrize("authen_type", [2, 3])
def test_proxy_lcp_and_auth_accepted_without_renegotiating(authen_type: int) -> None:
    link, events = start_proxied(proxy_info(authen_type=authen_type))
    frames = link.frames_to_send()
    protocols = [p for p, _ in frames]
    assert Protocol.LCP not in protocols or all(
        parse_packet(i).code != Code.CONFIGURE_REQUEST for p, i in frames if p == Protocol.LCP
    ), "LCP is not restarted"
    verdict = next(parse_packet(i) for p, i in frames if p in (Protocol.CHAP, Protocol.PAP))
    assert verdict.identifier == 7  # the proxied answer's Identifier
    assert verdict.code == (ChapCode.SUCCESS if authen_type == 2 else PapCode.AUTHENTICATE_ACK)
    assert Protocol.IPCP in protocols and link.phase is Phase.NETWORK
    asked = kinds(events, AuthenticationRequested)[0]
    assert asked.proxied and asked.request.username == "alice"  # type: ignore[attr-defined]
    # The proxied options are the link's: the client asked for PFC/ACFC, we may compress.
    assert link.lcp.peer_options.pfc and link.lcp.peer_options.acfc
    assert link.lcp.peer_options.magic == int.from_bytes(CLIENT_MAGIC, "big")


def test_proxy_auth_with_a_wrong_answer_fails_with_the_proxied_identifier() -> None:
    link, events = start_proxied(proxy_info(response=bytes(16)))
    frames = link.frames_to_send()
    failure = next(parse_packet(i) for p, i in frames if p == Protocol.CHAP)
    assert failure.code == ChapCode.FAILURE and failure.identifier == 7
    assert kinds(events, AuthenticationFailed)
    assert any(p == Protocol.LCP and parse_packet(i).code == Code.TERMINATE_REQUEST for p, i in frames)


def test_proxy_renegotiate_restarts_lcp() -> None:
    link, _ = start_proxied(proxy_info(), proxy="renegotiate")
    frames = link.frames_to_send()
    assert frames[0][0] == Protocol.LCP and parse_packet(frames[0][1]).code == Code.CONFIGURE_REQUEST


def test_proxy_lcp_without_auth_but_auth_required_renegotiates() -> None:
    link, _ = start_proxied(proxy_info(with_auth=False))
    frames = link.frames_to_send()
    assert any(p == Protocol.LCP and parse_packet(i).code == Code.CONFIGURE_REQUEST for p, i in frames)


def test_proxy_confreq_with_whole_lcp_header_is_accepted() -> None:
    body = build_options([(LcpOption.MRU, b"\x05\x78"), (LcpOption.PFC, b"")])
    whole = bytes((Code.CONFIGURE_REQUEST, 1)) + (4 + len(body)).to_bytes(2, "big") + body
    assert lcp_options_from_confreq(whole).mru == 1400
    assert lcp_options_from_confreq(body).pfc
    with pytest.raises(PppError):
        lcp_options_from_confreq(b"\x01\x09\x00")


# --- the frame codec --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (b"\xff\x03\xc0\x21\x09", (0xC021, b"\x09")),
        (b"\xc0\x21\x09", (0xC021, b"\x09")),  # no address/control (ACFC)
        (b"\xff\x03\x21E", (0x21, b"E")),  # 1-octet protocol (PFC)
        (b"\x21E", (0x21, b"E")),  # both
        (b"\x00\x21E", (0x21, b"E")),
    ],
)
def test_frames_in_every_form(frame: bytes, expected: tuple[int, bytes]) -> None:
    assert parse_frame(frame) == expected


@pytest.mark.parametrize("frame", [b"", b"\xff\x03", b"\xc0", b"\x00\x20x"])
def test_bad_frames_are_typed_errors(frame: bytes) -> None:
    with pytest.raises(PppError):
        parse_frame(frame)


def test_options_codec_round_trip_and_bad_length() -> None:
    options = [(1, b"\x05\xdc"), (7, b""), (5, b"\x01\x02\x03\x04")]
    assert parse_options(build_options(options)) == options
    with pytest.raises(PppError):
        parse_options(b"\x01\x01")
    with pytest.raises(PppError):
        parse_packet(b"\x01\x01\x00\x09\x00")
    assert parse_packet(b"\x09\x01\x00\x08abcdPAD").data == b"abcd"  # RFC 1661 5: padding ignored


# --- bad input never escapes the link ---------------------------------------------------------

PROTOCOLS = [
    Protocol.LCP,
    Protocol.PAP,
    Protocol.CHAP,
    Protocol.IPCP,
    Protocol.IPV6CP,
    Protocol.CCP,
    0x0021,
    0x8281,
]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(PROTOCOLS), st.binary(max_size=64), st.floats(min_value=0, max_value=5)),
        max_size=30,
    ),
    st.booleans(),
)
def test_random_frames_never_raise_and_every_output_parses(
    frames: list[tuple[int, bytes, float]], server: bool
) -> None:
    settings_ = server_settings(ipv6cp=True) if server else client_settings(ipv6cp=True)
    link = PppLink(settings_, server=server, rand=rand_of(9))
    link.start(0.0)
    now = 0.0
    for protocol, info, dt in frames:
        now += dt
        link.receive(protocol, info, now)
        t = link.get_timer()
        if t is not None and t <= now:
            link.handle_timer(now)
        while (event := link.next_event()) is not None:
            if isinstance(event, AuthenticationRequested):
                link.complete_authentication(AuthDecision(False, "no"), now)
        for out_protocol, out_info in link.frames_to_send():
            assert out_protocol in (Protocol.LCP, Protocol.PAP, Protocol.CHAP, Protocol.IPCP, Protocol.IPV6CP)
            parse_packet(out_info)  # every packet we emit is well formed
    assert isinstance(link.phase, Phase)


def test_proxy_mschapv2_answer_is_judged_and_answered_with_its_identifier() -> None:
    """A 49-octet proxied CHAP response is MS-CHAPv2 (RFC 2759 4): the Success carries the
    authenticator response (RFC 2759 5) computed for the LAC's challenge."""
    from l2tpfast.ppp.auth.mschapv2 import check_authenticator_response, generate_nt_response

    challenge, peer_challenge = bytes(range(16)), bytes(range(16, 32))
    nt = generate_nt_response(challenge, peer_challenge, "alice", "wonder land")
    info = replace(proxy_info(), authen_response=peer_challenge + bytes(8) + nt + b"\x00")
    link, events = start_proxied(info)
    asked = kinds(events, AuthenticationRequested)[0]
    assert asked.proxied and asked.request.username == "alice"  # type: ignore[attr-defined]
    verdict = next(parse_packet(i) for p, i in link.frames_to_send() if p == Protocol.CHAP)
    assert verdict.code == ChapCode.SUCCESS and verdict.identifier == 7
    proof = verdict.data.split(b" ")[0].decode()
    assert check_authenticator_response("wonder land", nt, peer_challenge, challenge, "alice", proof)
    assert link.phase is Phase.NETWORK
