"""The C baselines of the benchmarks (``bench/baseline/``) build warning-free and do their job.

Not a benchmark: a broken baseline would make every ratio the benchmarks print
meaningless, so CI checks that ``relay`` relays, receives and blasts the right
bytes on loopback, and (as root, in a throwaway network namespace) that
``tun_loop`` moves packets between UDP and a TUN device in both directions.

Run as a script (``python test_baselines.py TUN_LOOP``) this file is the part of
the TUN check that runs inside the namespace.
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD_PY = ROOT / "bench" / "baseline" / "build.py"
RUN_TIMEOUT = 10.0
SOCKET_TIMEOUT = 3.0
COUNT = 100
TUN_NAME = "l2fbl0"
TUN_LOCAL, TUN_PEER = "198.18.0.1", "198.18.0.2"  # RFC 2544 benchmarking range
STRIP = 10  # stand-in for the L2TP data header and PPP framing a decapsulation drops
PREPEND = 4


def _load_build_module() -> ModuleType:
    """bench/ is not a package; load build.py by path under a name of its own."""
    spec = importlib.util.spec_from_file_location("_l2tpfast_bench_baseline_build", BUILD_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _payload(index: int) -> bytes:
    """Distinct contents and sizes (1 to about 1400 octets)."""
    size = 1 + (index * 137) % 1400
    return bytes((index + k * 13) & 0xFF for k in range(size))


def _udp_socket(host: str = "127.0.0.1", rcvbuf: int = 1 << 20) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind((host, 0))
    sock.settimeout(SOCKET_TIMEOUT)
    return sock


def _recv_all(sock: socket.socket, count: int) -> list[bytes]:
    """Up to ``count`` datagrams; stops early after SOCKET_TIMEOUT of silence."""
    got: list[bytes] = []
    try:
        for _ in range(count):
            got.append(sock.recv(65536))
    except TimeoutError:
        pass
    return got


def _finish(proc: subprocess.Popen[str]) -> tuple[int, dict[str, Any], str]:
    """Exit status, the JSON result line and stderr of a baseline run."""
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"{proc.args} did not finish in {RUN_TIMEOUT} s: {err}") from None
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, f"{proc.args} printed no result (status {proc.returncode}): {err}"
    return proc.returncode, json.loads(lines[-1]), err


def _wait_ready(proc: subprocess.Popen[str], timeout: float) -> None:
    """Read stderr up to the ``{"ready": true ...}`` line, so nothing is sent too early."""
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    seen = []
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([proc.stderr], [], [], left)
        if not readable:
            break
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith('{"ready": true'):
            return
    proc.kill()
    proc.wait()
    raise AssertionError(f"{proc.args} never said ready: {''.join(seen)}")


@pytest.fixture(scope="module")
def baselines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Fresh binaries, with -Werror: the baselines must stay warning-free under -Wall -Wextra."""
    build = _load_build_module()
    return dict(build.build_baselines(tmp_path_factory.mktemp("baseline"), extra_cflags=("-Werror",)))


def test_build_caches_binaries(tmp_path: Path) -> None:
    build = _load_build_module()
    first = build.build_baselines(tmp_path)
    stamps = {name: path.stat().st_mtime_ns for name, path in first.items()}
    again = build.build_baselines(tmp_path)
    assert again == first
    assert {name: path.stat().st_mtime_ns for name, path in again.items()} == stamps
    assert all(os.access(path, os.X_OK) for path in again.values())


