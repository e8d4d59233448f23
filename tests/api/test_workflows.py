"""`workflows/`: drafts validated per node, published as numbered immutable versions."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.agents.models import Agent
from apps.executions.models import Execution
from apps.users.models import AuditEntry
from apps.workflows.models import Workflow, WorkflowVersion
from apps.workflows.services import workflow_publish, workflow_update
from tests.api.conftest import error
from tests.factories import graph

pytestmark = pytest.mark.django_db

URL = "/api/v1/workflows/"

IN = ("in", "input", {"name": "text"})
SHOUT = ("shout", "template", {"template": "{{ t | upper }}!"})
OUT = ("out", "output", {"name": "result"})
SHOUTING = graph([IN, SHOUT, OUT], [("in", "value", "shout", "t"), ("shout", "text", "out", "value")])
ECHO = graph([IN, OUT], [("in", "value", "out", "value")])


def workflow_of(user, name: str = "flow", draft: dict = ECHO) -> Workflow:
    return Workflow.objects.create(owner=user, name=name, graph=draft)


def queries_to_list(api, path: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = api.get(path)
    assert response.status_code == 200
    return len(captured)


# --- the draft ---------------------------------------------------------------------------------


def test_it_creates_a_workflow_with_a_valid_graph(api, owner):
    response = api.post(URL, {"name": "Shouter", "description": "louder", "graph": SHOUTING})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == {"id", "name", "description", "graph", "latest_version_number", "created_at", "updated_at"}
    assert (body["graph"], body["latest_version_number"]) == (SHOUTING, 0)
    workflow = Workflow.objects.get(pk=body["id"])
    assert (workflow.owner, workflow.name, workflow.graph) == (owner, "Shouter", SHOUTING)


def test_an_invalid_graph_is_a_400_naming_each_node_and_field_and_nothing_is_saved(api):
    broken = graph(
        [IN, ("shout", "template", {"template": 42}), ("x", "teleport", {}), ("out", "output", {})],
        [("in", "value", "shout", "t")],
    )
    response = api.post(URL, {"name": "Broken", "graph": broken})
    assert response.status_code == 400
    body = error(response)
    assert body["code"] == "invalid"
    assert set(body["fields"]) == {
        "graph.nodes.shout.config.template",
        "graph.nodes.x.type",
        "graph.nodes.out.config",
        "graph",
    }
    assert "is not of type 'string'" in body["fields"]["graph.nodes.shout.config.template"][0]
    assert "unknown node type 'teleport'" in body["fields"]["graph.nodes.x.type"][0]
    assert "'name' is a required property" in body["fields"]["graph.nodes.out.config"][0]
    assert "entry point" in body["fields"]["graph"][0]  # problems of no one node
    assert not Workflow.objects.exists()


def test_problems_of_the_whole_graph_are_named_graph(api):
    for draft in ({"nodes": "none"}, {"nodes": [], "edges": []}, [1, 2]):
        response = api.post(URL, {"name": "Odd", "graph": draft})
        assert response.status_code == 400, draft
        assert set(error(response)["fields"]) == {"graph"}, draft
    missing = api.post(URL, {"description": "no name, no graph"})
    assert set(error(missing)["fields"]) == {"name", "graph"}
    assert not Workflow.objects.exists()


def test_a_graph_naming_another_users_agent_is_refused(api, stranger):
    theirs = Agent.objects.create(owner=stranger, name="theirs", model="m")
    draft = graph(
        [IN, ("ask", "agent", {"agent": theirs.pk, "prompt": "{{ q }}"}), OUT],
        [("in", "value", "ask", "q"), ("ask", "text", "out", "value")],
    )
    response = api.post(URL, {"name": "Borrow", "graph": draft})
    assert response.status_code == 400
    assert set(error(response)["fields"]) == {"graph.nodes.ask.config.agent"}


def test_put_replaces_and_patch_changes_only_what_it_names(api, owner):
    workflow = workflow_of(owner, draft=ECHO)
    Workflow.objects.filter(pk=workflow.pk).update(description="old")
    put = api.put(f"{URL}{workflow.pk}/", {"name": "Renamed", "graph": SHOUTING})
    assert put.status_code == 200, put.json()
    workflow.refresh_from_db()
    assert (workflow.name, workflow.description, workflow.graph) == ("Renamed", "", SHOUTING)
    patch = api.patch(f"{URL}{workflow.pk}/", {"description": "new"})
    assert patch.status_code == 200, patch.json()
    workflow.refresh_from_db()
    assert (workflow.name, workflow.description, workflow.graph) == ("Renamed", "new", SHOUTING)


def test_an_update_with_an_invalid_graph_changes_nothing(api, owner):
    workflow = workflow_of(owner, draft=ECHO)
    response = api.patch(
        f"{URL}{workflow.pk}/", {"name": "New name", "graph": graph([IN, OUT], [("in", "value", "out", "nope")])}
    )
    assert response.status_code == 400
    fields = error(response)["fields"]
    assert "has no input 'nope'" in fields["graph.nodes.out.inputs"][0]
    assert "required input 'value' is not connected" in fields["graph.nodes.out.inputs.value"][0]
    workflow.refresh_from_db()
    assert (workflow.name, workflow.graph) == ("flow", ECHO)


def test_an_update_keeps_the_version_number_a_publish_moved_meanwhile(api, owner):
    workflow = workflow_of(owner)
    stale = Workflow.objects.get(pk=workflow.pk)
    workflow_publish(workflow=workflow, actor=owner)
    workflow_update(workflow=stale, values={"name": "renamed"})
    workflow.refresh_from_db()
    assert (workflow.name, workflow.latest_version_number) == ("renamed", 1)


def test_it_shows_and_deletes_a_workflow_with_its_versions(api, owner):
    workflow = workflow_of(owner)
    workflow_publish(workflow=workflow, actor=owner)
    assert api.get(f"{URL}{workflow.pk}/").json()["latest_version_number"] == 1
    assert api.delete(f"{URL}{workflow.pk}/").status_code == 204
    assert not Workflow.objects.exists()
    assert not WorkflowVersion.objects.exists()


def test_a_workflow_with_runs_cannot_be_deleted(api, owner):
    workflow = workflow_of(owner)
    version = workflow_publish(workflow=workflow, actor=owner)
    Execution.objects.create(owner=owner, workflow=workflow, version=version, time_budget_seconds=60)
    response = api.delete(f"{URL}{workflow.pk}/")
    assert (response.status_code, error(response)["code"]) == (409, "conflict")
    assert Workflow.objects.filter(pk=workflow.pk).exists()
    assert Execution.objects.count() == 1


def test_the_list_is_newest_first_and_pages_by_cursor(api, owner):
    for index in range(3):
        workflow_of(owner, name=f"w{index}")
    first = api.get(URL, {"page_size": 2}).json()
    assert [row["name"] for row in first["results"]] == ["w2", "w1"]
    second = api.get(first["next"]).json()
    assert [row["name"] for row in second["results"]] == ["w0"]
    assert second["next"] is None


def test_listing_workflows_costs_the_same_few_queries_for_2_or_12(api, owner):
    api.get(URL)  # the key's first use records when it was used
    for index in range(2):
        workflow_of(owner, name=f"few {index}")
    few = queries_to_list(api, URL)
    for index in range(10):
        workflow_of(owner, name=f"many {index}")
    assert queries_to_list(api, URL) == few <= 5


def test_a_repeated_create_with_an_idempotency_key_is_answered_once(api):
    body = {"name": "Once", "graph": ECHO}
    first = api.post(URL, body, **{"Idempotency-Key": "wf-1"})
    again = api.post(URL, body, **{"Idempotency-Key": "wf-1"})
    assert first.status_code == 201
    assert (again.status_code, again.json()) == (201, first.json())
    assert Workflow.objects.count() == 1
    other = api.post(URL, {"name": "Twice", "graph": ECHO}, **{"Idempotency-Key": "wf-1"})
    assert (other.status_code, error(other)["code"]) == (422, "idempotency_key_reused")
    assert Workflow.objects.count() == 1


# --- publishing and versions ---------------------------------------------------------------------


def test_publishing_freezes_the_draft_as_the_next_version(api, owner):
    workflow = workflow_of(owner, draft=SHOUTING)
    response = api.post(f"{URL}{workflow.pk}/publish/")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == {"number", "graph", "input_schema", "output_schema", "created_at", "created_by"}
    assert (body["number"], body["graph"], body["created_by"]) == (1, SHOUTING, owner.pk)
    assert body["input_schema"]["required"] == ["text"]
    assert body["output_schema"] == {"type": "object", "properties": {"result": {}}}
    assert api.post(f"{URL}{workflow.pk}/publish/").json()["number"] == 2
    workflow.refresh_from_db()
    assert workflow.latest_version_number == 2
    assert list(workflow.versions.values_list("number", flat=True)) == [2, 1]
    assert AuditEntry.objects.filter(action="workflow.publish", object_id=str(workflow.pk)).count() == 2


def test_a_draft_that_no_longer_validates_is_a_400_naming_the_node(api, owner):
    agent = Agent.objects.create(owner=owner, name="helper", model="m")
    draft = graph(
        [IN, ("ask", "agent", {"agent": agent.pk, "prompt": "{{ q }}"}), OUT],
        [("in", "value", "ask", "q"), ("ask", "text", "out", "value")],
    )
    created = api.post(URL, {"name": "Asker", "graph": draft})
    assert created.status_code == 201, created.json()
    agent.delete()
    response = api.post(f"{URL}{created.json()['id']}/publish/")
    assert response.status_code == 400
    assert set(error(response)["fields"]) == {"graph.nodes.ask.config.agent"}
    assert not WorkflowVersion.objects.exists()


def test_a_repeated_publish_with_an_idempotency_key_makes_one_version(api, owner):
    workflow = workflow_of(owner)
    first = api.post(f"{URL}{workflow.pk}/publish/", **{"Idempotency-Key": "pub-1"})
    again = api.post(f"{URL}{workflow.pk}/publish/", **{"Idempotency-Key": "pub-1"})
    assert (again.status_code, again.json()) == (201, first.json())
    assert WorkflowVersion.objects.count() == 1


def test_versions_are_listed_latest_first_by_cursor_and_shown_by_number(api, owner):
    workflow = workflow_of(owner)
    for _ in range(3):
        workflow_publish(workflow=workflow, actor=owner)
    path = f"{URL}{workflow.pk}/versions/"
    first = api.get(path, {"page_size": 2}).json()
    assert [row["number"] for row in first["results"]] == [3, 2]
    second = api.get(first["next"]).json()
    assert [row["number"] for row in second["results"]] == [1]
    assert second["next"] is None
    shown = api.get(f"{path}2/")
    assert shown.status_code == 200
    assert (shown.json()["number"], shown.json()["graph"], shown.json()["created_by"]) == (2, ECHO, owner.pk)
    missing = api.get(f"{path}9/")
    assert (missing.status_code, error(missing)["code"]) == (404, "not_found")


def test_a_workflows_versions_are_only_its_own(api, owner):
    one, other = workflow_of(owner, name="one"), workflow_of(owner, name="other")
    workflow_publish(workflow=one, actor=owner)
    assert api.get(f"{URL}{other.pk}/versions/").json()["results"] == []
    assert api.get(f"{URL}{other.pk}/versions/1/").status_code == 404


def test_listing_versions_costs_the_same_few_queries_for_2_or_12(api, owner):
    workflow = workflow_of(owner)
    path = f"{URL}{workflow.pk}/versions/"
    api.get(path)  # the key's first use records when it was used
    for _ in range(2):
        workflow_publish(workflow=workflow, actor=owner)
    few = queries_to_list(api, path)
    for _ in range(10):
        workflow_publish(workflow=workflow, actor=owner)
    assert queries_to_list(api, path) == few <= 5


# --- ownership and scopes ------------------------------------------------------------------------


def test_another_users_workflow_is_404_everywhere_and_stays_as_it_was(api, stranger):
    theirs = workflow_of(stranger, name="theirs")
    workflow_publish(workflow=theirs, actor=stranger)
    path = f"{URL}{theirs.pk}/"
    for response in (
        api.get(path),
        api.put(path, {"name": "mine", "graph": SHOUTING}),
        api.patch(path, {"name": "mine"}),
        api.delete(path),
        api.post(f"{path}publish/"),
        api.get(f"{path}versions/"),
        api.get(f"{path}versions/1/"),
    ):
        assert (response.status_code, error(response)["code"]) == (404, "not_found")
    theirs.refresh_from_db()
    assert (theirs.name, theirs.graph, theirs.latest_version_number) == ("theirs", ECHO, 1)
    assert api.get(URL).json()["results"] == []


def test_versions_of_a_workflow_that_does_not_exist_are_404(api):
    response = api.get(f"{URL}999999/versions/")
    assert (response.status_code, error(response)["code"]) == (404, "not_found")


def test_a_read_only_key_reads_but_cannot_write_or_publish(api_with, owner):
    workflow = workflow_of(owner)
    workflow_publish(workflow=workflow, actor=owner)
    reader = api_with("read")
    path = f"{URL}{workflow.pk}/"
    for read in (URL, path, f"{path}versions/", f"{path}versions/1/"):
        assert reader.get(read).status_code == 200, read
    for response in (
        reader.post(URL, {"name": "new", "graph": ECHO}),
        reader.put(path, {"name": "new", "graph": ECHO}),
        reader.patch(path, {"name": "new"}),
        reader.delete(path),
        reader.post(f"{path}publish/"),
    ):
        assert (response.status_code, error(response)["code"]) == (403, "missing_scope")
    workflow.refresh_from_db()
    assert (workflow.name, workflow.latest_version_number, Workflow.objects.count()) == ("flow", 1, 1)


def test_a_key_without_read_cannot_list_or_show(api_with, owner):
    workflow = workflow_of(owner)
    writer = api_with("write", "execute")
    for path in (URL, f"{URL}{workflow.pk}/", f"{URL}{workflow.pk}/versions/"):
        response = writer.get(path)
        assert (response.status_code, error(response)["code"]) == (403, "missing_scope"), path
