"""Sockets for the generator, GSO and GRO tests (a plain module beside them, like dpkit.py):
non-blocking UDP sockets on loopback with buffers big enough that a test's burst is never
dropped, draining, and a compiled UdpReceiver run in a thread."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator

from l2tpfast._dataplane import LoadCounter, UdpReceiver
from l2tpfast.runtime.dataplane import grow_buffers

BIG_BUFFER = 256 << 20


def grow(sock: socket.socket, size: int = BIG_BUFFER) -> None:
    """Both buffers to ``size`` (past rmem_max/wmem_max when root), as the data plane does."""
    grow_buffers(sock.fileno(), size)


@contextlib.contextmanager
def socket_maker() -> Iterator[Callable[..., socket.socket]]:
    """Makes non-blocking datagram sockets on 127.0.0.1, all closed when the block ends:
    ``make(buffer=0, proto=0)``."""
    made: list[socket.socket] = []

    def make(buffer: int = 0, proto: int = 0) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, proto)
        made.append(s)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        if buffer:
            grow(s, buffer)
        return s

    try:
        yield make
    finally:
        for s in made:
            s.close()


def drain(sock: socket.socket) -> list[bytes]:
    """Every datagram queued on a non-blocking socket."""
    out = []
    while True:
        try:
            out.append(sock.recv(65536))
        except BlockingIOError:
            return out


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    """Until ``cond()`` holds; fails the test after ``timeout`` seconds."""
    import asyncio

    from tools import wait_until

    asyncio.run(wait_until(cond, timeout))


@contextlib.contextmanager
def receiving(sock: socket.socket, counter: LoadCounter) -> Iterator[UdpReceiver]:
    """A UdpReceiver on ``sock`` running in a thread until the block ends."""
    receiver = UdpReceiver(sock.fileno(), counter)
    stop = os.eventfd(0, os.EFD_NONBLOCK)
    thread = threading.Thread(target=receiver.run, args=(stop, 0.05), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        os.eventfd_write(stop, 1)
        thread.join(5.0)
        os.close(stop)
    assert not thread.is_alive()
