"""The credentials pages: add, replace the secret, delete; the secret never comes back out; the audit trail."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from apps.agents import services
from apps.agents.models import Agent, Credential, CredentialEvent
from tests.factories import UserFactory
from tests.pages.test_dashboard import text

pytestmark = pytest.mark.django_db

LIST = "/credentials/"
NEW = "/credentials/new/"
# A unique string that must never appear in any page, whatever happens to the credential.
CANARY = "sk-canary-7f3e9b21d4c8a6e0-NEVER-RENDERED"


def add(member, name: str = "OpenAI main", kind: str = "openai", secret: str = CANARY, **fields) -> Credential:
    return services.credential_create(owner=member, name=name, kind=kind, secret=secret, actor=member, **fields)


def test_a_visitor_is_sent_to_sign_in(client: Client) -> None:
    for path in (LIST, NEW):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_a_new_user_sees_the_empty_state(signed_in: Client) -> None:
    response = signed_in.get(LIST)
    assert response.status_code == 200
    assert "No credentials yet" in text(response.content.decode())


def test_adding_a_credential_stores_it_encrypted_records_the_event_and_never_shows_the_secret(
    signed_in: Client, member
) -> None:
    form = signed_in.get(NEW).content.decode()
    for kind in ("openai", "anthropic", "ollama", "openai_compatible", "http_header"):
        assert f'<option value="{kind}"' in form

    response = signed_in.post(NEW, {"name": "OpenAI main", "kind": "openai", "secret": CANARY})

    assert response.status_code == 302
    assert response["Location"] == LIST
    credential = Credential.objects.get(owner=member)
    assert credential.reveal_secret() == CANARY
    assert CANARY not in credential.encrypted_secret
    [event] = CredentialEvent.objects.filter(owner=member)
    assert (event.action, event.actor_id, event.credential_pk) == ("create", member.pk, credential.pk)
    page = signed_in.get(LIST).content.decode()
    assert CANARY not in page
    assert CANARY[-4:] in page  # the hint only
    row = text(re.search(r"<tbody>(.*?)</tbody>", page, re.S).group(1))
    assert row.startswith("OpenAI main OpenAI •••• …ERED Never")


def test_a_failed_form_keeps_what_was_typed_except_the_secret(signed_in: Client, member) -> None:
    response = signed_in.post(
        NEW, {"name": "Internal API", "kind": "http_header", "secret": CANARY, "base_url": "https://api.example.com"}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert CANARY not in html
    assert 'value="Internal API"' in html
    assert '<option value="http_header" selected>' in html
    assert 'value="https://api.example.com"' in html
    assert "An HTTP header credential has no base URL" in html
    assert re.search(r'name="base_url"[^>]*aria-invalid="true"|aria-invalid="true"[^>]*name="base_url"', html)
    assert not Credential.objects.filter(owner=member).exists()

    blank = signed_in.post(NEW, {"name": "No secret", "kind": "anthropic", "secret": ""})
    assert blank.status_code == 400
    assert "This kind of credential needs a secret." in blank.content.decode()

    compatible = signed_in.post(NEW, {"name": "Local", "kind": "openai_compatible", "secret": CANARY})
    assert compatible.status_code == 400
    assert "needs the endpoint" in compatible.content.decode()
    assert CANARY not in compatible.content.decode()

    bad_kind = signed_in.post(NEW, {"name": "x", "kind": "ftp", "secret": CANARY})
    assert bad_kind.status_code == 400
    assert "Select a valid choice." in bad_kind.content.decode()
    assert not Credential.objects.filter(owner=member).exists()


def test_a_duplicate_name_is_an_error_on_the_name(signed_in: Client, member) -> None:
    add(member)
    response = signed_in.post(NEW, {"name": "OpenAI main", "kind": "anthropic", "secret": "another-secret-value"})
    assert response.status_code == 400
    assert "You already have a credential with this name." in response.content.decode()
    assert Credential.objects.filter(owner=member).count() == 1


def test_an_http_header_credential_with_its_header_and_an_ollama_one_without_a_secret(
    signed_in: Client, member
) -> None:
    response = signed_in.post(
        NEW, {"name": "Billing API", "kind": "http_header", "secret": CANARY, "header_name": "X-Api-Token"}
    )
    assert response.status_code == 302
    response = signed_in.post(NEW, {"name": "Laptop", "kind": "ollama", "base_url": "http://127.0.0.1:11434"})
    assert response.status_code == 302
    page = text(signed_in.get(LIST).content.decode())
    assert "header X-Api-Token" in page
    assert "http://127.0.0.1:11434" in page
    assert Credential.objects.get(name="Laptop").base_url == "http://127.0.0.1:11434"


def test_replacing_the_secret_never_shows_either_one_and_lifts_a_revocation(signed_in: Client, member) -> None:
    credential = add(member)
    services.credential_revoke(credential=credential, actor=member)
    new_secret = "sk-second-canary-0a1b2c3d4e5f-NEW1"

    form = signed_in.get(f"{LIST}{credential.pk}/secret/")
    assert form.status_code == 200
    assert CANARY not in form.content.decode()
    assert "ends in …ERED" in text(form.content.decode())

    empty = signed_in.post(f"{LIST}{credential.pk}/secret/", {"secret": ""})
    assert empty.status_code == 400
    assert "This kind of credential needs a secret." in empty.content.decode()

    response = signed_in.post(f"{LIST}{credential.pk}/secret/", {"secret": new_secret})
    assert response.status_code == 302
    credential.refresh_from_db()
    assert credential.reveal_secret() == new_secret
    assert credential.secret_hint == "…NEW1"
    assert credential.revoked_at is None
    update = CredentialEvent.objects.filter(credential=credential, action="update").get()
    assert update.actor_id == member.pk
    assert update.changed_fields == ["secret", "secret_hint", "revoked_at"]
    page = signed_in.get(LIST).content.decode()
    assert CANARY not in page
    assert new_secret not in page
    assert "The secret of “OpenAI main” was replaced." in text(page)


def test_deleting_asks_first_then_deletes_and_keeps_the_trail(signed_in: Client, member) -> None:
    credential = add(member)
    Agent.objects.create(owner=member, name="helper", model="scripted-1", credential=credential)

    confirm = signed_in.get(f"{LIST}{credential.pk}/delete/")
    assert confirm.status_code == 200
    assert "One agent uses it" in text(confirm.content.decode())
    assert Credential.objects.filter(pk=credential.pk).exists()

    response = signed_in.post(f"{LIST}{credential.pk}/delete/")
    assert response.status_code == 302
    assert not Credential.objects.filter(pk=credential.pk).exists()
    assert list(CredentialEvent.objects.filter(credential_pk=credential.pk).values_list("action", "actor")) == [
        ("delete", member.pk),
        ("create", member.pk),
    ]
    assert Agent.objects.get(name="helper").credential is None
    assert "The credential “OpenAI main” was deleted." in text(signed_in.get(LIST).content.decode())


def test_delete_is_post_only_with_csrf(member) -> None:
    credential = add(member)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(member)
    assert browser.post(f"{LIST}{credential.pk}/delete/").status_code == 403
    assert Credential.objects.filter(pk=credential.pk).exists()


def test_another_users_credential_is_a_404_everywhere(signed_in: Client, member) -> None:
    other = UserFactory(username="mallory")
    theirs = add(other, name="mallory's secret")
    assert "mallory" not in signed_in.get(LIST).content.decode()
    for suffix in ("secret/", "delete/"):
        assert signed_in.get(f"{LIST}{theirs.pk}/{suffix}").status_code == 404
        assert signed_in.post(f"{LIST}{theirs.pk}/{suffix}", {"secret": "hijack-attempt-secret"}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.reveal_secret() == CANARY


def test_the_last_use_comes_from_the_trail(signed_in: Client, member) -> None:
    credential = add(member)
    CredentialEvent.objects.create(
        credential=credential,
        credential_pk=credential.pk,
        credential_name=credential.name,
        owner=member,
        action="use",
        node_id="answer",
    )
    row = text(re.search(r"<tbody>(.*?)</tbody>", signed_in.get(LIST).content.decode(), re.S).group(1))
    assert "Never" not in row
    assert "now" in row


@pytest.mark.parametrize("count", [1, 12])
def test_the_query_count_does_not_grow_with_the_credentials(
    signed_in: Client, member, count: int, django_assert_num_queries
) -> None:
    for index in range(count):
        add(member, name=f"credential {index}", secret=f"{CANARY}-{index}")
    # session, user, credentials with their last use, credit balance (header)
    with django_assert_num_queries(4):
        response = signed_in.get(LIST)
    html = response.content.decode()
    assert html.count("/delete/") == count
    assert CANARY not in html
