"""Helpers shared by the end-to-end benchmarks (bench/README.md, "End-to-end").

A round of a benchmark starts from an input queue filled beforehand (UDP with SO_RCVBUFFORCE,
or a TUN device's queue with a raised txqueuelen), hands it to the program under test pinned to
one CPU with ``taskset``, and takes that program's own figure: the packets it handled divided by
the time from its first packet to its last. The programs print one JSON line each: the C
baselines of ``bench/baseline`` and ``runner.py`` (the compiled and reference forwarders).

bench/ is not a package: conftest.py puts this folder on sys.path and the benchmark files
``import e2e_common`` (a name no test module uses); ``load`` imports bench/baseline/build.py by path.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import os
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BUILD_PY = ROOT / "bench" / "baseline" / "build.py"
RUNNER = HERE / "runner.py"

SIZES = tuple(int(s) for s in os.environ.get("L2TPFAST_BENCH_SIZES", "64,1400").split(","))
BATCH = int(os.environ.get("L2TPFAST_BENCH_BATCH", "64"))
ROUNDS = int(os.environ.get("L2TPFAST_BENCH_ROUNDS", "5"))
CPU = os.environ.get("L2TPFAST_BENCH_CPU", "0")
BLAST_CPU = os.environ.get("L2TPFAST_BENCH_BLAST_CPU", CPU)
IDLE_MS = 300
RUN_TIMEOUT = 60.0
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
#: Kernel memory charged per queued datagram is about size + 770 octets (measured: 832 at 64,
#: 2304 at 1400 on x86-64); the margin keeps a whole round in the queue.
QUEUE_OVERHEAD = 1280
#: L2TP data header without options (RFC 2661 3.1: flags/version, tunnel id, session id), then
#: the PPP address, control and protocol (IPv4) fields: what a decapsulation strips.
L2TP_PPP_HEADER = 6 + 4


def packets_for(size: int, small: int = 300_000, large: int = 150_000) -> int:
    """Datagrams per round: L2TPFAST_BENCH_PACKETS, or ``small`` up to 512 octets, else ``large``."""
    if "L2TPFAST_BENCH_PACKETS" in os.environ:
        return int(os.environ["L2TPFAST_BENCH_PACKETS"])
    return small if size <= 512 else large


def load(path: Path, name: str) -> ModuleType:
    """Import a file of bench/ (not a package) by path, once, under a name of its own."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def build_baselines() -> dict[str, Path]:
    """The C baselines, compiled when out of date: {"relay": path, "tun_loop": path}."""
    build = load(BUILD_PY, "_l2tpfast_bench_baseline_build")
    return {name: Path(path) for name, path in build.build_baselines().items()}


def require_root(why: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"needs root: {why}")


def pin() -> list[str]:
    """``taskset -c CPU``; unpinned (and said so) where taskset is missing."""
    taskset = shutil.which("taskset")
    if taskset is None:
        print("  (taskset not found: running unpinned)")
        return []
    return [taskset, "-c", CPU]


def blast_pin() -> list[str]:
    """``taskset`` for the prefill (``relay blast``): the benchmark's CPU unless
    L2TPFAST_BENCH_BLAST_CPU says otherwise.

    Where the queued packets were allocated matters: freeing them on another CPU than the one
    that allocated them costs more (SLUB remote frees), and left to the scheduler the figures
    of a round take one of two levels, about 20% apart, by chance.
    """
    taskset = shutil.which("taskset")
    return [taskset, "-c", BLAST_CPU] if taskset else []


def udp_stats(sock: socket.socket) -> tuple[int, int]:
    """(queued octets as charged by the kernel, drops) of one socket, from SO_MEMINFO.

    The same figures as /proc/net/udp's rx_queue and drops, but read from the socket itself,
    so it works for a socket of another network namespace too.
    """
    from l2tpfast.bench.sink import SK_MEMINFO_DROPS, SK_MEMINFO_RMEM_ALLOC, socket_meminfo

    values = socket_meminfo(sock.fileno())
    return values[SK_MEMINFO_RMEM_ALLOC], values[SK_MEMINFO_DROPS]


