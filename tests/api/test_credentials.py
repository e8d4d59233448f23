"""`credentials/`: secrets go in, encrypted; only a hint ever comes out. Sync, revocation and the trail."""

from __future__ import annotations

import logging
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.agents import services
from apps.agents.models import Agent, Credential, CredentialEvent
from apps.users.models import AuditEntry, IdempotencyRecord
from tests.api.conftest import error

pytestmark = pytest.mark.django_db

URL = "/api/v1/credentials/"
SYNC = f"{URL}sync/"
SECRET = "sk-live-very-secret-value-0123456789"
OTHER_SECRET = "sk-live-another-secret-value-9876543210"
FIELDS = {
    "id",
    "name",
    "kind",
    "client_id",
    "secret_hint",
    "base_url",
    "header_name",
    "revoked_at",
    "last_used_at",
    "last_used_execution",
    "last_used_node",
    "created_at",
    "updated_at",
}


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
    assert set(body) == FIELDS
    assert body["secret_hint"] == "…6789"
    assert (body["client_id"], body["revoked_at"], body["last_used_at"]) == ("", None, None)
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


# --- the trail, last use, revocation ------------------------------------------------------------------


def test_creating_and_deleting_leave_events_with_the_actor_and_the_trail_outlives_the_row(api, owner):
    pk = api.post(URL, {"name": "OpenAI", "kind": "openai", "secret": SECRET}).json()["id"]
    assert api.delete(f"{URL}{pk}/").status_code == 204
    trail = list(
        CredentialEvent.objects.order_by("pk").values_list("action", "credential_id", "credential_pk", "actor")
    )
    assert trail == [("create", None, pk, owner.pk), ("delete", None, pk, owner.pk)]


def test_the_list_shows_when_and_by_which_run_and_node_each_was_last_used(api, owner):
    used = credential_of(owner, name="used")
    credential_of(owner, name="unused")
    runs = [uuid.uuid4(), uuid.uuid4()]
    for run, node in zip(runs, ["first", "second"], strict=True):
        services.credential_resolve(owner_id=owner.pk, credential_id=used.pk, execution_id=run, node_id=node)
    rows = {row["name"]: row for row in api.get(URL).json()["results"]}
    assert (rows["used"]["last_used_execution"], rows["used"]["last_used_node"]) == (str(runs[1]), "second")
    assert rows["used"]["last_used_at"] is not None
    assert (rows["unused"]["last_used_at"], rows["unused"]["last_used_execution"]) == (None, None)
    assert api.get(f"{URL}{used.pk}/").json()["last_used_node"] == "second"


def test_listing_with_a_long_trail_costs_the_same_few_queries(api, owner):
    api.get(URL)
    credential = credential_of(owner, name="busy")
    few = queries_to_list(api)
    for index in range(10):
        credential_of(owner, name=f"more {index}")
        services.credential_resolve(owner_id=owner.pk, credential_id=credential.pk, execution_id=None, node_id="n")
    assert queries_to_list(api) == few


def test_revoking_one_stops_it_and_a_second_revoke_changes_nothing(api, owner):
    credential = credential_of(owner)
    first = api.post(f"{URL}{credential.pk}/revoke/")
    assert first.status_code == 200
    assert first.json()["revoked_at"] is not None
    again = api.post(f"{URL}{credential.pk}/revoke/")
    assert again.json()["revoked_at"] == first.json()["revoked_at"]
    assert list(CredentialEvent.objects.values_list("action", flat=True)) == ["revoke"]
    assert [row["name"] for row in api.get(URL, {"revoked": "true"}).json()["results"]] == ["key"]
    assert api.get(URL, {"revoked": "false"}).json()["results"] == []


def test_revoke_all_revokes_every_credential_of_the_caller_only(api, owner, stranger):
    for index in range(3):
        credential_of(owner, name=f"c{index}")
    theirs = credential_of(stranger, name="theirs")
    response = api.post(f"{URL}revoke-all/")
    assert (response.status_code, response.json()) == (200, {"revoked": 3})
    assert not Credential.objects.filter(owner=owner, revoked_at__isnull=True).exists()
    assert Credential.objects.get(pk=theirs.pk).revoked_at is None
    assert api.post(f"{URL}revoke-all/").json() == {"revoked": 0}


def test_another_users_credential_cannot_be_revoked(api, stranger):
    theirs = credential_of(stranger)
    response = api.post(f"{URL}{theirs.pk}/revoke/")
    assert (response.status_code, error(response)["code"]) == (404, "not_found")
    assert Credential.objects.get(pk=theirs.pk).revoked_at is None


def test_a_read_only_key_cannot_sync_or_revoke(api_with, owner):
    credential = credential_of(owner)
    reader = api_with("read")
    for response in (
        reader.post(SYNC, {"credentials": [item("a")]}),
        reader.post(f"{URL}{credential.pk}/revoke/"),
        reader.post(f"{URL}revoke-all/"),
    ):
        assert (response.status_code, error(response)["code"]) == (403, "missing_scope")
    assert Credential.objects.get().revoked_at is None
    assert not CredentialEvent.objects.exists()


