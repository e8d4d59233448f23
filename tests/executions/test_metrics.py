"""Run metrics at /metrics, from the database, without per-user labels."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from apps.executions import services
from apps.executions.models import Execution
from tests.factories import published


def metric_lines(client) -> dict[str, float]:
    body = client.get("/metrics").content.decode()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith("switchboard_")
    }


def test_runs_by_status_node_durations_and_reaping_are_exported(client, owner, run):
    version = published(
        owner, [("in", "input", {"name": "t"}), ("o", "output", {"name": "o"})], [("in", "value", "o", "value")]
    )
    run(version, {"t": "x"})
    run(version, {"t": "y"})
    services.execution_run(version=version, inputs={"t": "z"}, owner=owner)
    stuck = services.execution_run(version=version, inputs={"t": "w"}, owner=owner)
    Execution.objects.filter(pk=stuck.pk).update(
        status="running", lease_owner="gone", lease_expires_at=timezone.now() - timedelta(seconds=1), attempt=3
    )
    services.reap()

    metrics = metric_lines(client)
    assert metrics['switchboard_runs{status="succeeded"}'] == 2
    assert metrics['switchboard_runs{status="queued"}'] == 1
    assert metrics['switchboard_runs{status="failed"}'] == 1
    assert metrics["switchboard_runs_active"] == 1
    assert 'switchboard_node_duration_seconds_avg{type="input"}' in metrics
    assert metrics["switchboard_runs_reaped_total"] == 1
    assert metrics["switchboard_runs_quarantined_total"] == 1
    assert not any("owner" in name or "user" in name for name in metrics)
