"""The benchmark harness's compiled parts (src_pyx/bench.pxi, src_pyx/loadgen.pxi) and the
Forwarder's sink (src_pyx/loop.pxi), on loopback sockets:

* LoadCounter: per-session packets, IP octets and late arrivals, foreign packets and bad
  indexes, and the round-trip histogram of echoes (``histogram_bounds``, read by
  ``l2tpfast.bench.stats.histogram_percentiles``);
* LoadGenerator as plain UDP into a UdpReceiver (round robin, bursts, probes and their echoes,
  argument checks, a paced run that never sends ahead of its rate);
* LoadGenerator through L2TP: every octet of what it sends (RFC 2661 3.1 header, PPP, IPv4,
  UDP, the harness's payload), and the way back in through a Forwarder whose sink counts what
  it would have written to TUN.

The payload (bench.pxi), network order: magic "L2FB" | index u32 | sequence u32 | flags u8 |
3 pad | time ns u64 (CLOCK_MONOTONIC).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from dpkit import stats_of
from sockkit import BIG_BUFFER, drain, receiving, wait_for

from l2tpfast._dataplane import (
    FORWARDER_STATS,
    LOAD_SESSION_DTYPE,
    LOAD_STATS,
    LOAD_TOTALS,
    RECEIVER_STATS,
    DataPath,
    Forwarder,
    LoadCounter,
    LoadGenerator,
    histogram_bounds,
)
from l2tpfast.bench.stats import histogram_percentiles
from l2tpfast.runtime.dataplane import address_row
from l2tpfast.wire.constants import SessionFlag, SessionTarget

BENCH = struct.Struct("!4sIIB3xQ")
MAGIC = b"L2FB"
FLAG_PROBE = 1
FLAG_ECHO = 2
PPP_IP = b"\xff\x03\x00\x21"
# The addresses written inside the generated packets (never routed anywhere).
INNER_SOURCE = bytes([127, 0, 0, 2])
INNER_DESTINATION = bytes([127, 0, 0, 3])


def payload(index: int, seq: int, flags: int = 0, when: int = 0, size: int = BENCH.size) -> bytes:
    """The harness's payload, padded to ``size`` octets."""
    head = BENCH.pack(MAGIC, index, seq, flags, when)
    return head + bytes(max(0, size - len(head)))


def ipv4_udp(body: bytes, protocol: int = 17, ihl: int = 5) -> bytes:
    """An IPv4 packet (header of ``ihl`` words) carrying a UDP header and ``body``."""
    total = ihl * 4 + 8 + len(body)
    head = struct.pack(
        "!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 0, 0, 64, protocol, 0, INNER_SOURCE, INNER_DESTINATION
    )
    head += bytes(ihl * 4 - 20)
    return head + struct.pack("!HHHH", 5000, 6000, 8 + len(body), 0) + body


def totals(counter: LoadCounter) -> dict[str, int]:
    return dict(zip(LOAD_TOTALS, (int(v) for v in counter.totals), strict=True))


def clean_totals(sent: int, size: int) -> dict[str, int]:
    """The totals of ``sent`` packets of ``size`` octets, all in order and all from the run."""
    return {"packets": sent, "octets": sent * size, "late": 0, "echoes": 0, "foreign": 0, "bad_index": 0}


def named(names: tuple[str, ...], values: Any) -> dict[str, int]:
    return dict(zip(names, (int(v) for v in values), strict=True))


def ones_complement_sum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


# --- LoadCounter ----------------------------------------------------------------------------------


