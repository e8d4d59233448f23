"""A worker that dies mid-run: the reaper requeues the run, which resumes from its completed nodes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta

import pytest
from django.db.models import Count
from django.utils import timezone

from apps.billing import services as billing
from apps.billing.models import CreditTransaction
from apps.executions import engine, services
from apps.executions.models import Execution, NodeExecution
from tests.factories import published, scripted
from tests.support.services import BASE_DIR, process_env, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

IN = ("in", "input", {"name": "text"})


def slow_flow(owner):
    slow = ("slow", "llm", {**scripted("done {input}", chunk_size=2, delay_ms=400), "prompt": "{{ x }}"})
    return published(
        owner,
        [
            IN,
            ("first", "template", {"template": "1:{{ x }}"}),
            slow,
            ("last", "template", {"template": "{{ x }}!"}),
            ("out", "output", {"name": "result"}),
        ],
        [
            ("in", "value", "first", "x"),
            ("first", "text", "slow", "x"),
            ("slow", "text", "last", "x"),
            ("last", "text", "out", "value"),
        ],
    )


def test_a_run_whose_worker_is_killed_completes_once_after_the_reaper(owner):
    execution = services.execution_run(version=slow_flow(owner), inputs={"text": "go"}, owner=owner)
    worker = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            f"from apps.executions import engine; engine.run_execution('{execution.pk}')",
        ],
        cwd=BASE_DIR,
        env=process_env(EXECUTION_LEASE_SECONDS="2"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: (
                NodeExecution.objects.filter(execution=execution, node_id="slow", status="running").exists()
                or worker.poll() is not None
            ),
            timeout=60,
            what="the worker to reach the slow node",
        )
        assert worker.poll() is None, "the worker ended before it could be killed"
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
    finally:
        if worker.poll() is None:
            worker.kill()
    execution.refresh_from_db()
    assert execution.status == "running"  # what a dead worker leaves behind

    assert services.reap(now=timezone.now() + timedelta(seconds=5))["requeued"] == 1
    assert engine.run_execution(execution.pk) == "succeeded"

    execution.refresh_from_db()
    assert execution.outputs == {"result": "done 1:go!"}
    assert execution.attempt == 2
    succeeded = dict(
        execution.node_executions.filter(status="succeeded").values_list("node_id").annotate(n=Count("pk"))
    )
    assert succeeded == {"in": 1, "first": 1, "slow": 1, "last": 1, "out": 1}
    lost = execution.node_executions.get(node_id="slow", status="failed")
    assert (lost.error_code, lost.attempt) == ("worker_lost", 1)
    assert execution.node_executions.get(node_id="slow", status="succeeded").attempt == 2
    seqs = list(execution.events.values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))

    # Exactly one charge per node that finished: the lost attempt paid nothing, the resumed one once.
    charges = CreditTransaction.objects.filter(execution=execution, kind="usage")
    charged_nodes = execution.node_executions.exclude(cost=0)
    assert list(charged_nodes.values_list("node_id", "attempt")) == [("slow", 2)]
    assert [(row.node_execution_id, row.amount) for row in charges] == [(node.pk, -node.cost) for node in charged_nodes]
    assert execution.cost == charged_nodes.get().cost > 0
    assert billing.balance_of(owner) == sum(
        CreditTransaction.objects.filter(user=owner).values_list("amount", flat=True)
    )


def test_a_run_that_lost_its_worker_too_often_is_failed_not_requeued(owner):
    version = published(owner, [IN, ("out", "output", {"name": "r"})], [("in", "value", "out", "value")])
    execution = services.execution_run(version=version, inputs={"text": "x"}, owner=owner)
    past = timezone.now() - timedelta(seconds=1)
    Execution.objects.filter(pk=execution.pk).update(
        status="running", lease_owner="dead", lease_expires_at=past, attempt=3
    )
    assert services.reap()["quarantined"] == 1
    execution.refresh_from_db()
    assert (execution.status, execution.error_code) == ("failed", "worker_lost")
    assert "stopped 3 times" in execution.error_message
    assert engine.run_execution(execution.pk) is None


def test_a_live_lease_is_left_alone_and_a_lost_message_is_resent(owner, settings):
    version = published(owner, [IN, ("out", "output", {"name": "r"})], [("in", "value", "out", "value")])
    running = services.execution_run(version=version, inputs={"text": "x"}, owner=owner)
    Execution.objects.filter(pk=running.pk).update(
        status="running", lease_owner="alive", lease_expires_at=timezone.now() + timedelta(seconds=30)
    )
    stale = services.execution_run(version=version, inputs={"text": "y"}, owner=owner)
    Execution.objects.filter(pk=stale.pk).update(queued_at=timezone.now() - timedelta(minutes=10))
    counts = services.reap()
    assert (counts["requeued"], counts["resent"]) == (0, 1)
    running.refresh_from_db()
    assert running.lease_owner == "alive"
