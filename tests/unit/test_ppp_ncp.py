"""IPCP (RFC 1332, RFC 1877) and IPV6CP (RFC 5072) between two ends in memory."""

from __future__ import annotations

import random
from ipaddress import IPv4Address

import pytest
from ppplayer import RecordingLayer

from l2tpfast.ppp.constants import Code, IpcpOption, Ipv6cpOption, Protocol
from l2tpfast.ppp.frame import Option, Packet, build_options, parse_options, parse_packet
from l2tpfast.ppp.fsm import Automaton, FsmSettings, State
from l2tpfast.ppp.ipcp import Ipcp, IpcpSettings
from l2tpfast.ppp.ipv6cp import Ipv6cp, Ipv6cpSettings, new_identifier

A = IPv4Address
SERVER_ADDR, CLIENT_ADDR = A("10.0.0.1"), A("10.0.0.2")
DNS = (A("192.0.2.53"), A("198.51.100.53"))


DEFAULT_FSM = FsmSettings()


def ipcp(settings: IpcpSettings, fsm: FsmSettings = DEFAULT_FSM) -> tuple[Ipcp, list[tuple[int, bytes]]]:
    outbox: list[tuple[int, bytes]] = []
    return Ipcp(RecordingLayer(fail_on_link_failed=True), outbox, settings, fsm), outbox


def start(automaton: Automaton) -> None:
    automaton.up(0)
    automaton.open(0)


def pump(
    a: Automaton, out_a: list[tuple[int, bytes]], b: Automaton, out_b: list[tuple[int, bytes]]
) -> list[tuple[str, Packet]]:
    wire: list[tuple[str, Packet]] = []
    for _ in range(100):
        if not out_a and not out_b:
            return wire
        for name, src, dst in (("a", out_a, b), ("b", out_b, a)):
            batch = list(src)
            src.clear()
            for protocol, info in batch:
                assert protocol == dst.protocol
                packet = parse_packet(info)
                wire.append((name, packet))
                dst.receive(packet, 0)
    raise AssertionError("negotiation does not converge")


def replies(wire: list[tuple[str, Packet]], sender: str, code: int) -> list[list[Option]]:
    return [parse_options(p.data) for s, p in wire if s == sender and p.code == code]


def drain(outbox: list[tuple[int, bytes]]) -> list[Packet]:
    packets = [parse_packet(info) for _, info in outbox]
    outbox.clear()
    return packets


def addr(kind: int, address: IPv4Address) -> Option:
    return (kind, address.packed)


SERVER = IpcpSettings(local_address=SERVER_ADDR, peer_address=CLIENT_ADDR, dns=DNS, server=True)
CLIENT = IpcpSettings(request_dns=True)


def server_and_client(
    server: IpcpSettings = SERVER, client: IpcpSettings = CLIENT
) -> tuple[Ipcp, Ipcp, list[tuple[str, Packet]]]:
    s, out_s = ipcp(server)
    c, out_c = ipcp(client)
    start(s)
    start(c)
    wire = pump(s, out_s, c, out_c)
    assert s.state is State.OPENED and c.state is State.OPENED
    return s, c, wire


def test_ipcp_server_assigns_address_and_dns() -> None:
    s, c, wire = server_and_client()
    assert replies(wire, "a", Code.CONFIGURE_REQUEST)[0] == [addr(IpcpOption.IP_ADDRESS, SERVER_ADDR)]
    assert replies(wire, "b", Code.CONFIGURE_REQUEST)[0] == [
        addr(IpcpOption.IP_ADDRESS, A(0)),
        addr(IpcpOption.PRIMARY_DNS, A(0)),
        addr(IpcpOption.SECONDARY_DNS, A(0)),
    ]
    assert replies(wire, "a", Code.CONFIGURE_NAK) == [
        [
            addr(IpcpOption.IP_ADDRESS, CLIENT_ADDR),
            addr(IpcpOption.PRIMARY_DNS, DNS[0]),
            addr(IpcpOption.SECONDARY_DNS, DNS[1]),
        ]
    ]
    assert (c.local_address, c.peer_address, c.dns) == (CLIENT_ADDR, SERVER_ADDR, DNS)
    assert (s.local_address, s.peer_address, s.dns) == (SERVER_ADDR, CLIENT_ADDR, ())
    assert s.layer.calls == [("up", Protocol.IPCP)]  # type: ignore[attr-defined]


