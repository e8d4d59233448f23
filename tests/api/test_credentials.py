"""`credentials/`: secrets go in, encrypted; only a hint ever comes out."""

from __future__ import annotations

import logging

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.agents.models import Agent, Credential
from apps.users.models import AuditEntry, IdempotencyRecord
from tests.api.conftest import error

pytestmark = pytest.mark.django_db

URL = "/api/v1/credentials/"
SECRET = "sk-live-very-secret-value-0123456789"


def credential_of(user, name: str = "key", kind: str = "openai") -> Credential:
    credential = Credential(owner=user, name=name, kind=kind)
    credential.set_secret(SECRET)
    credential.save()
    return credential


def queries_to_list(api) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = api.get(URL)
    assert response.status_code == 200
    return len(captured)


def test_it_stores_the_secret_encrypted_and_shows_only_its_hint(api, owner):
    response = api.post(URL, {"name": "OpenAI", "kind": "openai", "secret": SECRET})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == {"id", "name", "kind", "secret_hint", "base_url", "header_name", "created_at", "updated_at"}
    assert body["secret_hint"] == "…6789"
    credential = Credential.objects.get(pk=body["id"])
    assert credential.owner == owner
    assert SECRET not in credential.encrypted_secret
    assert credential.reveal_secret() == SECRET


def test_the_secret_is_in_no_answer_record_or_log(api, caplog):
    caplog.set_level(logging.DEBUG)
    created = api.post(URL, {"name": "OpenAI", "kind": "openai", "secret": SECRET}, **{"Idempotency-Key": "c-1"})
    replayed = api.post(URL, {"name": "OpenAI", "kind": "openai", "secret": SECRET}, **{"Idempotency-Key": "c-1"})
    refused = api.post(URL, {"name": "OpenAI", "kind": "openai", "secret": SECRET})  # the name is taken
    pk = created.json()["id"]
    answers = [created, replayed, refused, api.get(URL), api.get(f"{URL}{pk}/"), api.delete(f"{URL}{pk}/")]
    assert refused.status_code == 400
    for response in answers:
        assert SECRET not in response.content.decode()
        assert SECRET[-12:] not in response.content.decode()
    assert SECRET not in caplog.text
    assert SECRET not in str(list(IdempotencyRecord.objects.values()))
    assert SECRET not in str(list(AuditEntry.objects.values()))


def test_each_kind_takes_the_fields_it_uses(api):
    cases = [
        ({"kind": "openai_compatible", "secret": SECRET}, {"base_url"}),
        ({"kind": "http_header", "secret": SECRET, "base_url": "https://api.example.com"}, {"base_url"}),
        ({"kind": "openai", "secret": SECRET, "header_name": "X-Key"}, {"header_name"}),
        ({"kind": "anthropic", "secret": ""}, {"secret"}),
        ({"kind": "ollama", "secret": "", "base_url": "not a url"}, {"base_url"}),
        ({"kind": "telepathy", "secret": SECRET}, {"kind"}),
        ({}, {"name", "kind", "secret"}),
    ]
    for index, (values, fields) in enumerate(cases):
        response = api.post(URL, {"name": f"c{index}", **values} if values else {})
        assert response.status_code == 400, values
        assert set(error(response)["fields"]) == fields, values
    assert not Credential.objects.exists()
    accepted = [
        {"kind": "openai_compatible", "secret": SECRET, "base_url": "https://api.deepseek.com/v1"},
        {"kind": "http_header", "secret": SECRET, "header_name": "X-Api-Key"},
        {"kind": "ollama", "secret": "", "base_url": "http://127.0.0.1:11434"},
    ]
    for index, values in enumerate(accepted):
        response = api.post(URL, {"name": f"ok{index}", **values})
        assert response.status_code == 201, response.json()
    assert Credential.objects.get(name="ok1").header_name == "X-Api-Key"


def test_a_second_credential_with_the_same_name_is_refused_on_name(api, owner):
    credential_of(owner, name="main")
    response = api.post(URL, {"name": "main", "kind": "anthropic", "secret": SECRET})
    assert response.status_code == 400
    assert set(error(response)["fields"]) == {"name"}
    assert Credential.objects.count() == 1


