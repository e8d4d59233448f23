"""Never stuck: cancel within 2 s (also mid-stream), node and run time limits, retries of transient errors."""

from __future__ import annotations

import threading
import time

import pytest
from django.utils import timezone

from apps.executions import engine, services
from apps.executions.models import Execution, NodeExecution
from tests.executions.conftest import node_statuses
from tests.factories import published, scripted
from tests.support.http_server import Answer
from tests.support.services import closing_connections, wait_until

IN = ("in", "input", {"name": "text"})
OUT = ("out", "output", {"name": "result"})


def llm_flow(owner, **llm_config):
    node = (
        "l",
        "llm",
        {
            **scripted("one two three four five six seven eight", chunk_size=4, delay_ms=1000),
            "prompt": "{{ x }}",
            **llm_config,
        },
    )
    return published(owner, [IN, node, OUT], [("in", "value", "l", "x"), ("l", "text", "out", "value")])


def test_a_queued_run_is_cancelled_and_a_finished_one_is_not(owner, run):
    version = published(owner, [IN, OUT], [("in", "value", "out", "value")])
    queued = services.execution_run(version=version, inputs={"text": "x"}, owner=owner)
    assert services.execution_cancel(execution=queued)
    queued.refresh_from_db()
    assert (queued.status, queued.error_code) == ("cancelled", "cancelled")
    assert engine.run_execution(queued.pk) is None  # its message arrives later: nothing runs
    assert not queued.node_executions.exists()

    finished = run(version, {"text": "x"})
    assert not services.execution_cancel(execution=finished)
    finished.refresh_from_db()
    assert finished.status == "succeeded"


@pytest.mark.django_db(transaction=True)
def test_cancelling_a_run_while_its_llm_streams_ends_it_within_two_seconds(owner):
    execution = services.execution_run(version=llm_flow(owner), inputs={"text": "x"}, owner=owner)
    worker = threading.Thread(target=closing_connections(engine.run_execution, execution.pk))
    worker.start()
    wait_until(
        lambda: NodeExecution.objects.filter(execution=execution, node_id="l", status="running").exists(),
        what="the llm node to start",
    )
    cancelled_at = time.monotonic()
    assert services.execution_cancel(execution=execution)
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert time.monotonic() - cancelled_at < 2.0
    execution.refresh_from_db()
    assert execution.status == "cancelled"  # the worker did not overwrite it
    assert node_statuses(execution)["l"] == ["cancelled"]
    assert execution.events.order_by("-seq").values_list("type", flat=True)[0] == "node.failed"


def test_a_node_past_its_timeout_ends_the_run_timed_out(owner, run):
    execution = run(llm_flow(owner, timeout_seconds=0.3), {"text": "x"})
    assert (execution.status, execution.error_code) == ("timed_out", "node_timeout")
    assert "did not finish within 0.3 s" in execution.error_message
    assert node_statuses(execution)["l"] == ["timed_out"]


def test_a_run_past_its_time_budget_is_timed_out(owner, run, settings):
    settings.EXECUTION_TIME_BUDGET_SECONDS = 1
    execution = run(llm_flow(owner), {"text": "x"})
    assert (execution.status, execution.error_code) == ("timed_out", "run_timeout")
    assert node_statuses(execution)["l"] == ["timed_out"]
    assert execution.finished_at is not None


def http_flow(owner, url: str, retry: dict | None = None):
    node = ("h", "http_request", {"url": url + "/flaky?x={{ x }}", **({"retry": retry} if retry else {})})
    return published(owner, [IN, node, OUT], [("in", "value", "h", "x"), ("h", "status", "out", "value")])


def test_transient_failures_are_retried_with_backoff(owner, run, http_server):
    http_server.route("/flaky", Answer(503), Answer(429), Answer(200, "ok"))
    execution = run(http_flow(owner, http_server.url, {"attempts": 3, "backoff_seconds": 0.01}), {"text": "x"})
    assert execution.status == "succeeded", execution.error_message
    records = list(execution.node_executions.filter(node_id="h").order_by("attempt").values_list("attempt", "status"))
    assert records == [(1, "failed"), (2, "failed"), (3, "succeeded")]
    assert len(http_server.requests) == 3


def test_retries_stop_when_attempts_are_spent(owner, run, http_server):
    http_server.route("/flaky", Answer(503))
    execution = run(http_flow(owner, http_server.url, {"attempts": 2, "backoff_seconds": 0}), {"text": "x"})
    assert (execution.status, execution.error_code) == ("failed", "http_status")
    assert execution.node_executions.filter(node_id="h").count() == 2


def test_a_permanent_error_is_not_retried(owner, run, http_server):
    http_server.route("/flaky", Answer(404, "no"))
    execution = run(http_flow(owner, http_server.url, {"attempts": 3, "backoff_seconds": 0}), {"text": "x"})
    assert execution.status == "failed"
    assert "answered 404" in execution.error_message
    assert len(http_server.requests) == 1


def test_a_duplicate_message_runs_nothing_twice(owner, run):
    version = published(owner, [IN, OUT], [("in", "value", "out", "value")])
    execution = run(version, {"text": "x"})
    assert engine.run_execution(execution.pk) is None
    assert execution.node_executions.count() == 2
    assert execution.attempt == 1


def test_retry_creates_a_linked_run_of_the_same_version_and_inputs(owner, run):
    execution = run(llm_flow(owner, timeout_seconds=0.2), {"text": "again"})
    retry = services.execution_retry(execution=execution)
    assert (retry.retry_of_id, retry.version_id, retry.inputs, retry.status) == (
        execution.pk,
        execution.version_id,
        {"text": "again"},
        "queued",
    )
    with pytest.raises(services.ExecutionRefused, match="cannot be retried"):
        services.execution_retry(execution=Execution.objects.get(pk=retry.pk))


def test_inputs_that_do_not_match_the_schema_are_refused_and_nothing_is_created(owner):
    version = published(
        owner, [("n", "input", {"name": "n", "schema": {"type": "integer"}}), OUT], [("n", "value", "out", "value")]
    )
    with pytest.raises(services.ExecutionRefused) as refused:
        services.execution_run(version=version, inputs={"n": "seven", "extra": 1}, owner=owner)
    assert refused.value.code == "invalid_inputs"
    assert {error["field"] for error in refused.value.errors} == {"n", None}
    assert "'seven' is not of type 'integer'" in str(refused.value)
    assert not Execution.objects.exists()
    with pytest.raises(services.ExecutionRefused, match="JSON object"):
        services.execution_run(version=version, inputs=["n"], owner=owner)


def test_requeue_puts_a_stuck_run_back_in_the_queue(owner):
    version = published(owner, [IN, OUT], [("in", "value", "out", "value")])
    execution = services.execution_run(version=version, inputs={"text": "x"}, owner=owner)
    Execution.objects.filter(pk=execution.pk).update(
        status="running", lease_owner="dead", lease_expires_at=timezone.now()
    )
    assert services.execution_requeue(execution=execution)
    execution.refresh_from_db()
    assert (execution.status, execution.lease_owner) == ("queued", "")
    assert engine.run_execution(execution.pk) == "succeeded"
