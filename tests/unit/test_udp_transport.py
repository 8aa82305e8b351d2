"""The control plane's UDP socket on real loopback sockets (RFC 2661 8.1: reply from where the peer sent)."""

from __future__ import annotations

import errno
import select
import socket
import time
from collections.abc import Iterator

import pytest
from tools import require_ipv6_loopback

from l2tpfast.runtime.udp import Received, UdpTransport

WAIT = 2.0  # seconds; loopback delivers at once, so this only bounds a failure


def _wait_readable(fd: int) -> bool:
    readable, _, _ = select.select([fd], [], [], WAIT)
    return bool(readable)


def _recv_one(transport: UdpTransport) -> Received:
    deadline = time.monotonic() + WAIT
    for _ in range(100):
        item = transport.recv()
        if item is not None:
            return item
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        select.select([transport], [], [], remaining)
    pytest.fail("no datagram reached the transport")


def _client_recv(client: socket.socket) -> tuple[bytes, tuple[str, int]]:
    assert _wait_readable(client.fileno()), "no reply reached the client"
    data, addr = client.recvfrom(65535)
    return data, (addr[0], addr[1])


@pytest.fixture
def client4() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.bind(("127.0.0.1", 0))
        yield client


@pytest.mark.parametrize("dest", ["127.0.0.2", "127.0.0.3"])
def test_ipv4_wildcard_replies_from_the_destination(client4: socket.socket, dest: str) -> None:
    with UdpTransport("0.0.0.0", 0) as transport:
        port = transport.local_address[1]
        assert transport.local_address == ("0.0.0.0", port)
        client4.sendto(b"sccrq", (dest, port))
        got = _recv_one(transport)
        assert got == Received(b"sccrq", client4.getsockname(), dest)

        assert transport.send(b"sccrp", got.peer, local=got.local)
        assert _client_recv(client4) == (b"sccrp", (dest, port))


def test_ipv4_wildcard_reply_without_local(client4: socket.socket) -> None:
    with UdpTransport("0.0.0.0", 0) as transport:
        port = transport.local_address[1]
        client4.sendto(b"hello", ("127.0.0.2", port))
        got = _recv_one(transport)
        assert transport.send(b"reply", got.peer)
        data, (_, source_port) = _client_recv(client4)
        assert (data, source_port) == (b"reply", port)


def test_ipv6_wildcard_replies_from_the_destination() -> None:
    require_ipv6_loopback()
    with (
        UdpTransport("::", 0) as transport,
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as client,
    ):
        assert transport.family == socket.AF_INET6
        port = transport.local_address[1]
        assert transport.local_address == ("::", port)
        client.bind(("::1", 0))
        client.sendto(b"sccrq", ("::1", port))
        got = _recv_one(transport)
        assert got == Received(b"sccrq", ("::1", client.getsockname()[1]), "::1")

        assert transport.send(b"sccrp", got.peer, local=got.local)
        assert _client_recv(client) == (b"sccrp", ("::1", port))


def test_ipv6_wildcard_leaves_ipv4_alone() -> None:
    require_ipv6_loopback()
    with UdpTransport("::", 0) as transport6, UdpTransport("0.0.0.0", transport6.local_address[1]) as t4:
        assert t4.local_address[1] == transport6.local_address[1]


def test_ipv4_specific_bind(client4: socket.socket) -> None:
    with UdpTransport("127.0.0.1", 0) as transport:
        address = transport.local_address
        assert address[0] == "127.0.0.1"
        client4.sendto(b"ping", address)
        got = _recv_one(transport)
        assert got == Received(b"ping", client4.getsockname(), "127.0.0.1")
        # On a specific bind `local` adds nothing; the reply still leaves from the bound address.
        assert transport.send(b"pong", got.peer, local=got.local)
        assert _client_recv(client4) == (b"pong", address)


def test_recv_empty_and_batches(client4: socket.socket) -> None:
    with UdpTransport("127.0.0.1", 0) as transport:
        assert transport.recv() is None
        assert transport.recv_batch() == []
        for i in range(10):
            client4.sendto(bytes([i]), transport.local_address)
        assert _wait_readable(transport.fileno())
        first = transport.recv_batch(limit=4)
        assert [r.data for r in first] == [bytes([i]) for i in range(4)]
        rest: list[Received] = []
        deadline = time.monotonic() + WAIT
        for _ in range(100):
            rest += transport.recv_batch(limit=64)
            if len(rest) >= 6 or time.monotonic() > deadline:
                break
            select.select([transport], [], [], 0.05)
        assert [r.data for r in rest] == [bytes([i]) for i in range(4, 10)]
        assert transport.recv() is None


def _dead_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_icmp_port_unreachable_neither_raises_nor_stalls(client4: socket.socket) -> None:
    ip_recverr = getattr(socket, "IP_RECVERR", 11)
    dead = ("127.0.0.1", _dead_port())
    # An unconnected Linux socket keeps ICMP errors to itself unless IP_RECVERR is on; turn it on
    # through a second descriptor of the same socket so recvmsg really meets ECONNREFUSED.
    with (
        UdpTransport("127.0.0.1", 0) as transport,
        socket.socket(fileno=socket.dup(transport.fileno())) as same,
    ):
        same.setsockopt(socket.IPPROTO_IP, ip_recverr, 1)
        same.sendto(b"probe", dead)
        assert _wait_readable(same.fileno())
        with pytest.raises(OSError) as refused:
            same.recvmsg(100)
        assert refused.value.errno == errno.ECONNREFUSED

        for _ in range(3):
            assert transport.send(b"lost", dead) in (True, False)
            assert _wait_readable(transport.fileno())
            for _ in range(5):
                assert transport.recv() is None
        client4.sendto(b"after", transport.local_address)
        assert _recv_one(transport).data == b"after"


def test_reuse_port_shares_a_port() -> None:
    with UdpTransport("127.0.0.1", 0, reuse_port=True) as first:
        port = first.local_address[1]
        with UdpTransport("127.0.0.1", port, reuse_port=True) as second:
            assert second.local_address == first.local_address


def test_address_in_use_names_the_address() -> None:
    with UdpTransport("127.0.0.1", 0) as first:
        port = first.local_address[1]
        with pytest.raises(OSError) as caught:
            UdpTransport("127.0.0.1", port)
        assert caught.value.errno == errno.EADDRINUSE
        assert f"127.0.0.1:{port}" in str(caught.value)