def test_ipcp_dns_rejected_when_none_configured() -> None:
    _s, c, wire = server_and_client(IpcpSettings(SERVER_ADDR, CLIENT_ADDR, server=True))
    assert replies(wire, "a", Code.CONFIGURE_REJECT) == [
        [addr(IpcpOption.PRIMARY_DNS, A(0)), addr(IpcpOption.SECONDARY_DNS, A(0))]
    ]
    # RFC 1661 5.4: the next request leaves them out.
    assert replies(wire, "b", Code.CONFIGURE_REQUEST)[-1] == [addr(IpcpOption.IP_ADDRESS, CLIENT_ADDR)]
    assert c.dns == ()
    assert c.local_address == CLIENT_ADDR


def test_ipcp_only_primary_dns_rejects_secondary() -> None:
    _, c, wire = server_and_client(IpcpSettings(SERVER_ADDR, CLIENT_ADDR, dns=DNS[:1], server=True))
    assert replies(wire, "a", Code.CONFIGURE_REJECT) == [[addr(IpcpOption.SECONDARY_DNS, A(0))]]
    assert c.dns == DNS[:1]


def test_ipcp_nbns() -> None:
    _, c, _ = server_and_client(
        IpcpSettings(SERVER_ADDR, CLIENT_ADDR, nbns=DNS, server=True), IpcpSettings(request_nbns=True)
    )
    assert c.nbns == DNS


def test_ipcp_client_with_configured_address_gets_it_acked() -> None:
    s, c, wire = server_and_client(client=IpcpSettings(local_address=CLIENT_ADDR))
    assert replies(wire, "a", Code.CONFIGURE_NAK) == []
    assert c.local_address == CLIENT_ADDR == s.peer_address


def server_opened_with_request(request: list[Option]) -> tuple[Ipcp, list[tuple[int, bytes]]]:
    s, out = ipcp(SERVER)
    start(s)
    drain(out)
    s.receive(Packet(Code.CONFIGURE_REQUEST, 1, build_options(request)), 0)
    return s, out


def test_ipcp_vj_compression_and_ip_addresses_are_rejected() -> None:
    vj = (IpcpOption.IP_COMPRESSION_PROTOCOL, bytes.fromhex("002d0f01"))
    old = (IpcpOption.IP_ADDRESSES, CLIENT_ADDR.packed + SERVER_ADDR.packed)
    _s, out = server_opened_with_request([addr(IpcpOption.IP_ADDRESS, A(0)), vj, old, (77, b"")])
    (reply,) = drain(out)
    # RFC 1661 5.3/5.4: Rejects first; the Nak for 0.0.0.0 waits for the next request.
    assert (reply.code, reply.identifier) == (Code.CONFIGURE_REJECT, 1)
    assert parse_options(reply.data) == [vj, old, (77, b"")]


def test_ipcp_server_appends_address_when_peer_sends_none() -> None:
    _, out = server_opened_with_request([])
    (reply,) = drain(out)
    assert reply.code == Code.CONFIGURE_NAK
    assert parse_options(reply.data) == [addr(IpcpOption.IP_ADDRESS, CLIENT_ADDR)]


