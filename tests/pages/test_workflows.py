"""Workflow pages: the list, creating a workflow, the builder's first paint and pins, the run form."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from apps.billing.models import Plan
from apps.executions import tasks
from apps.executions.models import Execution
from apps.workflows.models import Workflow
from apps.workflows.pages import STARTER_GRAPH
from tests.factories import UserFactory, published
from tests.pages.conftest import stored_runs
from tests.pages.test_dashboard import text

pytestmark = pytest.mark.django_db

LIST = "/workflows/"
NEW = "/workflows/new/"


def edit_url(workflow: Workflow) -> str:
    return f"/workflows/{workflow.pk}/"


def run_url(workflow: Workflow) -> str:
    return f"/workflows/{workflow.pk}/run/"


def embedded(html: str, element_id: str) -> dict:
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.S)
    assert match, f"no #{element_id} in the page"
    return json.loads(match.group(1))


@pytest.fixture
def typed_flow(member):
    """A published workflow whose inputs cover the schema types the run form turns into fields."""
    return published(
        member,
        [
            ("message", "input", {"name": "message", "description": "What to triage"}),
            ("tone", "input", {"name": "tone", "schema": {"type": "string", "enum": ["polite", "blunt"]}}),
            ("limit", "input", {"name": "limit", "schema": {"type": "integer", "minimum": 1}, "default": 3}),
            ("urgent", "input", {"name": "urgent", "schema": {"type": "boolean"}, "required": False}),
            ("tags", "input", {"name": "tags", "schema": {"type": "array"}, "required": False}),
            ("out", "output", {"name": "reply"}),
        ],
        [("message", "value", "out", "value")],
        name="Support triage",
    )


# --- Access ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [LIST, NEW, "/workflows/1/", "/workflows/1/run/"])
def test_a_visitor_is_sent_to_the_sign_in_page(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


def test_another_users_workflow_is_a_404_on_every_page(signed_in: Client) -> None:
    stranger = UserFactory(username="mallory")
    version = published(stranger, [("in", "input", {"name": "text"})], [], name="Not yours")
    workflow = version.workflow

    assert signed_in.get(edit_url(workflow)).status_code == 404
    assert signed_in.get(run_url(workflow)).status_code == 404
    assert signed_in.post(run_url(workflow), {"text": "hi"}).status_code == 404
    pins = signed_in.post(f"/workflows/{workflow.pk}/pins/", data="{}", content_type="application/json")
    assert pins.status_code == 404
    assert "Not yours" not in signed_in.get(LIST).content.decode()
    assert not Execution.objects.exists()


# --- The list --------------------------------------------------------------------------------


def test_a_new_user_sees_the_empty_state_with_a_way_to_create_one(signed_in: Client) -> None:
    response = signed_in.get(LIST)

    assert response.status_code == 200
    html = response.content.decode()
    assert "No workflows yet" in text(html)
    assert f'href="{NEW}">Create a workflow' in html
    assert "<table" not in html


def test_the_list_shows_versions_runs_and_the_last_runs_status(signed_in: Client, member, typed_flow) -> None:
    Workflow.objects.create(owner=member, name="Unpublished idea", graph=STARTER_GRAPH)
    stored_runs(typed_flow, member, ["succeeded", "succeeded", "failed"])

    html = signed_in.get(LIST).content.decode()
    page = text(html)

    assert "Support triage Version 1" in page
    assert "3 runs Failed" in page
    assert "Unpublished idea Draft only" in page
    assert "No runs yet" in page
    assert f'href="{edit_url(typed_flow.workflow)}"' in html
    assert f'href="{run_url(typed_flow.workflow)}"' in html
    latest = Execution.objects.filter(status="failed").get()
    assert f'href="/runs/{latest.pk}/"' in html


@pytest.mark.parametrize("count", [1, 12])
def test_the_list_issues_the_same_queries_for_one_or_many_workflows(
    signed_in: Client, member, count: int, django_assert_num_queries
) -> None:
    for index in range(count):
        version = published(member, [("in", "input", {"name": "text"})], [], name=f"Flow {index}")
        stored_runs(version, member, ["succeeded", "running"])

    # session, user, the balance in the top bar, the workflows with their figures
    with django_assert_num_queries(4):
        response = signed_in.get(LIST)

    assert response.status_code == 200
    assert text(response.content.decode()).count("2 runs") == count


# --- Creating --------------------------------------------------------------------------------


def test_creating_a_workflow_makes_a_valid_draft_and_opens_the_builder(signed_in: Client, member) -> None:
    assert signed_in.get(NEW).status_code == 200

    response = signed_in.post(NEW, {"name": "Invoice check", "description": "Reads invoices"})

    workflow = Workflow.objects.get(owner=member)
    assert response.status_code == 302
    assert response["Location"] == edit_url(workflow)
    assert (workflow.name, workflow.description) == ("Invoice check", "Reads invoices")
    assert workflow.graph == STARTER_GRAPH
    assert workflow.latest_version_number == 0
    followed = signed_in.get(response["Location"])
    assert "Workflow “Invoice check” created." in text(followed.content.decode())


def test_a_create_form_without_a_name_keeps_what_was_typed_and_creates_nothing(signed_in: Client) -> None:
    response = signed_in.post(NEW, {"name": "", "description": "Kept description"})

    assert response.status_code == 400
    html = response.content.decode()
    assert "This field is required." in html
    assert "Kept description" in html
    assert not Workflow.objects.exists()


# --- The builder -----------------------------------------------------------------------------


def test_the_builder_embeds_the_draft_its_pins_and_the_api_urls(signed_in: Client, member) -> None:
    graph = {
        "nodes": [
            {"id": "in", "type": "input", "config": {"name": "text"}, "position": {"x": 10, "y": 20}},
            {"id": "fmt", "type": "template", "config": {"template": "{{ a }} and {{ b }}"}},
        ],
        "edges": [{"source": "in", "source_output": "value", "target": "fmt", "target_input": "a"}],
    }
    workflow = Workflow.objects.create(owner=member, name="Drafty", graph=graph)

    response = signed_in.get(edit_url(workflow))

    assert response.status_code == 200
    data = embedded(response.content.decode(), "builder-data")
    assert data["graph"] == graph
    assert data["pins"]["fmt"]["inputs"] == [{"name": "a", "required": True}, {"name": "b", "required": True}]
    assert data["pins"]["in"]["outputs"] == [{"name": "value", "required": False}]
    assert data["urls"]["workflow"] == f"/api/v1/workflows/{workflow.pk}/"
    assert data["urls"]["publish"] == f"/api/v1/workflows/{workflow.pk}/publish/"
    assert data["urls"]["versions"] == f"/api/v1/workflows/{workflow.pk}/versions/"
    assert data["strings"]["unsaved"] == "Unsaved changes"
    assert 'src="/static/js/builder.js"' in response.content.decode()


def test_the_pins_follow_the_config_as_it_is_typed(signed_in: Client, member) -> None:
    workflow = Workflow.objects.create(owner=member, name="Drafty", graph=STARTER_GRAPH)
    nodes = [
        {"id": "check", "type": "condition", "config": {"expression": "score >= 0.8"}},
        {"id": "half", "type": "template", "config": {"template": "{{ unclosed"}},
        {"id": "odd", "type": "llm", "config": {"prompt": 42}},
        {"id": "ghost", "type": "no-such-type", "config": {}},
    ]

    response = signed_in.post(f"/workflows/{workflow.pk}/pins/", {"nodes": nodes}, content_type="application/json")

    assert response.status_code == 200
    pins = response.json()["pins"]
    assert [pin["name"] for pin in pins["check"]["inputs"]] == ["score", "value"]
    assert [pin["name"] for pin in pins["check"]["outputs"]] == ["true", "false"]
    assert pins["half"]["inputs"] == []
    assert [pin["name"] for pin in pins["odd"]["outputs"]] == ["text", "data"]
    assert "ghost" not in pins


def test_the_pins_endpoint_refuses_what_is_not_a_list_of_nodes(signed_in: Client, member) -> None:
    workflow = Workflow.objects.create(owner=member, name="Drafty", graph=STARTER_GRAPH)
    url = f"/workflows/{workflow.pk}/pins/"

    assert signed_in.post(url, data="not json", content_type="application/json").status_code == 400
    assert signed_in.post(url, {"nodes": "x"}, content_type="application/json").status_code == 400
    assert signed_in.get(url).status_code == 405


# --- The run form ----------------------------------------------------------------------------


def test_an_unpublished_workflow_says_so_and_links_to_the_builder(signed_in: Client, member) -> None:
    workflow = Workflow.objects.create(owner=member, name="Drafty", graph=STARTER_GRAPH)

    response = signed_in.get(run_url(workflow))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Publish this workflow first" in text(html)
    assert f'href="{edit_url(workflow)}"' in html
    assert '<form method="post" novalidate class="run-form">' not in html


def test_the_run_form_is_generated_from_the_input_schema(signed_in: Client, typed_flow) -> None:
    html = signed_in.get(run_url(typed_flow.workflow)).content.decode()

    assert re.search(r'<textarea name="message"[^>]*required', html)
    assert "What to triage" in html
    assert re.search(r'<select name="tone"[^>]*required', html)
    assert '<option value="&quot;polite&quot;">polite</option>' in html
    assert re.search(r'<input type="number" name="limit" value="3"[^>]*min="1"', html)
    assert not re.search(r'<input type="number" name="limit"[^>]*required', html)
    assert re.search(r'<input type="checkbox" name="urgent"', html)
    assert re.search(r'<textarea name="tags"', html)


def test_a_bad_run_form_keeps_what_was_typed_and_starts_nothing(signed_in: Client, typed_flow) -> None:
    response = signed_in.post(run_url(typed_flow.workflow), {"message": "Kept text", "limit": "0", "tags": "[oops"})

    assert response.status_code == 400
    html = response.content.decode()
    assert "Kept text" in html
    assert "[oops" in html
    assert "Ensure this value is greater than or equal to 1." in html
    assert "Enter a valid JSON." in html
    assert "This field is required." in html  # tone
    assert not Execution.objects.exists()


def test_a_run_starts_through_the_services_and_opens_the_run_page(
    signed_in: Client, member, typed_flow, django_capture_on_commit_callbacks, monkeypatch
) -> None:
    sent: list[str] = []
    monkeypatch.setattr(tasks.run_execution, "send", sent.append)
    form = {"message": "Printer on fire", "tone": '"blunt"', "urgent": "on", "tags": '["hardware"]'}
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post(run_url(typed_flow.workflow), form)

    execution = Execution.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("executions:execution_detail", args=[execution.pk])
    assert execution.status == Execution.Status.QUEUED
    assert (execution.owner, execution.version, execution.trigger) == (member, typed_flow, Execution.Trigger.UI)
    # The default fills the field left out; the enum, boolean and JSON come back typed.
    assert execution.inputs == {
        "message": "Printer on fire",
        "tone": "blunt",
        "limit": 3,
        "urgent": True,
        "tags": ["hardware"],
    }
    assert sent == [str(execution.pk)]  # the message to the workers, sent once the run is committed


def test_the_plans_refusal_is_a_form_error_with_the_apis_message_and_leaves_no_run(
    signed_in: Client, typed_flow, settings
) -> None:
    settings.BILLING_RUN_MINIMUM_MICRO = 10**15

    response = signed_in.post(run_url(typed_flow.workflow), {"message": "hello", "tone": '"polite"'})

    assert response.status_code == 400
    page = text(response.content.decode())
    assert re.search(r"The balance \(.+ credits\) is below a run's minimum of .+\.", page)
    assert "hello" in response.content.decode()
    assert not Execution.objects.exists()


def test_a_full_plan_is_a_form_error_too(signed_in: Client, member, typed_flow) -> None:
    plan = Plan.objects.get(subscriptions__user=member)
    Plan.objects.filter(pk=plan.pk).update(max_concurrent_runs=0)

    response = signed_in.post(run_url(typed_flow.workflow), {"message": "hello", "tone": '"polite"'})

    assert response.status_code == 400
    assert f"The {plan.name} plan runs at most 0 runs at once." in text(response.content.decode())
    assert not Execution.objects.exists()
