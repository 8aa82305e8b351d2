"""The data path, compiled (``l2tpfast._dataplane``) and reference (``l2tpfast.reference.dataplane``).

Each behaviour test runs against both (STYLE.md 8). The differential test feeds both the same
seeded streams (in order, reordered, duplicated, lost; with and without S, O and P; malformed;
unknown sessions; wrong peers; control messages; IP packets with the subscriber's source, a
spoofed one, or no whole header, while ``set_source`` turns the check on and off and ``set_tun``
moves a session to its own TUN device and back) and asserts the same deliveries in the same order,
the same bytes, and the same counters. A second one routes the same random packets through both
route tables while routes come and go: IPv4 addresses exact, IPv6 /64 prefixes with random
interface identifiers inside (its session) and outside (no session) every routed /64.
"""

from __future__ import annotations

import random
from typing import Any

import dpkit
import numpy as np
import pytest
from dpkit import address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import l2tpfast._dataplane
import l2tpfast.reference.dataplane as ref
from l2tpfast.wire.constants import MAX_DATA_HEADER, DeliveryAction, DropReason, SessionFlag, SessionTarget
from l2tpfast.wire.dtypes import ADDRESS_DTYPE, DELIVERY_DTYPE, SESSION_COUNTERS_DTYPE
from l2tpfast.wire.header import build_control_header, build_data_header, parse_header

IMPLS = {name: pair[0] for name, pair in dpkit.IMPLS.items()}
PEER4 = ("192.0.2.1", 1701)


@pytest.fixture(params=sorted(IMPLS))
def impl(request: pytest.FixtureRequest) -> Any:
    return IMPLS[request.param]