def test_it_lists_shows_and_deletes_and_agents_keep_running_without_it(api, owner):
    credential = credential_of(owner)
    agent = Agent.objects.create(owner=owner, name="a", model="m", provider="openai", credential=credential)
    assert [row["id"] for row in api.get(URL).json()["results"]] == [credential.pk]
    assert api.get(f"{URL}{credential.pk}/").json()["secret_hint"] == "…6789"
    assert api.delete(f"{URL}{credential.pk}/").status_code == 204
    assert not Credential.objects.exists()
    agent.refresh_from_db()
    assert agent.credential is None


def test_credentials_cannot_be_changed_in_place(api, owner):
    credential = credential_of(owner)
    for response in (
        api.put(f"{URL}{credential.pk}/", {"name": "x", "kind": "openai", "secret": "new"}),
        api.patch(f"{URL}{credential.pk}/", {"secret": "new"}),
    ):
        assert response.status_code == 405
    assert Credential.objects.get(pk=credential.pk).reveal_secret() == SECRET


def test_another_users_credential_is_404_and_survives(api, stranger):
    theirs = credential_of(stranger)
    for response in (api.get(f"{URL}{theirs.pk}/"), api.delete(f"{URL}{theirs.pk}/")):
        assert (response.status_code, error(response)["code"]) == (404, "not_found")
    assert Credential.objects.filter(pk=theirs.pk).exists()
    assert api.get(URL).json()["results"] == []


def test_a_read_only_key_cannot_create_or_delete(api_with, owner):
    credential = credential_of(owner)
    reader = api_with("read")
    assert reader.get(f"{URL}{credential.pk}/").status_code == 200
    for response in (
        reader.post(URL, {"name": "x", "kind": "openai", "secret": SECRET}),
        reader.delete(f"{URL}{credential.pk}/"),
    ):
        assert (response.status_code, error(response)["code"]) == (403, "missing_scope")
    assert list(Credential.objects.values_list("pk", flat=True)) == [credential.pk]


def test_a_key_without_read_cannot_list(api_with, owner):
    credential_of(owner)
    response = api_with("write", "execute").get(URL)
    assert (response.status_code, error(response)["code"]) == (403, "missing_scope")


def test_the_list_is_newest_first_and_pages_by_cursor(api, owner):
    for index in range(3):
        credential_of(owner, name=f"c{index}")
    first = api.get(URL, {"page_size": 2}).json()
    assert [row["name"] for row in first["results"]] == ["c2", "c1"]
    second = api.get(first["next"]).json()
    assert [row["name"] for row in second["results"]] == ["c0"]
    assert second["next"] is None
    assert second["previous"] is not None


def test_the_list_filters_by_kind(api, owner):
    credential_of(owner, name="a", kind="openai")
    credential_of(owner, name="b", kind="http_header")
    assert [row["name"] for row in api.get(URL, {"kind": "http_header"}).json()["results"]] == ["b"]


def test_listing_costs_the_same_few_queries_for_2_or_12_credentials(api, owner):
    api.get(URL)  # the key's first use records when it was used
    for index in range(2):
        credential_of(owner, name=f"few {index}")
    few = queries_to_list(api)
    for index in range(10):
        credential_of(owner, name=f"many {index}")
    assert queries_to_list(api) == few <= 5


def test_a_repeated_create_with_an_idempotency_key_is_answered_once(api):
    body = {"name": "Once", "kind": "anthropic", "secret": SECRET}
    first = api.post(URL, body, **{"Idempotency-Key": "cred-1"})
    again = api.post(URL, body, **{"Idempotency-Key": "cred-1"})
    assert first.status_code == 201
    assert (again.status_code, again.json()) == (201, first.json())
    assert Credential.objects.count() == 1
    other = api.post(URL, {**body, "secret": "another-secret-value"}, **{"Idempotency-Key": "cred-1"})
    assert (other.status_code, error(other)["code"]) == (422, "idempotency_key_reused")
    assert Credential.objects.get().reveal_secret() == SECRET
