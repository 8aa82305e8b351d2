"""Pure-Python twin of ``l2tpfast._dataplane``: the receive and send rules of the data path.

This module is the statement of the rules; the compiled module follows it and the
differential tests (``tests/fastpath``) hold the two together.

Receive (:meth:`DataPath.process`), per datagram of a batch:

1. the header is parsed by the rules of RFC 2661 3.1 (:mod:`l2tpfast.reference.parse`); a
   malformed one is dropped and counted under its :class:`ParseStatus`;
2. a control message (T=1) is handed up whole (``DeliveryAction.CONTROL``);
3. a data message needs a session (Tunnel ID, Session ID) in the table, and must come from the
   tunnel's peer address and port; otherwise it is dropped (UNKNOWN_SESSION, WRONG_PEER);
4. sequencing (RFC 2661 5.4): with S=1 the Ns is checked against the next one expected. The
   first sequenced packet of a session sets the expectation. In order: delivered, and held
   packets that now follow are delivered after it. Before the expected one (``seq_diff < 0``): a
   duplicate or too late, dropped. Ahead by less than ``reorder_window``: copied into the
   shared pool and held (out_of_order). Further ahead: what is held is delivered in order and
   the expectation moves past this one (the gap is lost). A packet with P=1 skips the queue
   (RFC 2661 3.1: "should be delivered with priority"). A window of 0 holds nothing: packets
   ahead are delivered at once and the expectation moves past them. Nr is ignored (3.1);
5. the PPP frame: the Address and Control octets FF 03 are skipped when present (per packet:
   LACs differ); the protocol field is one octet when its low bit is set (PFC) and two
   otherwise; IPv4 (0x0021) and IPv6 (0x0057) go to the TUN device when the session's target
   is TUN; the target SWITCH forwards every frame to another session; everything else goes to
   the PPP engine (DeliveryAction.PPP). Every row points just past the protocol field and
   carries the protocol. Nothing is copied except held packets;
6. the source check (:meth:`DataPath.set_source`, optional per session; anti-spoofing as in
   BCP 38, RFC 2827): an LNS puts what a subscriber sends into the operator's network, so a
   packet for the TUN device must carry the subscriber's own address as its source. When the
   session has an IPv4 address set and a packet goes to the TUN device, what is IPv4 by its PPP
   protocol (0x0021) or by its version nibble (a TUN device without packet information goes by
   the nibble alone, so a frame labelled 0x0057 is checked too when it holds IPv4) must be a whole
   IPv4 header (20 octets) whose source is that address; otherwise it is dropped
   (SPOOFED_SOURCE). The check comes before sequencing: a dropped packet's Ns is not consumed,
   and the gap is given up like a loss. IPv6 is not checked (IPv6CP agrees on an interface
   identifier only, and the subscriber picks its prefixes' addresses itself); nor is SWITCH,
   whose frames leave through another tunnel rather than into our network.

Counters: ``rx_packets``/``rx_bytes`` count what a session delivers (L2TP payload octets, PPP
framing included), when it is delivered; duplicates, drops, out-of-order arrivals and reorder
timeouts have their own columns.

Held packets older than ``reorder_timeout`` are released by :meth:`DataPath.release_expired`:
the gap before them is given up. Pool rows stay valid until the next call of ``process`` or
``release_expired``.

Send (:meth:`DataPath.encapsulate`): per payload, the L2TP data header with the peer's IDs
(Ns when the session sends sequenced, RFC 2661 5.4), then FF 03 unless ACFC was negotiated,
then the protocol field (one octet with PFC when the protocol allows it). LCP (0xC021) always
keeps FF 03 (RFC 1661 6.6: "The Address and Control fields MUST NOT be compressed when sending
any LCP packet"), and its protocol field cannot be compressed (6.5). Only headers are written;
the I/O layer sends header and payload as two iovecs, so payloads are never copied.

Routes (for what the TUN device gives us): :meth:`DataPath.route_batch` finds the session of
each IP packet by its destination address (``route_by="destination"``, an LNS: each subscriber
address is a session) or by its source address (``route_by="source"``, a LAC that originates
many sessions over one TUN device, each with its own IPCP-assigned address). An IPv4 route is
one address (a /32). An IPv6 route is a /64 prefix, the first 8 octets: an LNS gives each
subscriber a /64 announced by Router Advertisement, and the subscriber picks its own interface
identifiers in it (RFC 4862 5.5.3, RFC 5072), so :meth:`DataPath.route_add` and
:meth:`DataPath.route_del` take a 16-octet address and ignore its last 8 octets, and a packet
is looked up by the top 64 bits of its address.

A session's own TUN device (:meth:`DataPath.set_tun`): what the session delivers to a TUN
device goes to that descriptor instead of the Forwarder's device (a LAC acting as a plain L2TP
client, one device per session as pppd's pppN). A Forwarder with ``receive_udp=False`` reads
such a device and sends what it reads into the session its route finds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from l2tpfast.reference.parse import _byte_view, _u32_values, parse_header
from l2tpfast.wire.constants import (
    FLAG_P,
    FLAG_S,
    MAX_DATA_HEADER,
    DeliveryAction,
    DropReason,
    ParseStatus,
    SessionFlag,
    SessionTarget,
)
from l2tpfast.wire.dtypes import ADDRESS_DTYPE, DELIVERY_DTYPE, SESSION_COUNTERS_DTYPE
from l2tpfast.wire.seqnum import seq_add, seq_diff

PPP_IPV4 = 0x0021
PPP_IPV6 = 0x0057
PPP_LCP = 0xC021
#: route_by -> offsets of the routed address in an IPv4 and an IPv6 header.
ROUTE_OFFSETS = {"destination": (16, 24), "source": (12, 8)}


def address_key(row: Any) -> bytes:
    """The comparable form of an ADDRESS_DTYPE row: family, port and address."""
    return bytes([int(row["family"])]) + int(row["port"]).to_bytes(2, "big") + bytes(row["addr"])


@dataclass
class _Held:
    ns: int
    pool_index: int
    length: int
    protocol: int
    action: int
    since: float
    payload_length: int


@dataclass
class _Session:
    local_tunnel_id: int
    local_session_id: int
    peer_tunnel_id: int
    peer_session_id: int
    peer: bytes
    target: int
    target_index: int
    flags: int
    source: bytes | None = None  # set_source: the IPv4 address its TUN packets must come from
    tun_fd: int = -1  # set_tun: its own TUN device; -1: the Forwarder's
    tx_ns: int = 0
    rx_started: bool = False
    rx_expected: int = 0
    held: list[_Held] = field(default_factory=list)


class DataPath:
    """Session table, receive classification with reordering, and send encapsulation."""

    def __init__(
        self,
        max_sessions: int = 65536,
        *,
        pool_slots: int = 4096,
        slot_size: int = 2048,
        reorder_window: int = 16,
        reorder_timeout: float = 0.1,
        route_by: str = "destination",
    ) -> None:
        if route_by not in ROUTE_OFFSETS:
            raise ValueError(f"route_by must be 'destination' or 'source', not {route_by!r}")
        if max_sessions < 1 or pool_slots < 1 or slot_size < 64 or not 0 <= reorder_window <= 32767:
            raise ValueError("max_sessions, pool_slots >= 1, slot_size >= 64, reorder_window in 0..32767")
        self.max_sessions = max_sessions
        self.reorder_window = reorder_window
        self.reorder_timeout = reorder_timeout
        self.slot_size = slot_size
        #: Held packets live here; a DELIVERY row with source 1 points into it (flattened).
        self.pool = np.zeros((pool_slots, slot_size), dtype=np.uint8)
        #: Per-slot counters and per-reason drop counters, read in place.
        self.counters = np.zeros(max_sessions, dtype=SESSION_COUNTERS_DTYPE)
        self.drops = np.zeros(max(DropReason) + 1, dtype=np.uint64)
        self._sessions: list[_Session | None] = [None] * max_sessions
        self._by_ids: dict[tuple[int, int], int] = {}
        self._free_slots = list(range(max_sessions - 1, -1, -1))
        self._free_pool = list(range(pool_slots - 1, -1, -1))
        self._release_later: list[int] = []
        self._routes: dict[bytes, int] = {}
        self._route_by = route_by
        self._route_offset4, self._route_offset6 = ROUTE_OFFSETS[route_by]

    @property
    def route_by(self) -> str:
        """What ``route_batch`` looks up: the packet's "destination" or its "source" address."""
        return self._route_by

    # --- the session table ------------------------------------------------------------------

    def add_session(
        self,
        local_tunnel_id: int,
        local_session_id: int,
        peer_tunnel_id: int,
        peer_session_id: int,
        peer: npt.NDArray[Any],
        *,
        target: int = SessionTarget.PPP,
        target_index: int = 0,
        flags: int = 0,
        local: npt.NDArray[Any] | None = None,
    ) -> int:
        """Install a session; ``peer`` (and ``local``, the address our data leaves from) are
        ADDRESS_DTYPE scalars. Returns its slot."""
        key = (local_tunnel_id, local_session_id)
        if key in self._by_ids:
            raise ValueError(f"session {local_tunnel_id}:{local_session_id} is already in the table")
        if not self._free_slots:
            raise ValueError(f"the session table is full ({self.max_sessions} sessions)")
        if not 1 <= local_tunnel_id <= 0xFFFF or not 1 <= local_session_id <= 0xFFFF:
            raise ValueError("tunnel and session IDs are 1..65535")
        if target not in (SessionTarget.PPP, SessionTarget.TUN, SessionTarget.SWITCH):
            raise ValueError(f"target is a SessionTarget (0, 1 or 2), not {target}")
        slot = self._free_slots.pop()
        self._sessions[slot] = _Session(
            local_tunnel_id,
            local_session_id,
            peer_tunnel_id,
            peer_session_id,
            address_key(peer),
            int(target),
            target_index,
            flags,
        )
        self._by_ids[key] = slot
        self.counters[slot] = np.zeros((), dtype=SESSION_COUNTERS_DTYPE)
        return slot

    def remove_session(self, local_tunnel_id: int, local_session_id: int) -> bool:
        """Take a session out; its held packets are dropped. False if it was not there."""
        slot = self._by_ids.pop((local_tunnel_id, local_session_id), None)
        if slot is None:
            return False
        session = self._sessions[slot]
        assert session is not None
        for held in session.held:
            self._free_pool.append(held.pool_index)
        self._sessions[slot] = None
        self._free_slots.append(slot)
        self._routes = {k: v for k, v in self._routes.items() if v != slot}
        return True

    def lookup(self, local_tunnel_id: int, local_session_id: int) -> int:
        """The slot of a session, or -1."""
        return self._by_ids.get((local_tunnel_id, local_session_id), -1)

    def set_flags(self, slot: int, flags: int) -> None:
        session = self._sessions[slot]
        if session is None:
            raise ValueError(f"slot {slot} is empty")
        session.flags = flags

    def get_flags(self, slot: int) -> int:
        session = self._sessions[slot]
        if session is None:
            raise ValueError(f"slot {slot} is empty")
        return session.flags

    def set_source(self, slot: int, address: bytes | None) -> None:
        """Drop IPv4 packets for the TUN device whose source is not ``address`` (4 octets);
        None ends the check. IPv6 sources are not checked."""
        if address is not None:
            address = bytes(address)
            if len(address) != 4:
                raise ValueError("the source check takes an IPv4 address: 4 octets (IPv6 is not checked)")
            if address == bytes(4):
                raise ValueError("0.0.0.0 is no subscriber's address; None ends the check")
        session = self._sessions[slot] if 0 <= slot < self.max_sessions else None
        if session is None:
            raise ValueError(f"slot {slot} is empty")
        session.source = address

    def get_source(self, slot: int) -> bytes | None:
        """The IPv4 address ``set_source`` checks for, or None."""
        session = self._sessions[slot] if 0 <= slot < self.max_sessions else None
        if session is None:
            raise ValueError(f"slot {slot} is empty")
        return session.source

    def set_tun(self, slot: int, fd: int) -> None:
        """Write this session's packets for a TUN device to ``fd``, its own TUN device, rather than
        to the Forwarder's; -1 goes back to the Forwarder's. The caller keeps ``fd`` open until it
        sets -1 or removes the session."""
        if not -1 <= fd <= 0x7FFFFFFF:
            raise ValueError(f"fd is a file descriptor (0 or more) or -1, not {fd}")
        self._used(slot).tun_fd = fd

    def get_tun(self, slot: int) -> int:
        """The session's own TUN descriptor (``set_tun``), or -1 when it uses the Forwarder's."""
        return self._used(slot).tun_fd

    def _used(self, slot: int) -> _Session:
        session = self._sessions[slot] if 0 <= slot < self.max_sessions else None
        if session is None:
            raise ValueError(f"slot {slot} is empty")
        return session

    def session_count(self) -> int:
        return len(self._by_ids)

    def held_count(self) -> int:
        """Packets held for reordering in all sessions."""
        return self.pool.shape[0] - len(self._free_pool) - len(self._release_later)

    # --- receive ----------------------------------------------------------------------------

    def _recycle(self) -> None:
        # Pool rows handed out by the previous call are the caller's no longer.
        self._free_pool.extend(self._release_later)
        self._release_later.clear()

    def process(
        self,
        buf: Any,
        offsets: Any,
        lengths: Any,
        sources: npt.NDArray[Any],
        out: npt.NDArray[Any],
        now: float,
        count: int = -1,
    ) -> int:
        """Classify ``count`` datagrams; write deliveries into ``out`` (DELIVERY_DTYPE); return how many.

        ``out`` needs room for ``count + reorder_window`` rows at most per datagram released;
        ``len(out) >= count * (reorder_window + 1)`` always suffices.
        """
        data = _byte_view("buf", buf)
        offs = _u32_values("offsets", offsets)
        lens = _u32_values("lengths", lengths)
        n = min(len(offs), len(lens), len(sources)) if count < 0 else count
        if n > min(len(offs), len(lens), len(sources)):
            raise ValueError("count exceeds offsets, lengths or sources")
        if sources.dtype != ADDRESS_DTYPE or out.dtype != DELIVERY_DTYPE:
            raise ValueError("sources must be ADDRESS_DTYPE and out DELIVERY_DTYPE")
        self._recycle()
        rows: list[tuple[int, int, int, int, int, int, int]] = []
        for i in range(n):
            start, length = offs[i], lens[i]
            if start + length > len(data):
                raise ValueError(f"datagram {i} runs past the end of buf")
            self._receive_one(data, start, length, sources[i], i, now, rows)
        if len(rows) > len(out):
            raise ValueError(f"out has room for {len(out)} rows, {len(rows)} needed")
        for j, row in enumerate(rows):
            out[j] = row
        return len(rows)

    def _receive_one(
        self,
        data: memoryview,
        start: int,
        length: int,
        source: Any,
        index: int,
        now: float,
        rows: list[tuple[int, int, int, int, int, int, int]],
    ) -> None:
        status, flags, _, tunnel_id, session_id, ns, _, _, header_length, payload_length = parse_header(
            data[start : start + length]
        )
        if status != ParseStatus.OK:
            self.drops[status] += 1
            return
        if flags & 0x8000:
            rows.append((start, length, 0, index, 0, DeliveryAction.CONTROL, 0))
            return
        slot = self._by_ids.get((tunnel_id, session_id), -1)
        if slot < 0:
            self.drops[DropReason.UNKNOWN_SESSION] += 1
            return
        session = self._sessions[slot]
        assert session is not None
        counters = self.counters[slot]
        if address_key(source) != session.peer:
            self.drops[DropReason.WRONG_PEER] += 1
            counters["dropped"] += 1
            return
        pos = start + header_length
        end = pos + payload_length
        # PPP framing (RFC 1662 3.2, RFC 1661 6.5, 6.6): FF 03 may be left out (ACFC), per packet
        # as LACs differ; the protocol field is 1 octet when its low bit is set (PFC), else 2.
        if end - pos >= 2 and data[pos] == 0xFF and data[pos + 1] == 0x03:
            pos += 2
        if end - pos < 1 or (not data[pos] & 1 and end - pos < 2):
            self.drops[DropReason.SHORT_PPP] += 1
            counters["dropped"] += 1
            return
        if data[pos] & 1:
            protocol = data[pos]
            pos += 1
        else:
            protocol = (data[pos] << 8) | data[pos + 1]
            pos += 2
        if session.target == SessionTarget.SWITCH:
            action = DeliveryAction.SWITCH
        elif session.target == SessionTarget.TUN and protocol in (PPP_IPV4, PPP_IPV6):
            action = DeliveryAction.TUN
        else:
            action = DeliveryAction.PPP
        # Anti-spoofing (rule 6) before sequencing: a dropped packet's Ns is not consumed.
        source = session.source
        if source is not None and action == DeliveryAction.TUN and _spoofed(data[pos:end], protocol, source):
            self.drops[DropReason.SPOOFED_SOURCE] += 1
            counters["dropped"] += 1
            return
        if flags & FLAG_S and session.flags & SessionFlag.SEQ_TX_FOLLOW:
            session.flags |= SessionFlag.SEQ_TX  # RFC 2661 5.4: the LAC follows the LNS's S bit
        packet = _Held(ns, -1, end - pos, protocol, action, now, payload_length)
        if not flags & FLAG_S or flags & FLAG_P:
            self._deliver(packet, pos, 0, slot, index, rows)
            return
        self._sequenced(session, slot, packet, data, pos, index, rows)

    def _deliver(
        self,
        packet: _Held,
        offset: int,
        source: int,
        slot: int,
        index: int,
        rows: list[tuple[int, int, int, int, int, int, int]],
    ) -> None:
        rows.append((offset, packet.length, slot, index, packet.protocol, packet.action, source))
        counters = self.counters[slot]
        counters["rx_packets"] += 1
        counters["rx_bytes"] += packet.payload_length

    def _sequenced(
        self,
        session: _Session,
        slot: int,
        packet: _Held,
        data: memoryview,
        offset: int,
        index: int,
        rows: list[tuple[int, int, int, int, int, int, int]],
    ) -> None:
        """RFC 2661 5.4: deliver in Ns order, hold what is ahead, drop what is behind."""
        counters = self.counters[slot]
        ns = packet.ns
        if not session.rx_started:
            session.rx_started = True
            session.rx_expected = ns
        distance = seq_diff(ns, session.rx_expected)
        if distance < 0 or any(h.ns == ns for h in session.held):
            self.drops[DropReason.DUPLICATE] += 1
            counters["duplicates"] += 1
            return
        if distance == 0:
            self._deliver(packet, offset, 0, slot, index, rows)
            session.rx_expected = seq_add(ns, 1)
            self._drain(session, slot, index, rows)
            return
        counters["out_of_order"] += 1
        if distance >= self.reorder_window:
            # Too far ahead to wait for the gap: give it up, deliver what is held, then this one.
            self._flush(session, slot, index, rows)
            self._deliver(packet, offset, 0, slot, index, rows)
            session.rx_expected = seq_add(ns, 1)
            return
        if not self._free_pool or packet.length > self.slot_size:
            self.drops[DropReason.POOL_FULL] += 1
            counters["dropped"] += 1
            return
        packet.pool_index = self._free_pool.pop()
        self.pool[packet.pool_index, : packet.length] = np.frombuffer(
            data[offset : offset + packet.length], dtype=np.uint8
        )
        session.held.append(packet)
        session.held.sort(key=lambda h: seq_diff(h.ns, session.rx_expected))

    def _emit_held(
        self, held: _Held, slot: int, index: int, rows: list[tuple[int, int, int, int, int, int, int]]
    ) -> None:
        self._deliver(held, held.pool_index * self.slot_size, 1, slot, index, rows)
        self._release_later.append(held.pool_index)

    def _drain(
        self, session: _Session, slot: int, index: int, rows: list[tuple[int, int, int, int, int, int, int]]
    ) -> None:
        """Deliver the held packets that now follow in order."""
        while session.held and session.held[0].ns == session.rx_expected:
            held = session.held.pop(0)
            self._emit_held(held, slot, index, rows)
            session.rx_expected = seq_add(held.ns, 1)

    def _flush(
        self, session: _Session, slot: int, index: int, rows: list[tuple[int, int, int, int, int, int, int]]
    ) -> None:
        """Deliver everything held, in Ns order, giving up the gaps."""
        while session.held:
            held = session.held.pop(0)
            self._emit_held(held, slot, index, rows)
            session.rx_expected = seq_add(held.ns, 1)

    def release_expired(self, out: npt.NDArray[Any], now: float) -> int:
        """Release held packets older than ``reorder_timeout``: the gap before them is lost."""
        if out.dtype != DELIVERY_DTYPE:
            raise ValueError("out must be DELIVERY_DTYPE")
        self._recycle()
        rows: list[tuple[int, int, int, int, int, int, int]] = []
        for slot, session in enumerate(self._sessions):
            if session is None or not session.held:
                continue
            oldest = min(h.since for h in session.held)
            if now - oldest < self.reorder_timeout:
                continue
            self.counters[slot]["reorder_timeouts"] += 1
            # Give up the first gap only: deliver up to the next gap after the first held packet.
            session.rx_expected = session.held[0].ns
            self._drain(session, slot, 0, rows)
        if len(rows) > len(out):
            raise ValueError(f"out has room for {len(out)} rows, {len(rows)} needed")
        for j, row in enumerate(rows):
            out[j] = row
        return len(rows)

    def next_expiry(self) -> float | None:
        """When the oldest held packet times out, or None."""
        times = [h.since for s in self._sessions if s is not None for h in s.held]
        return min(times) + self.reorder_timeout if times else None

    # --- send -------------------------------------------------------------------------------

    def encapsulate(
        self,
        slots: Any,
        protocols: Any,
        lengths: Any,
        headers: npt.NDArray[Any],
        header_lengths: npt.NDArray[Any],
        count: int = -1,
    ) -> int:
        """Write the L2TP data header and PPP framing for each payload; return how many were done.

        ``slots``, ``protocols`` and ``lengths`` (the payload lengths) are uint32 buffers;
        ``headers`` is a uint8 array of shape (n, MAX_DATA_HEADER); ``header_lengths`` uint8 (n,).
        A slot with no session gets header length 0 (skip it).
        """
        slot_list = _u32_values("slots", slots)
        proto_list = _u32_values("protocols", protocols)
        len_list = _u32_values("lengths", lengths)
        n = min(len(slot_list), len(proto_list), len(len_list)) if count < 0 else count
        if headers.dtype != np.uint8 or headers.ndim != 2 or headers.shape[1] < MAX_DATA_HEADER:
            raise ValueError(f"headers must be uint8 of shape (n, >= {MAX_DATA_HEADER})")
        if n > min(len(slot_list), len(proto_list), len(len_list), headers.shape[0], len(header_lengths)):
            raise ValueError("count exceeds an input or output")
        done = 0
        for i in range(n):
            slot = slot_list[i]
            session = self._sessions[slot] if slot < self.max_sessions else None
            if session is None:
                header_lengths[i] = 0
                continue
            head = bytearray()
            flags = 0x0002
            if session.flags & SessionFlag.SEQ_TX:
                flags |= FLAG_S
            head += flags.to_bytes(2, "big")
            head += session.peer_tunnel_id.to_bytes(2, "big") + session.peer_session_id.to_bytes(2, "big")
            if session.flags & SessionFlag.SEQ_TX:
                head += session.tx_ns.to_bytes(2, "big") + b"\x00\x00"  # Nr is reserved in data (3.1)
                session.tx_ns = seq_add(session.tx_ns, 1)
            protocol = proto_list[i]
            # RFC 1661 6.6: "The Address and Control fields MUST NOT be compressed when sending
            # any LCP packet." (6.5 says the same of the Protocol field; 0xC021 cannot be.)
            if not session.flags & SessionFlag.ACFC or protocol == PPP_LCP:
                head += b"\xff\x03"
            if session.flags & SessionFlag.PFC and protocol < 0x100 and protocol & 1:
                head.append(protocol)
            else:
                head += protocol.to_bytes(2, "big")
            headers[i, : len(head)] = np.frombuffer(bytes(head), dtype=np.uint8)
            header_lengths[i] = len(head)
            counters = self.counters[slot]
            counters["tx_packets"] += 1
            counters["tx_bytes"] += (
                len(head) - 6 - (4 if session.flags & SessionFlag.SEQ_TX else 0) + len_list[i]
            )
            done += 1
        return done

    # --- routes: an address to its session, for what the TUN device gives us -----------------

    def route_add(self, address: bytes, slot: int) -> None:
        """Packets to (``route_by="source"``: from) ``address`` go to the session in ``slot``.

        ``address`` is an IPv4 address (4 octets, a /32) or an IPv6 address (16 octets) whose
        /64 is routed: the last 8 octets (the interface identifier) are ignored, because the
        subscriber picks its own identifiers in the prefix it was given (RFC 4862 5.5.3).
        """
        if len(address) not in (4, 16):
            raise ValueError("an IPv4 or IPv6 address: 4 or 16 octets")
        self._used(slot)
        self._routes[_route_key(address)] = slot

    def route_del(self, address: bytes) -> bool:
        """Remove the route of ``address`` (an IPv6 address removes its /64); False if none."""
        if len(address) not in (4, 16):
            return False
        return self._routes.pop(_route_key(address), None) is not None

    def route_batch(
        self, buf: Any, offsets: Any, lengths: Any, slots: npt.NDArray[Any], count: int = -1
    ) -> int:
        """For each IP packet, the slot its destination (or source, ``route_by``) routes to
        (0xFFFFFFFF when none); returns how many found a session."""
        data = _byte_view("buf", buf)
        offs = _u32_values("offsets", offsets)
        lens = _u32_values("lengths", lengths)
        n = min(len(offs), len(lens)) if count < 0 else count
        found = 0
        for i in range(n):
            start, length = offs[i], lens[i]
            slot = 0xFFFFFFFF
            if length >= 20 and data[start] >> 4 == 4:
                at = start + self._route_offset4
                slot = self._routes.get(bytes(data[at : at + 4]), slot)
            elif length >= 40 and data[start] >> 4 == 6:
                at = start + self._route_offset6
                slot = self._routes.get(bytes(data[at : at + 8]), slot)  # the /64
            slots[i] = slot
            found += slot != 0xFFFFFFFF
        return found


def _route_key(address: bytes) -> bytes:
    """The key of a route: an IPv4 address whole, an IPv6 address's /64 (its first 8 octets)."""
    return bytes(address[:8])


def _spoofed(packet: memoryview, protocol: int, source: bytes) -> bool:
    """Whether a TUN-bound packet fails the IPv4 source check (rule 6 of the module docstring)."""
    nibble = packet[0] >> 4 if len(packet) else 0
    if protocol != PPP_IPV4 and nibble != 4:
        return False  # IPv6 by its protocol and by its version nibble: not checked
    return len(packet) < 20 or nibble != 4 or bytes(packet[12:16]) != source