def batch(
    datagrams: list[bytes], sources: list[Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    buf = np.frombuffer(b"".join(datagrams) or b"\0", dtype=np.uint8)
    lengths = np.array([len(d) for d in datagrams], dtype=np.uint32)
    offsets = np.zeros(len(datagrams), dtype=np.uint32)
    if datagrams:
        offsets[1:] = np.cumsum(lengths)[:-1]
    src = np.zeros(len(datagrams), dtype=ADDRESS_DTYPE)
    for i, s in enumerate(sources):
        src[i] = s
    return buf, offsets, lengths, src


def data(tid: int, sid: int, payload: bytes, *, ns: int | None = None, priority: bool = False) -> bytes:
    return build_data_header(tid, sid, ns=ns, priority=priority) + payload


def run(dp: Any, datagrams: list[bytes], sources: list[Any] | None = None, now: float = 0.0) -> list[tuple]:
    sources = sources if sources is not None else [address(*PEER4)] * len(datagrams)
    buf, offsets, lengths, src = batch(datagrams, sources)
    out = np.zeros(len(datagrams) * 40 + 8, dtype=DELIVERY_DTYPE)
    n = dp.process(buf, offsets, lengths, src, out, now)
    rows = []
    pool = dp.pool.reshape(-1)
    for row in out[:n]:
        where = buf if row["source"] == 0 else pool
        body = bytes(where[row["offset"] : row["offset"] + row["length"]])
        rows.append((int(row["action"]), int(row["slot"]), int(row["protocol"]), body, int(row["source"])))
    return rows


IP = b"\xff\x03\x00\x21"


def test_in_order_ip_to_tun_and_lcp_to_ppp(impl: Any) -> None:
    dp = impl(8)
    slot = dp.add_session(5, 6, 50, 60, address(*PEER4), target=SessionTarget.TUN)
    rows = run(
        dp, [data(5, 6, IP + b"ip-packet"), data(5, 6, b"\xff\x03\xc0\x21" + b"lcp"), data(5, 6, b"\x21v4")]
    )
    assert rows == [
        (DeliveryAction.TUN, slot, 0x21, b"ip-packet", 0),
        (DeliveryAction.PPP, slot, 0xC021, b"lcp", 0),
        (DeliveryAction.TUN, slot, 0x21, b"v4", 0),  # no FF 03, one-octet protocol (ACFC, PFC)
    ]
    c = dp.counters[slot]
    assert c["rx_packets"] == 3 and c["rx_bytes"] == 13 + 7 + 3


def test_control_is_handed_up_whole(impl: Any) -> None:
    dp = impl(4)
    hello = build_control_header(7, 0, 1, 2, 8) + b"\x80\x08\x00\x00\x00\x00\x00\x06"
    rows = run(dp, [hello], [address("198.51.100.9", 4000)])
    assert rows == [(DeliveryAction.CONTROL, 0, 0, hello, 0)]


def test_drops_unknown_session_wrong_peer_malformed(impl: Any) -> None:
    dp = impl(4)
    slot = dp.add_session(5, 6, 50, 60, address(*PEER4), target=SessionTarget.TUN)
    rows = run(
        dp,
        [
            data(5, 7, IP + b"x"),
            data(5, 6, IP + b"x"),
            b"\x00\x02\x00",
            b"\x00\x01" + b"\0" * 10,
            data(5, 6, b"\x00"),
        ],
        [address(*PEER4), address("192.0.2.1", 1702), address(*PEER4), address(*PEER4), address(*PEER4)],
    )
    assert rows == []
    drops = dp.drops
    assert drops[DropReason.UNKNOWN_SESSION] == 1 and drops[DropReason.WRONG_PEER] == 1
    assert (
        drops[DropReason.TRUNCATED] == 1 and drops[DropReason.L2F] == 1 and drops[DropReason.SHORT_PPP] == 1
    )
    assert dp.counters[slot]["dropped"] == 2 and dp.counters[slot]["rx_packets"] == 0


def test_reorder_holds_then_delivers_in_order(impl: Any) -> None:
    dp = impl(4, reorder_window=8)
    slot = dp.add_session(5, 6, 50, 60, address(*PEER4), target=SessionTarget.TUN)
    order = [0, 3, 2, 2, 1, 4, 0]
    rows = run(dp, [data(5, 6, IP + bytes([n]), ns=n) for n in order])
    assert [r[3] for r in rows] == [bytes([n]) for n in range(5)]
    assert [r[4] for r in rows] == [0, 0, 1, 1, 0]  # 1 arrives, then 2 and 3 come from the pool
    c = dp.counters[slot]
    assert (c["out_of_order"], c["duplicates"], c["rx_packets"]) == (2, 2, 5)
    assert dp.held_count() == 0


def test_priority_skips_the_queue(impl: Any) -> None:
    dp = impl(4, reorder_window=8)
    dp.add_session(5, 6, 50, 60, address(*PEER4), target=SessionTarget.TUN)
    rows = run(
        dp,
        [
            data(5, 6, IP + b"a", ns=0),
            data(5, 6, IP + b"c", ns=2),
            data(5, 6, IP + b"p", ns=9, priority=True),
        ],
    )
    assert [r[3] for r in rows] == [b"a", b"p"]
    assert dp.held_count() == 1


def test_far_ahead_gives_up_the_gap(impl: Any) -> None:
    dp = impl(4, reorder_window=4)
    dp.add_session(5, 6, 50, 60, address(*PEER4), target=SessionTarget.TUN)
    rows = run(dp, [data(5, 6, IP + bytes([n]), ns=n) for n in (0, 2, 3, 10, 11, 9)])
    assert [r[3] for r in rows] == [b"\0", b"\2", b"\3", b"\x0a", b"\x0b"]  # 9 comes too late


def test_timeout_releases_held_packets(impl: Any) -> None:
    dp = impl(4, reorder_window=8, reorder_timeout=0.05)
    slot = dp.add_session(5, 6, 50, 60, address(*PEER4), target=SessionTarget.TUN)
    run(dp, [data(5, 6, IP + bytes([n]), ns=n) for n in (0, 2, 3, 5)], now=1.0)
    assert dp.held_count() == 3 and dp.next_expiry() == pytest.approx(1.05)
    out = np.zeros(16, dtype=DELIVERY_DTYPE)
    assert dp.release_expired(out, 1.01) == 0
    n = dp.release_expired(out, 1.06)
    assert n == 2 and [int(r["length"]) for r in out[:n]] == [1, 1]  # 2 and 3; 5 waits for 4
    assert dp.counters[slot]["reorder_timeouts"] == 1
    n = dp.release_expired(out, 1.2)
    assert n == 1 and dp.held_count() == 0


def test_pool_full_drops(impl: Any) -> None:
    dp = impl(4, pool_slots=2, reorder_window=16)
    slot = dp.add_session(5, 6, 50, 60, address(*PEER4), target=SessionTarget.TUN)
    run(dp, [data(5, 6, IP + b"x", ns=n) for n in (0, 2, 3, 4)])
    assert dp.drops[DropReason.POOL_FULL] == 1 and dp.counters[slot]["dropped"] == 1


def test_remove_session_frees_its_pool_slots(impl: Any) -> None:
    dp = impl(4, pool_slots=4)
    dp.add_session(5, 6, 50, 60, address(*PEER4), target=SessionTarget.TUN)
    run(dp, [data(5, 6, IP + b"x", ns=n) for n in (0, 2, 3)])
    assert dp.held_count() == 2
    assert dp.remove_session(5, 6) and not dp.remove_session(5, 6)
    assert dp.held_count() == 0 and dp.lookup(5, 6) == -1
    assert run(dp, [data(5, 6, IP + b"x")]) == [] and dp.drops[DropReason.UNKNOWN_SESSION] == 1


def test_switch_and_ppp_targets(impl: Any) -> None:
    dp = impl(4)
    a = dp.add_session(5, 6, 50, 60, address(*PEER4), target=SessionTarget.SWITCH, target_index=1)
    b = dp.add_session(5, 7, 50, 61, address(*PEER4), target=SessionTarget.PPP)
    rows = run(dp, [data(5, 6, IP + b"s"), data(5, 7, IP + b"p")])
    assert rows == [(DeliveryAction.SWITCH, a, 0x21, b"s", 0), (DeliveryAction.PPP, b, 0x21, b"p", 0)]


def test_ipv6_peer_and_offset_padding(impl: Any) -> None:
    dp = impl(4)
    peer = address("2001:db8::1", 1701)
    slot = dp.add_session(5, 6, 50, 60, peer, target=SessionTarget.TUN)
    padded = build_data_header(5, 6, offset_size=3) + b"\xff\x03\x00\x57" + b"v6"  # 3 octets of padding
    rows = run(dp, [padded], [peer])
    assert rows == [(DeliveryAction.TUN, slot, 0x57, b"v6", 0)]


def test_table_add_remove_many_keeps_lookups(impl: Any) -> None:
    dp = impl(3000)
    rng = random.Random(5)
    keys = rng.sample([(t, s) for t in range(1, 60) for s in range(1, 200)], 2500)
    slots = {k: dp.add_session(k[0], k[1], 1, 1, address(*PEER4)) for k in keys}
    for k in keys[::2]:
        assert dp.remove_session(*k)
    for i, k in enumerate(keys):
        assert dp.lookup(*k) == (-1 if i % 2 == 0 else slots[k])
    with pytest.raises(ValueError, match="already"):
        dp.add_session(keys[1][0], keys[1][1], 1, 1, address(*PEER4))
    assert dp.session_count() == len(keys) // 2


def test_encapsulate_headers(impl: Any) -> None:
    dp = impl(4)
    plain = dp.add_session(5, 6, 50, 60, address(*PEER4))
    seq = dp.add_session(
        5, 7, 50, 61, address(*PEER4), flags=SessionFlag.SEQ_TX | SessionFlag.PFC | SessionFlag.ACFC
    )
    slots = np.array([plain, seq, seq, 3], dtype=np.uint32)
    protocols = np.array([0x21, 0x21, 0xC021, 0x21], dtype=np.uint32)
    lengths = np.array([100, 100, 10, 5], dtype=np.uint32)
    headers = np.zeros((4, MAX_DATA_HEADER), dtype=np.uint8)
    hl = np.zeros(4, dtype=np.uint8)
    assert dp.encapsulate(slots, protocols, lengths, headers, hl) == 3
    h0 = bytes(headers[0, : hl[0]])
    parsed, off = parse_header(h0 + b"\0" * 100)
    assert (parsed.tunnel_id, parsed.session_id, parsed.ns) == (50, 60, None) and h0[
        off:
    ] == b"\xff\x03\x00\x21"
    h1 = bytes(headers[1, : hl[1]])
    p1, off1 = parse_header(h1)
    assert (p1.session_id, p1.ns, p1.nr) == (61, 0, 0) and h1[off1:] == b"\x21"
    p2, off2 = parse_header(bytes(headers[2, : hl[2]]))
    # RFC 1661 6.6: LCP keeps its Address and Control fields whatever was negotiated.
    assert p2.ns == 1 and bytes(headers[2, off2 : hl[2]]) == b"\xff\x03\xc0\x21"
    assert hl[3] == 0
    assert dp.counters[seq]["tx_packets"] == 2 and dp.counters[seq]["tx_bytes"] == 1 + 100 + 4 + 10


def test_lac_follows_the_s_bit(impl: Any) -> None:
    dp = impl(4)
    slot = dp.add_session(5, 6, 50, 60, address(*PEER4), flags=SessionFlag.SEQ_TX_FOLLOW)
    run(dp, [data(5, 6, IP + b"x")])
    assert not dp.get_flags(slot) & SessionFlag.SEQ_TX
    run(dp, [data(5, 6, IP + b"x", ns=0)])
    assert dp.get_flags(slot) & SessionFlag.SEQ_TX


def test_routes(impl: Any) -> None:
    dp = impl(8)
    a = dp.add_session(5, 6, 50, 60, address(*PEER4))
    b = dp.add_session(5, 7, 50, 61, address(*PEER4))
    dp.route_add(bytes([10, 0, 0, 1]), a)
    dp.route_add(bytes(15) + b"\x02", b)
    v4 = bytes([0x45]) + bytes(15) + bytes([10, 0, 0, 1])
    v6 = bytes([0x60]) + bytes(23) + bytes(15) + b"\x02"
    other = bytes([0x45]) + bytes(15) + bytes([10, 0, 0, 9])
    pkts = [v4, v6, other, b"\x45"]
    buf = np.frombuffer(b"".join(pkts), dtype=np.uint8)
    lengths = np.array([len(p) for p in pkts], dtype=np.uint32)
    offsets = np.array([0, 20, 60, 80], dtype=np.uint32)
    slots = np.zeros(4, dtype=np.uint32)
    assert dp.route_batch(buf, offsets, lengths, slots) == 2
    assert list(slots) == [a, b, 0xFFFFFFFF, 0xFFFFFFFF]
    dp.remove_session(5, 6)  # its routes go with it
    assert dp.route_batch(buf, offsets, lengths, slots) == 1 and slots[0] == 0xFFFFFFFF
    assert dp.route_del(bytes(15) + b"\x02") and not dp.route_del(bytes(15) + b"\x02")


def test_memory_per_session_at_100k_sessions() -> None:
    dp = l2tpfast._dataplane.DataPath(100_000)
    peer = address(*PEER4)
    for i in range(100_000):
        dp.add_session(1 + i // 50_000, 1 + i % 50_000, 1, 1, peer)
    assert dp.session_count() == 100_000
    assert dp.memory_per_session() <= 128, dp.memory_per_session()


def test_c_structs_match_the_dtypes() -> None:
    layouts = l2tpfast._dataplane._layouts()
    for name, dtype in (
        ("delivery", DELIVERY_DTYPE),
        ("address", ADDRESS_DTYPE),
        ("counters", SESSION_COUNTERS_DTYPE),
    ):
        assert layouts[name]["itemsize"] == dtype.itemsize
        for field, (_, offset, *_) in dtype.fields.items():
            assert layouts[name][field] == offset, (name, field)


# --- differential ---------------------------------------------------------------------------------

PROTOCOLS = [0x0021, 0x0057, 0xC021, 0xC023, 0x8021, 0x8057, 0xC223]
SUBSCRIBER = bytes([10, 9, 0, 2])
SOURCES = [None, SUBSCRIBER, bytes([10, 9, 0, 66])]


def _ip_body(rng: random.Random) -> bytes:
    """Random octets, or an IPv4/IPv6 header with the subscriber's or another source (some cut short)."""
    kind = rng.random()
    if kind < 0.4:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 60)))
    if kind < 0.9:
        source = SUBSCRIBER if rng.random() < 0.6 else bytes(rng.randrange(256) for _ in range(4))
        body = b"\x45" + bytes(11) + source + bytes([198, 51, 100, 1]) + bytes(rng.randrange(0, 20))
    else:
        body = b"\x60" + bytes(39 + rng.randrange(0, 20))
    return body[: rng.randrange(1, len(body) + 1)] if rng.random() < 0.1 else body


