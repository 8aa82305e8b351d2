"""The forwarder side of the end-to-end benchmarks: one round of one forwarder, timed.

    runner.py forward IMPL fd:N SINK_PORT PACKETS BATCH
        L2TP switching between two sessions: the datagrams queued on the inherited socket N
        are for session (1, 1), which switches to session (1, 2) whose peer is 127.0.0.1:SINK_PORT.
    runner.py udp2tun IMPL fd:N TUN PACKETS BATCH
        the datagrams queued on socket N are for session (1, 1), delivered to the TUN device TUN
        (which exists: this attaches to it).
    runner.py tun2udp IMPL TUN SINK_PORT PACKETS BATCH
        the IP packets queued on TUN for 10.9.0.2 go out through session (1, 1) to 127.0.0.1:
        SINK_PORT, from a socket of this program's own. It attaches to TUN, prints
        {"ready": true, "port": P} on stderr, and starts when a line comes on stdin (the caller
        fills the TUN's queue in between: a TUN queues nothing while nobody is attached).

IMPL is "compiled" (l2tpfast._dataplane) or "reference" (l2tpfast.reference). The source of
the queued datagrams (one sender) is taken from the first of them with MSG_PEEK and becomes
the session's peer, as a data plane checks it. Like the C baselines of bench/baseline, the
program stops after PACKETS packets, after IDLE seconds without one, or after DEADLINE
seconds, and prints one JSON line {"mode", "packets", "seconds", "pps", "stats", ...}, timed
from the first packet handled to the last. Exit status 0 when the whole count went through,
3 when it stopped early.
"""

from __future__ import annotations

import json
import select
import socket
import sys
import time
from typing import Any

IDLE = 0.3
DEADLINE = 30.0
TUN_ROUTE = bytes([10, 9, 0, 2])  # the subscriber behind the session (tun2udp)


def _impl(name: str) -> tuple[Any, Any, tuple[str, ...]]:
    if name == "compiled":
        from l2tpfast._dataplane import FORWARDER_STATS, DataPath, Forwarder

        return DataPath, Forwarder, FORWARDER_STATS
    if name == "reference":
        from l2tpfast.reference.dataplane import DataPath
        from l2tpfast.reference.forwarder import FORWARDER_STATS, Forwarder

        return DataPath, Forwarder, FORWARDER_STATS
    raise SystemExit(f"IMPL is compiled or reference, not {name!r}")


def _inherited(spec: str) -> socket.socket:
    if not spec.startswith("fd:"):
        raise SystemExit(f"the input is fd:N, not {spec!r}")
    sock = socket.socket(fileno=int(spec[3:]))
    sock.setblocking(False)
    return sock


def _source(sock: socket.socket) -> tuple[str, int]:
    """The sender of the first queued datagram, left in the queue."""
    ready, _, _ = select.select([sock], [], [], 5.0)
    if not ready:
        raise SystemExit("nothing queued on the input socket")
    _, peer = sock.recvfrom(16, socket.MSG_PEEK)
    return peer[0], peer[1]


def _time(step: Any, counter: Any, packets: int) -> tuple[int, float, float]:
    """Call ``step()`` until ``counter()`` reaches ``packets``: (count, first, last).

    ``first`` is the time before the first call that handled a packet, ``last`` the time after
    the last one: the timing of the C baselines.
    """
    clock = time.perf_counter
    done = 0
    first = last = 0.0
    deadline = clock() + DEADLINE
    while done < packets:
        t = clock()
        step()
        now = counter()
        if now != done:
            if done == 0:
                first = t
            done = now
            last = clock()
        elif t > deadline or (done and t - last > IDLE):
            break
    return done, first, last


def main(argv: list[str]) -> int:
    if len(argv) != 6 or argv[0] not in ("forward", "udp2tun", "tun2udp"):
        print(__doc__, file=sys.stderr)
        return 2
    mode, impl = argv[0], argv[1]
    packets, batch = int(argv[4]), int(argv[5])
    data_path, forwarder, stat_names = _impl(impl)
    from l2tpfast.runtime.dataplane import address_row
    from l2tpfast.wire.constants import SessionTarget

    path = data_path(16)
    tun = None
    if mode == "forward":
        sock = _inherited(argv[2])
        # Session a (slot 0) switches to b (slot 1), which sends to the sink, and back.
        a = path.add_session(
            1, 1, 10, 11, address_row(*_source(sock)), target=SessionTarget.SWITCH, target_index=1
        )
        b = path.add_session(
            1, 2, 20, 21, address_row("127.0.0.1", int(argv[3])), target=SessionTarget.SWITCH, target_index=a
        )
        if b != 1:
            raise SystemExit(f"session b took slot {b}, not 1")
        fw = forwarder(path, sock.fileno(), batch=batch)
    elif mode == "udp2tun":
        from l2tpfast.runtime.tun import TunDevice

        sock = _inherited(argv[2])
        tun = TunDevice.open(argv[3])
        path.add_session(1, 1, 10, 11, address_row(*_source(sock)), target=SessionTarget.TUN)
        fw = forwarder(path, sock.fileno(), tun.fileno(), batch=batch)
    else:
        from l2tpfast.runtime.tun import TunDevice

        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        tun = TunDevice.open(argv[2])
        slot = path.add_session(
            1, 1, 10, 11, address_row("127.0.0.1", int(argv[3])), target=SessionTarget.TUN
        )
        path.route_add(TUN_ROUTE, slot)
        fw = forwarder(path, sock.fileno(), tun.fileno(), batch=batch)
        print(json.dumps({"ready": True, "port": sock.getsockname()[1]}), file=sys.stderr, flush=True)
        ready, _, _ = select.select([sys.stdin], [], [], DEADLINE)
        if not ready or not sys.stdin.readline():
            raise SystemExit("no go line on stdin")

    stats = fw.stats
    index = {name: i for i, name in enumerate(stat_names)}
    if mode == "tun2udp":
        tun_rx = index["tun_rx"]
        count, first, last = _time(
            lambda: fw.run_once(udp=False, tun=True), lambda: int(stats[tun_rx]), packets
        )
    else:
        udp_rx = index["udp_rx"]
        count, first, last = _time(
            lambda: fw.run_once(udp=True, tun=False), lambda: int(stats[udp_rx]), packets
        )
    seconds = last - first
    result = {
        "mode": mode,
        "impl": impl,
        "packets": count,
        "seconds": seconds,
        "pps": count / seconds if seconds > 0 else 0.0,
        "avg_batch": count / max(1, int(stats[index["batches"]])) if mode != "tun2udp" else None,
        "stats": dict(zip(stat_names, (int(v) for v in stats), strict=True)),
        "drops": {str(i): int(v) for i, v in enumerate(path.drops) if v},
        "session": {name: int(path.counters[0][name]) for name in path.counters.dtype.names},
    }
    print(json.dumps(result), flush=True)
    if hasattr(fw, "close"):
        fw.close()
    if tun is not None:
        tun.close()
    sock.close()
    return 0 if count >= packets else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
