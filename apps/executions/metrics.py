"""
Run metrics for /metrics, read from the database at scrape time.

Workers are separate processes (often on other machines), so their in-process counters would
never reach the web process that serves /metrics; the database sees every run. No per-user labels.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

from django.db.models import Avg, Count, F, Max
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from apps.executions.models import Execution, ExecutionEvent, NodeExecution

logger = logging.getLogger(__name__)

WINDOW = timedelta(minutes=15)


class ExecutionCollector(Collector):
    def describe(self) -> list:
        # Registering calls describe() (or, without it, collect(), which would query the
        # database while apps load); the names are unique to this collector anyway.
        return []

    def collect(self) -> Iterator:
        try:
            yield from self._collect()
        except Exception:
            # A scrape must not fail because the database hiccuped; the readiness probe reports that.
            logger.warning("execution metrics unavailable", exc_info=True)

    def _collect(self) -> Iterator:
        since = timezone.now() - WINDOW
        runs = GaugeMetricFamily("switchboard_runs", "Runs by status.", labels=["status"])
        counts = dict(Execution.objects.order_by().values_list("status").annotate(n=Count("pk")))
        for status in Execution.Status.values:
            runs.add_metric([status], counts.get(status, 0))
        yield runs
        yield GaugeMetricFamily(
            "switchboard_runs_active",
            "Runs queued or running.",
            value=counts.get("queued", 0) + counts.get("running", 0),
        )

        durations = (
            NodeExecution.objects.filter(finished_at__gte=since)
            .exclude(status=NodeExecution.Status.SKIPPED)
            .order_by()
            .values("node_type")
            .annotate(avg=Avg("duration_ms"), max=Max("duration_ms"), n=Count("pk"))
        )
        average = GaugeMetricFamily(
            "switchboard_node_duration_seconds_avg", "Mean node duration, last 15 minutes.", labels=["type"]
        )
        longest = GaugeMetricFamily(
            "switchboard_node_duration_seconds_max", "Longest node duration, last 15 minutes.", labels=["type"]
        )
        for row in durations:
            average.add_metric([row["node_type"]], (row["avg"] or 0) / 1000)
            longest.add_metric([row["node_type"]], (row["max"] or 0) / 1000)
        yield average
        yield longest

        wait = (
            Execution.objects.filter(started_at__gte=since, queued_at__isnull=False)
            .order_by()
            .aggregate(avg=Avg(F("started_at") - F("queued_at")))["avg"]
        )
        yield GaugeMetricFamily(
            "switchboard_queue_wait_seconds_avg",
            "Mean time from queued to started, last 15 minutes.",
            value=wait.total_seconds() if wait else 0.0,
        )
        reaped = ExecutionEvent.objects.filter(type="execution.status", payload__reason="lease expired")
        yield CounterMetricFamily(
            "switchboard_runs_reaped",
            "Runs whose worker stopped, requeued or failed by the reaper.",
            value=reaped.count(),
        )
        yield CounterMetricFamily(
            "switchboard_runs_quarantined",
            "Runs failed after their worker stopped too often.",
            value=Execution.objects.filter(error_code="worker_lost").count(),
        )
