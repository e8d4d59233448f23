"""`executions/<id>/start/`, `cancel/` and `retry/`: state changes through the API, each needing `execute`."""

from __future__ import annotations

from unittest import mock

import pytest

from apps.executions import engine, services, tasks
from apps.executions.models import Execution
from apps.users.models import AuditEntry
from tests.api.conftest import error
from tests.factories import published

pytestmark = pytest.mark.django_db


def echo(owner):
    return published(
        owner,
        [("in", "input", {"name": "text", "schema": {"type": "string"}}), ("out", "output", {"name": "result"})],
        [("in", "value", "out", "value")],
        name="echo",
    )


def pending(owner) -> Execution:
    return services.execution_create(version=echo(owner), inputs={"text": "hi"}, owner=owner)


def succeeded(owner) -> Execution:
    execution = services.execution_run(version=echo(owner), inputs={"text": "hi"}, owner=owner)
    engine.run_execution(execution.pk)
    execution.refresh_from_db()
    return execution


def cancelled(owner) -> Execution:
    execution = pending(owner)
    services.execution_cancel(execution=execution)
    execution.refresh_from_db()
    return execution


def url(execution: Execution, action: str) -> str:
    return f"/api/v1/executions/{execution.pk}/{action}/"


def unchanged(execution: Execution) -> bool:
    before = {field: getattr(execution, field) for field in ("status", "queued_at", "finished_at", "error_code")}
    fresh = Execution.objects.get(pk=execution.pk)
    return before == {field: getattr(fresh, field) for field in before}


# --- start -----------------------------------------------------------------------------


def test_start_queues_a_pending_run_and_sends_it_to_the_workers_on_commit(
    api, owner, django_capture_on_commit_callbacks
):
    execution = pending(owner)
    with mock.patch.object(tasks.run_execution, "send") as send, django_capture_on_commit_callbacks(execute=True):
        response = api.post(url(execution, "start"))
        send.assert_not_called()  # not before the change is committed
    send.assert_called_once_with(str(execution.pk))
    assert response.status_code == 200, response.json()
    assert (response.json()["status"], response.json()["id"]) == ("queued", str(execution.pk))
    assert response.json()["queued_at"]
    execution.refresh_from_db()
    assert (execution.status, execution.queued_at is not None) == ("queued", True)
    assert engine.run_execution(execution.pk) == "succeeded"


def test_starting_twice_is_a_409_naming_the_status(api, owner):
    execution = pending(owner)
    assert api.post(url(execution, "start")).status_code == 200
    execution.refresh_from_db()
    again = api.post(url(execution, "start"))
    assert again.status_code == 409
    assert error(again) == {
        "code": "conflict",
        "message": "The run is queued; only a pending run can be started.",
        "fields": {},
    }
    assert unchanged(execution)


# --- cancel ----------------------------------------------------------------------------


def test_cancel_stops_a_pending_or_queued_run(api, owner):
    waiting = pending(owner)
    queued = services.execution_run(version=echo(owner), inputs={"text": "x"}, owner=owner)
    for execution in (waiting, queued):
        response = api.post(url(execution, "cancel"))
        assert response.status_code == 200, response.json()
        body = response.json()
        assert (body["status"], body["error"]) == (
            "cancelled",
            {"code": "cancelled", "message": "cancelled by request"},
        )
        assert body["finished_at"]
        assert Execution.objects.get(pk=execution.pk).status == "cancelled"
    assert engine.run_execution(queued.pk) is None  # its message arrives later: nothing runs


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (succeeded, "The run already succeeded; only a pending, queued or running run can be cancelled."),
        (cancelled, "The run was already cancelled; only a pending, queued or running run can be cancelled."),
    ],
)
def test_cancelling_a_finished_run_is_a_409_and_changes_nothing(api, owner, make, message):
    execution = make(owner)
    events = execution.events.count()
    response = api.post(url(execution, "cancel"))
    assert response.status_code == 409
    assert error(response) == {"code": "conflict", "message": message, "fields": {}}
    assert unchanged(execution)
    assert execution.events.count() == events


# --- retry -----------------------------------------------------------------------------


def test_retry_makes_a_new_queued_run_of_the_same_version_and_inputs(api, owner):
    original = cancelled(owner)
    response = api.post(url(original, "retry"))
    assert response.status_code == 201, response.json()
    body = response.json()
    retry = Execution.objects.get(pk=body["id"])
    assert retry.pk != original.pk
    assert (retry.retry_of_id, retry.version_id, retry.inputs, retry.status) == (
        original.pk,
        original.version_id,
        {"text": "hi"},
        "queued",
    )
    assert (body["retry_of"], body["status"], body["version"]) == (str(original.pk), "queued", 1)
    assert Execution.objects.get(pk=original.pk).status == "cancelled"


@pytest.mark.parametrize("make", [pending, succeeded])
def test_only_failed_cancelled_or_timed_out_runs_are_retried(api, owner, make):
    execution = make(owner)
    response = api.post(url(execution, "retry"))
    assert response.status_code == 409
    assert error(response) == {
        "code": "conflict",
        "message": f"A {execution.status} run cannot be retried.",
        "fields": {},
    }
    assert Execution.objects.count() == 1


# --- for every action ------------------------------------------------------------------


@pytest.mark.parametrize("action", ["start", "cancel", "retry"])
def test_actions_need_the_execute_scope(api_with, owner, action):
    execution = cancelled(owner) if action == "retry" else pending(owner)
    for scopes in (("read",), ("read", "write")):
        response = api_with(*scopes).post(url(execution, action))
        assert response.status_code == 403
        assert error(response) == {
            "code": "missing_scope",
            "message": "The API key lacks the 'execute' scope.",
            "fields": {},
        }
    assert unchanged(execution)
    assert Execution.objects.count() == 1
    assert api_with("execute").post(url(execution, action)).status_code in {200, 201}


@pytest.mark.parametrize("action", ["start", "cancel", "retry"])
def test_actions_on_another_users_run_are_404_and_change_nothing(api, stranger, action):
    theirs = cancelled(stranger) if action == "retry" else pending(stranger)
    response = api.post(url(theirs, action))
    assert (response.status_code, error(response)["code"]) == (404, "not_found")
    assert unchanged(theirs)
    assert Execution.objects.count() == 1


def test_actions_leave_an_audit_entry_naming_the_run(api, owner):
    execution = pending(owner)
    api.post(url(execution, "start"))
    api.post(url(execution, "cancel"))
    retry = api.post(url(execution, "retry")).json()
    api.post(url(execution, "cancel"))  # refused: not recorded
    entries = list(AuditEntry.objects.order_by("created_at", "pk").values_list("action", "object_type", "object_id"))
    assert entries == [
        ("execution.start", "executions.execution", str(execution.pk)),
        ("execution.cancel", "executions.execution", str(execution.pk)),
        ("execution.retry", "executions.execution", str(execution.pk)),
    ]
    assert Execution.objects.filter(pk=retry["id"], retry_of=execution).exists()
