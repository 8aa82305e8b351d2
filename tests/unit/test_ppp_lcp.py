"""LCP (RFC 1661 5-6): negotiation between two ends in memory, keepalive, loops, rejects, proxy."""

from __future__ import annotations

import random
import struct

import pytest
from ppplayer import RecordingLayer

from l2tpfast.ppp.constants import AuthMethod, Code, LcpOption, Protocol
from l2tpfast.ppp.frame import Option, Packet, build_options, build_packet, parse_options, parse_packet
from l2tpfast.ppp.fsm import FsmSettings, State
from l2tpfast.ppp.lcp import (
    Lcp,
    LcpOptions,
    LcpSettings,
    build_auth_option,
    parse_auth_option,
)

DEFAULTS = LcpSettings()


class End:
    def __init__(self, name: str, settings: LcpSettings = DEFAULTS, seed: int = 0) -> None:
        self.name = name
        self.layer = RecordingLayer()
        self.outbox: list[tuple[int, bytes]] = []
        self.lcp = Lcp(self.layer, self.outbox, settings, rand=random.Random(seed).randbytes)

    def start(self, now: float = 0.0) -> None:
        self.lcp.up(now)
        self.lcp.open(now)


def pump(a: End, b: End, now: float = 0.0) -> list[tuple[str, Packet]]:
    """Deliver both ways until quiet; returns (sender name, packet) in wire order."""
    wire: list[tuple[str, Packet]] = []
    for _ in range(100):
        if not a.outbox and not b.outbox:
            return wire
        for src, dst in ((a, b), (b, a)):
            batch = list(src.outbox)
            src.outbox.clear()
            for protocol, info in batch:
                assert protocol == Protocol.LCP
                packet = parse_packet(info)
                wire.append((src.name, packet))
                dst.lcp.receive(packet, now)
    raise AssertionError("negotiation does not converge")


def negotiate(sa: LcpSettings = DEFAULTS, sb: LcpSettings = DEFAULTS) -> tuple[End, End, list]:
    a, b = End("a", sa, 1), End("b", sb, 2)
    a.start()
    b.start()
    return a, b, pump(a, b)


def options_of(wire: list[tuple[str, Packet]], sender: str, code: int) -> list[list[Option]]:
    return [parse_options(p.data) for s, p in wire if s == sender and p.code == code]


def drain(end: End) -> list[Packet]:
    packets = [parse_packet(info) for _, info in end.outbox]
    end.outbox.clear()
    return packets


NO_ECHO = LcpSettings(echo_interval=0)


def test_defaults_negotiate_magic_only() -> None:
    a, b, wire = negotiate()
    assert a.lcp.state is State.OPENED and b.lcp.state is State.OPENED
    assert a.layer.calls == [("up", Protocol.LCP)] and b.layer.calls == [("up", Protocol.LCP)]
    (request,) = options_of(wire, "a", Code.CONFIGURE_REQUEST)
    assert [kind for kind, _ in request] == [LcpOption.MAGIC_NUMBER]
    assert a.lcp.local_options.magic != 0
    assert a.lcp.local_options.magic == b.lcp.peer_options.magic
    assert b.lcp.local_options.magic == a.lcp.peer_options.magic != a.lcp.local_options.magic
    assert a.lcp.peer_options == LcpOptions(magic=b.lcp.local_options.magic)
    assert a.lcp.deadline == 10.0  # keepalive armed
    assert not a.layer.failures and not b.layer.failures


def test_mru_requested_and_acked() -> None:
    a, b, wire = negotiate(LcpSettings(mru=1400))
    assert options_of(wire, "a", Code.CONFIGURE_REQUEST)[0][0] == (LcpOption.MRU, struct.pack("!H", 1400))
    assert a.lcp.local_options.mru == 1400
    assert b.lcp.peer_options.mru == 1400
    assert b.lcp.peer_mru == 1400  # b must not send more than a receives


