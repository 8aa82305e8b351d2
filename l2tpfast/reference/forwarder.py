"""Pure-Python twin of ``l2tpfast._dataplane.Forwarder``: the forwarding loop, one syscall a packet.

Same constructor, ``run``, ``run_once``, ``handoff`` and ``stats`` as the compiled loop, over a
:class:`l2tpfast.reference.dataplane.DataPath`: ``recvmsg`` per datagram into a batch, the
reference ``process``, ``write`` per TUN packet (to the session's own TUN device when
``DataPath.set_tun`` gave it one, else to the Forwarder's), ``sendmsg`` per datagram; TUN packets
find their session with ``route_batch`` (by destination or by source address, as the DataPath's
``route_by`` says). A Forwarder made with ``receive_udp=False`` reads its TUN device only (the
reader of one session's own device): it sends on the UDP socket it shares with the main loops,
never receives from it, and never releases held packets (they are the receive side's). It is the
baseline the forwarding benchmark compares the compiled loop with, and shows the rules without C.
"""

from __future__ import annotations

import ipaddress
import os
import select
import socket
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from l2tpfast.reference.dataplane import DataPath
from l2tpfast.runtime.udp import DatagramTransport
from l2tpfast.wire.constants import MAX_DATA_HEADER, DeliveryAction
from l2tpfast.wire.dtypes import ADDRESS_DTYPE, DELIVERY_DTYPE

FORWARDER_STATS = (
    "batches",
    "udp_rx",
    "udp_tx",
    "tun_rx",
    "tun_tx",
    "tun_errors",
    "send_errors",
    "recv_errors",
    "truncated",
    "no_session",
    "no_route",
)
_STAT = {name: i for i, name in enumerate(FORWARDER_STATS)}
RX_SLOT = 2048