def test_ipcp_client_insisting_on_a_wrong_address_ends_rejected() -> None:
    s, out = ipcp(SERVER, FsmSettings(max_failure=3))
    start(s)
    drain(out)
    wrong = [addr(IpcpOption.IP_ADDRESS, A("10.9.9.9"))]
    answers = []
    for i in range(5):
        s.receive(Packet(Code.CONFIGURE_REQUEST, i, build_options(wrong)), 0)
        (reply,) = drain(out)
        answers.append((reply.code, parse_options(reply.data)))
    nak = (Code.CONFIGURE_NAK, [addr(IpcpOption.IP_ADDRESS, CLIENT_ADDR)])
    reject = (Code.CONFIGURE_REJECT, wrong)
    assert answers == [nak, nak, nak, reject, reject]  # RFC 1661 4.6 Max-Failure
    # Without the option, the appended hint is no longer sent: the request is acknowledged.
    s.receive(Packet(Code.CONFIGURE_REQUEST, 9, b""), 0)
    (reply,) = drain(out)
    assert reply.code == Code.CONFIGURE_ACK
    assert s.peer_address is None  # the owner decides what a peer without an address means


def test_ipcp_client_rejects_zero_peer_address_it_cannot_fill() -> None:
    c, out = ipcp(CLIENT)
    start(c)
    drain(out)
    request = [addr(IpcpOption.IP_ADDRESS, A(0))]
    c.receive(Packet(Code.CONFIGURE_REQUEST, 3, build_options(request)), 0)
    (reply,) = drain(out)
    assert (reply.code, parse_options(reply.data)) == (Code.CONFIGURE_REJECT, request)


def test_ipcp_client_acks_any_nonzero_peer_address() -> None:
    c, out = ipcp(CLIENT)
    start(c)
    drain(out)
    request = [addr(IpcpOption.IP_ADDRESS, A("203.0.113.9"))]
    c.receive(Packet(Code.CONFIGURE_REQUEST, 3, build_options(request)), 0)
    (reply,) = drain(out)
    assert reply.code == Code.CONFIGURE_ACK
    assert c.peer_address == A("203.0.113.9")


def test_ipcp_server_keeps_its_own_address_when_naked() -> None:
    s, out = ipcp(SERVER)
    start(s)
    (req,) = drain(out)
    s.receive(Packet(Code.CONFIGURE_NAK, req.identifier, build_options([addr(3, A("1.2.3.4"))])), 0)
    (req2,) = drain(out)
    assert parse_options(req2.data) == [addr(IpcpOption.IP_ADDRESS, SERVER_ADDR)]


def test_ipcp_reject_of_address_drops_it() -> None:
    c, out = ipcp(CLIENT)
    start(c)
    (req,) = drain(out)
    first = parse_options(req.data)[:1]
    c.receive(Packet(Code.CONFIGURE_REJECT, req.identifier, build_options(first)), 0)
    (req2,) = drain(out)
    assert [kind for kind, _ in parse_options(req2.data)] == [
        IpcpOption.PRIMARY_DNS,
        IpcpOption.SECONDARY_DNS,
    ]


# --- IPV6CP ---

ID_A = bytes.fromhex("0211223344556677")
ID_B = bytes.fromhex("00aabbccddeeff00")


V6_DEFAULTS = Ipv6cpSettings()


def ipv6cp(settings: Ipv6cpSettings = V6_DEFAULTS, seed: int = 0) -> tuple[Ipv6cp, list]:
    outbox: list[tuple[int, bytes]] = []
    return Ipv6cp(
        RecordingLayer(fail_on_link_failed=True), outbox, settings, rand=random.Random(seed).randbytes
    ), outbox


def test_ipv6cp_random_identifiers_negotiate() -> None:
    a, out_a = ipv6cp(seed=1)
    b, out_b = ipv6cp(seed=2)
    start(a)
    start(b)
    wire = pump(a, out_a, b, out_b)
    assert a.state is State.OPENED and b.state is State.OPENED
    assert not replies(wire, "a", Code.CONFIGURE_NAK)
    assert a.local_identifier is not None and a.local_identifier == b.peer_identifier
    assert b.local_identifier == a.peer_identifier != a.local_identifier
    assert a.local_identifier[0] & 0x02 == 0  # RFC 5072 4.1: random means the "u" bit is zero


