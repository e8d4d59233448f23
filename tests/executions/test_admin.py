"""The operators' console for runs, workflows, agents and credentials."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.agents.models import Agent, Credential
from apps.executions import services
from apps.executions.models import Execution
from apps.workflows.models import Workflow
from tests.factories import UserFactory, graph, published


@pytest.fixture
def operator(client, db):
    user = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


def flow(owner):
    return published(
        owner, [("in", "input", {"name": "t"}), ("o", "output", {"name": "o"})], [("in", "value", "o", "value")]
    )


def action(client, path: str, name: str, pks: list) -> None:
    response = client.post(path, {"action": name, "_selected_action": [str(pk) for pk in pks]})
    assert response.status_code == 302


def test_operators_cancel_retry_and_requeue_runs(client, operator, owner, run):
    version = flow(owner)
    queued = services.execution_run(version=version, inputs={"t": "a"}, owner=owner)
    action(client, "/admin/executions/execution/", "cancel", [queued.pk])
    queued.refresh_from_db()
    assert queued.status == "cancelled"
    assert "root" in queued.error_message

    action(client, "/admin/executions/execution/", "retry", [queued.pk])
    retry = Execution.objects.get(retry_of=queued)
    assert (retry.status, retry.trigger) == ("queued", "admin")

    Execution.objects.filter(pk=retry.pk).update(status="running", lease_owner="dead")
    action(client, "/admin/executions/execution/", "requeue", [retry.pk])
    retry.refresh_from_db()
    assert (retry.status, retry.lease_owner) == ("queued", "")


def test_the_run_page_shows_its_nodes_read_only(client, operator, owner, run):
    execution = run(flow(owner), {"t": "a"})
    page = client.get(f"/admin/executions/execution/{execution.pk}/change/")
    assert page.status_code == 200
    assert "node execution" in page.content.decode().lower()
    assert client.post(f"/admin/executions/execution/{execution.pk}/delete/", {"post": "yes"}).status_code == 403


def test_operators_publish_drafts_and_see_why_one_is_invalid(client, operator, owner):
    good = Workflow.objects.create(owner=owner, name="good", graph=graph([("in", "input", {"name": "t"})], []))
    bad = Workflow.objects.create(owner=owner, name="bad", graph=graph([("x", "teleport", {})], []))
    response = client.post(
        "/admin/workflows/workflow/", {"action": "publish", "_selected_action": [good.pk, bad.pk]}, follow=True
    )
    page = response.content.decode()
    assert "1 workflow published." in page
    assert "teleport" in page
    good.refresh_from_db()
    bad.refresh_from_db()
    assert (good.latest_version_number, bad.latest_version_number) == (1, 0)


def test_credentials_show_their_hint_never_their_secret(client, operator, owner):
    credential = Credential(owner=owner, name="key", kind="openai")
    credential.set_secret("sk-secret-value-for-admin-0123")
    credential.save()
    for path in ("/admin/agents/credential/", f"/admin/agents/credential/{credential.pk}/change/"):
        page = client.get(path).content.decode()
        assert "sk-secret-value-for-admin-0123" not in page
        assert credential.encrypted_secret not in page
    assert "…0123" in client.get("/admin/agents/credential/").content.decode()


@pytest.mark.parametrize(
    "path",
    ["/admin/executions/execution/", "/admin/workflows/workflow/", "/admin/agents/agent/", "/admin/agents/credential/"],
)
def test_changelists_use_a_fixed_number_of_queries(client, operator, owner, run, path):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(path).status_code == 200
        return len(queries)

    def add_rows(n: int) -> None:
        for i in range(n):
            version = flow(owner)
            run(version, {"t": str(i)})
            Agent.objects.create(owner=owner, name=f"a{version.pk}", model="m")
            secret = Credential(owner=owner, name=f"c{version.pk}", kind="openai")
            secret.set_secret("x" * 20)
            secret.save()

    add_rows(1)
    baseline = count()
    add_rows(5)
    assert count() == baseline


def test_an_agent_with_an_unknown_provider_or_tool_or_someone_elses_credential_is_invalid(owner):
    stranger = UserFactory(username="stranger")
    theirs = Credential(owner=stranger, name="theirs", kind="openai")
    theirs.set_secret("y" * 20)
    theirs.save()
    agent = Agent(owner=owner, name="a", provider="skynet", model="m", tools=["laser"], credential=theirs)
    with pytest.raises(ValidationError) as invalid:
        agent.full_clean()
    assert set(invalid.value.message_dict) == {"provider", "tools", "credential"}


def test_operators_run_a_workflow_with_inputs_from_the_admin(client, operator, owner):
    version = flow(owner)
    path = "/admin/workflows/workflow/"
    form = client.post(path, {"action": "run_latest", "_selected_action": [version.workflow_id]})
    assert form.status_code == 200
    assert "&quot;t&quot;: &quot;&quot;" in form.content.decode()

    refused = client.post(
        path, {"action": "run_latest", "_selected_action": [version.workflow_id], "apply": "1", "inputs": '{"t": 5}'}
    )
    assert "5 is not of type &#x27;string&#x27;" in refused.content.decode()
    assert not Execution.objects.exists()

    started = client.post(
        path, {"action": "run_latest", "_selected_action": [version.workflow_id], "apply": "1", "inputs": '{"t": "go"}'}
    )
    assert started.status_code == 302
    execution = Execution.objects.get()
    assert (execution.trigger, execution.inputs, execution.status) == ("admin", {"t": "go"}, "queued")
