"""The sink behind the LNS (``l2tpfast bench-sink``): it counts what comes out of the LNS's TUN
side, echoes the probes, and sends the downstream traffic.

It runs where the LNS delivers its subscribers' packets: on the LNS's host (or in its network
namespace), or on any host routed through it. The generator (``l2tpfast bench``) sends every
session's upstream packets to the sink's address; the LNS takes them out of L2TP and PPP and
routes them there, and the sink's :class:`~l2tpfast._dataplane.UdpReceiver` counts them with a
:class:`~l2tpfast._dataplane.LoadCounter`, as the generator counts the downstream ones. Its
downstream sender is a :class:`~l2tpfast._dataplane.LoadGenerator` in plain-UDP mode, addressed
to the sessions' addresses, which the LNS routes into the sessions.

The generator drives it with JSON lines, one request and one answer each, over the sink's
standard input and output (the generator started it, maybe in a namespace) or a TCP connection
(``--control HOST:PORT``, a sink on another host):

- ``open``: bind the UDP port, learn the sessions' addresses (session index = list index);
- ``start``: zero the counts; send downstream at ``rate`` for ``seconds`` if rate > 0;
- ``peek``: the counts so far (the live display);
- ``stop``: end the sending, return the counts, the socket's drops and the CPU used;
- ``close``: end.

It also reads the CPU time of the LNS's processes (``lns_pids`` in ``open``): it runs on the
LNS's host, where /proc has them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import socket
import struct
import threading
import time
from typing import IO, Any

from l2tpfast._dataplane import LOAD_STATS, LOAD_TOTALS, LoadCounter, LoadGenerator, UdpReceiver
from l2tpfast.runtime.dataplane import grow_buffers

#: getsockopt(SOL_SOCKET, SO_MEMINFO): u32[SK_MEMINFO_VARS] (linux/sock_diag.h); of them, the
#: receive memory the kernel charges for queued datagrams, and the datagrams it dropped because
#: the buffer was full.
SO_MEMINFO = 55
SK_MEMINFO_RMEM_ALLOC = 0
SK_MEMINFO_DROPS = 8
SOCKET_BUFFER = 32 * 1024 * 1024


def socket_meminfo(fd: int) -> tuple[int, ...]:
    """The socket's SO_MEMINFO counters (index with SK_MEMINFO_*). Read from the socket itself,
    so it works for a socket of another network namespace too."""
    sock = socket.socket(fileno=os.dup(fd))
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 9 * 4)
    finally:
        sock.close()
    return struct.unpack(f"={len(raw) // 4}I", raw)


def socket_drops(fd: int) -> int:
    """Datagrams the kernel dropped at this socket (its receive buffer was full)."""
    return socket_meminfo(fd)[SK_MEMINFO_DROPS]


def process_cpu(pids: list[int]) -> float | None:
    """CPU seconds (user + system, all threads) the processes used so far; None if one is gone."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of proc(5)
    return total / os.sysconf("SC_CLK_TCK")