def _stream(rng: random.Random, n: int) -> list[tuple[bytes, Any]]:
    """Datagrams for sessions (5,6) TUN sequenced, (5,7) PPP unsequenced, (9,1) SWITCH, plus noise."""
    out: list[tuple[bytes, Any]] = []
    ns = {6: 0, 1: 0}
    for _ in range(n):
        kind = rng.random()
        src = address(*PEER4)
        if kind < 0.05:
            out.append((build_control_header(5, 0, rng.randrange(9), 0, 8) + b"\x80\x08\0\0\0\0\0\x06", src))
            continue
        if kind < 0.10:
            d = bytes(rng.randrange(256) for _ in range(rng.randrange(12)))
            out.append((d, src))
            continue
        sid = rng.choice([6, 7, 1, 8])
        tid = 9 if sid == 1 else 5
        protocol = rng.choice(PROTOCOLS)
        ppp = b"" if rng.random() < 0.3 else b"\xff\x03"
        ppp += bytes([protocol]) if protocol < 0x100 and rng.random() < 0.5 else protocol.to_bytes(2, "big")
        payload = ppp + _ip_body(rng)
        seq = None
        if sid in ns and rng.random() < 0.9:
            # mostly in order, with reordering, duplicates and loss
            step = rng.choices([1, 0, 2, 3, -1, -2, 20], [70, 6, 8, 4, 6, 4, 2])[0]
            ns[sid] = (ns[sid] + step) % 65536
            seq = ns[sid]
        header = build_data_header(
            tid, sid, ns=seq, priority=rng.random() < 0.05, offset_size=rng.choice([None, None, None, 0, 2])
        )
        if rng.random() < 0.05:
            src = address("192.0.2.77", 1701)
        out.append((header + payload, src))
    return out


