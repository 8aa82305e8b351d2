"""Loopback forwarding between two sessions (UDP in, UDP out): the compiled forwarder against
a C recvmmsg/sendmmsg relay and against the reference (pure-Python) forwarder.

The input socket's queue is filled beforehand (``relay blast`` with a template: every datagram
is the same L2TP data message for session (1, 1), 64 or 1400 octets with its headers, carrying
an IPv4 packet). The program under test takes the socket over (``fd:N``), is pinned to one CPU
with ``taskset`` and timed by itself, from its first datagram to its last; its datagrams go to
a sink socket on loopback that nobody reads (as large a queue, so nothing is dropped and the
kernel's delivery, which runs on the sending CPU, is paid in full).

* C relay (``bench/baseline/relay.c``): one recvmmsg and one sendmmsg a batch, no other work:
  the ceiling. Its datagrams are the ones it received, unchanged, so the sizes match.
* compiled (``l2tpfast._dataplane.Forwarder``, run by ``runner.py forward``): recvmmsg, the
  data path (parse, session lookup, peer check, counters), a new header for session (1, 2)
  whose peer is the sink, sendmmsg with the header and the payload in place.
* reference (``l2tpfast.reference``, same runner): the same rules in Python, one recvmsg and
  one sendmsg a datagram. Its rounds are shorter (L2TPFAST_BENCH_REF_PACKETS, default 30000):
  at a few ten thousand datagrams a second a full round would take longer than the rest.

Each round runs the three in turn on fresh queues of the same datagrams; the figures are the
medians of the rounds, and the ratios are of medians (STYLE.md 9: reported, never asserted).
Knobs as in test_bench_relay_baseline.py: L2TPFAST_BENCH_SIZES (datagram octets, default
"64,1400"), L2TPFAST_BENCH_BATCH (64), L2TPFAST_BENCH_PACKETS (300000 up to 512 octets,
150000 above), L2TPFAST_BENCH_ROUNDS (5), L2TPFAST_BENCH_CPU (0). Needs root (SO_RCVBUFFORCE).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import e2e_common as common  # bench/e2e/e2e_common.py, on sys.path through conftest.py
import pytest

REF_PACKETS = int(os.environ.get("L2TPFAST_BENCH_REF_PACKETS", "30000"))


@pytest.fixture(scope="module")
def relay_binary() -> Path:
    common.require_root("prefilling a receive queue needs SO_RCVBUFFORCE")
    return common.build_baselines()["relay"]


def _round(relay: Path, size: int, packets: int, template: Path, which: str) -> dict[str, Any]:
    rnd = common.Round(relay, size, packets, template)
    fd = f"fd:{rnd.rx.fileno()}"
    sink = str(rnd.sink_port)
    if which == "c":
        args = [str(relay), "relay", fd, "127.0.0.1", sink, str(common.BATCH), str(packets)]
        args += ["30", str(common.IDLE_MS)]  # SECONDS IDLE_MS
    else:
        args = [sys.executable, str(common.RUNNER), "forward", which, fd, sink, str(packets)]
        args += [str(common.BATCH)]
    result = rnd.run([*common.pin(), *args])
    assert result["sink_drops"] == 0, result
    if which != "c":
        stats = result["stats"]
        assert stats["udp_tx"] == packets and not result["drops"], result
    return result


@pytest.mark.parametrize("size", common.SIZES, ids=[f"{s}B" for s in common.SIZES])
def test_forwarding(benchmark: Any, relay_binary: Path, size: int, tmp_path: Path) -> None:
    packets = common.packets_for(size)
    template = tmp_path / "datagram.bin"
    template.write_bytes(common.l2tp_datagram(size, "10.9.0.2", "10.99.0.1"))
    results: dict[str, list[dict[str, Any]]] = {"c": [], "reference": [], "compiled": []}

    def setup() -> tuple[tuple[()], dict[str, Any]]:
        # A C and a reference round before each compiled round: the three alternate, so a
        # slow spell of the machine weighs on every side of the ratios alike.
        results["c"].append(_round(relay_binary, size, packets, template, "c"))
        results["reference"].append(
            _round(relay_binary, size, min(REF_PACKETS, packets), template, "reference")
        )
        return (), {}

    def compiled_round() -> None:
        results["compiled"].append(_round(relay_binary, size, packets, template, "compiled"))

    # pytest-benchmark times each compiled round whole (prefill and process start included);
    # the pps figures are the programs' own, from their first datagram to their last.
    benchmark.pedantic(compiled_round, setup=setup, rounds=common.ROUNDS)
    fast, fast_best = common.mpps(results["compiled"])
    c, c_best = common.mpps(results["c"])
    ref, ref_best = common.mpps(results["reference"])
    benchmark.extra_info.update(
        size=size,
        batch=common.BATCH,
        packets=packets,
        reference_packets=min(REF_PACKETS, packets),
        compiled_mpps=fast,
        c_mpps=c,
        reference_mpps=ref,
        ratio_c=fast / c,
        ratio_reference=fast / ref,
    )
    print(
        f"\nforwarding {size} B: compiled {fast:.3f} Mpps, C relay {c:.3f} Mpps ({fast / c:.2f}x; "
        f"target >= 0.9x), reference {ref:.3f} Mpps ({fast / ref:.1f}x; target >= 1.8x)"
        f"\n  {packets} datagrams a round ({min(REF_PACKETS, packets)} for the reference), batch "
        f"{common.BATCH}, CPU {common.CPU}, {len(results['compiled'])} rounds; best: compiled "
        f"{fast_best:.3f}, C {c_best:.3f}, reference {ref_best:.3f} Mpps"
    )
