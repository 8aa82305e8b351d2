"""Two control-plane cores wired together in memory, with a fake clock and a seeded faulty link.

STYLE.md 8: ``transfer`` moves what one side sends to the other, ``run_until_idle``
alternates transfers and timers until nothing moves. :class:`FaultyLink` drops,
duplicates, delays and reorders datagrams with its own seeded generator; the
seed is in every assertion message so a failure can be replayed.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from l2tpfast.control.endpoint import Endpoint, Transmit
from l2tpfast.control.events import Event
from l2tpfast.control.settings import EndpointSettings, TunnelSettings

LAC_ADDR = ("192.0.2.1", 1701)
LNS_ADDR = ("192.0.2.2", 1701)


@dataclass
class FaultyLink:
    """A one-way link: each datagram is lost, duplicated, delayed and so reordered, at random."""

    seed: int = 0
    loss: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.0  # uniform extra delay in 0..delay seconds: reorders what it overlaps
    base_delay: float = 0.001
    rng: random.Random = field(init=False)
    _queue: list[tuple[float, int, bytes, tuple[str, int], str | None]] = field(default_factory=list)
    _n: int = 0
    sent: int = 0
    lost: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def put(self, tx: Transmit, src: tuple[str, int], now: float) -> None:
        self.sent += 1
        copies = 2 if self.rng.random() < self.duplicate else 1
        for _ in range(copies):
            if self.rng.random() < self.loss:
                self.lost += 1
                continue
            at = now + self.base_delay + self.rng.random() * self.delay
            self._n += 1
            heapq.heappush(self._queue, (at, self._n, tx.data, src, tx.local))

    def next_arrival(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    def take(self, now: float) -> list[tuple[bytes, tuple[str, int]]]:
        out = []
        while self._queue and self._queue[0][0] <= now:
            _, _, data, src, _ = heapq.heappop(self._queue)
            out.append((data, src))
        return out


class Pair:
    """A LAC core and an LNS core talking through two faulty links, on a fake clock."""

    def __init__(
        self,
        *,
        lac: EndpointSettings | None = None,
        lns: EndpointSettings | None = None,
        seed: int = 1,
        loss: float = 0.0,
        duplicate: float = 0.0,
        delay: float = 0.0,
    ) -> None:
        self.seed = seed
        self.now = 0.0
        self.lac = Endpoint(lac or EndpointSettings(TunnelSettings(host_name="lac")), rng=random.Random(seed))
        self.lns = Endpoint(
            lns or EndpointSettings(TunnelSettings(host_name="lns")), rng=random.Random(seed + 1)
        )
        self.to_lns = FaultyLink(seed * 7 + 1, loss, duplicate, delay)
        self.to_lac = FaultyLink(seed * 7 + 2, loss, duplicate, delay)
        self.lac_events: list[Event] = []
        self.lns_events: list[Event] = []
        #: Every datagram each side put on the wire, in order (for assertions on the bytes).
        self.wire: list[tuple[str, bytes]] = []

    def _pump(self) -> None:
        for tx in self.lac.datagrams_to_send(self.now):
            self.wire.append(("lac", tx.data))
            self.to_lns.put(tx, LAC_ADDR, self.now)
        for tx in self.lns.datagrams_to_send(self.now):
            self.wire.append(("lns", tx.data))
            self.to_lac.put(tx, LNS_ADDR, self.now)
        while (e := self.lac.next_event()) is not None:
            self.lac_events.append(e)
        while (e := self.lns.next_event()) is not None:
            self.lns_events.append(e)

    def next_time(self) -> float | None:
        """The next arrival or timer, on either side."""
        times = [
            self.to_lns.next_arrival(),
            self.to_lac.next_arrival(),
            self.lac.get_timer(),
            self.lns.get_timer(),
        ]
        present = [t for t in times if t is not None]
        return min(present) if present else None

    def step(self) -> bool:
        """Advance to the next arrival or timer; False when nothing is left to happen."""
        self._pump()
        nxt = self.next_time()
        if nxt is None:
            return False
        self.now = max(self.now, nxt)
        for data, src in self.to_lns.take(self.now):
            self.lns.receive_datagram(data, src, self.now, LNS_ADDR[0])
        for data, src in self.to_lac.take(self.now):
            self.lac.receive_datagram(data, src, self.now, LAC_ADDR[0])
        for ep in (self.lac, self.lns):
            timer = ep.get_timer()
            if timer is not None and timer <= self.now:
                ep.handle_timer(self.now)
        self._pump()
        return True

    def run_until(
        self, done: Callable[[], bool], *, limit: float = 600.0, max_steps: int = 2_000_000
    ) -> None:
        """Step until ``done()`` holds; fail (with the seed) past ``limit`` fake seconds or steps."""
        start = self.now
        for _ in range(max_steps):
            if done():
                return
            if not self.step() or self.now - start > limit:
                break
        if not done():
            raise AssertionError(f"condition not reached by t={self.now:.1f}s (seed {self.seed})")

    def run_for(self, seconds: float) -> None:
        end = self.now + seconds
        for _ in range(2_000_000):
            nxt = self.next_time()
            if nxt is None or nxt > end:
                self._pump()
                self.now = end
                return
            self.step()
        raise AssertionError("run_for did not finish")

    def events(self, side: str, kind: type) -> list:  # type: ignore[type-arg]
        return [e for e in (self.lac_events if side == "lac" else self.lns_events) if isinstance(e, kind)]