class Forwarder:
    """The forwarding loop of one UDP socket (and TUN fd) over a reference DataPath."""

    def __init__(
        self,
        path: DataPath,
        udp_fd: int,
        tun_fd: int = -1,
        batch: int = 64,
        raw: bool = False,
        *,
        receive_udp: bool = True,
        gso: bool = True,
        gro: bool = False,
    ) -> None:
        if not 1 <= batch <= 1024:
            raise ValueError("batch is 1..1024")
        if not receive_udp and tun_fd < 0:
            raise ValueError("a Forwarder that does not receive UDP reads a TUN device: give tun_fd")
        self.path = path
        self.udp_fd = udp_fd
        self.tun_fd = tun_fd
        self.batch = batch
        self.raw = raw  # L2TP over IP: no ports; a raw IPv4 socket delivers the IP header
        self.receive_udp = receive_udp
        # One sendmsg a datagram: the compiled loop's UDP GSO runs (src_pyx/gso.pxi) are an
        # optimisation of the same datagrams, never used here.
        self.gso = False
        self.gso_stats = (0, 0)
        self.gro = False  # its socket gets no UDP_GRO: one datagram a recvmsg
        self.gro_stats = (0, 0)
        #: The compiled loop counts into a LoadCounter instead of writing TUN; not modelled here.
        self.sink: Any = None
        self.handoff: Callable[[list[Any]], None] | None = None
        self.stats = np.zeros(len(FORWARDER_STATS), dtype=np.uint64)
        # A socket object over the same descriptor, for recvmsg/sendmsg (never closed here).
        self._sock = socket.socket(fileno=os.dup(udp_fd))
        self._sock.setblocking(False)
        self._headers = np.zeros((1, MAX_DATA_HEADER), dtype=np.uint8)
        self._hl = np.zeros(1, dtype=np.uint8)
        self._next_release = 0.0

    def close(self) -> None:
        self._sock.close()

    def _count(self, name: str, n: int = 1) -> None:
        self.stats[_STAT[name]] += n

    def run(self, stop_fd: int, idle_timeout: float = 0.1) -> None:
        """Forward until ``stop_fd`` becomes readable; polls only what this loop reads."""
        fds = [stop_fd]
        fds += [self.udp_fd] if self.receive_udp else []
        fds += [self.tun_fd] if self.tun_fd >= 0 else []
        while True:
            timeout = idle_timeout
            if self.receive_udp and self.path.held_count():
                timeout = min(timeout, self.path.reorder_timeout / 2)
            ready, _, _ = select.select(fds, [], [], timeout)
            if stop_fd in ready:
                return
            self._step(self.receive_udp and self.udp_fd in ready, self.tun_fd >= 0 and self.tun_fd in ready)

    def run_once(self, udp: bool = True, tun: bool = True) -> int:
        return self._step(udp, tun and self.tun_fd >= 0)

    def _step(self, udp: bool, tun: bool) -> int:
        if not self.receive_udp:
            # A TUN reader: the socket and the held packets are the main loops'.
            if tun:
                self._receive_tun()
            return 0
        now = time.monotonic()
        n = 0
        if udp:
            n = self._receive_udp(now)
        if now >= self._next_release:
            self._next_release = now + self.path.reorder_timeout / 2
            out = np.zeros(self.batch * (self.path.reorder_window + 2) + 16, dtype=DELIVERY_DTYPE)
            released = self.path.release_expired(out, now)
            self._dispatch(out[:released], None, [], [])
        if tun:
            self._receive_tun()
        return n

    def _receive_udp(self, now: float) -> int:
        datagrams: list[bytes] = []
        peers: list[tuple[str, int]] = []
        locals_: list[str | None] = []
        for _ in range(self.batch):
            try:
                data, ancdata, flags, peer = self._sock.recvmsg(RX_SLOT, socket.CMSG_SPACE(20))
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._count("recv_errors")
                break
            if flags & socket.MSG_TRUNC:
                self._count("truncated")
                data = b""
            host = ipaddress.ip_address(peer[0])
            if self.raw and host.version == 4:
                ihl = (data[0] & 0x0F) * 4 if data else 0
                data = data[ihl:] if 20 <= ihl <= len(data) else b""
            datagrams.append(data)
            peers.append((host.compressed, 0 if self.raw else peer[1]))
            locals_.append(DatagramTransport.parse_local(ancdata))
        if not datagrams:
            return 0
        self._count("udp_rx", len(datagrams))
        self._count("batches")
        buf = np.frombuffer(b"".join(datagrams) or b"\0", dtype=np.uint8)
        lengths = np.array([len(d) for d in datagrams], dtype=np.uint32)
        offsets = np.zeros(len(datagrams), dtype=np.uint32)
        offsets[1:] = np.cumsum(lengths)[:-1]
        sources = np.zeros(len(datagrams), dtype=ADDRESS_DTYPE)
        for i, (text, port) in enumerate(peers):
            packed = ipaddress.ip_address(text).packed
            sources[i]["addr"][: len(packed)] = list(packed)
            sources[i]["family"] = 4 if len(packed) == 4 else 6
            sources[i]["port"] = port
        out = np.zeros(len(datagrams) * (self.path.reorder_window + 2) + 16, dtype=DELIVERY_DTYPE)
        n_rows = self.path.process(buf, offsets, lengths, sources, out, now)
        self._dispatch(out[:n_rows], buf, peers, locals_)
        return len(datagrams)

    def _payload(self, row: Any, buf: np.ndarray | None) -> bytes:
        where = buf if row["source"] == 0 and buf is not None else self.path.pool.reshape(-1)
        return bytes(where[int(row["offset"]) : int(row["offset"]) + int(row["length"])])

    def _dispatch(self, rows: Any, buf: np.ndarray | None, peers: list[Any], locals_: list[Any]) -> None:
        items: list[Any] = []
        for row in rows:
            action = int(row["action"])
            payload = self._payload(row, buf)
            if action == DeliveryAction.TUN:
                # The session's own device (DataPath.set_tun), else ours.
                fd = self.path.get_tun(int(row["slot"]))
                fd = self.tun_fd if fd < 0 else fd
                try:
                    if fd < 0:
                        raise OSError("no TUN device")
                    os.write(fd, payload)
                    self._count("tun_tx")
                except OSError:
                    self._count("tun_errors")
            elif action == DeliveryAction.SWITCH:
                session = self.path._sessions[int(row["slot"])]
                assert session is not None
                self._send(session.target_index, int(row["protocol"]), payload)
            elif action == DeliveryAction.CONTROL:
                i = int(row["datagram"])
                items.append(("control", payload, peers[i], locals_[i]))
            else:
                items.append(("ppp", int(row["slot"]), int(row["protocol"]), payload))
        if items and self.handoff is not None:
            self.handoff(items)

    def _send(self, slot: int, protocol: int, payload: bytes) -> None:
        slots = np.array([slot], dtype=np.uint32)
        protos = np.array([protocol], dtype=np.uint32)
        lengths = np.array([len(payload)], dtype=np.uint32)
        if not self.path.encapsulate(slots, protos, lengths, self._headers, self._hl):
            self._count("no_session")
            return
        session = self.path._sessions[slot]
        assert session is not None
        family, port, addr = session.peer[0], int.from_bytes(session.peer[1:3], "big"), session.peer[3:]
        host = str(ipaddress.IPv4Address(addr[:4])) if family == 4 else ipaddress.IPv6Address(addr).compressed
        try:
            self._sock.sendmsg([bytes(self._headers[0, : self._hl[0]]), payload], [], 0, (host, port))
            self._count("udp_tx")
        except OSError:
            self._count("send_errors")

    def _receive_tun(self) -> None:
        for _ in range(self.batch):
            try:
                packet = os.read(self.tun_fd, RX_SLOT)
            except (BlockingIOError, InterruptedError):
                break
            if not packet:
                break
            self._count("tun_rx")
            buf = np.frombuffer(packet, dtype=np.uint8)
            slots = np.zeros(1, dtype=np.uint32)
            offs = np.zeros(1, dtype=np.uint32)
            lens = np.array([len(packet)], dtype=np.uint32)
            if not self.path.route_batch(buf, offs, lens, slots):
                self._count("no_route")
                continue
            self._send(int(slots[0]), 0x0021 if packet[0] >> 4 == 4 else 0x0057, packet)


__all__ = ["FORWARDER_STATS", "Forwarder"]