def test_mru_below_minimum_is_naked_and_adopted() -> None:
    a, _b, wire = negotiate(LcpSettings(mru=60))
    (nak,) = options_of(wire, "b", Code.CONFIGURE_NAK)
    assert nak == [(LcpOption.MRU, struct.pack("!H", 128))]
    assert a.lcp.local_options.mru == 128
    assert a.lcp.state is State.OPENED


def test_default_mru_is_not_sent() -> None:
    _, _, wire = negotiate(LcpSettings(mru=1500))
    assert all(kind != LcpOption.MRU for kind, _ in options_of(wire, "a", Code.CONFIGURE_REQUEST)[0])


def test_pfc_and_acfc() -> None:
    a, b, wire = negotiate(LcpSettings(request_pfc=True, request_acfc=True))
    assert (LcpOption.PFC, b"") in options_of(wire, "a", Code.CONFIGURE_REQUEST)[0]
    assert a.lcp.local_options.pfc and a.lcp.local_options.acfc
    assert b.lcp.peer_options.pfc and b.lcp.peer_options.acfc  # b may compress towards a
    assert not a.lcp.peer_options.pfc


def test_pfc_refused_is_rejected_and_dropped() -> None:
    a, _b, wire = negotiate(LcpSettings(request_pfc=True, request_acfc=True), LcpSettings(accept_pfc=False))
    assert options_of(wire, "b", Code.CONFIGURE_REJECT) == [[(LcpOption.PFC, b"")]]
    assert not a.lcp.local_options.pfc and a.lcp.local_options.acfc
    assert a.lcp.state is State.OPENED


@pytest.mark.parametrize(
    ("method", "data"),
    [
        (AuthMethod.PAP, b"\xc0\x23"),
        (AuthMethod.CHAP_MD5, b"\xc2\x23\x05"),
        (AuthMethod.MSCHAPV2, b"\xc2\x23\x81"),
    ],
)
def test_each_auth_method(method: AuthMethod, data: bytes) -> None:
    server, client, wire = negotiate(LcpSettings(auth_methods=(method,)))
    assert (LcpOption.AUTH_PROTOCOL, data) in options_of(wire, "a", Code.CONFIGURE_REQUEST)[0]
    assert build_auth_option(method) == (LcpOption.AUTH_PROTOCOL, data)
    assert parse_auth_option(data) is method
    assert server.lcp.local_options.auth is method  # the peer authenticates to us with it
    assert client.lcp.peer_options.auth is method  # we authenticate to the peer with it
    assert server.lcp.peer_options.auth is None


def test_auth_nak_picks_another_method_from_our_list() -> None:
    server, client, wire = negotiate(
        LcpSettings(auth_methods=(AuthMethod.MSCHAPV2, AuthMethod.PAP)),
        LcpSettings(accept_auth=(AuthMethod.PAP,)),
    )
    assert options_of(wire, "b", Code.CONFIGURE_NAK) == [[build_auth_option(AuthMethod.PAP)]]
    assert server.lcp.local_options.auth is AuthMethod.PAP
    assert client.lcp.peer_options.auth is AuthMethod.PAP


def test_auth_nak_outside_our_list_tries_the_next_then_fails() -> None:
    server, _, wire = negotiate(
        LcpSettings(auth_methods=(AuthMethod.MSCHAPV2, AuthMethod.CHAP_MD5)),
        LcpSettings(accept_auth=(AuthMethod.PAP,)),
    )
    requested = [
        [o for o in opts if o[0] == LcpOption.AUTH_PROTOCOL]
        for opts in options_of(wire, "a", Code.CONFIGURE_REQUEST)
    ]
    assert requested[:2] == [
        [build_auth_option(AuthMethod.MSCHAPV2)],
        [build_auth_option(AuthMethod.CHAP_MD5)],
    ]
    assert "no authentication method acceptable to the peer" in server.layer.failures


