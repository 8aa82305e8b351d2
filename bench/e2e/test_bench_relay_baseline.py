"""The UDP relay baselines: C recvmmsg/sendmmsg against a pure-Python recvfrom/sendto loop.

The figure the Cython data plane is judged against (issue 4) is the packet rate of
``bench/baseline/relay.c``: one recvmmsg and one sendmmsg per batch and no other
work.  This file measures it, and the same relay written in plain Python, on the
same input, and prints both with their ratio (STYLE.md 9: ratios, not absolute
figures alone).  Speed is reported, never asserted.

Each round starts from a receive queue filled beforehand (``relay blast``, with
SO_RCVBUFFORCE, so root is needed): the program under test takes the socket over
(``fd:N``), is pinned to CPU 0 with ``taskset``, and is timed by itself from its first
datagram to its last, so neither the sender's speed nor process start-up is in
the figure.  The relayed datagrams go to a sink socket on loopback that nobody
reads; its queue is as large, so the kernel's delivery is paid in full and nothing
is dropped.  Loopback delivery runs on the sending CPU, so that cost is on CPU 0 too.

Knobs (environment): L2TPFAST_BENCH_SIZES (payload octets, default "64,1400"),
L2TPFAST_BENCH_BATCH (default 64), L2TPFAST_BENCH_PACKETS (per round; default
300000 at 64 octets and 150000 at 1400), L2TPFAST_BENCH_ROUNDS (default 5),
L2TPFAST_BENCH_CPU (default 0), L2TPFAST_BENCH_BLAST_CPU (the prefill's CPU, default
the same: see common.blast_pin).  The helpers are in e2e_common.py.  Run with
``python -m pytest bench/e2e --benchmark-only -s``.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import e2e_common as common  # bench/e2e/e2e_common.py, on sys.path through conftest.py
import pytest

SIZES, BATCH, ROUNDS, CPU, IDLE_MS = common.SIZES, common.BATCH, common.ROUNDS, common.CPU, common.IDLE_MS
Round = common.Round


#: The Python baseline: what a data plane without recvmmsg does, one datagram per call.
#: recvfrom_into (not recv_into) because a data plane must know the source address.
PY_RELAY = r"""
import json, select, socket, sys, time

fd, host, port, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
idle = float(sys.argv[5])
rx = socket.socket(fileno=fd)
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dst, buf = (host, port), bytearray(2048)
view = memoryview(buf)
recvfrom_into, sendto, flags, clock = rx.recvfrom_into, tx.sendto, socket.MSG_DONTWAIT, time.perf_counter
packets = nbytes = 0
first = last = clock()
deadline = first + 60.0
for _ in range(1_000_000):
    try:
        for _ in range(count - packets):
            n = recvfrom_into(buf, 0, flags)[0]
            sendto(view[:n], dst)
            packets += 1
            nbytes += n
    except BlockingIOError:
        pass
    last = clock()
    if packets >= count or last > deadline or not select.select([rx], [], [], idle)[0]:
        break
seconds = last - first
print(json.dumps({"mode": "python", "packets": packets, "bytes": nbytes, "seconds": seconds,
                  "pps": packets / seconds if seconds > 0 else 0.0}))
rx.close()
tx.close()
"""


@pytest.fixture(scope="module")
def relay_binary() -> Path:
    common.require_root("prefilling a receive queue needs SO_RCVBUFFORCE")
    return common.build_baselines()["relay"]


def _c_command(relay: Path, rnd: Round, mode: str = "relay") -> list[str]:
    fd = f"fd:{rnd.rx.fileno()}"
    limits = [str(BATCH), str(rnd.packets), "30", str(IDLE_MS)]  # BATCH PACKETS SECONDS IDLE_MS
    if mode == "recv":
        return [*common.pin(), str(relay), "recv", fd, *limits]
    return [*common.pin(), str(relay), "relay", fd, "127.0.0.1", str(rnd.sink.getsockname()[1]), *limits]


def _py_command(rnd: Round) -> list[str]:
    sink = str(rnd.sink.getsockname()[1])
    args = [str(rnd.rx.fileno()), "127.0.0.1", sink, str(rnd.packets), str(IDLE_MS / 1000)]
    return [*common.pin(), sys.executable, "-c", PY_RELAY, *args]


@pytest.mark.parametrize("size", SIZES, ids=[f"{s}B" for s in SIZES])
def test_relay_baseline(benchmark: Any, relay_binary: Path, size: int) -> None:
    packets = common.packets_for(size)
    c_results: list[dict[str, Any]] = []
    py_results: list[dict[str, Any]] = []

    def run_one(command: Callable[[Round], list[str]]) -> dict[str, Any]:
        rnd = Round(relay_binary, size, packets)
        return rnd.run(command(rnd))

    def setup() -> tuple[tuple[Round], dict[str, Any]]:
        # A Python round before each C round: the two alternate, so a slow spell of the
        # machine (the other vCPU busy, say) weighs on both sides of the ratio alike.
        py_results.append(run_one(_py_command))
        return (Round(relay_binary, size, packets),), {}

    def relay_round(rnd: Round) -> None:
        c_results.append(rnd.run(_c_command(relay_binary, rnd)))

    # pytest-benchmark times each whole C run (process start included; the setup, with
    # the Python round and the prefill, is not timed).  The pps figures are the programs'
    # own, from their first datagram to their last.
    benchmark.pedantic(relay_round, setup=setup, rounds=ROUNDS)
    recv_result = run_one(lambda rnd: _c_command(relay_binary, rnd, "recv"))

    c_median, c_best = common.mpps(c_results)
    py_median, py_best = common.mpps(py_results)
    ratio = c_median / py_median
    benchmark.extra_info.update(
        size=size,
        batch=BATCH,
        packets=packets,
        c_mpps=c_median,
        python_mpps=py_median,
        recv_only_mpps=recv_result["pps"] / 1e6,
        ratio=ratio,
        avg_batch=statistics.mean(r["avg_batch"] for r in c_results),
    )
    print(
        f"\nrelay baseline, {size} B datagrams, {packets} per round from a prefilled queue, "
        f"batch {BATCH}, CPU {CPU}, rounds: {len(c_results)}\n"
        f"  C recvmmsg/sendmmsg:         {c_median:.3f} Mpps median, {c_best:.3f} best "
        f"(average batch {benchmark.extra_info['avg_batch']:.1f})\n"
        f"  Python recvfrom_into/sendto: {py_median:.3f} Mpps median, {py_best:.3f} best\n"
        f"  ratio C / Python:            {ratio:.1f} x\n"
        f"  C recvmmsg only (no send):   {recv_result['pps'] / 1e6:.3f} Mpps\n"
        f"  sink drops: C {sum(r['sink_drops'] for r in c_results)}, "
        f"Python {sum(r['sink_drops'] for r in py_results)}"
    )