def test_counter_counts_packets_octets_and_late_arrivals() -> None:
    counter = LoadCounter(3)
    assert counter.n_sessions == 3
    assert counter.sessions.dtype == LOAD_SESSION_DTYPE and len(counter.sessions) == 3
    assert len(counter.totals) == len(LOAD_TOTALS)
    for seq, size in ((0, 60), (1, 1400), (2, 100)):
        assert counter.count(ipv4_udp(payload(0, seq, size=size - 28))) == 0
    # Session 1: 5, then 3 (reordered), 5 again (duplicated), then 6.
    for seq in (5, 3, 5, 6):
        counter.count(ipv4_udp(payload(1, seq, size=72)))
    rows = counter.sessions
    assert (int(rows[0]["packets"]), int(rows[0]["octets"]), int(rows[0]["late"])) == (3, 1560, 0)
    assert (int(rows[0]["next_seq"]), int(rows[0]["started"])) == (3, 1)
    assert (int(rows[1]["packets"]), int(rows[1]["octets"]), int(rows[1]["late"])) == (4, 400, 2)
    assert (int(rows[1]["next_seq"]), int(rows[1]["started"])) == (7, 1)
    assert rows[2].tolist() == (0, 0, 0, 0, 0)
    # IP options: the UDP header follows the 24-octet IP header.
    counter.count(ipv4_udp(payload(2, 0), ihl=6))
    assert (int(rows[2]["packets"]), int(rows[2]["octets"])) == (1, 24 + 8 + 24)
    # A bare UDP payload counts as its IPv4/UDP packet would (28 octets more).
    counter.count(payload(2, 1, size=100), ip=False)
    assert (int(rows[2]["packets"]), int(rows[2]["octets"]), int(rows[2]["next_seq"])) == (2, 56 + 128, 2)
    # A probe asks for an echo; it is counted as any other packet.
    assert counter.count(ipv4_udp(payload(2, 2, FLAG_PROBE))) == FLAG_PROBE
    assert counter.count(payload(2, 3, FLAG_PROBE), ip=False) == FLAG_PROBE
    assert totals(counter) == {
        "packets": 3 + 4 + 4,
        "octets": 1560 + 400 + 56 + 128 + 52 + 52,
        "late": 2,
        "echoes": 0,
        "foreign": 0,
        "bad_index": 0,
    }
    assert int(rows["packets"].sum()) == totals(counter)["packets"]
    assert int(rows["octets"].sum()) == totals(counter)["octets"]


def test_counter_sorts_out_foreign_packets_and_bad_indexes() -> None:
    counter = LoadCounter(3)
    good = ipv4_udp(payload(0, 0))
    foreign = [
        b"",
        good[:19],  # shorter than an IPv4 header
        bytes([0x60]) + good[1:],  # not IPv4
        ipv4_udp(payload(0, 0), protocol=6),  # not UDP
        ipv4_udp(payload(0, 0)[:23]),  # a payload one octet short
        ipv4_udp(b"L2FC" + payload(0, 0)[4:]),  # not our magic
        bytes([0x4F]) + good[1:],  # a 60-octet IP header in a 52-octet packet
    ]
    for packet in foreign:
        assert counter.count(packet) == 0
    for bare in (payload(0, 0)[:23], b"XXXX" + payload(0, 0)[4:], b""):
        assert counter.count(bare, ip=False) == 0
    assert counter.count(ipv4_udp(payload(3, 0, FLAG_PROBE))) == 0
    assert counter.count(payload(0xFFFFFFFF, 0), ip=False) == 0
    assert totals(counter) == {
        "packets": 0,
        "octets": 0,
        "late": 0,
        "echoes": 0,
        "foreign": len(foreign) + 3,
        "bad_index": 2,
    }
    assert not counter.sessions["packets"].any() and not counter.sessions["started"].any()


