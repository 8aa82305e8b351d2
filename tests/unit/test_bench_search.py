"""The loss-free search of ``l2tpfast bench`` (runner.Bench._search), with a simulated LNS.

The steps are replaced by a model: loss-free up to a capacity, losing above it; a harness that
saturates above its own limit; one burst of noise. No sockets, no time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from l2tpfast.bench.runner import Bench, BenchOptions


def _bench(**kw: Any) -> Bench:
    options = BenchOptions(lns="192.0.2.2", sink_address="192.0.2.2", rates=(50_000.0,), search=True, **kw)
    return Bench(options)


def _model(
    bench: Bench, capacity: float, harness: float = 1e9, noisy: frozenset[float] = frozenset()
) -> list[float]:
    """Replace the steps by a model; returns the list of rates tried."""
    tried: list[float] = []
    noise_left = set(noisy)

    async def step(rate: float, size: int, direction: str) -> dict[str, Any]:
        tried.append(rate)
        noise = rate in noise_left
        noise_left.discard(rate)
        limited = rate > harness
        loss = 0.02 if rate > capacity or noise else 0.0
        result = {
            "rate": rate, "size": size, "direction": direction, "notes": ["saturated"] if limited else [],
            "harness_limited": limited, "loss_free": loss <= bench.o.max_loss,
            "lns_cpu_us_per_packet": 1.5,
        }  # fmt: skip
        bench.report["steps"].append(result)
        return result

    bench._step = step  # type: ignore[method-assign]
    return tried


def test_search_finds_the_capacity_within_the_last_bisection() -> None:
    bench = _bench(step_factor=2.0, refine=4)
    tried = _model(bench, capacity=300_000)
    asyncio.run(bench._search(64, "down"))
    (found,) = bench.report["loss_free"]
    # 50k, 100k, 200k fine; 400k loses (twice: confirmed); then bisection: 300k fine, and
    # 350k, 325k, 312.5k lose (each confirmed).
    assert tried == [
        50_000, 100_000, 200_000, 400_000, 400_000, 300_000, 350_000, 350_000, 325_000, 325_000,
        312_500, 312_500,
    ]  # fmt: skip
    assert found["loss_free_pps"] == 300_000 and not found["lower_bound"]
    assert found["loss_free_mbps"] == pytest.approx(300_000 * 64 * 8 / 1e6)
    assert found["steps"] == tried


def test_one_noisy_step_does_not_end_the_search() -> None:
    bench = _bench(step_factor=2.0, refine=2)
    tried = _model(bench, capacity=450_000, noisy=frozenset({200_000.0}))
    asyncio.run(bench._search(64, "up"))
    assert tried.count(200_000) == 2  # lost once, confirmed loss-free on the second try
    assert 400_000 in tried
    assert bench.report["loss_free"][0]["loss_free_pps"] >= 400_000


def test_a_loss_counts_after_every_trial() -> None:
    bench = _bench(step_factor=2.0, refine=0, trials=1)
    tried = _model(bench, capacity=150_000, noisy=frozenset({100_000.0}))
    asyncio.run(bench._search(64, "up"))
    assert tried == [50_000, 100_000]  # with one trial the noise counts
    assert bench.report["loss_free"][0]["loss_free_pps"] == 50_000


def test_a_saturated_harness_gives_a_lower_bound_bisected_below_its_limit() -> None:
    bench = _bench(step_factor=2.0, refine=3)
    tried = _model(bench, capacity=1e9, harness=300_000)
    asyncio.run(bench._search(1400, "down"))
    (found,) = bench.report["loss_free"]
    # 400k: the harness could not offer it (no second try); then 300k fine, 350k and 325k not
    # offered either.
    assert tried == [50_000, 100_000, 200_000, 400_000, 300_000, 350_000, 325_000]
    assert found["loss_free_pps"] == 300_000 and found["lower_bound"]
    assert found["harness_note"] == ["saturated"]


def test_a_loss_below_the_harness_limit_is_the_lns_s() -> None:
    bench = _bench(step_factor=2.0, refine=3)
    tried = _model(bench, capacity=330_000, harness=350_000)
    asyncio.run(bench._search(64, "down"))
    (found,) = bench.report["loss_free"]
    # 400k not offered; 300k fine; 350k fine (not above the harness's 350k) but lossy; 325k fine.
    assert tried == [50_000, 100_000, 200_000, 400_000, 300_000, 350_000, 350_000, 325_000]
    assert found["loss_free_pps"] == 325_000 and not found["lower_bound"]


def test_options_are_checked_with_the_flag_named() -> None:
    with pytest.raises(ValueError, match="--direction"):
        BenchOptions(lns="192.0.2.2", sink_address="192.0.2.2", direction="sideways").check()
    with pytest.raises(ValueError, match="--size 40"):
        BenchOptions(lns="192.0.2.2", sink_address="192.0.2.2", sizes=(40,)).check()
    with pytest.raises(ValueError, match="--sink-address"):
        BenchOptions(lns="192.0.2.2", sink_address="lns-host").check()
