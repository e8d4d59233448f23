"""The API keys page: the list, a new key shown exactly once, revocation that the API obeys."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apps.users.models import ApiKey
from apps.users.services import api_key_create, api_key_revoke
from tests.factories import UserFactory
from tests.pages.test_dashboard import text

pytestmark = pytest.mark.django_db

URL = "/accounts/api-keys/"
NEW_KEY = re.compile(r'<code id="new-key" class="secret-value">(sb_[A-Za-z0-9_]+)</code>')


def create(client: Client, **fields) -> str:
    """POST the form; returns the key the page then shows (once)."""
    response = client.post(URL, {"name": "CI deploys", "scopes": ["read", "execute"], **fields})
    assert response.status_code == 302, response.content.decode()
    assert response["Location"] == URL
    html = client.get(URL).content.decode()
    return NEW_KEY.search(html).group(1)


def test_a_visitor_is_sent_to_sign_in(client: Client) -> None:
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_a_new_user_sees_the_empty_state_and_the_form(signed_in: Client) -> None:
    response = signed_in.get(URL)
    assert response.status_code == 200
    page = text(response.content.decode())
    assert "No API keys yet" in page
    assert "Create a key" in page
    assert 'name="scopes" value="execute"' in response.content.decode()


def test_the_key_is_shown_once_and_then_only_its_prefix(signed_in: Client, member) -> None:
    response = signed_in.post(URL, {"name": "CI deploys", "scopes": ["read", "execute"]})
    assert response.status_code == 302

    first = signed_in.get(URL)
    key = NEW_KEY.search(first.content.decode()).group(1)
    stored = ApiKey.objects.get(owner=member)
    assert (stored.name, stored.scopes, stored.expires_at) == ("CI deploys", ["read", "execute"], None)
    assert key.startswith(stored.prefix)
    assert key.endswith(stored.last_four)
    assert "no-store" in first["Cache-Control"]
    assert "The key “CI deploys” was created." in text(first.content.decode())

    again = signed_in.get(URL).content.decode()
    assert key not in again
    assert 'id="new-key"' not in again
    row = text(re.search(r"<tbody>(.*?)</tbody>", again, re.S).group(1))
    assert row.startswith(f"CI deploys {stored.prefix}…{stored.last_four} Read, Execute")
    assert "Never Active" in row


def test_the_shown_key_authenticates_the_api_until_revoked_in_the_page(signed_in: Client, member) -> None:
    key = create(signed_in)
    api = Client()
    headers = {"Authorization": f"Bearer {key}"}
    assert api.get("/api/v1/me/", headers=headers).status_code == 200
    stored = ApiKey.objects.get(owner=member)
    assert "Never" not in text(signed_in.get(URL).content.decode()).split("Last used")[-1].split("Revoke")[0]

    confirm = signed_in.get(f"{URL}{stored.pk}/revoke/")
    assert confirm.status_code == 200
    assert "Revoke the key" in confirm.content.decode()
    assert ApiKey.objects.get(pk=stored.pk).status == "active"  # GET only asks

    response = signed_in.post(f"{URL}{stored.pk}/revoke/")
    assert response.status_code == 302
    stored.refresh_from_db()
    assert stored.status == "revoked"
    assert stored.revoked_at is not None
    assert api.get("/api/v1/me/", headers=headers).status_code == 401
    page = signed_in.get(URL).content.decode()
    assert "The key “CI deploys” was revoked." in text(page)
    assert "Revoked" in text(page)
    assert f"{URL}{stored.pk}/revoke/" not in page  # no second revoke button


def test_revoking_twice_says_so_and_keeps_the_first_time(signed_in: Client, member) -> None:
    api_key, _ = api_key_create(owner=member, name="old", scopes=["read"])
    api_key_revoke(api_key=api_key)
    first_time = ApiKey.objects.get(pk=api_key.pk).revoked_at
    signed_in.post(f"{URL}{api_key.pk}/revoke/")
    assert ApiKey.objects.get(pk=api_key.pk).revoked_at == first_time
    assert "already revoked" in text(signed_in.get(URL).content.decode())


def test_revoke_is_post_only_with_csrf(member) -> None:
    api_key, _ = api_key_create(owner=member, name="k", scopes=["read"])
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(member)
    assert browser.post(f"{URL}{api_key.pk}/revoke/").status_code == 403
    assert ApiKey.objects.get(pk=api_key.pk).status == "active"


def test_a_failed_form_keeps_what_was_typed_and_names_the_field(signed_in: Client, member) -> None:
    response = signed_in.post(URL, {"name": "Nightly report", "scopes": []})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'value="Nightly report"' in html
    assert "Choose at least one scope." in html
    assert not ApiKey.objects.filter(owner=member).exists()

    response = signed_in.post(URL, {"name": "", "scopes": ["write"], "expires_on": "2001-01-01"})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'name="scopes" value="write" id="id_scopes_1" checked' in html
    assert 'value="2001-01-01"' in html
    assert "Choose today or a later day." in html
    assert "This field is required." in html
    assert not ApiKey.objects.filter(owner=member).exists()

    unknown = signed_in.post(URL, {"name": "x", "scopes": ["admin"]})
    assert unknown.status_code == 400
    assert "Select a valid choice." in unknown.content.decode()


def test_an_expiry_day_keeps_the_key_working_through_that_day(signed_in: Client, member) -> None:
    day = timezone.localdate() + timedelta(days=3)
    create(signed_in, expires_on=day.isoformat())
    stored = ApiKey.objects.get(owner=member)
    assert timezone.localtime(stored.expires_at).date() == day + timedelta(days=1)
    assert (timezone.localtime(stored.expires_at).hour, timezone.localtime(stored.expires_at).minute) == (0, 0)
    assert "until" in text(signed_in.get(URL).content.decode())


def test_an_expired_key_shows_as_expired(signed_in: Client, member) -> None:
    api_key, _ = api_key_create(owner=member, name="short", scopes=["read"])
    ApiKey.objects.filter(pk=api_key.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert "short" in text(signed_in.get(URL).content.decode())
    assert "Expired" in text(signed_in.get(URL).content.decode())


def test_another_users_key_is_not_listed_and_cannot_be_revoked(signed_in: Client, member) -> None:
    other = UserFactory(username="mallory")
    theirs, _ = api_key_create(owner=other, name="mallory's key", scopes=["read"])
    assert "mallory" not in signed_in.get(URL).content.decode()
    assert signed_in.get(f"{URL}{theirs.pk}/revoke/").status_code == 404
    assert signed_in.post(f"{URL}{theirs.pk}/revoke/").status_code == 404
    assert ApiKey.objects.get(pk=theirs.pk).status == "active"


@pytest.mark.parametrize("count", [1, 12])
def test_the_query_count_does_not_grow_with_the_keys(
    signed_in: Client, member, count: int, django_assert_num_queries
) -> None:
    for index in range(count):
        api_key_create(owner=member, name=f"key {index}", scopes=["read"])
    # session, user, keys, credit balance (header)
    with django_assert_num_queries(4):
        response = signed_in.get(URL)
    assert response.content.decode().count("/revoke/") == count