def test_echo_round_trip_lands_in_the_histogram() -> None:
    counter = LoadCounter(2)
    sent = time.monotonic_ns() - 1_000_000
    assert counter.count(ipv4_udp(payload(0, 7, FLAG_ECHO, sent))) == 0
    after = time.monotonic_ns()
    got = totals(counter)
    assert got["echoes"] == 1 and got["packets"] == 0 and got["foreign"] == 0
    assert not counter.sessions["packets"].any()  # an echo is no session's traffic
    assert int(counter.histogram.sum()) == 1
    figures = histogram_percentiles(counter.histogram)
    assert figures is not None and figures["samples"] == 1
    assert 1000 * 0.97 <= figures["p50"] < 50_000, figures
    # The bucket it went into holds a value between 1 ms and what elapsed since ``sent``.
    bounds = histogram_bounds()
    (bucket,) = np.nonzero(counter.histogram)[0]
    assert bounds[bucket] <= after - sent and bounds[bucket + 1] > 1_000_000
    # Other delays, bare payloads: each in a bucket consistent with the bounds.
    for delay in (10_000, 50_000_000, 400_000_000):
        counter.histogram[:] = 0
        sent = time.monotonic_ns() - delay
        counter.count(payload(1, 0, FLAG_ECHO, sent), ip=False)
        after = time.monotonic_ns()
        (bucket,) = np.nonzero(counter.histogram)[0]
        assert bounds[bucket] <= after - sent and bounds[bucket + 1] > delay, (delay, bucket)
    # A time ahead of our clock (another host's): the lowest bucket, not a wrapped-around one.
    counter.histogram[:] = 0
    counter.count(payload(0, 0, FLAG_ECHO, time.monotonic_ns() + 10**12), ip=False)
    assert int(counter.histogram[0]) == 1 and int(counter.histogram.sum()) == 1
    assert totals(counter)["echoes"] == 5


def test_histogram_bounds() -> None:
    bounds = histogram_bounds()
    assert len(bounds) == len(LoadCounter(1).histogram) + 1
    assert np.all(np.diff(bounds) > 0)
    assert bounds[:32].tolist() == list(range(32))
    assert bounds[32] == 32
    # Above the exact range each bucket is at most 1/32 of its lower bound wide.
    widths = np.diff(bounds)[32:] / bounds[32:-1]
    assert widths.max() <= 1 / 32 + 1e-12
    assert bounds[-1] >= 3600e9  # an hour fits


def test_counter_reset_and_bounds() -> None:
    counter = LoadCounter(2)
    for seq in (4, 2):
        counter.count(ipv4_udp(payload(1, seq)))
    counter.count(b"junk")
    counter.count(payload(0, 0, FLAG_ECHO, time.monotonic_ns()), ip=False)
    assert totals(counter)["late"] == 1
    counter.reset()
    assert not counter.totals.any() and not counter.histogram.any()
    assert all(row == (0, 0, 0, 0, 0) for row in counter.sessions.tolist())
    # The highest sequence number seen was forgotten too: 0 is not late after a reset.
    counter.count(ipv4_udp(payload(1, 0)))
    assert totals(counter)["late"] == 0 and int(counter.sessions[1]["next_seq"]) == 1
    for bad in (0, -1, 16_777_217):
        with pytest.raises(ValueError, match="n_sessions"):
            LoadCounter(bad)


# --- LoadGenerator, plain UDP -----------------------------------------------------------------------


def plain_generator(sock: socket.socket, n: int, to: socket.socket, batch: int = 64) -> LoadGenerator:
    gen = LoadGenerator(sock.fileno(), n, None, batch)
    assert not gen.l2tp and gen.path is None and (gen.n_sessions, gen.batch) == (n, batch)
    port = to.getsockname()[1]
    for i in range(n):
        gen.set_session(i, bytes(4), socket.inet_aton("127.0.0.1"), 0, port)
    return gen


def test_plain_udp_flat_out_round_robin(udp_socket: Callable[..., socket.socket]) -> None:
    out, into = udp_socket(), udp_socket(BIG_BUFFER)
    n, size = 5, 100
    gen = plain_generator(out, n, into)
    counter = LoadCounter(n)
    with receiving(into, counter) as receiver:
        sent, seconds = gen.run(0, size, 0.2)
        assert sent > 0 and seconds >= 0.2
        wait_for(lambda: int(counter.totals[0]) >= sent)
        assert named(RECEIVER_STATS, receiver.stats)["datagrams"] == sent
    assert totals(counter) == clean_totals(sent, size)
    packets = counter.sessions["packets"]
    assert int(packets.max()) - int(packets.min()) <= 1, packets  # round robin, one at a time
    assert counter.sessions["octets"].tolist() == (packets * size).tolist()
    assert counter.sessions["next_seq"].tolist() == packets.tolist()  # each from 0, none missing
    stats = named(LOAD_STATS, gen.stats)
    assert stats["sent"] == sent and stats["send_errors"] == 0 and stats["no_session"] == 0
    assert stats["batches"] * gen.batch == sent  # flat out: always a whole batch