def test_relay_relays_every_datagram_intact(baselines: dict[str, Path]) -> None:
    payloads = [_payload(i) for i in range(COUNT)]
    with _udp_socket() as rx, _udp_socket() as sink, _udp_socket() as tx:
        # The queue fills before the relay starts: it takes over the socket with fd:N.
        for payload in payloads:
            tx.sendto(payload, rx.getsockname())
        out = ["127.0.0.1", str(sink.getsockname()[1])]
        proc = subprocess.Popen(
            [baselines["relay"], "relay", f"fd:{rx.fileno()}", *out, "8", str(COUNT), "5", "1000"],
            pass_fds=[rx.fileno()],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        got = _recv_all(sink, COUNT)
        status, result, err = _finish(proc)
    assert status == 0, err
    assert result["packets"] == COUNT and result["stop"] == "count"
    assert result["bytes"] == sum(map(len, payloads))
    assert result["truncated"] == 0
    assert result["pps"] > 0 and result["seconds"] > 0
    assert len(got) == COUNT
    assert got == payloads  # loopback keeps order; every byte as sent


def test_recv_counts_and_stops_when_idle(baselines: dict[str, Path]) -> None:
    payloads = [_payload(i) for i in range(30)]
    with _udp_socket() as rx, _udp_socket() as tx:
        for payload in payloads:
            tx.sendto(payload, rx.getsockname())
        started = time.monotonic()
        # Asks for more than was sent: stops 200 ms after the last one, status 3.
        proc = subprocess.Popen(
            [baselines["relay"], "recv", f"fd:{rx.fileno()}", "8", "50", "5", "200"],
            pass_fds=[rx.fileno()],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        status, result, err = _finish(proc)
    assert time.monotonic() - started < 3.0
    assert status == 3, err
    assert result["stop"] == "idle"
    assert result["packets"] == 30
    assert result["bytes"] == sum(map(len, payloads))


def test_blast_sends_numbered_datagrams(baselines: dict[str, Path]) -> None:
    size, count = 100, 50
    with _udp_socket() as sink:
        sink_port = str(sink.getsockname()[1])
        done = subprocess.run(
            [baselines["relay"], "blast", "127.0.0.1", sink_port, str(size), str(count), "16"],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        got = _recv_all(sink, count)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["packets"] == count
    pattern = bytes(k % 251 for k in range(4, size))
    assert [struct.unpack_from("!I", d)[0] for d in got] == list(range(count))
    assert all(len(d) == size and d[4:] == pattern for d in got)


def test_blast_sends_a_template(baselines: dict[str, Path], tmp_path: Path) -> None:
    template = tmp_path / "template.bin"
    template.write_bytes(bytes(range(40)))
    with _udp_socket() as sink:
        sink_port = str(sink.getsockname()[1])
        done = subprocess.run(
            [baselines["relay"], "blast", "127.0.0.1", sink_port, "20", "3", "2", str(template)],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        got = _recv_all(sink, 3)
    assert done.returncode == 0, done.stderr
    assert got == [bytes(range(20))] * 3


def test_bad_arguments_are_refused(baselines: dict[str, Path]) -> None:
    for args in (
        ["relay", "relay", "fd:0", "127.0.0.1", "9", "0", "10"],  # BATCH 0
        ["relay", "blast", "not-an-address", "9", "10", "1", "1"],
        ["tun_loop", "udp2tun", "x" * 16, "0", "8", "10"],  # name too long for IFNAMSIZ
    ):
        done = subprocess.run(
            [baselines[args[0]], *args[1:]], capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
        )
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr


# -- TUN: in a network namespace of its own, so the host's interfaces are never touched.


def _ipv4_udp_packet(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    """An IPv4 header with a valid checksum, and a UDP header with checksum 0 (none)."""
    total = 20 + 8 + len(payload)
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst)
    )
    words = sum(struct.unpack("!10H", header))
    while words > 0xFFFF:
        words = (words & 0xFFFF) + (words >> 16)
    header = header[:10] + struct.pack("!H", ~words & 0xFFFF) + header[12:]
    return header + struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=RUN_TIMEOUT)


def _tun_udp2tun(tun_loop: str) -> dict[str, Any]:
    payloads = [_payload(i)[:1000] for i in range(COUNT)]
    with _udp_socket() as udp_in, _udp_socket(TUN_LOCAL) as inner_rx, _udp_socket() as tx:
        port = inner_rx.getsockname()[1]
        header = bytes([0xEE]) * STRIP
        for i, payload in enumerate(payloads):
            packet = _ipv4_udp_packet(TUN_PEER, TUN_LOCAL, 5000 + i, port, payload)
            tx.sendto(header + packet, udp_in.getsockname())
        in_spec = f"fd:{udp_in.fileno()}"
        proc = subprocess.Popen(
            [tun_loop, "udp2tun", TUN_NAME, in_spec, "8", str(COUNT), str(STRIP), "5", "1000"],
            pass_fds=[udp_in.fileno()],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        got = _recv_all(inner_rx, COUNT)
        status, result, err = _finish(proc)
    return {"status": status, "result": result, "stderr": err, "intact": got == payloads, "got": len(got)}


def _tun_tun2udp(tun_loop: str) -> dict[str, Any]:
    payloads = [_payload(i)[:1000] for i in range(COUNT)]
    with _udp_socket() as sink, _udp_socket(TUN_LOCAL) as tx:
        out = ["127.0.0.1", str(sink.getsockname()[1])]
        proc = subprocess.Popen(
            [tun_loop, "tun2udp", TUN_NAME, *out, "8", str(COUNT), str(PREPEND), "5", "1000"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait_ready(proc, RUN_TIMEOUT)
        for payload in payloads:
            tx.sendto(payload, (TUN_PEER, 9999))
        got = _recv_all(sink, COUNT)
        status, result, err = _finish(proc)
        sport = tx.getsockname()[1]
    expected = [bytes(PREPEND) + _ipv4_udp_packet(TUN_LOCAL, TUN_PEER, sport, 9999, p) for p in payloads]

    def without_kernel_fields(packet: bytes) -> bytes:
        # IP ID, IP checksum and UDP checksum are the kernel's to choose.
        ip = packet[PREPEND:]
        return packet[:PREPEND] + ip[:4] + ip[6:10] + ip[12:26]

    intact = [without_kernel_fields(g) + g[PREPEND + 28 :] for g in got] == [
        without_kernel_fields(e) + e[PREPEND + 28 :] for e in expected
    ]
    return {"status": status, "result": result, "stderr": err, "intact": intact, "got": len(got)}


def _tun_check_in_namespace(tun_loop: str) -> dict[str, Any]:
    """Runs under ``unshare --net``: a TUN with 198.18.0.1/24, then one run of each mode."""
    _ip("link", "set", "lo", "up")
    # No IPv6 router solicitations or MLD reports out of the TUN to be counted as data.
    for conf in ("all", "default"):
        Path(f"/proc/sys/net/ipv6/conf/{conf}/disable_ipv6").write_text("1")
    _ip("tuntap", "add", "dev", TUN_NAME, "mode", "tun")
    _ip("addr", "add", f"{TUN_LOCAL}/24", "dev", TUN_NAME)
    _ip("link", "set", TUN_NAME, "up")
    return {"udp2tun": _tun_udp2tun(tun_loop), "tun2udp": _tun_tun2udp(tun_loop)}


def _tun_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root to make a network namespace and a TUN device"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun"
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


@pytest.fixture(scope="module")
def tun_check(baselines: dict[str, Path]) -> Iterator[dict[str, Any]]:
    from tools import require  # here: this file also runs as a script in a new namespace

    reason = _tun_skip_reason()
    require(reason is None, reason or "")
    done = subprocess.run(
        ["unshare", "--net", sys.executable, __file__, str(baselines["tun_loop"])],
        capture_output=True,
        text=True,
        timeout=4 * RUN_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    yield json.loads(done.stdout)


@pytest.mark.parametrize("mode", ["udp2tun", "tun2udp"])
def test_tun_loop_moves_packets(tun_check: dict[str, Any], mode: str) -> None:
    check = tun_check[mode]
    assert check["status"] == 0, check["stderr"]
    assert check["result"]["packets"] == COUNT and check["result"]["stop"] == "count"
    assert check["result"]["errors"] == 0, check["result"]
    assert check["got"] == COUNT
    assert check["intact"], f"{mode}: the packets came out changed"


if __name__ == "__main__":
    print(json.dumps(_tun_check_in_namespace(sys.argv[1])))
