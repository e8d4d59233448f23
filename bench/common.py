"""
What the benchmarks share. `bench.run` is started as `__main__`, so a benchmark module it imports
cannot import it back (that would load a second copy with its own clock and watchdog): shared
helpers live here.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class BenchTimeout(Exception):
    """A deadline passed; the bench stops and cleans up instead of hanging."""


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise BenchTimeout(f"{what} did not happen within {timeout:g} s")
        time.sleep(interval)  # polling a condition in another process, bounded by the deadline above


def percentile(values: list[float], p: float) -> float:
    """Nearest rank of sorted `values`."""
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]