def _snapshot(dp: Any, rows_out: list[tuple]) -> tuple:
    sources = [dp.get_source(dp.lookup(5, s)) for s in (6, 7)]
    tuns = [dp.get_tun(dp.lookup(5, s)) for s in (6, 7)]
    return (
        rows_out,
        dp.counters.tobytes(),
        dp.drops.tolist(),
        dp.held_count(),
        dp.session_count(),
        sources,
        tuns,
    )


def _play(cls: type, stream: list[tuple[bytes, Any]], rng: random.Random, window: int) -> tuple:
    dp = cls(16, pool_slots=24, reorder_window=window, reorder_timeout=0.5)
    dp.add_session(5, 6, 50, 60, address(*PEER4), target=SessionTarget.TUN)
    dp.add_session(5, 7, 50, 61, address(*PEER4), target=SessionTarget.PPP, flags=SessionFlag.SEQ_TX_FOLLOW)
    dp.add_session(9, 1, 90, 11, address(*PEER4), target=SessionTarget.SWITCH, target_index=0)
    rows: list[tuple] = []
    now = 0.0
    i = 0
    while i < len(stream):
        size = rng.randrange(1, 40)
        chunk = stream[i : i + size]
        i += size
        now += rng.random() * 0.3
        rows.append(("batch", tuple(run(dp, [d for d, _ in chunk], [s for _, s in chunk], now))))
        if rng.random() < 0.3:
            out = np.zeros(64, dtype=DELIVERY_DTYPE)
            n = dp.release_expired(out, now)
            pool = dp.pool.reshape(-1)
            rows.append(
                ("timeout", tuple(bytes(pool[r["offset"] : r["offset"] + r["length"]]) for r in out[:n]))
            )
        if rng.random() < 0.05:
            dp.remove_session(5, 6)
            dp.add_session(5, 6, 50, 60, address(*PEER4), target=SessionTarget.TUN)
        if rng.random() < 0.2:
            dp.set_source(dp.lookup(5, rng.choice([6, 6, 7])), rng.choice(SOURCES))
        if rng.random() < 0.1:
            dp.set_tun(dp.lookup(5, rng.choice([6, 7])), rng.choice([-1, 0, 9]))
    return _snapshot(dp, rows)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), window=st.sampled_from([0, 1, 4, 16]))