def test_plain_udp_probes_are_echoed(udp_socket: Callable[..., socket.socket]) -> None:
    out, into = udp_socket(BIG_BUFFER), udp_socket(BIG_BUFFER)
    n, size = 3, 80
    gen = plain_generator(out, n, into)
    counter = LoadCounter(n)
    with receiving(into, counter) as receiver:
        sent, _ = gen.run(0, size, 0.2, 10)
        probes = (sent + 9) // 10  # packets 0, 10, 20, ... of the run
        wait_for(lambda: int(receiver.stats[1]) + int(receiver.stats[3]) >= probes)
        wait_for(lambda: int(counter.totals[0]) >= sent)
        rstats = named(RECEIVER_STATS, receiver.stats)
    assert rstats["echoes"] == probes and rstats["send_errors"] == 0
    assert totals(counter)["packets"] == sent
    echoes = drain(out)
    assert len(echoes) == rstats["echoes"]
    back = LoadCounter(n)  # the generator's side counts the echoes, as the harness does
    for echo in echoes:
        assert len(echo) == size - 28
        magic, index, _, flags, _ = BENCH.unpack_from(echo)
        assert magic == MAGIC and flags == FLAG_ECHO and index < n
        assert back.count(echo, ip=False) == 0
    assert totals(back)["echoes"] == len(echoes) and int(back.histogram.sum()) == len(echoes)
    assert totals(back)["packets"] == 0