def processes_named(name: str) -> list[int]:
    """Pids of the processes here called ``name``: by the kernel's name (/proc/PID/comm, 15
    characters at most) or by the file name of their program (argv[0])."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/{entry.name}/cmdline", "rb") as fb:
                argv0 = fb.read().split(b"\0", 1)[0].decode(errors="replace")
        except OSError:
            continue  # gone meanwhile, or a kernel thread's empty files
        if name in (comm, os.path.basename(argv0)):
            found.append(int(entry.name))
    return sorted(found)


def self_cpu() -> float:
    t = os.times()
    return t.user + t.system


class Sink:
    """The sink's state: its socket, receiver thread, downstream sender and counts."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.counter: LoadCounter | None = None
        self.receiver: UdpReceiver | None = None
        self.generator: LoadGenerator | None = None
        self._stop_fd = -1
        self._thread: threading.Thread | None = None
        self._sender: threading.Thread | None = None
        self._sent: tuple[int, float] = (0, 0.0)
        self.lns_pids: list[int] = []
        self._marks: dict[str, Any] = {}

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd")
        if cmd == "open":
            return self.open(request)
        if self.counter is None or self.generator is None:
            raise ValueError(f"{cmd!r} before open")
        if cmd == "start":
            return self.start(
                float(request["rate"]),
                int(request["size"]),
                float(request["seconds"]),
                int(request.get("burst", 1)),
            )
        if cmd == "peek":
            return self.peek()
        if cmd == "stop":
            return self.stop()
        raise ValueError(f"unknown command {cmd!r}")

    def open(self, request: dict[str, Any]) -> dict[str, Any]:
        self.close()
        addresses = [ipaddress.IPv4Address(a) for a in request["sessions"]]
        if not addresses:
            raise ValueError("open: no sessions")
        lns_pids = [int(p) for p in request.get("lns_pids", [])]
        for name in request.get("lns_names", []):
            pids = processes_named(str(name))
            if not pids:
                raise ValueError(f"--lns-process {name}: no process of that name on the sink's host")
            lns_pids += pids
        bind = str(request.get("bind", "0.0.0.0"))
        port = int(request["port"])
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            grow_buffers(sock.fileno(), SOCKET_BUFFER)
            sock.bind((bind, port))
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self.lns_pids = lns_pids
        self.counter = LoadCounter(len(addresses))
        self.receiver = UdpReceiver(sock.fileno(), self.counter, int(request.get("batch", 64)))
        self.generator = LoadGenerator(sock.fileno(), len(addresses), None, int(request.get("batch", 64)))
        generator_port = int(request.get("generator_port", port))
        for index, address in enumerate(addresses):
            self.generator.set_session(index, bytes(4), address.packed, port, generator_port)
        self._stop_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._thread = threading.Thread(
            target=self.receiver.run, args=(self._stop_fd,), name="l2tpfast-sink", daemon=True
        )
        self._thread.start()
        return {
            "pid": os.getpid(),
            "sessions": len(addresses),
            "port": sock.getsockname()[1],
            "lns_pids": self.lns_pids,
        }

    def start(self, rate: float, size: int, seconds: float, burst: int = 1) -> dict[str, Any]:
        assert self.counter is not None and self.generator is not None and self.receiver is not None
        self._join_sender()
        self.counter.reset()
        self.generator.reset()
        self.receiver.stats[:] = 0
        self._sent = (0, 0.0)
        assert self.sock is not None
        self._marks = {
            "drops": socket_drops(self.sock.fileno()),
            "cpu": self_cpu(),
            "lns_cpu": process_cpu(self.lns_pids) if self.lns_pids else None,
            "at": time.monotonic(),
        }
        if rate > 0:
            generator = self.generator

            def send() -> None:
                self._sent = generator.run(rate, size, seconds, 0, burst)

            self._sender = threading.Thread(target=send, name="l2tpfast-sink-sender", daemon=True)
            self._sender.start()
        return {}

    def _join_sender(self) -> None:
        if self._sender is not None:
            assert self.generator is not None
            self._sender.join(timeout=60)
            self._sender = None

    def peek(self) -> dict[str, Any]:
        assert self.counter is not None and self.generator is not None
        return {
            "received": int(self.counter.totals[0]),
            "sent": int(self.generator.stats[0]),
            "lns_cpu": process_cpu(self.lns_pids) if self.lns_pids else None,
        }

    def stop(self) -> dict[str, Any]:
        assert self.counter is not None and self.generator is not None and self.sock is not None
        self._join_sender()
        marks = self._marks
        lns_cpu = process_cpu(self.lns_pids) if self.lns_pids else None
        return {
            "received": {n: int(v) for n, v in zip(LOAD_TOTALS, self.counter.totals, strict=True)},
            "receiver": {"echoes_sent": int(self.receiver.stats[1]) if self.receiver else 0},
            "sender": {n: int(v) for n, v in zip(LOAD_STATS, self.generator.stats, strict=True)},
            "gso": list(self.generator.gso_stats),
            "sent": self._sent[0],
            "send_seconds": self._sent[1],
            "socket_drops": socket_drops(self.sock.fileno()) - int(marks.get("drops", 0)),
            "cpu": self_cpu() - float(marks.get("cpu", 0.0)),
            "lns_cpu": (
                lns_cpu - marks["lns_cpu"]
                if lns_cpu is not None and marks.get("lns_cpu") is not None
                else None
            ),
            "seconds": time.monotonic() - float(marks.get("at", time.monotonic())),
        }

    def close(self) -> None:
        if self.generator is not None:
            self.generator.stop()
        self._join_sender()
        if self._thread is not None:
            os.eventfd_write(self._stop_fd, 1)
            self._thread.join(timeout=5)
            self._thread = None
        if self._stop_fd >= 0:
            os.close(self._stop_fd)
            self._stop_fd = -1
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.counter = self.receiver = self.generator = None


def serve(reader: IO[str], writer: IO[str]) -> None:
    """Answer JSON-line requests until ``close`` or end of input."""
    sink = Sink()
    try:
        for line in reader:
            if not line.strip():
                continue
            try:
                request = json.loads(line)
                if request.get("cmd") == "close":
                    writer.write(json.dumps({"ok": True}) + "\n")
                    writer.flush()
                    break
                answer = {"ok": True, **sink.handle(request)}
            except (ValueError, KeyError, TypeError, OSError) as exc:
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            writer.write(json.dumps(answer) + "\n")
            writer.flush()
    finally:
        sink.close()


def serve_tcp(host: str, port: int, *, once: bool = False) -> None:
    """Serve generators one connection at a time on TCP ``host``:``port``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(1)
        print(f"bench-sink: control on {host} port {listener.getsockname()[1]}", flush=True)
        while True:
            conn, peer = listener.accept()
            with conn, conn.makefile("r") as reader, conn.makefile("w") as writer:
                print(f"bench-sink: generator {peer[0]} connected", flush=True)
                serve(reader, writer)
            if once:
                return


class SinkClient:
    """The generator's end of the control channel (pipes to a child, or a TCP connection)."""

    def __init__(self, reader: IO[str], writer: IO[str], closer: Any = None) -> None:
        self._reader = reader
        self._writer = writer
        self._closer = closer
        self._lock = threading.Lock()

    def request(self, cmd: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            self._writer.write(json.dumps({"cmd": cmd, **fields}) + "\n")
            self._writer.flush()
            line = self._reader.readline()
        if not line:
            raise ConnectionError(f"the sink ended without answering {cmd!r}")
        answer: dict[str, Any] = json.loads(line)
        if not answer.get("ok"):
            raise RuntimeError(f"the sink refused {cmd!r}: {answer.get('error')}")
        return answer

    def close(self) -> None:
        with contextlib.suppress(OSError, ConnectionError, RuntimeError, ValueError):
            self.request("close")
        if self._closer is not None:
            self._closer()
