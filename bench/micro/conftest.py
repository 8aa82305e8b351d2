"""Fixtures of the micro-benchmarks: one fixed, realistic receive batch, and the summary line.

Speed is reported, never asserted (STYLE.md 9): the compiled and the reference
figures are measured in the same run and printed with their ratio.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

BATCH_SIZE = 1024  # datagrams per recvmmsg batch
SEED = 1701
_RESULTS = pytest.StashKey[dict[str, float]]()


@dataclass(frozen=True)
class Batch:
    """Datagrams back to back in one buffer, as a receive loop hands them over."""

    buf: np.ndarray[Any, np.dtype[np.uint8]]
    offsets: np.ndarray[Any, np.dtype[np.uint32]]
    lengths: np.ndarray[Any, np.dtype[np.uint32]]

    def __len__(self) -> int:
        return len(self.offsets)


def make_batch(count: int = BATCH_SIZE, seed: int = SEED) -> Batch:
    """About 2% control messages (ZLB or a small message); the rest data messages of
    64-1400 octets, half with S=1 (sequenced sessions), a few with L=1 or O=1."""
    rng = random.Random(seed)
    parts: list[bytes] = []
    offsets: list[int] = []
    pos = 0
    for _ in range(count):
        tunnel_id, session_id = rng.randrange(1, 64), rng.randrange(1, 4096)
        if rng.random() < 0.02:
            size = rng.choice((12, 12 + rng.randrange(8, 120)))
            header = struct.pack(
                "!6H", 0xC802, size, tunnel_id, 0, rng.randrange(65536), rng.randrange(65536)
            )
        else:
            size = rng.randrange(64, 1401)
            flags = 0x0002
            if rng.random() < 0.5:
                flags |= 0x0800
            roll = rng.random()
            if roll < 0.05:
                flags |= 0x4000
            elif roll < 0.08:
                flags |= 0x0200
            header = struct.pack("!H", flags)
            if flags & 0x4000:
                header += struct.pack("!H", size)
            header += struct.pack("!HH", tunnel_id, session_id)
            if flags & 0x0800:
                header += struct.pack("!HH", rng.randrange(65536), 0)
            if flags & 0x0200:
                header += struct.pack("!H", 2) + b"\x00\x00"
        parts.append(header + rng.randbytes(size - len(header)))
        offsets.append(pos)
        pos += size
    return Batch(
        buf=np.frombuffer(b"".join(parts), dtype=np.uint8).copy(),
        offsets=np.array(offsets, dtype=np.uint32),
        lengths=np.array([len(p) for p in parts], dtype=np.uint32),
    )


@pytest.fixture(scope="session")
def batch() -> Batch:
    return make_batch()


@pytest.fixture(scope="session")
def record_result(request: pytest.FixtureRequest) -> Callable[[str, Any], None]:
    """``record_result(name, benchmark)`` keeps the median seconds per call of a finished
    benchmark for the summary line (nothing under --benchmark-disable)."""
    results = request.config.stash.setdefault(_RESULTS, {})

    def record(name: str, benchmark: Any) -> None:
        stats = getattr(benchmark, "stats", None)
        if stats is not None:
            results[name] = stats.stats.median
            results[name + ".min"] = stats.stats.min

    return record


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    results = config.stash.get(_RESULTS, {})
    _dataplane_summary(terminalreporter, results)
    if "parse_batch" not in results or "reference" not in results:
        return
    mpps = {name: BATCH_SIZE / seconds / 1e6 for name, seconds in results.items()}
    terminalreporter.write_line(
        f"parse_batch: {mpps['parse_batch']:.1f} Mpps; reference: {mpps['reference']:.3f} Mpps; "
        f"ratio {mpps['parse_batch'] / mpps['reference']:.0f} x"
    )
    terminalreporter.write_line(
        f"  (batches of {BATCH_SIZE} datagrams, median times; best times give "
        f"{mpps['parse_batch.min']:.1f} Mpps and {mpps['reference.min']:.3f} Mpps)"
    )


def _dataplane_summary(terminalreporter: Any, results: dict[str, float]) -> None:
    names = ["unsequenced", "sequenced", "reordered10", "reference"]
    if not all(f"dataplane.{n}" in results for n in names):
        return
    mpps = {n: 1024 / results[f"dataplane.{n}"] / 1e6 for n in names}
    terminalreporter.write_line(
        "dataplane receive (1024 x 64-octet IP packets, 64 sessions, to TUN): "
        + ", ".join(f"{n} {mpps[n]:.2f} Mpps" for n in names)
    )
    terminalreporter.write_line(
        f"  compiled/reference {mpps['unsequenced'] / mpps['reference']:.0f} x; cost of sequencing "
        f"{mpps['unsequenced'] / mpps['sequenced']:.2f} x in order, "
        f"{mpps['unsequenced'] / mpps['reordered10']:.2f} x with 10% reordered (median times)"
    )