def test_ipv6cp_configured_identifiers() -> None:
    a, out_a = ipv6cp(Ipv6cpSettings(local_identifier=ID_A))
    b, out_b = ipv6cp(Ipv6cpSettings(local_identifier=ID_B))
    start(a)
    start(b)
    wire = pump(a, out_a, b, out_b)
    assert replies(wire, "a", Code.CONFIGURE_REQUEST) == [[(Ipv6cpOption.INTERFACE_IDENTIFIER, ID_A)]]
    assert (a.local_identifier, a.peer_identifier) == (ID_A, ID_B)


def test_ipv6cp_clash_is_resolved() -> None:
    a, out_a = ipv6cp(Ipv6cpSettings(local_identifier=ID_A), seed=1)
    b, out_b = ipv6cp(Ipv6cpSettings(local_identifier=ID_A), seed=2)
    start(a)
    start(b)
    wire = pump(a, out_a, b, out_b)
    (nak,) = replies(wire, "a", Code.CONFIGURE_NAK)
    assert nak[0][1] != ID_A
    assert a.state is State.OPENED and b.state is State.OPENED
    assert a.local_identifier != b.local_identifier
    assert a.local_identifier == b.peer_identifier and b.local_identifier == a.peer_identifier


def lns_v6(settings: Ipv6cpSettings) -> tuple[Ipv6cp, list]:
    end, out = ipv6cp(settings, seed=3)
    start(end)
    drain(out)
    return end, out


def test_ipv6cp_zero_identifier_gets_one() -> None:
    end, out = lns_v6(Ipv6cpSettings(local_identifier=ID_A))
    zero = [(Ipv6cpOption.INTERFACE_IDENTIFIER, bytes(8))]
    end.receive(Packet(Code.CONFIGURE_REQUEST, 1, build_options(zero)), 0)
    (nak,) = drain(out)
    ((kind, value),) = parse_options(nak.data)
    assert nak.code == Code.CONFIGURE_NAK and kind == Ipv6cpOption.INTERFACE_IDENTIFIER
    assert value not in (bytes(8), ID_A) and value[0] & 0x02 == 0


def test_ipv6cp_zero_identifier_gets_the_configured_one() -> None:
    end, out = lns_v6(Ipv6cpSettings(local_identifier=ID_A, peer_identifier=ID_B))
    zero = [(Ipv6cpOption.INTERFACE_IDENTIFIER, bytes(8))]
    end.receive(Packet(Code.CONFIGURE_REQUEST, 1, build_options(zero)), 0)
    (nak,) = drain(out)
    assert parse_options(nak.data) == [(Ipv6cpOption.INTERFACE_IDENTIFIER, ID_B)]
    end.receive(Packet(Code.CONFIGURE_REQUEST, 2, build_options([(1, ID_B)])), 0)
    (ack,) = drain(out)
    assert ack.code == Code.CONFIGURE_ACK and end.peer_identifier == ID_B


def test_ipv6cp_our_own_identifier_is_naked() -> None:
    end, out = lns_v6(Ipv6cpSettings(local_identifier=ID_A, peer_identifier=ID_A))
    end.receive(Packet(Code.CONFIGURE_REQUEST, 1, build_options([(1, ID_A)])), 0)
    (nak,) = drain(out)
    ((_, value),) = parse_options(nak.data)
    assert nak.code == Code.CONFIGURE_NAK and value not in (ID_A, bytes(8))


def test_ipv6cp_both_zero_is_rejected() -> None:
    end, out = ipv6cp(Ipv6cpSettings(local_identifier=ID_A))
    start(end)
    (req,) = drain(out)
    end.receive(Packet(Code.CONFIGURE_REJECT, req.identifier, req.data), 0)  # peer refuses ours
    (req2,) = drain(out)
    assert req2.data == b""  # RFC 5072 4.1: not sent again
    zero = [(Ipv6cpOption.INTERFACE_IDENTIFIER, bytes(8))]
    end.receive(Packet(Code.CONFIGURE_REQUEST, 1, build_options(zero)), 0)
    (reply,) = drain(out)
    assert (reply.code, parse_options(reply.data)) == (Code.CONFIGURE_REJECT, zero)