# --- sync ----------------------------------------------------------------------------------------


def item(client_id: str, secret: str = SECRET, **fields) -> dict:
    return {"id": client_id, "name": f"name {client_id}", "kind": "openai", "secret": secret, **fields}


def synced(api, *items: dict, prune: bool | None = None) -> dict:
    body: dict = {"credentials": list(items)}
    if prune is not None:
        body["prune"] = prune
    response = api.post(SYNC, body)
    assert response.status_code == 200, response.json()
    return response.json()


def outcomes(body: dict) -> dict[str, str]:
    return {row["id"]: row["outcome"] for row in body["credentials"]}


def test_sync_creates_by_client_id_and_answers_each_item_with_its_credential(api, owner):
    body = synced(
        api,
        item("desk-1"),
        item("desk-2", kind="http_header", header_name="X-Api-Key", secret=OTHER_SECRET),
    )
    assert outcomes(body) == {"desk-1": "created", "desk-2": "created"}
    assert body["counts"] == {"created": 2, "updated": 0, "unchanged": 0, "deleted": 0}
    assert set(body["credentials"][0]["credential"]) == FIELDS
    stored = {c.client_id: c for c in Credential.objects.filter(owner=owner)}
    assert stored["desk-2"].reveal_secret() == OTHER_SECRET
    assert stored["desk-2"].header_name == "X-Api-Key"
    assert [row["client_id"] for row in api.get(URL, {"client_id": "desk-1"}).json()["results"]] == ["desk-1"]
    assert list(CredentialEvent.objects.values_list("action", flat=True)) == ["create", "create"]


def test_pushing_the_same_set_twice_changes_nothing_and_writes_no_events(api, owner):
    items = [item("a"), item("b", kind="openai_compatible", base_url="https://llm.example.com/v1")]
    synced(api, *items)
    before = list(Credential.objects.order_by("pk").values())
    events = CredentialEvent.objects.count()
    body = synced(api, *items)
    assert outcomes(body) == {"a": "unchanged", "b": "unchanged"}
    assert list(Credential.objects.order_by("pk").values()) == before
    assert CredentialEvent.objects.count() == events


def test_a_changed_secret_or_field_is_an_update_naming_what_changed(api, owner):
    synced(api, item("a"), item("b"))
    body = synced(api, item("a", secret=OTHER_SECRET), item("b", name="renamed"))
    assert outcomes(body) == {"a": "updated", "b": "updated"}
    assert Credential.objects.get(client_id="a").reveal_secret() == OTHER_SECRET
    assert body["credentials"][0]["credential"]["secret_hint"] == "…3210"
    updates = dict(CredentialEvent.objects.filter(action="update").values_list("credential_name", "changed_fields"))
    assert updates == {"name a": ["secret", "secret_hint"], "renamed": ["name"]}


def test_two_synced_credentials_can_swap_names(api, owner):
    synced(api, item("a", name="first"), item("b", name="second"))
    synced(api, item("a", name="second"), item("b", name="first"))
    assert dict(Credential.objects.values_list("client_id", "name")) == {"a": "second", "b": "first"}


def test_an_unchanged_secret_is_recognised_by_its_digest_without_decrypting(api, owner):
    synced(api, item("a"))
    # A ciphertext no key decrypts: had the sync decrypted it, it could not have matched.
    Credential.objects.filter(client_id="a").update(encrypted_secret="not-a-fernet-token")
    assert outcomes(synced(api, item("a"))) == {"a": "unchanged"}
    assert Credential.objects.get(client_id="a").encrypted_secret == "not-a-fernet-token"


def test_a_missing_digest_is_filled_in_quietly_when_the_secret_matches(api, owner):
    synced(api, item("a"))
    Credential.objects.filter(client_id="a").update(secret_digest="")
    events = CredentialEvent.objects.count()
    assert outcomes(synced(api, item("a"))) == {"a": "unchanged"}
    assert Credential.objects.get(client_id="a").secret_digest != ""
    assert CredentialEvent.objects.count() == events


def test_a_revoked_credential_stays_revoked_for_the_same_secret_and_a_new_one_lifts_it(api, owner):
    synced(api, item("a"))
    api.post(f"{URL}revoke-all/")
    assert outcomes(synced(api, item("a"))) == {"a": "unchanged"}
    assert Credential.objects.get(client_id="a").revoked_at is not None
    body = synced(api, item("a", secret=OTHER_SECRET))
    assert outcomes(body) == {"a": "updated"}
    assert body["credentials"][0]["credential"]["revoked_at"] is None
    assert CredentialEvent.objects.filter(action="update").get().changed_fields == [
        "secret",
        "secret_hint",
        "revoked_at",
    ]


