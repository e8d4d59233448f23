"""`POST workflows/<id>/run/`: create and enqueue a run in one call (202), idempotently."""

from __future__ import annotations

from unittest import mock

import pytest

from apps.executions import engine, services, tasks
from apps.executions.models import Execution
from apps.users.models import AuditEntry
from apps.workflows.models import Workflow
from apps.workflows.services import workflow_publish
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


def url(workflow_id: int) -> str:
    return f"/api/v1/workflows/{workflow_id}/run/"


def test_it_creates_and_enqueues_a_run_and_answers_202(api, owner, django_capture_on_commit_callbacks):
    version = echo(owner)
    with mock.patch.object(tasks.run_execution, "send") as send, django_capture_on_commit_callbacks(execute=True):
        response = api.post(url(version.workflow_id), {"inputs": {"text": "hello"}})
        send.assert_not_called()  # not before the run is committed
    assert response.status_code == 202, response.json()
    body = response.json()
    execution = Execution.objects.get(pk=body["id"])
    assert (execution.owner, execution.version, execution.status, execution.trigger) == (
        owner,
        version,
        "queued",
        "api",
    )
    assert (body["status"], body["workflow"], body["version"], body["inputs"]) == (
        "queued",
        version.workflow_id,
        1,
        {"text": "hello"},
    )
    send.assert_called_once_with(str(execution.pk))
    assert engine.run_execution(execution.pk) == "succeeded"
    assert api.get(f"/api/v1/executions/{execution.pk}/").json()["outputs"] == {"result": "hello"}


def test_it_runs_the_latest_version_unless_told_otherwise(api, owner):
    version = echo(owner)
    workflow_publish(workflow=version.workflow, actor=owner)
    assert api.post(url(version.workflow_id), {"inputs": {"text": "x"}}).json()["version"] == 2
    assert api.post(url(version.workflow_id), {"inputs": {"text": "x"}, "version": 1}).json()["version"] == 1


def test_running_needs_the_execute_scope(api_with, owner):
    version = echo(owner)
    for scopes in (("read",), ("read", "write")):
        response = api_with(*scopes).post(url(version.workflow_id), {"inputs": {"text": "x"}})
        assert response.status_code == 403
        assert error(response)["code"] == "missing_scope"
        assert "'execute'" in error(response)["message"]
    assert not Execution.objects.exists()
    assert api_with("execute").post(url(version.workflow_id), {"inputs": {"text": "x"}}).status_code == 202


def test_another_users_or_an_unknown_workflow_is_404(api, stranger):
    theirs = echo(stranger)
    for workflow_id in (theirs.workflow_id, 999_999, 2**70, "abc"):
        response = api.post(url(workflow_id), {"inputs": {"text": "x"}})
        assert (response.status_code, error(response)["code"]) == (404, "not_found")
    assert not Execution.objects.exists()


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"inputs": {"text": ["a"]}}, {"inputs.text": ["['a'] is not of type 'string'"]}),
        ({"inputs": {}}, {"inputs.text": ["'text' is a required property"]}),
        ({"inputs": [1]}, {"inputs": ['Expected a dictionary of items but got type "list".']}),
        ({"inputs": {"text": "x"}, "version": 3}, {"version": ["The workflow has no version 3."]}),
    ],
)
def test_invalid_bodies_are_400_naming_the_field_and_run_nothing(api, owner, body, fields):
    version = echo(owner)
    response = api.post(url(version.workflow_id), body)
    assert response.status_code == 400
    assert error(response)["fields"] == fields
    assert not Execution.objects.exists()


def test_a_workflow_never_published_is_a_409(api, owner):
    draft = Workflow.objects.create(owner=owner, name="draft")
    response = api.post(url(draft.pk), {"inputs": {}})
    assert (response.status_code, error(response)["code"]) == (409, "conflict")
    assert "no published version" in error(response)["message"]
    assert not Execution.objects.exists()


def test_an_idempotent_run_starts_one_run_and_replays_its_answer(api, owner):
    version = echo(owner)
    first = api.post(url(version.workflow_id), {"inputs": {"text": "once"}}, **{"Idempotency-Key": "run-1"})
    again = api.post(url(version.workflow_id), {"inputs": {"text": "once"}}, **{"Idempotency-Key": "run-1"})
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Execution.objects.count() == 1
    other = api.post(url(version.workflow_id), {"inputs": {"text": "twice"}}, **{"Idempotency-Key": "run-1"})
    assert (other.status_code, error(other)["code"]) == (422, "idempotency_key_reused")
    assert Execution.objects.count() == 1
    assert AuditEntry.objects.filter(action="workflow.run", object_id=str(version.workflow_id)).count() == 1


def test_a_run_that_crashed_on_the_server_can_be_sent_again_with_the_same_key(api, owner):
    version = echo(owner)
    body, key = {"inputs": {"text": "x"}}, {"Idempotency-Key": "run-crash"}
    crash = mock.patch.object(services, "execution_run", side_effect=RuntimeError("database went away"))
    with crash, pytest.raises(RuntimeError):
        api.post(url(version.workflow_id), body, **key)
    response = api.post(url(version.workflow_id), body, **key)
    assert response.status_code == 202, response.json()
    assert Execution.objects.count() == 1
