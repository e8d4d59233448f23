"""`agents/`: a user's agents through the API, under the model's rules, scoped to their owner."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.agents.models import Agent, Credential
from apps.users.models import AuditEntry
from tests.api.conftest import error

pytestmark = pytest.mark.django_db

URL = "/api/v1/agents/"


def credential_of(user, name: str = "key", kind: str = "openai") -> Credential:
    credential = Credential(owner=user, name=name, kind=kind)
    credential.set_secret("sk-test-0123456789abcdef")
    credential.save()
    return credential


def agent_of(user, name: str = "helper", **fields) -> Agent:
    return Agent.objects.create(owner=user, name=name, model="scripted-1", **fields)


def queries_to_list(api, path: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = api.get(path)
    assert response.status_code == 200
    return len(captured)


def test_it_creates_an_agent_with_defaults_and_returns_it(api, owner):
    response = api.post(URL, {"name": "Researcher", "model": "scripted-1", "tools": ["calculator"]})
    assert response.status_code == 201, response.json()
    body = response.json()
    agent = Agent.objects.get(pk=body["id"])
    assert agent.owner == owner
    assert set(body) == {
        "id",
        "name",
        "description",
        "system_prompt",
        "provider",
        "model",
        "parameters",
        "credential",
        "tools",
        "max_iterations",
        "created_at",
        "updated_at",
    }
    assert (body["provider"], body["tools"], body["max_iterations"], body["credential"]) == (
        "scripted",
        ["calculator"],
        10,
        None,
    )
    assert AuditEntry.objects.filter(action="agent.create", object_id=str(agent.pk)).exists()


def test_it_takes_one_of_the_users_credentials(api, owner):
    credential = credential_of(owner)
    response = api.post(URL, {"name": "Writer", "provider": "openai", "model": "gpt-4o", "credential": credential.pk})
    assert response.status_code == 201, response.json()
    assert response.json()["credential"] == credential.pk
    assert Agent.objects.get(name="Writer").credential == credential


def test_patching_the_credential_to_null_removes_it(api, owner):
    agent = agent_of(owner, provider="openai", credential=credential_of(owner))
    response = api.patch(f"{URL}{agent.pk}/", {"credential": None})
    assert (response.status_code, response.json()["credential"]) == (200, None)
    agent.refresh_from_db()
    assert agent.credential is None


def test_it_refuses_another_users_credential_like_one_that_does_not_exist(api, owner, stranger):
    theirs = credential_of(stranger)
    refused = api.post(URL, {"name": "Thief", "model": "gpt-4o", "provider": "openai", "credential": theirs.pk})
    missing = api.post(URL, {"name": "Thief", "model": "gpt-4o", "provider": "openai", "credential": 999_999})
    assert refused.status_code == 400
    assert set(error(refused)["fields"]) == {"credential"}
    # The same answer as for an id nobody has: nothing tells that the credential exists.
    assert error(refused)["fields"]["credential"] == [
        message.replace("999999", str(theirs.pk)) for message in error(missing)["fields"]["credential"]
    ]
    assert not Agent.objects.exists()


def test_it_refuses_another_users_credential_on_update_too(api, owner, stranger):
    agent = agent_of(owner)
    response = api.patch(f"{URL}{agent.pk}/", {"credential": credential_of(stranger).pk})
    assert response.status_code == 400
    assert set(error(response)["fields"]) == {"credential"}
    agent.refresh_from_db()
    assert agent.credential is None


def test_an_http_header_credential_cannot_sign_an_agent_in(api, owner):
    header = credential_of(owner, kind="http_header")
    response = api.post(URL, {"name": "A", "model": "gpt-4o", "provider": "openai", "credential": header.pk})
    assert response.status_code == 400
    assert set(error(response)["fields"]) == {"credential"}


def test_it_names_every_bad_field_by_the_models_rules_and_saves_nothing(api):
    response = api.post(
        URL, {"name": "Bad", "model": "m", "provider": "skynet", "tools": ["teleport"], "max_iterations": 0}
    )
    assert response.status_code == 400
    body = error(response)
    assert body["code"] == "invalid"
    assert set(body["fields"]) == {"provider", "tools", "max_iterations"}
    assert "skynet" in body["fields"]["provider"][0]
    assert "teleport" in body["fields"]["tools"][0]
    assert not Agent.objects.exists()


def test_it_names_wrongly_typed_and_missing_fields(api):
    response = api.post(URL, {"parameters": ["not", "a", "dict"], "tools": "calculator"})
    assert response.status_code == 400
    assert set(error(response)["fields"]) == {"name", "model", "parameters", "tools"}


def test_a_second_agent_with_the_same_name_is_refused_on_name(api, owner, stranger):
    agent_of(owner, name="Twin")
    agent_of(stranger, name="Other")
    response = api.post(URL, {"name": "Twin", "model": "m"})
    assert response.status_code == 400
    assert set(error(response)["fields"]) == {"name"}
    # Names are per owner: another user's "Other" does not matter.
    assert api.post(URL, {"name": "Other", "model": "m"}).status_code == 201
    assert Agent.objects.filter(owner=owner).count() == 2


def test_put_replaces_the_agent_and_patch_changes_only_what_it_names(api, owner):
    agent = agent_of(owner, description="old", tools=["calculator"], max_iterations=3)
    put = api.put(f"{URL}{agent.pk}/", {"name": "Renamed", "model": "scripted-2"})
    assert put.status_code == 200, put.json()
    agent.refresh_from_db()
    assert (agent.name, agent.model, agent.description, agent.tools, agent.max_iterations) == (
        "Renamed",
        "scripted-2",
        "",
        [],
        10,
    )
    patch = api.patch(f"{URL}{agent.pk}/", {"system_prompt": "Be brief.", "tools": ["current_time"]})
    assert patch.status_code == 200, patch.json()
    agent.refresh_from_db()
    assert (agent.name, agent.system_prompt, agent.tools) == ("Renamed", "Be brief.", ["current_time"])
    assert patch.json()["system_prompt"] == "Be brief."


def test_a_refused_update_changes_nothing(api, owner):
    agent = agent_of(owner, tools=["calculator"])
    response = api.patch(f"{URL}{agent.pk}/", {"name": "New name", "tools": ["teleport"]})
    assert response.status_code == 400
    assert set(error(response)["fields"]) == {"tools"}
    agent.refresh_from_db()
    assert (agent.name, agent.tools) == ("helper", ["calculator"])


def test_put_needs_the_required_fields(api, owner):
    agent = agent_of(owner)
    response = api.put(f"{URL}{agent.pk}/", {"description": "only this"})
    assert response.status_code == 400
    assert set(error(response)["fields"]) == {"name", "model"}


def test_it_shows_and_deletes_an_agent(api, owner):
    agent = agent_of(owner)
    assert api.get(f"{URL}{agent.pk}/").json()["name"] == "helper"
    response = api.delete(f"{URL}{agent.pk}/")
    assert response.status_code == 204
    assert not Agent.objects.filter(pk=agent.pk).exists()


def test_another_users_agent_is_404_everywhere_and_stays_as_it_was(api, stranger):
    theirs = agent_of(stranger, name="Theirs")
    path = f"{URL}{theirs.pk}/"
    for response in (
        api.get(path),
        api.put(path, {"name": "Mine", "model": "m"}),
        api.patch(path, {"name": "Mine"}),
        api.delete(path),
    ):
        assert (response.status_code, error(response)["code"]) == (404, "not_found")
    assert Agent.objects.get(pk=theirs.pk).name == "Theirs"
    assert api.get(URL).json()["results"] == []


def test_a_read_only_key_reads_but_cannot_write(api_with, owner):
    agent = agent_of(owner)
    reader = api_with("read")
    assert reader.get(URL).status_code == 200
    assert reader.get(f"{URL}{agent.pk}/").status_code == 200
    for response in (
        reader.post(URL, {"name": "New", "model": "m"}),
        reader.put(f"{URL}{agent.pk}/", {"name": "New", "model": "m"}),
        reader.patch(f"{URL}{agent.pk}/", {"name": "New"}),
        reader.delete(f"{URL}{agent.pk}/"),
    ):
        assert (response.status_code, error(response)["code"]) == (403, "missing_scope")
    assert list(Agent.objects.values_list("name", flat=True)) == ["helper"]


def test_a_key_without_read_cannot_list_or_show(api_with, owner):
    agent = agent_of(owner)
    writer = api_with("write")
    for response in (writer.get(URL), writer.get(f"{URL}{agent.pk}/")):
        assert (response.status_code, error(response)["code"]) == (403, "missing_scope")


def test_the_list_is_newest_first_and_pages_by_cursor(api, owner):
    for index in range(5):
        agent_of(owner, name=f"agent {index}")
    first = api.get(URL, {"page_size": 2}).json()
    assert [row["name"] for row in first["results"]] == ["agent 4", "agent 3"]
    second = api.get(first["next"]).json()
    assert [row["name"] for row in second["results"]] == ["agent 2", "agent 1"]
    third = api.get(second["next"]).json()
    assert [row["name"] for row in third["results"]] == ["agent 0"]
    assert third["next"] is None


def test_the_list_filters_by_provider(api, owner):
    agent_of(owner, name="a", provider="scripted")
    agent_of(owner, name="b", provider="openai")
    assert [row["name"] for row in api.get(URL, {"provider": "openai"}).json()["results"]] == ["b"]


def test_listing_costs_the_same_few_queries_for_2_or_12_agents(api, owner):
    credential = credential_of(owner)
    api.get(URL)  # the key's first use records when it was used
    for index in range(2):
        agent_of(owner, name=f"few {index}", credential=credential)
    few = queries_to_list(api, URL)
    for index in range(10):
        agent_of(owner, name=f"many {index}", credential=credential)
    assert queries_to_list(api, URL) == few <= 5


def test_a_repeated_create_with_an_idempotency_key_is_answered_once(api):
    body = {"name": "Once", "model": "m"}
    first = api.post(URL, body, **{"Idempotency-Key": "agent-1"})
    again = api.post(URL, body, **{"Idempotency-Key": "agent-1"})
    assert first.status_code == 201
    assert (again.status_code, again.json()) == (201, first.json())
    assert again["Idempotent-Replayed"] == "true"
    assert Agent.objects.count() == 1
    other = api.post(URL, {"name": "Twice", "model": "m"}, **{"Idempotency-Key": "agent-1"})
    assert (other.status_code, error(other)["code"]) == (422, "idempotency_key_reused")
    assert Agent.objects.count() == 1