def test_without_prune_missing_credentials_stay_and_with_prune_only_synced_ones_go(api, owner):
    by_hand = credential_of(owner, name="by hand")
    synced(api, item("a"), item("b"))
    assert synced(api, item("a"))["counts"]["deleted"] == 0
    assert Credential.objects.count() == 3
    b = Credential.objects.get(client_id="b")
    body = synced(api, item("a"), prune=True)
    assert body["deleted"] == [{"id": "b", "credential": b.pk}]
    assert body["counts"] == {"created": 0, "updated": 0, "unchanged": 1, "deleted": 1}
    assert set(Credential.objects.values_list("name", flat=True)) == {"name a", by_hand.name}
    deleted = CredentialEvent.objects.get(action="delete")
    assert (deleted.credential_pk, deleted.credential_id, deleted.actor_id) == (b.pk, None, owner.pk)


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"kind": "telepathy"}, "credentials.1.kind"),
        ({"secret": ""}, "credentials.1.secret"),
        ({"kind": "openai_compatible"}, "credentials.1.base_url"),
        ({"header_name": "X-Key"}, "credentials.1.header_name"),
        ({"base_url": "not a url"}, "credentials.1.base_url"),
        ({"id": ""}, "credentials.1.id"),
        ({"id": "a"}, "credentials.1.id"),  # twice in the set
        ({"name": "name a"}, "credentials.1.name"),  # twice in the set
        ({"name": "by hand"}, "credentials.1.name"),  # taken by a credential the sync does not manage
        ({"name": "x" * 101}, "credentials.1.name"),
    ],
)
def test_a_bad_item_is_named_by_index_and_field_and_nothing_is_saved(api, owner, bad, field):
    credential_of(owner, name="by hand")
    response = api.post(SYNC, {"credentials": [item("a"), {**item("b"), **bad}]})
    assert response.status_code == 400
    assert list(error(response)["fields"]) == [field]
    assert error(response)["message"].startswith(f"{field}: ")
    assert list(Credential.objects.values_list("name", flat=True)) == ["by hand"]
    assert not CredentialEvent.objects.exists()


def test_a_synced_credential_cannot_change_kind_and_an_error_keeps_the_others_as_they_were(api, owner):
    synced(api, item("a"), item("b"))
    response = api.post(SYNC, {"credentials": [item("a", secret=OTHER_SECRET), item("b", kind="anthropic")]})
    assert response.status_code == 400
    assert list(error(response)["fields"]) == ["credentials.1.kind"]
    assert "cannot change" in error(response)["message"]
    assert Credential.objects.get(client_id="a").reveal_secret() == SECRET
    assert CredentialEvent.objects.filter(action="update").count() == 0


def test_the_set_shape_is_checked(api, owner):
    for body, field in (
        ({}, "credentials"),
        ({"credentials": "nope"}, "credentials"),
        ({"credentials": [item(str(i)) for i in range(501)]}, "credentials"),
        ({"credentials": [], "prune": "perhaps"}, "prune"),
        ({"credentials": [{"id": "a"}]}, "credentials.0.name"),
    ):
        response = api.post(SYNC, body)
        assert response.status_code == 400, body
        assert field in error(response)["fields"], (body, error(response))
    assert not Credential.objects.exists()


def test_client_ids_belong_to_each_user(api, owner, stranger):
    theirs = services.credential_create(owner=stranger, name="name a", kind="openai", secret=OTHER_SECRET)
    Credential.objects.filter(pk=theirs.pk).update(client_id="a")
    assert outcomes(synced(api, item("a"), prune=True)) == {"a": "created"}
    assert Credential.objects.get(pk=theirs.pk).reveal_secret() == OTHER_SECRET
    assert Credential.objects.filter(client_id="a").count() == 2


def test_a_sync_repeated_with_its_idempotency_key_is_answered_once(api, owner):
    body = {"credentials": [item("a")]}
    first = api.post(SYNC, body, **{"Idempotency-Key": "sync-1"})
    again = api.post(SYNC, body, **{"Idempotency-Key": "sync-1"})
    assert (again.status_code, again.json()) == (200, first.json())
    assert again["Idempotent-Replayed"] == "true"
    assert CredentialEvent.objects.count() == 1


def test_no_secret_appears_in_sync_answers_errors_records_or_logs(api, owner, caplog):
    caplog.set_level(logging.DEBUG)
    answers = [
        api.post(SYNC, {"credentials": [item("a")]}, **{"Idempotency-Key": "s-1"}),
        api.post(SYNC, {"credentials": [item("a")]}, **{"Idempotency-Key": "s-1"}),
        api.post(SYNC, {"credentials": [item("a", secret=OTHER_SECRET), item("a", secret=OTHER_SECRET)]}),
        api.post(SYNC, {"credentials": [item("a", secret=OTHER_SECRET, kind="anthropic")]}),
        api.post(SYNC, {"credentials": [item("a", secret=OTHER_SECRET)]}),
        api.post(f"{URL}revoke-all/"),
        api.get(URL),
    ]
    assert [answer.status_code for answer in answers] == [200, 200, 400, 400, 200, 200, 200]
    for secret in (SECRET, OTHER_SECRET):
        for answer in answers:
            assert secret not in answer.content.decode()
            assert secret[-12:] not in answer.content.decode()
        assert secret not in caplog.text
        for model in (IdempotencyRecord, AuditEntry, CredentialEvent):
            assert secret not in str(list(model.objects.values()))
