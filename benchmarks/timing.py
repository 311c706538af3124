"""Warm timings shared by the benchmark scripts (run as `python3 benchmarks/NAME.py`)."""

from __future__ import annotations

import statistics
import time


def timed(fn, repeat: int) -> list[float]:
    """Seconds per call of `fn`, `repeat` times, after one warm-up call (tracing, allocation)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def summary(times: list[float]) -> str:
    p90 = sorted(times)[int(len(times) * 0.9)]
    return f"median {statistics.median(times) * 1000:7.1f} ms   p90 {p90 * 1000:7.1f} ms"
