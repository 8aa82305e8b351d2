"""Figures from counts: percentiles of a latency histogram, rates, CPU per packet."""

from __future__ import annotations

from typing import Any

import numpy as np

from l2tpfast._dataplane import histogram_bounds

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
_BOUNDS = histogram_bounds()


def histogram_percentiles(histogram: np.ndarray[Any, Any]) -> dict[str, float] | None:
    """p50 .. p99.9 and max, in microseconds, of a LoadCounter histogram (None: no samples).

    Each value is the middle of its bucket, so within half a bucket (about 1.6%) of the truth."""
    counts = np.asarray(histogram, dtype=np.float64)
    total = float(counts.sum())
    if total == 0:
        return None
    cumulative = np.cumsum(counts)
    middles = (_BOUNDS[:-1] + _BOUNDS[1:]) / 2 / 1000.0
    out: dict[str, float] = {}
    for p in PERCENTILES:
        i = int(np.searchsorted(cumulative, total * p / 100.0))
        out[f"p{p:g}"] = round(float(middles[min(i, len(middles) - 1)]), 1)
    out["max"] = round(float(_BOUNDS[int(np.nonzero(counts)[0][-1]) + 1] / 1000.0), 1)
    out["samples"] = int(total)
    return out


def sample_percentiles(values: list[float], scale: float = 1000.0) -> dict[str, float] | None:
    """p50 .. p99.9 and max of samples (seconds), times ``scale`` (default: milliseconds)."""
    if not values:
        return None
    array = np.asarray(values, dtype=np.float64) * scale
    out = {f"p{p:g}": round(float(np.percentile(array, p)), 2) for p in PERCENTILES}
    out["max"] = round(float(array.max()), 2)
    return out


def mbits(pps: float, size: int) -> float:
    """IP-level megabits a second of ``size``-octet packets."""
    return pps * size * 8 / 1e6
