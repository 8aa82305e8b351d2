"""The TUN paths: the compiled forwarder against a C loop doing the same system calls.

UDP to TUN (decapsulation): recvmmsg a batch of L2TP data messages, one write() per IP packet
to the TUN device. TUN to UDP (encapsulation): read() IP packets from the TUN until none is
queued (at most a batch), add the L2TP and PPP headers, one sendmmsg. The C loops are
``tun_loop udp2tun`` and ``tun_loop tun2udp`` of bench/baseline, which do those system calls
and no protocol work (with STRIP and PREPEND set to the 10 header octets, so the packets on
each side have the same sizes); the compiled side is ``l2tpfast._dataplane.Forwarder`` run by
``runner.py``. Each run is pinned to one CPU (``taskset``) and timed by itself from its first
packet to its last. The figures are reported, never asserted (STYLE.md 9).

Everything runs in a network namespace of the benchmark's own (deleted at the end, also after
a failure) with a TUN device ``l2fb0``, 10.9.0.1/24, IPv6 off (no stray packets):

* UDP to TUN: the input socket's queue is filled beforehand with datagrams for session (1, 1)
  that carry IPv4/UDP packets from 10.9.0.2 to 10.99.0.1; 10.99.0.0/16 is a blackhole route
  (forwarding on), so after the write() the kernel routes the packet and drops it cheaply.
* TUN to UDP: the TUN's queue (txqueuelen raised) is filled beforehand with UDP packets to
  10.9.0.2, sent from inside the namespace while the program under test is attached and
  waiting (a TUN queues nothing while nobody is attached): the C loop is stopped with SIGSTOP
  once ready, ``runner.py`` waits for a line on stdin. Its datagrams go to a sink socket in the
  namespace that nobody reads.

Sizes (L2TPFAST_BENCH_SIZES, default "64,1400") are those of the IP packets on the TUN; the
datagrams are 10 octets longer. Other knobs as in test_bench_relay_baseline.py (BATCH, ROUNDS,
CPU; L2TPFAST_BENCH_PACKETS, default 200000 up to 512 octets and 100000 above). Needs root.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import e2e_common as common  # bench/e2e/e2e_common.py, on sys.path through conftest.py
import pytest

DEV = "l2fb0"
TUN_NET = "10.9.0.1/24"
SUBSCRIBER = "10.9.0.2"  # routed into the TUN; the runner routes it to its session
BLACKHOLE = "10.99.0.0/16"
DROPPED_AT = "10.99.0.1"
HEADERS = common.L2TP_PPP_HEADER
IP_UDP = 28  # IPv4 and UDP headers: blast's SIZE is the UDP payload
DIRECTIONS = ("udp2tun", "tun2udp")


def _packets(size: int) -> int:
    return common.packets_for(size, 200_000, 100_000)


@pytest.fixture(scope="module")
def binaries() -> dict[str, Path]:
    common.require_root("SO_RCVBUFFORCE, a network namespace and a TUN device")
    return common.build_baselines()


@pytest.fixture(scope="module")
def netns() -> Iterator[Any]:
    """The namespace with its TUN device, routes and sysctls; deleted afterwards."""
    common.require_root("a network namespace and a TUN device")
    ns = common.Netns("l2f-bench-tun")
    try:
        ns.run("ip", "link", "set", "lo", "up")
        ns.run(
            "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"
        )
        ns.run("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        ns.run("ip", "tuntap", "add", "dev", DEV, "mode", "tun")
        # The queue of a TUN (a ring of txqueuelen packets, sized when a reader attaches)
        # must hold a whole round.
        queue = str(max(_packets(size) for size in common.SIZES) + 1000)
        ns.run("ip", "link", "set", "dev", DEV, "txqueuelen", queue, "up")
        ns.run("ip", "addr", "add", TUN_NET, "dev", DEV)
        ns.run("ip", "route", "add", "blackhole", BLACKHOLE)
        yield ns
    finally:
        ns.close()


def _tun_counter(ns: Any, name: str) -> int:
    return int(ns.run("cat", f"/sys/class/net/{DEV}/statistics/{name}"))


# --- UDP to TUN ---------------------------------------------------------------------------------


def _udp2tun_round(
    ns: Any, binaries: dict[str, Path], size: int, template: Path, which: str
) -> dict[str, Any]:
    packets = _packets(size)
    rnd = common.Round(binaries["relay"], size + HEADERS, packets, template)
    fd = f"fd:{rnd.rx.fileno()}"
    if which == "c":
        args = [str(binaries["tun_loop"]), "udp2tun", DEV, fd, str(common.BATCH), str(packets)]
        args += [str(HEADERS), "30", str(common.IDLE_MS)]  # STRIP SECONDS IDLE_MS
    else:
        args = [sys.executable, str(common.RUNNER), "udp2tun", "compiled", fd, DEV, str(packets)]
        args += [str(common.BATCH)]
    before = _tun_counter(ns, "rx_packets")
    result = rnd.run(ns.command([*common.pin(), *args]))
    written = _tun_counter(ns, "rx_packets") - before
    errors = result["errors"] if which == "c" else result["stats"]["tun_errors"]
    assert errors == 0 and written == packets, (written, result)
    return result


# --- TUN to UDP ---------------------------------------------------------------------------------


def _tun2udp_round(ns: Any, binaries: dict[str, Path], size: int, which: str) -> dict[str, Any]:
    packets = _packets(size)
    with ns.entered():
        sink = common.big_socket(packets * (size + HEADERS + common.QUEUE_OVERHEAD))
    try:
        port = str(sink.getsockname()[1])
        if which == "c":
            args = [str(binaries["tun_loop"]), "tun2udp", DEV, "127.0.0.1", port, str(common.BATCH)]
            args += [str(packets), str(HEADERS), "30", str(common.IDLE_MS)]  # PREPEND SECONDS IDLE_MS
        else:
            args = [sys.executable, str(common.RUNNER), "tun2udp", "compiled", DEV, port, str(packets)]
            args += [str(common.BATCH)]
        reader = common.Reader(ns.command([*common.pin(), *args]), stdin_go=which != "c")
        try:
            dropped = _tun_counter(ns, "tx_dropped")
            blast = [str(binaries["relay"]), "blast", SUBSCRIBER, "9", str(size - IP_UDP), str(packets)]
            common.run_json(ns.command([*common.blast_pin(), *blast, str(common.BATCH)]))
            dropped = _tun_counter(ns, "tx_dropped") - dropped
            assert dropped == 0, f"the TUN queue dropped {dropped} of {packets}: raise its txqueuelen"
        except BaseException:
            reader.kill()
            raise
        result = reader.finish()
        result["sink_drops"] = common.udp_stats(sink)[1]
    finally:
        sink.close()
    assert result["packets"] == packets and result["sink_drops"] == 0, result
    if which != "c":
        assert result["stats"]["udp_tx"] == packets, result
    return result


@pytest.mark.parametrize("size", common.SIZES, ids=[f"{s}B" for s in common.SIZES])
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_tun_path(
    benchmark: Any, binaries: dict[str, Path], netns: Any, direction: str, size: int, tmp_path: Path
) -> None:
    template = tmp_path / "datagram.bin"
    template.write_bytes(common.l2tp_datagram(size + HEADERS, SUBSCRIBER, DROPPED_AT))
    c_results: list[dict[str, Any]] = []
    fast_results: list[dict[str, Any]] = []

    def one(which: str) -> dict[str, Any]:
        if direction == "udp2tun":
            return _udp2tun_round(netns, binaries, size, template, which)
        return _tun2udp_round(netns, binaries, size, which)

    def setup() -> tuple[tuple[()], dict[str, Any]]:
        # A C round before each compiled round: the two alternate, so a slow spell of the
        # machine weighs on both sides of the ratio alike.
        c_results.append(one("c"))
        return (), {}

    def compiled_round() -> None:
        fast_results.append(one("compiled"))

    # pytest-benchmark times each compiled round whole (prefill and process start included);
    # the pps figures are the programs' own, from their first packet to their last.
    benchmark.pedantic(compiled_round, setup=setup, rounds=common.ROUNDS)
    fast, fast_best = common.mpps(fast_results)
    c, c_best = common.mpps(c_results)
    ratio = fast / c
    benchmark.extra_info.update(
        direction=direction,
        size=size,
        batch=common.BATCH,
        packets=_packets(size),
        compiled_mpps=fast,
        c_mpps=c,
        ratio=ratio,
    )
    print(
        f"\n{direction} {size} B: compiled {fast:.3f} Mpps, C {c:.3f} Mpps ({ratio:.2f}x; target >= 0.85x)"
        f"\n  IP packets of {size} octets on the TUN, datagrams of {size + HEADERS}; "
        f"{_packets(size)} a round, batch {common.BATCH}, CPU {common.CPU}, {len(fast_results)} rounds; "
        f"best: compiled {fast_best:.3f}, C {c_best:.3f} Mpps"
    )
