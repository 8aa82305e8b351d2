"""The sink's control protocol (``l2tpfast bench-sink``) over TCP and over pipes, on loopback.

A generator's plain-UDP sender stands in for the LNS's TUN side: it sends the harness's payload
to the sink's port, as the LNS delivers upstream traffic; the sink counts it and, asked to,
sends its downstream traffic to the sessions' addresses (loopback sockets here).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tools import free_udp_port

from l2tpfast._dataplane import LoadCounter, LoadGenerator, UdpReceiver
from l2tpfast.bench.sink import SinkClient, serve_tcp


@pytest.fixture
def tcp_sink() -> Iterator[SinkClient]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    thread = threading.Thread(target=serve_tcp, args=("127.0.0.1", port), kwargs={"once": True}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while True:
        try:
            conn = socket.create_connection(("127.0.0.1", port), timeout=5)
            break
        except ConnectionRefusedError:
            assert time.monotonic() < deadline, "bench-sink did not listen"
            time.sleep(0.02)
    reader, writer = conn.makefile("r"), conn.makefile("w")
    client = SinkClient(reader, writer, conn.close)
    yield client
    client.close()
    thread.join(timeout=5)
    assert not thread.is_alive()


def _send_upstream(port: int, sessions: int, size: int, seconds: float) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        gen = LoadGenerator(sock.fileno(), sessions)
        for i in range(sessions):
            gen.set_session(i, bytes(4), socket.inet_aton("127.0.0.1"), 0, port)
        sent, _ = gen.run(20_000, size, seconds, 10)
        return int(sent)
    finally:
        sock.close()


def _wait(client: SinkClient, received: int) -> None:
    deadline = time.monotonic() + 5
    while client.request("peek")["received"] < received:
        assert time.monotonic() < deadline, "the sink did not receive everything"
        time.sleep(0.02)


def test_sink_counts_upstream_and_sends_downstream_over_tcp(tcp_sink: SinkClient) -> None:
    port = free_udp_port("127.0.0.1")
    # Two "sessions" that receive the downstream traffic: loopback sockets with a counter each.
    rx = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    stop = os.eventfd(0)
    threads: list[threading.Thread] = []
    try:
        # Each session has its own address (127.0.0.2, 127.0.0.3) and the one port the sink sends to.
        for s, host in zip(rx, ("127.0.0.2", "127.0.0.3"), strict=True):
            s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE: no drop in a burst
            s.bind((host, rx[0].getsockname()[1] if host != "127.0.0.2" else 0))
        down_port = rx[0].getsockname()[1]
        counters = [LoadCounter(2), LoadCounter(2)]
        receivers = [UdpReceiver(s.fileno(), c) for s, c in zip(rx, counters, strict=True)]
        threads = [threading.Thread(target=r.run, args=(stop,), daemon=True) for r in receivers]
        for t in threads:
            t.start()

        sessions = ["127.0.0.2", "127.0.0.3"]
        opened = tcp_sink.request(
            "open", port=port, bind="127.0.0.1", sessions=sessions, generator_port=down_port,
            lns_pids=[os.getpid()],
        )  # fmt: skip
        assert opened["sessions"] == 2 and opened["port"] == port
        tcp_sink.request("start", rate=5000, size=200, seconds=0.4, burst=4)
        sent_up = _send_upstream(port, 2, 200, 0.3)
        _wait(tcp_sink, sent_up)
        result = tcp_sink.request("stop")
        # Upstream: everything counted, octets as IP, no drops; a tenth were probes, echoed back.
        assert result["received"]["packets"] == sent_up
        assert result["received"]["octets"] == sent_up * 200
        assert result["received"]["late"] == 0 and result["socket_drops"] == 0
        assert result["receiver"]["echoes_sent"] == -(-sent_up // 10)
        # Downstream: paced, split between the two sessions, bursts of 4 as GSO messages.
        assert abs(result["sent"] - 5000 * 0.4) <= 64, result
        deadline = time.monotonic() + 5
        while sum(int(c.totals[0]) for c in counters) < result["sent"]:
            assert time.monotonic() < deadline, [c.totals for c in counters]
            time.sleep(0.02)
        per_session = [int(c.sessions["packets"][i]) for i, c in enumerate(counters)]
        assert sum(per_session) == result["sent"] and abs(per_session[0] - per_session[1]) <= 4
        assert result["gso"][1] > 0
        # Our own pid stood in for the LNS: its CPU was read.
        assert result["lns_cpu"] is not None and result["lns_cpu"] >= 0
        # A second step starts from zero.
        tcp_sink.request("start", rate=0, size=200, seconds=0.1)
        assert tcp_sink.request("stop")["received"]["packets"] == 0
    finally:
        os.eventfd_write(stop, 1)
        for t in threads:
            t.join(timeout=5)
        os.close(stop)
        for s in rx:
            s.close()


def test_sink_refuses_what_it_cannot_do(tcp_sink: SinkClient) -> None:
    with pytest.raises(RuntimeError, match="before open"):
        tcp_sink.request("start", rate=1, size=100, seconds=1)
    with pytest.raises(RuntimeError, match="no sessions"):
        tcp_sink.request("open", port=free_udp_port("127.0.0.1"), sessions=[])
    tcp_sink.request("open", port=free_udp_port("127.0.0.1"), sessions=["127.0.0.2"])
    with pytest.raises(RuntimeError, match="unknown command"):
        tcp_sink.request("dance")


def test_sink_finds_the_lns_processes_by_name(tcp_sink: SinkClient, tmp_path: Path) -> None:
    # Two processes of a program with a name nothing else here has, as an LNS would be found.
    program = tmp_path / "l2fb-fake-lns"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", program)
    procs = [subprocess.Popen([str(program), "30"]) for _ in range(2)]
    try:
        port = free_udp_port("127.0.0.1")
        with pytest.raises(RuntimeError, match="--lns-process l2fb-no-such: no process of that name"):
            tcp_sink.request("open", port=port, sessions=["127.0.0.2"], lns_names=["l2fb-no-such"])
        opened = tcp_sink.request(
            "open", port=port, sessions=["127.0.0.2"], lns_pids=[os.getpid()], lns_names=[program.name]
        )
        assert opened["lns_pids"] == [os.getpid(), *sorted(p.pid for p in procs)]
        tcp_sink.request("start", rate=0, size=100, seconds=0.1)
        assert tcp_sink.request("stop")["lns_cpu"] is not None
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=5)


def test_sink_over_pipes_as_the_generator_starts_it() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "l2tpfast", "bench-sink"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    client = SinkClient(proc.stdout, proc.stdin)
    try:
        port = free_udp_port("127.0.0.1")
        client.request("open", port=port, bind="127.0.0.1", sessions=["127.0.0.2"])
        client.request("start", rate=0, size=100, seconds=0.1)
        sent = _send_upstream(port, 1, 100, 0.1)
        _wait(client, sent)
        assert client.request("stop")["received"]["packets"] == sent
    finally:
        client.close()
        assert proc.wait(timeout=10) == 0
