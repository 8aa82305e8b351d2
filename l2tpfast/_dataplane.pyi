"""Typing stub of the compiled data path ``src_pyx/_dataplane.pyx``; the rules are those of
``l2tpfast.reference.dataplane``, which has the same API."""

from typing import Any, TypeAlias

import numpy.typing as npt
from typing_extensions import Buffer

BufferLike: TypeAlias = Buffer | npt.NDArray[Any]

class DataPath:
    max_sessions: int
    reorder_window: int
    reorder_timeout: float
    slot_size: int
    pool: npt.NDArray[Any]
    counters: npt.NDArray[Any]
    drops: npt.NDArray[Any]
    @property
    def route_by(self) -> str: ...
    def __init__(
        self,
        max_sessions: int = 65536,
        *,
        pool_slots: int = 4096,
        slot_size: int = 2048,
        reorder_window: int = 16,
        reorder_timeout: float = 0.1,
        route_by: str = "destination",
    ) -> None: ...
    def add_session(
        self,
        local_tunnel_id: int,
        local_session_id: int,
        peer_tunnel_id: int,
        peer_session_id: int,
        peer: npt.NDArray[Any],
        *,
        target: int = 0,
        target_index: int = 0,
        flags: int = 0,
        local: npt.NDArray[Any] | None = None,
    ) -> int: ...
    def remove_session(self, local_tunnel_id: int, local_session_id: int) -> bool: ...
    def lookup(self, local_tunnel_id: int, local_session_id: int) -> int: ...
    def set_flags(self, slot: int, flags: int) -> None: ...
    def get_flags(self, slot: int) -> int: ...
    def set_source(self, slot: int, address: bytes | None) -> None: ...
    def get_source(self, slot: int) -> bytes | None: ...
    def set_tun(self, slot: int, fd: int) -> None: ...
    def get_tun(self, slot: int) -> int: ...
    def session_count(self) -> int: ...
    def held_count(self) -> int: ...
    def memory_per_session(self) -> float: ...
    def process(
        self,
        buf: BufferLike,
        offsets: BufferLike,
        lengths: BufferLike,
        sources: npt.NDArray[Any],
        out: npt.NDArray[Any],
        now: float,
        count: int = -1,
    ) -> int: ...
    def release_expired(self, out: npt.NDArray[Any], now: float) -> int: ...
    def next_expiry(self) -> float | None: ...
    def encapsulate(
        self,
        slots: BufferLike,
        protocols: BufferLike,
        lengths: BufferLike,
        headers: npt.NDArray[Any],
        header_lengths: npt.NDArray[Any],
        count: int = -1,
    ) -> int: ...
    # IPv4: the address (a /32); IPv6: its /64, the last 8 octets ignored (route_del likewise).
    def route_add(self, address: bytes, slot: int) -> None: ...
    def route_del(self, address: bytes) -> bool: ...
    def route_batch(
        self,
        buf: BufferLike,
        offsets: BufferLike,
        lengths: BufferLike,
        slots: npt.NDArray[Any],
        count: int = -1,
    ) -> int: ...

def _layouts() -> dict[str, dict[str, int]]: ...

FORWARDER_STATS: tuple[str, ...]

class Forwarder:
    path: DataPath
    udp_fd: int
    tun_fd: int
    batch: int
    handoff: Any
    stats: npt.NDArray[Any]
    raw: bool
    receive_udp: bool
    sink: LoadCounter | None
    gro: bool
    @property
    def gso(self) -> bool: ...
    @property
    def gso_stats(self) -> tuple[int, int]: ...
    @property
    def gro_stats(self) -> tuple[int, int]: ...
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
    ) -> None: ...
    def run(self, stop_fd: int, idle_timeout: float = 0.1) -> None: ...
    def run_once(self, udp: bool = True, tun: bool = True) -> int: ...

# The benchmark harness (src_pyx/bench.pxi, src_pyx/loadgen.pxi).
LOAD_TOTALS: tuple[str, ...]
LOAD_STATS: tuple[str, ...]
RECEIVER_STATS: tuple[str, ...]
LOAD_SESSION_DTYPE: Any

def histogram_bounds() -> npt.NDArray[Any]: ...

class LoadCounter:
    n_sessions: int
    sessions: npt.NDArray[Any]
    totals: npt.NDArray[Any]
    histogram: npt.NDArray[Any]
    def __init__(self, n_sessions: int) -> None: ...
    def reset(self) -> None: ...
    def count(self, data: BufferLike, ip: bool = True) -> int: ...

class LoadGenerator:
    fd: int
    batch: int
    n_sessions: int
    l2tp: bool
    path: DataPath | None
    stats: npt.NDArray[Any]
    @property
    def gso_stats(self) -> tuple[int, int]: ...
    def __init__(self, fd: int, n_sessions: int, path: DataPath | None = None, batch: int = 64) -> None: ...
    def set_session(
        self,
        index: int,
        source: bytes,
        destination: bytes,
        source_port: int,
        destination_port: int,
        slot: int = -1,
    ) -> None: ...
    def reset(self) -> None: ...
    def stop(self) -> None: ...
    def run(
        self, rate: float, size: int, seconds: float, probe_every: int = 0, burst: int = 1
    ) -> tuple[int, float]: ...

class UdpReceiver:
    fd: int
    batch: int
    counter: LoadCounter
    stats: npt.NDArray[Any]
    def __init__(self, fd: int, counter: LoadCounter, batch: int = 64) -> None: ...
    def run(self, stop_fd: int, idle_timeout: float = 0.1) -> None: ...