def test_auth_rejected_fails_the_link() -> None:
    server, _, wire = negotiate(LcpSettings(auth_methods=(AuthMethod.PAP,)), LcpSettings(accept_auth=()))
    assert options_of(wire, "b", Code.CONFIGURE_REJECT) == [[build_auth_option(AuthMethod.PAP)]]
    assert server.layer.failures == ["peer refused authentication"]
    # RFC 1661 5.4: the option is not requested again.
    assert all(o[0] != LcpOption.AUTH_PROTOCOL for o in options_of(wire, "a", Code.CONFIGURE_REQUEST)[1])


def test_unsupported_auth_request_is_naked_with_our_first_choice() -> None:
    end = End("b", LcpSettings(accept_auth=(AuthMethod.CHAP_MD5, AuthMethod.PAP)))
    end.start()
    drain(end)
    eap = (LcpOption.AUTH_PROTOCOL, b"\xc2\x27")
    end.lcp.receive(Packet(Code.CONFIGURE_REQUEST, 3, build_options([eap])), 0)
    (nak,) = drain(end)
    assert (nak.code, parse_options(nak.data)) == (
        Code.CONFIGURE_NAK,
        [build_auth_option(AuthMethod.CHAP_MD5)],
    )


def test_unknown_options_are_rejected_unmodified_and_first() -> None:
    end = End("b")
    end.start()
    drain(end)
    request = [
        (LcpOption.MRU, struct.pack("!H", 40)),  # would be Nak'ed
        (99, b"\x01\x02\x03"),
        (LcpOption.QUALITY_PROTOCOL, b"\xc0\x25\x00\x00\x00\x0a"),
        (LcpOption.ACCM, b"\x00\x00\x00\x00"),
        (LcpOption.MAGIC_NUMBER, b"\x12\x34\x56\x78"),
        (LcpOption.PFC, b"\x00"),  # a boolean option with a value: malformed
    ]
    end.lcp.receive(Packet(Code.CONFIGURE_REQUEST, 8, build_options(request)), 0)
    (reply,) = drain(end)
    assert reply.code == Code.CONFIGURE_REJECT and reply.identifier == 8
    assert parse_options(reply.data) == [request[1], request[2], request[5]]
    end.lcp.receive(Packet(Code.CONFIGURE_REQUEST, 9, build_options([request[3], request[4]])), 0)
    (reply,) = drain(end)
    assert (reply.code, reply.data) == (Code.CONFIGURE_ACK, build_options([request[3], request[4]]))
    assert end.lcp.peer_options.accm == 0


def test_zero_magic_from_peer_is_naked() -> None:
    end = End("b")
    end.start()
    drain(end)
    end.lcp.receive(Packet(Code.CONFIGURE_REQUEST, 4, build_options([(LcpOption.MAGIC_NUMBER, bytes(4))])), 0)
    (nak,) = drain(end)
    ((kind, value),) = parse_options(nak.data)
    assert nak.code == Code.CONFIGURE_NAK and kind == LcpOption.MAGIC_NUMBER and value != bytes(4)


def test_our_request_never_carries_accm() -> None:
    _, _, wire = negotiate(LcpSettings(mru=1400, request_pfc=True, auth_methods=(AuthMethod.PAP,)))
    for options in options_of(wire, "a", Code.CONFIGURE_REQUEST):
        assert all(kind != LcpOption.ACCM for kind, _ in options)


def test_magic_reject_means_no_magic() -> None:
    end = End("a")
    end.start()
    (req,) = drain(end)
    end.lcp.receive(Packet(Code.CONFIGURE_REJECT, req.identifier, req.data), 0)
    (req2,) = drain(end)
    assert parse_options(req2.data) == []
    end.lcp.receive(Packet(Code.CONFIGURE_ACK, req2.identifier, b""), 0)
    end.lcp.receive(Packet(Code.CONFIGURE_REQUEST, 1, b""), 0)
    assert end.lcp.state is State.OPENED
    assert end.lcp.local_options.magic == 0  # RFC 1661 5.8: "MUST be transmitted as zero"


