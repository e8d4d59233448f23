"""
Pool numbers for /metrics. Worker processes publish theirs in the shared cache (Redis when
configured) every PUBLISH_EVERY_SECONDS; the process serving /metrics reports its own pool fresh
and the others' as published, each under a `worker` label (host:pid).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from apps.agents.browser.pool import PUBLISH_EVERY_SECONDS, current_pool

logger = logging.getLogger(__name__)

CACHE_INDEX = "browser-pool:workers"


def _cache_key(worker: str) -> str:
    return f"browser-pool:{worker}"


def publish(snapshot: dict[str, Any]) -> None:
    """Leave this worker's numbers in the shared cache, where the web process's /metrics reads them."""
    from django.core.cache import cache

    ttl = int(PUBLISH_EVERY_SECONDS * 3)
    cache.set(_cache_key(snapshot["worker"]), snapshot, ttl)
    index = cache.get(CACHE_INDEX) or {}
    alive = cache.get_many([_cache_key(worker) for worker in index])
    # Read-modify-write: a worker lost to a concurrent write adds itself again on its next publish.
    index = {worker: True for worker in index if _cache_key(worker) in alive}
    index[snapshot["worker"]] = True
    cache.set(CACHE_INDEX, index, ttl * 20)


def snapshots() -> list[dict[str, Any]]:
    """This process's pool (fresh) and what other workers published (up to PUBLISH_EVERY_SECONDS old)."""
    from django.core.cache import cache

    pool = current_pool()
    local = pool.snapshot() if pool is not None else None
    found = [local] if local else []
    index = cache.get(CACHE_INDEX) or {}
    others = [worker for worker in index if local is None or worker != local["worker"]]
    found.extend(cache.get_many([_cache_key(worker) for worker in others]).values())
    return found


class BrowserPoolCollector(Collector):
    """Pool numbers per worker process (`worker` label: host:pid) for /metrics."""

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator:
        try:
            yield from self._collect(snapshots())
        except Exception:
            logger.warning("browser pool metrics unavailable", exc_info=True)

    def _collect(self, found: list[dict[str, Any]]) -> Iterator:
        gauges = {
            "processes": GaugeMetricFamily("switchboard_browser_processes", "Chromium processes.", labels=["worker"]),
            "contexts": GaugeMetricFamily(
                "switchboard_browser_contexts_busy", "Browser contexts held by runs.", labels=["worker"]
            ),
            "capacity": GaugeMetricFamily(
                "switchboard_browser_contexts_capacity", "Contexts the worker may open.", labels=["worker"]
            ),
            "breaker_open": GaugeMetricFamily(
                "switchboard_browser_breaker_open", "1 while failed launches keep the browser off.", labels=["worker"]
            ),
        }
        counters = {
            "launches": CounterMetricFamily("switchboard_browser_launches", "Browsers started.", labels=["worker"]),
            "launch_failures": CounterMetricFamily(
                "switchboard_browser_launch_failures", "Browser launches that failed.", labels=["worker"]
            ),
            "crashes": CounterMetricFamily(
                "switchboard_browser_crashes", "Browsers that exited unexpectedly.", labels=["worker"]
            ),
            "hangs": CounterMetricFamily(
                "switchboard_browser_hangs", "Browsers killed after they stopped responding.", labels=["worker"]
            ),
            "idle": CounterMetricFamily(
                "switchboard_browser_idle_closed", "Browsers closed when idle.", labels=["worker"]
            ),
        }
        failures = CounterMetricFamily(
            "switchboard_browser_action_failures", "Browser actions that failed, by code.", labels=["worker", "code"]
        )
        for snapshot in found:
            worker = snapshot["worker"]
            for name, family in gauges.items():
                family.add_metric([worker], float(snapshot.get(name, 0)))
            for name, family in counters.items():
                family.add_metric([worker], float(snapshot.get(name, 0)))
            for code, count in sorted(snapshot.get("action_failures", {}).items()):
                failures.add_metric([worker, code], float(count))
        yield from gauges.values()
        yield from counters.values()
        yield failures
