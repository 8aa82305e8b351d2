"""The data plane's threads (STYLE.md 1, layer 3): forwarding loops with the GIL released.

Each thread runs one :class:`l2tpfast._dataplane.Forwarder` on its own socket; with several
threads the sockets share the port through SO_REUSEPORT, and the kernel's hash of the peer's
address and port gives each thread its share of tunnels. All share one
:class:`~l2tpfast._dataplane.DataPath` (its lock is held for a batch at a time). What the loops
hand up (control messages, PPP frames) arrives here once per batch and is passed to the asyncio
loop with ``call_soon_threadsafe``, whose self-pipe wakes it: never one callback per packet.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from l2tpfast._dataplane import FORWARDER_STATS, DataPath, Forwarder
from l2tpfast.runtime.ip115 import Ip115Transport
from l2tpfast.runtime.tun import TunDevice
from l2tpfast.runtime.udp import UdpTransport
from l2tpfast.wire.dtypes import ADDRESS_DTYPE

log = logging.getLogger("l2tpfast.dataplane")

Transport = UdpTransport | Ip115Transport
#: What a loop hands up: ("control", data, peer, local) or ("ppp", slot, protocol, frame).
Item = tuple[Any, ...]


def address_row(host: str, port: int) -> np.ndarray[Any, Any]:
    """An ADDRESS_DTYPE scalar for (host, port)."""
    import ipaddress

    ip = ipaddress.ip_address(host)
    row = np.zeros((), dtype=ADDRESS_DTYPE)
    row["addr"][: len(ip.packed)] = list(ip.packed)
    row["family"] = ip.version
    row["port"] = port
    return row


def grow_buffers(fd: int, size: int) -> None:
    """Receive and send buffers of ``size`` octets; past net.core.*mem_max when we may (root)."""
    import socket

    sock = socket.socket(fileno=os.dup(fd))
    try:
        for force, plain in ((33, socket.SO_RCVBUF), (32, socket.SO_SNDBUF)):  # SO_*BUFFORCE
            try:
                sock.setsockopt(socket.SOL_SOCKET, force, size)
            except PermissionError:
                sock.setsockopt(socket.SOL_SOCKET, plain, size)
    finally:
        sock.close()


def enable_gro(fd: int) -> bool:
    """UDP_GRO on a socket (udp(7)): runs from one peer may arrive as one buffer. False (and a
    warning) where the kernel has no UDP GRO: the loops then read one datagram at a time."""
    import socket

    sock = socket.socket(fileno=os.dup(fd))
    try:
        sock.setsockopt(socket.IPPROTO_UDP, 104, 1)  # UDP_GRO (Linux 5.0)
    except OSError as exc:
        log.warning("[dataplane] gro: the kernel refused UDP_GRO (%s); receiving without it", exc)
        return False
    finally:
        sock.close()
    return True


class DataPlane:
    """Forwarding threads over one DataPath, and the hand-off to the asyncio loop."""

    def __init__(
        self,
        path: DataPath,
        transports: list[Transport],
        *,
        tun: TunDevice | None = None,
        batch: int = 64,
        on_items: Callable[[list[Item]], None],
        socket_buffer: int = 0,
        gso: bool = True,
        gro: bool = False,
    ) -> None:
        self.path = path
        if socket_buffer:
            for t in transports:
                grow_buffers(t.fileno(), socket_buffer)
        self.transports = transports
        self.tun = tun
        self.on_items = on_items
        raw = isinstance(transports[0], Ip115Transport)
        # Per socket: a loop cuts coalesced runs up only where its socket has GRO on.
        gro_on = [gro and not raw and enable_gro(t.fileno()) for t in transports]
        # The TUN device is read by the first loop only: one reader keeps its packet order.
        self.forwarders = [
            Forwarder(
                path,
                t.fileno(),
                tun.fileno() if tun is not None and i == 0 else -1,
                batch,
                raw,
                gso=gso,
                gro=gro_on[i],
            )
            for i, t in enumerate(transports)
        ]
        self._threads: list[threading.Thread] = []
        self._stop_fd = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._batch = batch
        self._gso = gso
        #: Per-session TUN readers (a LAC's ``session_tun``): fd -> (forwarder, thread, stop fd).
        self._readers: dict[int, tuple[Forwarder, threading.Thread, int]] = {}
        self._retired = np.zeros(len(FORWARDER_STATS), dtype=np.uint64)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._stop_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        for i, fw in enumerate(self.forwarders):
            fw.handoff = self._handoff
            thread = threading.Thread(
                target=self._run, args=(fw,), name=f"l2tpfast-dataplane-{i}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _run(self, fw: Forwarder) -> None:
        try:
            fw.run(self._stop_fd)
        except Exception:  # pragma: no cover - a loop that dies must say so, not vanish
            log.exception("data plane loop stopped")

    def _handoff(self, items: list[Item]) -> None:
        # Runs in a loop thread, with the GIL, once per batch that has something for Python.
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.on_items, items)

    def add_tun_reader(self, tun: TunDevice) -> None:
        """A loop of its own that reads a per-session TUN device and sends on the first socket.

        It never reads the socket (``receive_udp=False``): the main loops own the receive side
        and write that session's packets to its device (``DataPath.set_tun``).
        """
        fw = Forwarder(
            self.path, self.transports[0].fileno(), tun.fileno(), self._batch, False, receive_udp=False,
            gso=self._gso,
        )  # fmt: skip
        stop_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        thread = threading.Thread(
            target=self._run_reader, args=(fw, stop_fd), name=f"l2tpfast-{tun.name}", daemon=True
        )
        thread.start()
        self._readers[tun.fileno()] = (fw, thread, stop_fd)

    def remove_tun_reader(self, tun: TunDevice, timeout: float = 5.0) -> None:
        entry = self._readers.pop(tun.fileno(), None)
        if entry is None:
            return
        fw, thread, stop_fd = entry
        os.eventfd_write(stop_fd, 1)
        thread.join(timeout)
        os.close(stop_fd)
        self._retired += fw.stats

    def _run_reader(self, fw: Forwarder, stop_fd: int) -> None:
        try:
            fw.run(stop_fd)
        except Exception:  # pragma: no cover - a loop that dies must say so, not vanish
            log.exception("TUN reader loop stopped")

    def stop(self, timeout: float = 5.0) -> None:
        for fd in list(self._readers):
            fw, thread, stop_fd = self._readers.pop(fd)
            os.eventfd_write(stop_fd, 1)
            thread.join(timeout)
            os.close(stop_fd)
            self._retired += fw.stats
        if self._stop_fd >= 0:
            os.eventfd_write(self._stop_fd, 1)
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        if self._stop_fd >= 0:
            os.close(self._stop_fd)
            self._stop_fd = -1

    def stats(self) -> dict[str, int]:
        """The loops' counters, summed."""
        total = self._retired.copy()
        loops = [*self.forwarders, *(r[0] for r in self._readers.values())]
        for fw in loops:
            total += fw.stats
        out = {name: int(v) for name, v in zip(FORWARDER_STATS, total, strict=True)}
        # UDP GSO (src_pyx/gso.pxi): messages that carried runs of datagrams, and those datagrams.
        out["gso_messages"] = sum(fw.gso_stats[0] for fw in self.forwarders)
        out["gso_datagrams"] = sum(fw.gso_stats[1] for fw in self.forwarders)
        # UDP GRO ([dataplane] gro): runs the kernel handed over coalesced, and their datagrams.
        out["gro_messages"] = sum(fw.gro_stats[0] for fw in self.forwarders)
        out["gro_datagrams"] = sum(fw.gro_stats[1] for fw in self.forwarders)
        return out