def test_ipv6cp_compression_is_rejected_and_missing_identifier_hinted_once() -> None:
    end, out = lns_v6(Ipv6cpSettings(local_identifier=ID_A))
    compression = (Ipv6cpOption.IPV6_COMPRESSION_PROTOCOL, b"\x00\x4f\x00\x02")
    end.receive(Packet(Code.CONFIGURE_REQUEST, 1, build_options([compression])), 0)
    (reply,) = drain(out)
    assert (reply.code, parse_options(reply.data)) == (Code.CONFIGURE_REJECT, [compression])
    end.receive(Packet(Code.CONFIGURE_REQUEST, 2, b""), 0)
    (hint,) = drain(out)
    assert hint.code == Code.CONFIGURE_NAK
    assert parse_options(hint.data)[0][0] == Ipv6cpOption.INTERFACE_IDENTIFIER
    end.receive(Packet(Code.CONFIGURE_REQUEST, 3, b""), 0)
    (ack,) = drain(out)
    assert ack.code == Code.CONFIGURE_ACK  # RFC 5072 4.1: "MUST NOT send another Configure-Nak"
    assert end.peer_identifier is None


def test_ipv6cp_nak_handling() -> None:
    end, out = ipv6cp(Ipv6cpSettings(local_identifier=ID_A), seed=4)
    start(end)
    (req,) = drain(out)
    end.receive(Packet(Code.CONFIGURE_NAK, req.identifier, build_options([(1, ID_B)])), 0)
    (req2,) = drain(out)
    assert parse_options(req2.data) == [(1, ID_B)]  # a unique suggestion is taken
    # Our own last Nak coming back: choose a new identifier.
    end.receive(Packet(Code.CONFIGURE_REQUEST, 7, build_options([(1, ID_B)])), 0)
    (nak,) = drain(out)
    ours_suggested = parse_options(nak.data)[0][1]
    end.receive(Packet(Code.CONFIGURE_NAK, req2.identifier, build_options([(1, ours_suggested)])), 0)
    (req3,) = drain(out)
    assert parse_options(req3.data)[0][1] not in (ours_suggested, ID_B, bytes(8))


def test_new_identifier_with_a_stuck_random_source() -> None:
    value = new_identifier(lambda n: bytes(n), None)
    assert value != bytes(8)


@pytest.mark.parametrize("bad", [b"\x01" * 7, bytes(8)])
def test_ipv6cp_settings_are_checked(bad: bytes) -> None:
    with pytest.raises(ValueError):
        ipv6cp(Ipv6cpSettings(local_identifier=bad))


def test_ncp_ignores_lcp_only_codes() -> None:
    c, out = ipcp(CLIENT)
    start(c)
    drain(out)
    c.receive(Packet(Code.ECHO_REQUEST, 1, bytes(8)), 0)  # RFC 1332 2: codes 1-7 only
    (p,) = drain(out)
    assert p.code == Code.CODE_REJECT


def test_ncp_packets_before_up_are_ignored() -> None:
    c, out = ipcp(CLIENT)
    c.receive(Packet(Code.CONFIGURE_REQUEST, 1, b""), 0)
    assert c.state is State.INITIAL and out == []


def test_protocol_reject_routed_to_an_ncp_stops_it() -> None:
    v6, out = ipv6cp()
    start(v6)
    drain(out)
    v6.receive_protocol_reject(1.0)  # the peer's LCP rejected IPV6CP: RXJ- in Req-Sent
    assert v6.state is State.STOPPED
    assert v6.layer.calls == [("finished", Protocol.IPV6CP)]  # type: ignore[attr-defined]
    assert out == [] and v6.deadline is None
