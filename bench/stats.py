"""Percentile math for the benchmark reports: linear interpolation between closest ranks, like
numpy's default. Pure functions; an empty sample gives NaN, never an exception."""
from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], p: float) -> float:
    """The p-th percentile (0-100), linear interpolation between closest ranks; NaN if empty."""
    data = sorted(values)
    if not data:
        return math.nan
    if len(data) == 1:
        return float(data[0])
    rank = (len(data) - 1) * p / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, len(data) - 1)
    return float(data[lo] + (data[hi] - data[lo]) * (rank - lo))


def summarize(values: Iterable[float]) -> dict[str, float]:
    """n, min, p50, p90, p99, max and mean of a sample ({"n": 0} if empty)."""
    data = sorted(values)
    if not data:
        return {"n": 0}
    return {"n": len(data), "min": data[0], "p50": percentile(data, 50), "p90": percentile(data, 90),
            "p99": percentile(data, 99), "max": data[-1], "mean": sum(data) / len(data)}


def median(values: Iterable[float]) -> float:
    return percentile(values, 50)