def big_socket(octets: int, host: str = "127.0.0.1") -> socket.socket:
    """A UDP socket on ``host`` with a receive queue of ``octets`` (SO_RCVBUFFORCE: root)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        # The kernel doubles the value asked for; rmem_max does not apply to the FORCE variant.
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, min(octets // 2, 2**30))
        sock.bind((host, 0))
    except PermissionError:
        sock.close()
        pytest.skip("prefilling a receive queue needs SO_RCVBUFFORCE, so root (CAP_NET_ADMIN)")
    except BaseException:
        sock.close()
        raise
    return sock


def wait_queued(sock: socket.socket, octets: int) -> None:
    """Wait (at most 0.5 s) until ``octets`` are queued on ``sock``; fail on any drop.

    Loopback delivery finishes in softirq context, possibly just after the sender exits.
    """
    drops = 0
    for _ in range(50):
        queued, drops = udp_stats(sock)
        if drops or queued >= octets:
            break
        time.sleep(0.01)
    assert drops == 0, f"the input queue dropped {drops} datagrams: raise QUEUE_OVERHEAD"


def parse_result(command: Sequence[str], returncode: int, stdout: str, stderr: str) -> dict[str, Any]:
    """The last JSON line a program printed; a failure carries its status and stderr."""
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    assert returncode == 0 and lines, f"{list(command)}: status {returncode}: {stdout[-2000:]} {stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run_json(command: Sequence[str], pass_fds: Sequence[int] = ()) -> dict[str, Any]:
    done = subprocess.run(
        list(command), pass_fds=pass_fds, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
    )
    return parse_result(command, done.returncode, done.stdout, done.stderr)


class Round:
    """One prefilled input queue and an empty sink; ``run`` hands the queue to a relay.

    The sink is a socket nobody reads, with a queue as large as the input's, so the kernel's
    delivery is paid in full and nothing is dropped. ``template`` (a file) gives the exact
    contents of every datagram; without it ``relay blast`` stamps a pattern.
    """

    def __init__(self, relay: Path, size: int, packets: int, template: Path | None = None) -> None:
        self.packets = packets
        queue = packets * (size + QUEUE_OVERHEAD)
        self.rx = big_socket(queue)
        try:
            self.sink = big_socket(queue)
        except BaseException:
            self.rx.close()
            raise
        try:
            self._fill(relay, size, template)
        except BaseException:
            self.close()
            raise

    @property
    def sink_port(self) -> int:
        port: int = self.sink.getsockname()[1]
        return port

    def _fill(self, relay: Path, size: int, template: Path | None) -> None:
        port = str(self.rx.getsockname()[1])
        args = ["blast", "127.0.0.1", port, str(size), str(self.packets), str(BATCH)]
        run_json([*blast_pin(), str(relay), *args, *([str(template)] if template else [])])
        wait_queued(self.rx, self.packets * (size + 256))

    def run(self, command: list[str]) -> dict[str, Any]:
        """Run ``command`` (with ``fd:N`` for the input); its JSON line, sink drops added."""
        try:
            result = run_json(command, pass_fds=[self.rx.fileno()])
            result["sink_drops"] = udp_stats(self.sink)[1]
            assert result["packets"] == self.packets, result
            return result
        finally:
            self.close()

    def close(self) -> None:
        self.rx.close()
        self.sink.close()


def mpps(results: list[dict[str, Any]]) -> tuple[float, float]:
    """Median and best of the rounds, in Mpps."""
    rates = [r["pps"] / 1e6 for r in results]
    return statistics.median(rates), max(rates)


# --- packets ----------------------------------------------------------------------------------


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total >> 16) + (total & 0xFFFF)
    return ~total & 0xFFFF


def ipv4_udp(src: str, dst: str, total: int, sport: int = 5000, dport: int = 9) -> bytes:
    """An IPv4/UDP packet of ``total`` octets (header checksum set, UDP checksum 0: none)."""
    assert 28 <= total <= 65535
    payload = bytes(k % 251 for k in range(total - 28))
    udp = struct.pack("!HHHH", sport, dport, total - 20, 0) + payload
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, total, 1, 0, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst)
    )
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + udp


def l2tp_datagram(size: int, src: str, dst: str, tunnel_id: int = 1, session_id: int = 1) -> bytes:
    """A data message of ``size`` octets for session (tunnel_id, session_id): L2TP header, PPP
    framing (IPv4), and an IPv4/UDP packet from ``src`` to ``dst`` filling the rest."""
    from l2tpfast.wire.header import build_data_header

    head = build_data_header(tunnel_id, session_id) + b"\xff\x03\x00\x21"
    assert len(head) == L2TP_PPP_HEADER and size >= len(head) + 28, size
    return head + ipv4_udp(src, dst, size - len(head))


# --- network namespaces -----------------------------------------------------------------------

CLONE_NEWNET = 0x40000000


class Netns:
    """A network namespace of the benchmark's own, deleted by ``close`` (also after a failure).

    ``run`` and ``popen`` run a command inside it (``ip netns exec``); ``entered`` moves the
    calling thread in for a moment, to create sockets that live there.
    """

    def __init__(self, prefix: str = "l2f-bench") -> None:
        if shutil.which("ip") is None:
            pytest.skip("needs `ip` (iproute2) for a network namespace")
        require_root("a network namespace and a TUN device")
        self.name = f"{prefix}-{os.getpid()}"
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False, timeout=10)
        subprocess.run(["ip", "netns", "add", self.name], capture_output=True, check=True, timeout=10)

    def command(self, args: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]

    def run(self, *args: str) -> str:
        done = subprocess.run(
            self.command(args), capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
        )
        assert done.returncode == 0, f"{' '.join(args)}: {done.stderr.strip()}"
        return done.stdout

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        libc = ctypes.CDLL(None, use_errno=True)
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            target = os.open(f"/run/netns/{self.name}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if libc.setns(target, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns into the benchmark's namespace")
            finally:
                os.close(target)
            try:
                yield
            finally:
                if libc.setns(own, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back to the original namespace")
        finally:
            os.close(own)

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False, timeout=10)


class Reader:
    """A program under test started in the background: it attaches, says it is ready (a JSON
    line on stderr), waits while its input is filled, then runs; ``finish`` collects its line.

    A program that reads a line on stdin before starting (``runner.py``) is released by that
    line; one that starts at once (the C baselines) is stopped with SIGSTOP when ready and
    continued with SIGCONT.
    """

    def __init__(self, command: Sequence[str], *, stdin_go: bool, pass_fds: Sequence[int] = ()) -> None:
        self.command = list(command)
        self.stdin_go = stdin_go
        self.proc = subprocess.Popen(
            self.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=pass_fds,
            text=True,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self) -> None:
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 20.0
        seen = ""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stderr], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            line = self.proc.stderr.readline()
            if not line:
                break
            seen += line
            if line.startswith('{"ready"'):
                if not self.stdin_go:
                    self.proc.send_signal(signal.SIGSTOP)
                return
        raise AssertionError(f"{self.command}: not ready: status {self.proc.poll()}: {seen}")

    def finish(self) -> dict[str, Any]:
        """Let it run; its JSON line."""
        if self.stdin_go:
            assert self.proc.stdin is not None
            self.proc.stdin.write("go\n")
            self.proc.stdin.flush()
        else:
            self.proc.send_signal(signal.SIGCONT)
        try:
            stdout, stderr = self.proc.communicate(timeout=RUN_TIMEOUT)
        except BaseException:
            self.kill()
            raise
        return parse_result(self.command, self.proc.returncode, stdout, stderr)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # SIGKILL also ends a stopped process
        self.proc.communicate(timeout=10)
