"""`executions/`: listing (filters, cursor pages, query counts), creating a pending run, reading one and its nodes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import resolve
from django.utils import timezone

from apps.executions import engine, services
from apps.executions.api import views
from apps.executions.models import Execution, NodeExecution
from apps.users.models import AuditEntry
from apps.workflows.models import Workflow
from tests.api.conftest import error
from tests.factories import published

pytestmark = pytest.mark.django_db

URL = "/api/v1/executions/"
ITEM_FIELDS = {
    "id",
    "workflow",
    "version",
    "status",
    "trigger",
    "inputs",
    "outputs",
    "error",
    "created_at",
    "queued_at",
    "started_at",
    "finished_at",
    "duration_ms",
    "retry_of",
    "cost",
}
NODE_FIELDS = {
    "node_id",
    "node_type",
    "status",
    "attempt",
    "inputs",
    "outputs",
    "error",
    "usage",
    "started_at",
    "finished_at",
    "duration_ms",
    "cost",
    "artifacts",
}


def echo(owner, name: str = "echo"):
    """input `text` (a string) -> output `result`, published as version 1."""
    return published(
        owner,
        [("in", "input", {"name": "text", "schema": {"type": "string"}}), ("out", "output", {"name": "result"})],
        [("in", "value", "out", "value")],
        name=name,
    )


def broken(owner):
    """A template that fails at run time: the run ends `failed`."""
    return published(
        owner,
        [("in", "input", {"name": "text"}), ("t", "template", {"template": "{{ x.missing.deeper }}"})],
        [("in", "value", "t", "x")],
        name="broken",
    )


def finished(version, inputs: dict | None = None) -> Execution:
    execution = services.execution_run(version=version, inputs=inputs or {"text": "hi"}, owner=version.workflow.owner)
    engine.run_execution(execution.pk)
    execution.refresh_from_db()
    return execution


def pending(version, inputs: dict | None = None) -> Execution:
    return services.execution_create(version=version, inputs=inputs or {"text": "hi"}, owner=version.workflow.owner)


def ids(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [row["id"] for row in response.json()["results"]]


# --- list ------------------------------------------------------------------------------


def test_it_lists_the_users_runs_newest_first_with_their_summary(api, owner, stranger):
    version = echo(owner)
    done = finished(version)
    waiting = pending(version)
    pending(echo(stranger))
    body = api.get(URL).json()
    assert [row["id"] for row in body["results"]] == [str(waiting.pk), str(done.pk)]
    row = body["results"][1]
    assert set(row) == ITEM_FIELDS
    assert row["workflow"] == version.workflow_id
    assert (row["version"], row["status"], row["trigger"]) == (1, "succeeded", "api")
    assert (row["inputs"], row["outputs"], row["error"]) == ({"text": "hi"}, {"result": "hi"}, None)
    assert row["duration_ms"] == done.duration_ms
    assert row["started_at"]
    assert row["finished_at"]
    assert row["retry_of"] is None
    assert body["results"][0]["duration_ms"] is None


def test_a_failed_run_shows_its_error(api, owner):
    failed = finished(broken(owner), {"text": "x"})
    assert failed.status == "failed"
    row = api.get(URL).json()["results"][0]
    assert row["status"] == "failed"
    assert row["error"] == {"code": failed.error_code, "message": failed.error_message}
    assert row["error"]["code"]


def test_it_filters_by_one_or_several_statuses(api, owner):
    version = echo(owner)
    done, waiting = finished(version), pending(version)
    cancelled = pending(version)
    services.execution_cancel(execution=cancelled)
    assert ids(api.get(URL, {"status": "pending"})) == [str(waiting.pk)]
    assert set(ids(api.get(URL, {"status": "succeeded,cancelled"}))) == {str(done.pk), str(cancelled.pk)}


def test_it_filters_by_workflow(api, owner):
    first, second = echo(owner, "first"), echo(owner, "second")
    mine = pending(first)
    pending(second)
    assert ids(api.get(URL, {"workflow": first.workflow_id})) == [str(mine.pk)]
    too_big = api.get(URL, {"workflow": 2**70})
    assert (too_big.status_code, set(error(too_big)["fields"])) == (400, {"workflow"})


def test_it_filters_by_a_window_of_creation_times(api, owner):
    version = echo(owner)
    now = timezone.now().replace(microsecond=0)
    old, middle, new = pending(version), pending(version), pending(version)
    for execution, days in ((old, 10), (middle, 5), (new, 1)):
        Execution.objects.filter(pk=execution.pk).update(created_at=now - timedelta(days=days))
    window = {
        "created_after": (now - timedelta(days=5)).isoformat(),
        "created_before": (now - timedelta(days=1)).isoformat(),
    }
    assert ids(api.get(URL, window)) == [str(middle.pk)]
    assert ids(api.get(URL, {"created_after": (now - timedelta(days=6)).isoformat()})) == [str(new.pk), str(middle.pk)]


def test_bad_filter_values_are_400_naming_the_parameter(api):
    for parameter, value in (
        ("created_after", "yesterday"),
        ("created_before", "2024-13-45T00:00:00"),
        ("status", "succeeded,exploded"),
        ("workflow", "abc"),
    ):
        response = api.get(URL, {parameter: value})
        assert response.status_code == 400, (parameter, response.json())
        assert error(response)["code"] == "invalid"
        assert set(error(response)["fields"]) == {parameter}
        assert error(response)["message"].startswith(f"{parameter}: ")


def test_it_pages_with_a_cursor_that_is_stable_under_inserts(api, owner):
    version = echo(owner)
    runs = [pending(version) for _ in range(5)]
    newest_first = [str(run.pk) for run in reversed(runs)]
    first = api.get(URL, {"page_size": 2}).json()
    assert [row["id"] for row in first["results"]] == newest_first[:2]
    assert first["previous"] is None
    pending(version)  # arrives between pages: the cursor is not shifted by it
    seen = [row["id"] for row in first["results"]]
    page = first
    while page["next"]:
        page = api.get(page["next"]).json()
        seen += [row["id"] for row in page["results"]]
    assert seen == newest_first


def test_the_page_size_is_capped_at_100(api, owner):
    version = echo(owner)
    Execution.objects.bulk_create(
        Execution(owner=owner, workflow=version.workflow, version=version, time_budget_seconds=60) for _ in range(101)
    )
    assert len(api.get(URL, {"page_size": 1000}).json()["results"]) == 100


def test_the_list_costs_the_same_few_queries_for_2_or_30_runs(api, owner, django_assert_num_queries):
    version = echo(owner)

    def make(count: int) -> None:
        Execution.objects.bulk_create(
            Execution(owner=owner, workflow=version.workflow, version=version, time_budget_seconds=60)
            for _ in range(count)
        )

    make(2)
    api.get(URL)  # the key's first use is recorded once: not part of the count
    with django_assert_num_queries(2):  # the key (with its owner), the page (with each version)
        assert len(api.get(URL, {"page_size": 100}).json()["results"]) == 2
    make(28)
    with django_assert_num_queries(2):
        assert len(api.get(URL, {"page_size": 100}).json()["results"]) == 30


def test_reading_runs_needs_the_read_scope(api_with, owner):
    pending(echo(owner))
    assert api_with("read").get(URL).status_code == 200
    response = api_with("write", "execute").get(URL)
    assert (response.status_code, error(response)["code"]) == (403, "missing_scope")


# --- create ----------------------------------------------------------------------------


def test_it_creates_a_pending_run_of_the_latest_version(api, owner):
    version = echo(owner)
    response = api.post(URL, {"workflow": version.workflow_id, "inputs": {"text": "hello"}})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == ITEM_FIELDS
    execution = Execution.objects.get(pk=body["id"])
    assert (execution.owner, execution.version, execution.status) == (owner, version, "pending")
    assert (body["status"], body["version"], body["inputs"], body["queued_at"]) == (
        "pending",
        1,
        {"text": "hello"},
        None,
    )
    assert AuditEntry.objects.filter(action="execution.create", object_id=body["id"]).exists()


def test_it_creates_a_run_of_a_chosen_version(api, owner):
    from apps.workflows.services import workflow_publish

    first = echo(owner)
    workflow_publish(workflow=first.workflow, actor=owner)
    response = api.post(URL, {"workflow": first.workflow_id, "version": 1, "inputs": {"text": "x"}})
    assert (response.status_code, response.json()["version"]) == (201, 1)
    latest = api.post(URL, {"workflow": first.workflow_id, "inputs": {"text": "x"}})
    assert latest.json()["version"] == 2


def test_creating_a_run_needs_the_execute_scope(api_with, owner):
    version = echo(owner)
    for scopes in (("read",), ("read", "write")):
        response = api_with(*scopes).post(URL, {"workflow": version.workflow_id, "inputs": {"text": "x"}})
        assert response.status_code == 403
        assert error(response) == {
            "code": "missing_scope",
            "message": "The API key lacks the 'execute' scope.",
            "fields": {},
        }
    assert not Execution.objects.exists()
    created = api_with("execute").post(URL, {"workflow": version.workflow_id, "inputs": {"text": "x"}})
    assert created.status_code == 201


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"inputs": {"text": 5}}, {"inputs.text"}),
        ({"inputs": {}}, {"inputs.text"}),  # a missing required input is named
        ({"inputs": "text"}, {"inputs"}),
        ({"version": 9, "inputs": {"text": "x"}}, {"version"}),
        ({"version": 0, "inputs": {"text": "x"}}, {"version"}),
        ({"version": 2**70, "inputs": {"text": "x"}}, {"version"}),
    ],
)
def test_invalid_bodies_are_400_naming_the_field_and_create_nothing(api, owner, body, fields):
    version = echo(owner)
    response = api.post(URL, {"workflow": version.workflow_id, **body})
    assert response.status_code == 400, response.json()
    assert error(response)["code"] == "invalid"
    assert set(error(response)["fields"]) == fields
    assert not Execution.objects.exists()


def test_inputs_that_break_the_schema_name_the_input_and_why(api, owner):
    version = echo(owner)
    response = api.post(URL, {"workflow": version.workflow_id, "inputs": {"text": 5}})
    assert error(response)["fields"] == {"inputs.text": ["5 is not of type 'string'"]}
    assert error(response)["message"] == "inputs.text: 5 is not of type 'string'"


def test_an_unknown_or_foreign_workflow_is_a_400_on_workflow(api, stranger):
    theirs = echo(stranger)
    for workflow in (theirs.workflow_id, 999_999, 2**70, "abc"):
        response = api.post(URL, {"workflow": workflow, "inputs": {"text": "x"}})
        assert response.status_code == 400
        assert set(error(response)["fields"]) == {"workflow"}
    assert error(api.post(URL, {"workflow": theirs.workflow_id}))["fields"] == {"workflow": ["No such workflow."]}
    assert not Execution.objects.exists()


def test_a_workflow_never_published_is_a_409(api, owner):
    draft = Workflow.objects.create(owner=owner, name="draft")
    response = api.post(URL, {"workflow": draft.pk, "inputs": {}})
    assert response.status_code == 409
    assert error(response) == {
        "code": "conflict",
        "message": "The workflow has no published version; publish it before running it.",
        "fields": {},
    }
    assert not Execution.objects.exists()


def test_an_idempotent_create_makes_one_run_and_replays_its_answer(api, owner):
    version = echo(owner)
    body = {"workflow": version.workflow_id, "inputs": {"text": "once"}}
    first = api.post(URL, body, **{"Idempotency-Key": "create-1"})
    again = api.post(URL, body, **{"Idempotency-Key": "create-1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Execution.objects.count() == 1
    other = api.post(URL, {**body, "inputs": {"text": "twice"}}, **{"Idempotency-Key": "create-1"})
    assert (other.status_code, error(other)["code"]) == (422, "idempotency_key_reused")
    assert Execution.objects.count() == 1


# --- one run ---------------------------------------------------------------------------


def test_it_shows_one_run_with_its_nodes_in_start_order(api, owner):
    execution = finished(echo(owner))
    body = api.get(f"{URL}{execution.pk}/").json()
    assert set(body) == ITEM_FIELDS | {"nodes"}
    assert (body["id"], body["status"], body["outputs"]) == (str(execution.pk), "succeeded", {"result": "hi"})
    assert [node["node_id"] for node in body["nodes"]] == ["in", "out"]
    node = body["nodes"][0]
    assert set(node) == NODE_FIELDS
    assert (node["node_type"], node["status"], node["attempt"], node["error"]) == ("input", "succeeded", 1, None)
    assert node["outputs"] == {"value": "hi"}


def test_a_failed_node_shows_its_error(api, owner):
    execution = finished(broken(owner), {"text": "x"})
    nodes = api.get(f"{URL}{execution.pk}/").json()["nodes"]
    failed = next(node for node in nodes if node["node_id"] == "t")
    record = NodeExecution.objects.get(execution=execution, node_id="t")
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": record.error_code, "message": record.error_message}


def add_nodes(execution: Execution, count: int) -> None:
    start = timezone.now()
    NodeExecution.objects.bulk_create(
        NodeExecution(
            execution=execution, node_id=f"n{i}", node_type="template", started_at=start + timedelta(seconds=i)
        )
        for i in range(count)
    )


def test_one_run_costs_the_same_few_queries_for_1_or_20_nodes(api, owner, django_assert_num_queries):
    execution = pending(echo(owner))
    add_nodes(execution, 1)
    api.get(f"{URL}{execution.pk}/")
    with django_assert_num_queries(4):  # the key, the run (with its version), its nodes, their artifacts
        assert len(api.get(f"{URL}{execution.pk}/").json()["nodes"]) == 1
    add_nodes(execution, 19)
    with django_assert_num_queries(4):
        assert len(api.get(f"{URL}{execution.pk}/").json()["nodes"]) == 20


def test_nodes_lists_the_node_attempts_in_start_order_unpaginated(api, owner, django_assert_num_queries):
    execution = pending(echo(owner))
    add_nodes(execution, 30)
    NodeExecution.objects.filter(execution=execution, node_id="n29").update(
        started_at=timezone.now() - timedelta(days=1)
    )
    api.get(f"{URL}{execution.pk}/nodes/")
    with django_assert_num_queries(4):  # the key, the run, its nodes, their artifacts
        body = api.get(f"{URL}{execution.pk}/nodes/").json()
    assert isinstance(body, list)
    assert [node["node_id"] for node in body] == ["n29", *(f"n{i}" for i in range(29))]
    assert set(body[0]) == NODE_FIELDS


def test_another_users_run_is_404_and_not_listed(api, stranger):
    theirs = finished(echo(stranger))
    for path in (f"{URL}{theirs.pk}/", f"{URL}{theirs.pk}/nodes/"):
        response = api.get(path)
        assert (response.status_code, error(response)["code"]) == (404, "not_found")
    assert ids(api.get(URL)) == []
    assert ids(api.get(URL, {"workflow": theirs.workflow_id})) == []


def test_an_id_that_is_not_a_uuid_is_404(api):
    for path in (f"{URL}not-a-uuid/", f"{URL}not-a-uuid/nodes/"):
        response = api.get(path)
        assert (response.status_code, error(response)["code"]) == (404, "not_found")


# --- the events view beside the router -------------------------------------------------


@pytest.mark.django_db(transaction=True)  # the async view's database calls close the connection
def test_the_events_url_still_reaches_the_async_events_view(api, owner):
    execution = finished(echo(owner))
    match = resolve(f"{URL}{execution.pk}/events/")
    assert (match.func, match.url_name) == (views.execution_events, "execution-events")
    body = api.get(f"{URL}{execution.pk}/events/").json()
    assert body["execution_id"] == str(execution.pk)
    assert body["events"][-1]["payload"]["status"] == "succeeded"


@pytest.mark.parametrize(
    "moment",
    [
        "0746-10-28T02:05:57.384+18:43",  # an offset PostgreSQL cannot store (found by schemathesis)
        "0001-01-01T00:00:00+05:00",  # before year 1 once in UTC
        "9999-12-31T23:00:00-05:00",  # after year 9999 once in UTC
    ],
)
def test_date_times_outside_the_calendar_or_real_offsets_are_400(api, moment):
    response = api.get(URL, {"created_before": moment, "created_after": "2026-01-01T00:00:00+02:00"})
    assert response.status_code == 400
    assert list(error(response)["fields"]) == ["created_before"]