def test_compiled_and_reference_agree(seed: int, window: int) -> None:
    stream = _stream(random.Random(seed), 300)
    compiled = _play(l2tpfast._dataplane.DataPath, stream, random.Random(seed + 1), window)
    reference = _play(ref.DataPath, stream, random.Random(seed + 1), window)
    assert compiled == reference, f"seed {seed}, window {window}"


# --- differential: routes, IPv4 /32 and IPv6 /64 --------------------------------------------------

ROUTE_SESSIONS = 6
V4_POOL = [bytes([10, 9, 0, n]) for n in range(8)]
V6_PREFIXES = [bytes.fromhex(f"20010db80000{n:04x}") for n in range(8)]  # 2001:db8:0:n::/64
V6_OUTSIDE = [bytes.fromhex("20010db800000008"), bytes.fromhex("20010db800010000"), bytes(8)]


def _iid(rng: random.Random) -> bytes:
    return rng.choice([bytes(7) + b"\x01", b"\xff" * 8, rng.randbytes(8)])


def _route_packet(rng: random.Random, route_by: str) -> tuple[bytes, bytes | None]:
    """A packet and the route key (IPv4 address or IPv6 /64) its routed address has, if any."""
    other4, other6 = bytes([198, 51, 100, 1]), bytes.fromhex("20010db8ffff") + bytes(9) + b"\x01"
    kind = rng.random()
    if kind < 0.4:
        v4 = rng.choice([*V4_POOL, bytes([10, 9, 0, 200]), rng.randbytes(4)])
        src, dst = (v4, other4) if route_by == "source" else (other4, v4)
        packet = b"\x45" + bytes(11) + src + dst + rng.randbytes(rng.randrange(0, 8))
        key: bytes | None = v4
    elif kind < 0.9:
        prefix = rng.choice(V6_PREFIXES + V6_OUTSIDE)
        v6 = prefix + _iid(rng)
        src, dst = (v6, other6) if route_by == "source" else (other6, v6)
        packet = b"\x60" + bytes(7) + src + dst + rng.randbytes(rng.randrange(0, 8))
        key = prefix
    else:
        packet = rng.randbytes(rng.randrange(0, 60))
        key = None
    if rng.random() < 0.08:
        packet = packet[: rng.randrange(0, len(packet) + 1)]
    version = packet[0] >> 4 if packet else 0
    if not (version == 4 and len(packet) >= 20) and not (version == 6 and len(packet) >= 40):
        key = None
    return packet, key