def test_looped_back_link_is_detected_during_negotiation() -> None:
    end = End("a", LcpSettings(max_loops=3))
    end.start()
    magics = []
    for _ in range(20):
        if end.layer.failures:
            break
        for packet in drain(end):
            if packet.code == Code.CONFIGURE_REQUEST:
                magics.append(parse_options(packet.data)[0][1])
            if packet.code == Code.CONFIGURE_NAK:
                # RFC 1661 6.4: "a Configure-Nak MUST be sent specifying a different Magic-Number"
                assert parse_options(packet.data)[0][1] != magics[-1]
            end.lcp.receive(packet, 0)  # the line hands our own packets back
    assert end.layer.failures == ["looped-back link"]
    assert len(set(magics)) == len(magics) == 3  # a new Magic-Number after each looped Nak
    assert end.lcp.state is not State.OPENED


def test_magic_clash_between_two_ends_recovers() -> None:
    rng = random.Random(9)
    first = [b"\x42" * 4] * 2  # one at construction, one when negotiation starts

    def same(n: int) -> bytes:  # both ends pick the same first magic, then diverge
        return first.pop() if first else rng.randbytes(n)

    layer_a, layer_b = RecordingLayer(), RecordingLayer()
    out_a: list[tuple[int, bytes]] = []
    out_b: list[tuple[int, bytes]] = []
    a = Lcp(layer_a, out_a, NO_ECHO, rand=same)
    b = Lcp(layer_b, out_b, NO_ECHO, rand=random.Random(5).randbytes)
    b.option_handler.magic = 0x42424242  # force the clash for b's first request too
    b.option_handler.reset = lambda: None  # type: ignore[method-assign]
    for lcp in (a, b):
        lcp.up(0)
        lcp.open(0)
    for _ in range(20):
        for src, dst in ((out_a, b), (out_b, a)):
            batch = list(src)
            src.clear()
            for _, info in batch:
                dst.receive(parse_packet(info), 0)
    assert a.state is State.OPENED and b.state is State.OPENED
    assert a.local_options.magic != b.local_options.magic
    assert a.counters.sent[Code.CONFIGURE_NAK] >= 1 and b.counters.sent[Code.CONFIGURE_NAK] >= 1
    assert not layer_a.failures and not layer_b.failures


def opened_pair(sa: LcpSettings = DEFAULTS, sb: LcpSettings = DEFAULTS) -> tuple[End, End]:
    a, b, _ = negotiate(sa, sb)
    assert a.lcp.state is State.OPENED and b.lcp.state is State.OPENED
    return a, b


def test_echo_keepalive_success() -> None:
    a, b = opened_pair()
    a.lcp.handle_timer(10.0)
    (req,) = drain(a)
    assert req.code == Code.ECHO_REQUEST
    assert struct.unpack("!I", req.data[:4])[0] == a.lcp.local_options.magic
    b.lcp.receive(req, 10.0)
    (rep,) = drain(b)
    assert (rep.code, rep.identifier) == (Code.ECHO_REPLY, req.identifier)
    assert struct.unpack("!I", rep.data[:4])[0] == b.lcp.local_options.magic
    a.lcp.receive(rep, 10.1)
    assert (a.lcp.echo_sent, a.lcp.echo_replies, a.lcp.echo_outstanding) == (1, 1, 0)
    assert a.lcp.deadline == 20.0
    assert not a.layer.failures


def test_echo_keepalive_failure() -> None:
    a, _ = opened_pair(LcpSettings(echo_interval=5, echo_failure=3))
    for t in (5.0, 10.0, 15.0):
        a.lcp.handle_timer(t)
    assert [p.code for p in drain(a)] == [Code.ECHO_REQUEST] * 3
    a.lcp.handle_timer(19.9)
    assert not a.layer.failures
    a.lcp.handle_timer(20.0)
    assert a.layer.failures == ["keepalive: 3 echo requests unanswered"]
    assert a.lcp.deadline is None
    assert drain(a) == []