def test_plain_udp_bursts_go_to_one_session(udp_socket: Callable[..., socket.socket]) -> None:
    out, into = udp_socket(), udp_socket(BIG_BUFFER)
    n, size = 3, 60
    gen = plain_generator(out, n, into, batch=16)
    sent, _ = gen.run(0, size, 0.02, 0, 4)
    datagrams = drain(into)
    assert len(datagrams) == sent
    seqs = [0] * n
    for j, data in enumerate(datagrams):
        assert len(data) == size - 28
        magic, index, seq, flags, _ = BENCH.unpack_from(data)
        assert magic == MAGIC and flags == 0
        assert index == (j // 4) % n, (j, index)  # runs of 4, round robin
        assert seq == seqs[index]
        seqs[index] += 1
    # reset: the counters and every session's sequence number start again.
    gen.reset()
    assert not gen.stats.any()
    sent, _ = gen.run(0, size, 0.01, 0, 4)
    first: dict[int, int] = {}
    for data in drain(into)[:sent]:
        _, index, seq, _, _ = BENCH.unpack_from(data)
        first.setdefault(index, seq)
    assert first == dict.fromkeys(range(n), 0)


def test_generator_arguments_are_checked(udp_socket: Callable[..., socket.socket]) -> None:
    out, into = udp_socket(), udp_socket()
    for n, batch in ((0, 64), (16_777_217, 64), (2, 0), (2, 1025)):
        with pytest.raises(ValueError):
            LoadGenerator(out.fileno(), n, None, batch)
    gen = LoadGenerator(out.fileno(), 2, None, 8)
    here = socket.inet_aton("127.0.0.1")
    port = into.getsockname()[1]
    with pytest.raises(ValueError, match="never set"):
        gen.run(0, 100, 0.01)
    gen.set_session(0, bytes(4), here, 0, port)
    with pytest.raises(ValueError, match="session index 1 was never set"):
        gen.run(0, 100, 0.01)
    for index in (2, -1):
        with pytest.raises(IndexError):
            gen.set_session(index, bytes(4), here, 0, port)
    with pytest.raises(ValueError):
        gen.set_session(1, bytes(4), here[:3], 0, port)
    with pytest.raises(ValueError):
        gen.set_session(1, bytes(4), here, 0, 65536)
    gen.set_session(1, bytes(4), here, 0, port)
    for kwargs in (
        {"size": 51},
        {"size": 2049},
        {"probe_every": -1},
        {"burst": 0},
        {"burst": 9},
        {"rate": -1.0},
        {"seconds": 0.0},
    ):
        args = {"rate": 0.0, "size": 100, "seconds": 0.01, **kwargs}
        with pytest.raises(ValueError):
            gen.run(**args)
    assert not gen.stats.any()  # nothing was sent by the refused runs
    for size in (52, 2048):  # the extremes are accepted
        sent, _ = gen.run(0, size, 0.005, 0, 8)
        assert sent > 0
    # Through L2TP a session needs its DataPath slot.
    l2tp = LoadGenerator(out.fileno(), 1, DataPath(4), 8)
    assert l2tp.l2tp
    with pytest.raises(ValueError, match="slot"):
        l2tp.set_session(0, here, here, 1, 2)


def test_paced_run_never_sends_ahead_of_its_rate(udp_socket: Callable[..., socket.socket]) -> None:
    out, into = udp_socket(), udp_socket(BIG_BUFFER)
    gen = plain_generator(out, 2, into)
    rate = 1000.0
    sent, seconds = gen.run(rate, 100, 0.3)
    assert 0 < sent <= rate * seconds + gen.batch, (sent, seconds)
    assert len(drain(into)) == sent


def test_stop_ends_a_run_from_another_thread(udp_socket: Callable[..., socket.socket]) -> None:
    out, into = udp_socket(), udp_socket()
    gen = plain_generator(out, 1, into)
    result: list[tuple[int, float]] = []
    thread = threading.Thread(target=lambda: result.append(gen.run(200.0, 100, 30.0)), daemon=True)
    thread.start()
    try:
        wait_for(lambda: int(gen.stats[2]) > 0)  # it is in its loop (a stop before would be lost)
        gen.stop()
        thread.join(5.0)
        assert not thread.is_alive()
    finally:
        gen.stop()
        thread.join(5.0)
    ((sent, seconds),) = result
    assert seconds < 30.0 and sent == int(gen.stats[0])


# --- LoadGenerator through L2TP ---------------------------------------------------------------------


def test_l2tp_datagrams_octet_by_octet(udp_socket: Callable[..., socket.socket]) -> None:
    out, peer = udp_socket(), udp_socket(BIG_BUFFER)
    n, size = 3, 120
    path = DataPath(8)
    gen = LoadGenerator(out.fileno(), n, path, 32)
    slots = []
    for i in range(n):
        flags = SessionFlag.SEQ_TX if i == 1 else 0
        slot = path.add_session(1, 10 + i, 100, 200 + i, address_row(*peer.getsockname()), flags=flags)
        gen.set_session(i, INNER_SOURCE, INNER_DESTINATION, 4000 + i, 5000, slot)
        slots.append(slot)
    before = time.monotonic_ns()
    sent, _ = gen.run(0, size, 0.01)
    after = time.monotonic_ns()
    datagrams = drain(peer)
    assert sent > 0 and len(datagrams) == sent
    seqs = [0] * n
    for data in datagrams:
        flags, version, tunnel_id, session_id = struct.unpack_from("!BBHH", data)
        i = session_id - 200
        assert 0 <= i < n and tunnel_id == 100
        assert version == 0x02  # Ver 2
        assert flags & 0x80 == 0 and flags & 0x40 == 0  # T=0 (data), no Length
        off = 6
        if i == 1:
            assert flags == 0x08  # S=1: Ns and Nr follow
            ns, nr = struct.unpack_from("!HH", data, 6)
            assert (ns, nr) == (seqs[i] & 0xFFFF, 0)
            off = 10
        else:
            assert flags == 0
        assert data[off : off + 4] == PPP_IP
        ip = data[off + 4 :]
        assert len(ip) == size
        assert ip[0] == 0x45 and ones_complement_sum(ip[:20]) == 0xFFFF
        total, protocol = struct.unpack_from("!H", ip, 2)[0], ip[9]
        assert (total, protocol) == (size, 17)
        assert (ip[12:16], ip[16:20]) == (INNER_SOURCE, INNER_DESTINATION)
        sport, dport, _, udp_checksum = struct.unpack_from("!HHHH", ip, 20)
        assert (sport, dport, udp_checksum) == (4000 + i, 5000, 0)  # no checksum (RFC 768)
        magic, index, seq, pflags, when = BENCH.unpack_from(ip, 28)
        assert (magic, index, seq, pflags) == (MAGIC, i, seqs[i], 0)
        assert before <= when <= after  # CLOCK_MONOTONIC, as time.monotonic_ns()
        seqs[i] += 1
    assert sum(seqs) == sent and max(seqs) - min(seqs) <= 1
    assert [int(path.counters[s]["tx_packets"]) for s in slots] == seqs
    assert named(LOAD_STATS, gen.stats)["sent"] == sent


def test_l2tp_round_trip_into_a_forwarder_sink(udp_socket: Callable[..., socket.socket]) -> None:
    out, far = udp_socket(), udp_socket(BIG_BUFFER)
    n, size = 4, 150
    near_path, far_path = DataPath(8), DataPath(8)
    gen = LoadGenerator(out.fileno(), n, near_path, 64)
    far_slots = []
    for i in range(n):
        slot = near_path.add_session(1, 10 + i, 100, 200 + i, address_row(*far.getsockname()))
        gen.set_session(i, INNER_SOURCE, INNER_DESTINATION, 4000, 5000, slot)
        # The far end: keyed by the IDs the generator sends to, its peer the generator's socket.
        far_slots.append(
            far_path.add_session(
                100, 200 + i, 1, 10 + i, address_row(*out.getsockname()), target=SessionTarget.TUN
            )
        )
    fw = Forwarder(far_path, far.fileno())
    assert fw.sink is None and fw.tun_fd == -1
    counter = LoadCounter(n)
    fw.sink = counter
    assert fw.sink is counter
    sent, _ = gen.run(0, size, 0.02)
    assert sent > 0
    end = time.monotonic() + 5.0
    for _ in range(100_000):
        fw.run_once()
        if int(counter.totals[0]) >= sent or time.monotonic() > end:
            break
    stats = stats_of(fw)
    assert totals(counter) == clean_totals(sent, size)
    assert int(counter.sessions["packets"].max()) - int(counter.sessions["packets"].min()) <= 1
    assert stats["udp_rx"] == sent and stats["tun_tx"] == sent
    assert stats["tun_errors"] == 0 and stats["udp_tx"] == 0  # nothing written anywhere
    assert sum(int(far_path.counters[s]["rx_packets"]) for s in far_slots) == sent
    assert list(stats) == list(FORWARDER_STATS)
    # Without the sink the packets go to TUN again: there is none, so they are errors.
    fw.sink = None
    assert fw.sink is None
    gen.reset()
    sent_again, _ = gen.run(0, size, 0.002)
    for _ in range(10_000):
        fw.run_once()
        if stats_of(fw)["udp_rx"] >= sent + sent_again:
            break
    stats = stats_of(fw)
    assert stats["tun_errors"] == sent_again and stats["tun_tx"] == sent
    assert totals(counter)["packets"] == sent


def test_l2tp_udp_length_counts_the_udp_header(udp_socket: Callable[..., socket.socket]) -> None:
    out, peer = udp_socket(), udp_socket(BIG_BUFFER)
    size = 120
    path = DataPath(4)
    gen = LoadGenerator(out.fileno(), 1, path, 8)
    slot = path.add_session(1, 10, 100, 200, address_row(*peer.getsockname()))
    gen.set_session(0, INNER_SOURCE, INNER_DESTINATION, 4000, 5000, slot)
    sent, _ = gen.run(0, size, 0.002)
    datagrams = drain(peer)
    assert sent > 0 and len(datagrams) == sent
    for data in datagrams:
        ip = data[6 + 4 :]
        assert len(ip) == size and struct.unpack_from("!H", ip, 2)[0] == size
        # RFC 768: "Length is the length in octets of this user datagram including this header
        # and the data": what follows the 20-octet IP header.
        assert struct.unpack_from("!H", ip, 24)[0] == size - 20