def _play_routes(cls: type, seed: int, route_by: str) -> list[tuple]:
    rng = random.Random(seed)
    dp = cls(16, route_by=route_by)
    ids = list(range(1, ROUTE_SESSIONS + 1))
    for sid in ids:
        dp.add_session(5, sid, 50, sid, address(*PEER4), target=SessionTarget.TUN)
    model: dict[bytes, int] = {}  # what the routes should be: IPv4 address or /64 -> slot
    log: list[tuple] = []
    for _ in range(120):
        op = rng.random()
        if op < 0.35:
            slot = dp.lookup(5, rng.choice(ids))
            if rng.random() < 0.5:
                v4 = rng.choice(V4_POOL)
                dp.route_add(v4, slot)
                model[v4] = slot
            else:
                prefix = rng.choice(V6_PREFIXES)
                dp.route_add(prefix + _iid(rng), slot)  # the identifier is ignored
                model[prefix] = slot
        elif op < 0.5:
            key = rng.choice(V4_POOL + V6_PREFIXES)
            address16 = key if len(key) == 4 else key + _iid(rng)
            deleted = dp.route_del(address16)
            assert deleted == (model.pop(key, None) is not None)
            log.append(("del", deleted))
        elif op < 0.56:
            sid = rng.choice(ids)
            slot = dp.lookup(5, sid)
            dp.remove_session(5, sid)  # its routes go with it
            model = {k: v for k, v in model.items() if v != slot}
            dp.add_session(5, sid, 50, sid, address(*PEER4), target=SessionTarget.TUN)
        else:
            packets = [_route_packet(rng, route_by) for _ in range(rng.randrange(1, 12))]
            buf = np.frombuffer(b"".join(p for p, _ in packets) or b"\0", dtype=np.uint8)
            lengths = np.array([len(p) for p, _ in packets], dtype=np.uint32)
            offsets = np.zeros(len(packets), dtype=np.uint32)
            offsets[1:] = np.cumsum(lengths)[:-1]
            slots = np.zeros(len(packets), dtype=np.uint32)
            found = dp.route_batch(buf, offsets, lengths, slots)
            expected = [model.get(key, 0xFFFFFFFF) if key is not None else 0xFFFFFFFF for _, key in packets]
            assert slots.tolist() == expected, (seed, route_by, packets)
            log.append(("batch", found, tuple(slots.tolist())))
    return log


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), route_by=st.sampled_from(["destination", "source"]))
def test_compiled_and_reference_route_alike(seed: int, route_by: str) -> None:
    compiled = _play_routes(l2tpfast._dataplane.DataPath, seed, route_by)
    reference = _play_routes(ref.DataPath, seed, route_by)
    assert compiled == reference, f"seed {seed}, route_by {route_by}"