def test_echo_reply_resets_the_count() -> None:
    a, b = opened_pair(LcpSettings(echo_interval=5, echo_failure=2))
    a.lcp.handle_timer(5.0)
    (first,) = drain(a)
    a.lcp.handle_timer(10.0)
    drain(a)
    b.lcp.receive(first, 10.0)
    a.lcp.receive(drain(b)[0], 10.5)  # a late reply still proves the link is alive
    a.lcp.handle_timer(15.0)
    a.lcp.handle_timer(20.0)
    assert not a.layer.failures
    a.lcp.handle_timer(25.0)
    assert a.layer.failures == ["keepalive: 2 echo requests unanswered"]


def test_no_keepalive_when_interval_zero() -> None:
    a, _ = opened_pair(NO_ECHO)
    assert a.lcp.deadline is None


def test_echo_request_answered_only_in_opened() -> None:
    end = End("a")
    end.start()
    drain(end)
    end.lcp.receive(Packet(Code.ECHO_REQUEST, 1, bytes(4)), 0)
    assert drain(end) == []
    end.lcp.receive(Packet(Code.ECHO_REQUEST, 1, b"\0\0"), 0)  # no room for a Magic-Number
    assert end.lcp.counters.dropped == 1


def test_echo_with_our_own_magic_means_a_loop() -> None:
    a, _ = opened_pair(LcpSettings(max_loops=2))
    own = struct.pack("!I", a.lcp.local_options.magic)
    a.lcp.receive(Packet(Code.ECHO_REQUEST, 1, own), 0)
    assert not a.layer.failures
    a.lcp.receive(Packet(Code.ECHO_REPLY, 2, own), 0)
    assert a.layer.failures == ["looped-back link"]
    assert a.lcp.echo_replies == 0  # our own echo coming back proves nothing


def test_discard_request_is_silently_discarded() -> None:
    a, _ = opened_pair()
    a.lcp.receive(Packet(Code.DISCARD_REQUEST, 5, b"\0\0\0\0junk"), 0)
    assert drain(a) == []
    assert a.lcp.state is State.OPENED
    assert a.lcp.counters.received[Code.DISCARD_REQUEST] == 1


def test_send_protocol_reject_truncated_to_peer_mru() -> None:
    a, _ = opened_pair(LcpSettings(), LcpSettings(mru=300))
    a.lcp.send_protocol_reject(0x8281, bytes(range(256)) * 4)
    a.lcp.send_protocol_reject(0x8281, b"x")
    first, second = drain(a)
    assert first.code == Code.PROTOCOL_REJECT
    assert len(build_packet(first.code, first.identifier, first.data)) == 300
    assert first.data[:2] == b"\x82\x81" and first.data[2:] == (bytes(range(256)) * 4)[:294]
    assert second.identifier != first.identifier  # RFC 1661 5.7


def test_protocol_reject_only_sent_in_opened() -> None:
    end = End("a")
    end.start()
    drain(end)
    end.lcp.send_protocol_reject(0x8281, b"x")
    assert drain(end) == []


def test_received_protocol_reject_goes_to_the_link() -> None:
    a, _ = opened_pair()
    a.lcp.receive(Packet(Code.PROTOCOL_REJECT, 1, struct.pack("!H", Protocol.IPV6CP) + b"junk"), 0)
    assert a.layer.rejected == [Protocol.IPV6CP]
    assert a.lcp.state is State.OPENED
    a.lcp.receive(Packet(Code.PROTOCOL_REJECT, 2, b"\x80"), 0)  # too short
    assert a.lcp.counters.dropped == 1


def test_protocol_reject_of_lcp_is_catastrophic() -> None:
    a, _ = opened_pair()
    a.lcp.receive(Packet(Code.PROTOCOL_REJECT, 1, struct.pack("!H", Protocol.LCP)), 0)
    assert a.lcp.state is State.STOPPING
    assert [p.code for p in drain(a)] == [Code.TERMINATE_REQUEST]
    assert a.layer.rejected == []


def test_protocol_reject_outside_opened_is_discarded() -> None:
    end = End("a")
    end.start()
    end.lcp.receive(Packet(Code.PROTOCOL_REJECT, 1, struct.pack("!H", Protocol.IPCP)), 0)
    assert end.layer.rejected == [] and end.lcp.counters.dropped == 1


def test_code_reject_of_echo_stops_keepalive() -> None:
    a, _ = opened_pair()
    a.lcp.handle_timer(10.0)
    (req,) = drain(a)
    raw = build_packet(req.code, req.identifier, req.data)
    a.lcp.receive(Packet(Code.CODE_REJECT, 1, raw), 10.0)
    assert a.lcp.state is State.OPENED
    assert a.lcp.deadline is None


def test_unknown_lcp_code_is_code_rejected() -> None:
    a, _ = opened_pair()
    a.lcp.receive(Packet(12, 1, b"identification?"), 0)  # RFC 1570 codes are not ours
    (p,) = drain(a)
    assert (p.code, p.data) == (Code.CODE_REJECT, build_packet(12, 1, b"identification?"))


def test_terminate_both_ways() -> None:
    a, b = opened_pair()
    a.lcp.close(1.0, "admin")
    wire = pump(a, b, 1.0)
    assert [(s, p.code) for s, p in wire] == [("a", Code.TERMINATE_REQUEST), ("b", Code.TERMINATE_ACK)]
    assert wire[0][1].data == b"admin"
    assert a.lcp.state is State.CLOSED and a.layer.calls[-1] == ("finished", Protocol.LCP)
    assert b.lcp.state is State.STOPPING and b.layer.calls[-1] == ("down", Protocol.LCP)
    b.lcp.handle_timer(b.lcp.deadline or 0)
    assert b.lcp.state is State.STOPPED and b.layer.calls[-1] == ("finished", Protocol.LCP)


def test_renegotiation_from_opened() -> None:
    a, _b = opened_pair()
    a.lcp.receive(Packet(Code.CONFIGURE_REQUEST, 200, b""), 0)
    assert [p.code for p in drain(a)] == [Code.CONFIGURE_REQUEST, Code.CONFIGURE_ACK]
    assert a.lcp.state is State.ACK_SENT
    assert a.layer.calls[-1] == ("down", Protocol.LCP)
    assert a.lcp.deadline == 3.0  # Restart timer, the keepalive stopped


def test_proxy_open_with() -> None:
    end = End("lns", LcpSettings(echo_interval=15))
    end.lcp.up(0)
    end.lcp.open(0)
    drain(end)
    local = LcpOptions(magic=0x01020304, auth=AuthMethod.CHAP_MD5)
    peer = LcpOptions(mru=1400, magic=0x0A0B0C0D, pfc=True)
    end.lcp.open_with(local, peer, 5.0)
    assert end.lcp.state is State.OPENED
    assert end.layer.calls == [("up", Protocol.LCP)]
    assert end.lcp.local_options is local and end.lcp.peer_options is peer
    assert end.lcp.peer_mru == 1400
    assert end.lcp.deadline == 20.0
    end.lcp.handle_timer(20.0)
    (echo,) = drain(end)
    assert echo.data[:4] == b"\x01\x02\x03\x04"


def test_lcp_options_from_proxy_avp_bytes() -> None:
    # e.g. the Last Received LCP CONFREQ AVP (RFC 2661 4.4.5): the options of the peer's request.
    avp = bytes.fromhex("010405780206000000000305c22305050611223344" + "0702" + "0802")
    options = LcpOptions.from_options(parse_options(avp))
    assert options == LcpOptions(
        mru=1400, accm=0, auth=AuthMethod.CHAP_MD5, magic=0x11223344, pfc=True, acfc=True
    )


def test_max_configure_reached_finishes() -> None:
    end = End("a", LcpSettings(fsm=FsmSettings(max_configure=2, restart_timer=1.0)))
    end.start()
    end.lcp.handle_timer(1.0)
    end.lcp.handle_timer(2.0)
    assert [p.code for p in drain(end)] == [Code.CONFIGURE_REQUEST] * 2
    assert end.lcp.state is State.STOPPED
    assert end.layer.calls == [("finished", Protocol.LCP)]
