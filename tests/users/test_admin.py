"""The operators' console: users searchable and filterable, login records read-only."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.users.models import ApiKey, LoginAttempt
from apps.users.services import api_key_authenticate, api_key_create
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    user = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


def test_the_admin_is_branded(client, operator):
    assert "Switchboard operations" in client.get("/admin/").content.decode()


def test_users_are_searchable_by_email_and_filterable(client, operator):
    UserFactory(username="alice", display_name="Alice Liddell")
    UserFactory(username="bob")
    page = client.get("/admin/users/user/", {"q": "alice@example"}).content.decode()
    assert "alice" in page
    assert ">bob<" not in page
    page = client.get("/admin/users/user/", {"is_staff__exact": "1"}).content.decode()
    assert ">root<" in page
    assert "alice" not in page


def test_the_user_list_shows_failed_logins_of_the_last_day(client, operator):
    target = UserFactory(username="target")
    LoginAttempt.objects.bulk_create(
        [LoginAttempt(user=target, identifier="target", outcome="failed") for _ in range(3)]
        + [LoginAttempt(user=target, identifier="target", outcome="succeeded")]
    )
    response = client.get("/admin/users/user/", {"q": "target"})
    assert response.context["cl"].result_list[0].failed_logins_24h == 3


@pytest.mark.parametrize("path", ["/admin/users/user/", "/admin/users/loginattempt/", "/admin/users/apikey/"])
def test_the_changelists_use_a_fixed_number_of_queries(client, operator, path):
    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(path).status_code == 200
        return len(queries)

    UserFactory(username="one")
    LoginAttempt.objects.create(user=operator, identifier="root", outcome="failed")
    api_key_create(owner=operator, name="first", scopes=["read"])
    baseline = count_queries()
    for n in range(10):
        user = UserFactory(username=f"more{n}")
        LoginAttempt.objects.create(user=user, identifier=user.username, outcome="failed")
        api_key_create(owner=user, name=f"key {n}", scopes=["read", "execute"])
    assert count_queries() == baseline


def test_login_records_are_read_only(client, operator):
    attempt = LoginAttempt.objects.create(identifier="x", outcome="failed", ip_address="203.0.113.9")
    assert client.get("/admin/users/loginattempt/add/").status_code == 403
    response = client.post(f"/admin/users/loginattempt/{attempt.pk}/change/", {"identifier": "changed"})
    assert response.status_code == 403
    assert client.post(f"/admin/users/loginattempt/{attempt.pk}/delete/", {"post": "yes"}).status_code == 403
    attempt.refresh_from_db()
    assert attempt.identifier == "x"
    page = client.get("/admin/users/loginattempt/", {"q": "203.0.113.9"}).content.decode()
    assert "203.0.113.9" in page


def test_the_admin_speaks_simplified_chinese(client, operator):
    page = client.get("/admin/", headers={"Accept-Language": "zh-hans"}).content.decode()
    assert "Switchboard 运营后台" in page


def test_operators_find_keys_by_owner_and_revoke_them_without_seeing_them(client, operator):
    alice = UserFactory(username="alice")
    api_key, key = api_key_create(owner=alice, name="alice's job", scopes=["read"])
    page = client.get("/admin/users/apikey/", {"q": "alice"}).content.decode()
    assert api_key.masked in page
    assert key not in page
    assert key not in client.get(f"/admin/users/apikey/{api_key.pk}/change/").content.decode()
    assert client.get("/admin/users/apikey/add/").status_code == 403

    response = client.post("/admin/users/apikey/", {"action": "revoke", "_selected_action": [api_key.pk]}, follow=True)
    assert "1 key(s) revoked." in response.content.decode()
    assert ApiKey.objects.get(pk=api_key.pk).status == ApiKey.Status.REVOKED
    assert api_key_authenticate(key) is None


def test_the_api_audit_trail_is_listed_and_read_only(client, operator):
    from apps.users.models import AuditEntry

    entry = AuditEntry.objects.create(
        actor=operator,
        action="workflow.publish",
        method="POST",
        path="/api/v1/workflows/7/publish/",
        object_type="workflows.workflow",
        object_id="7",
        status_code=201,
        request_id="req-42",
    )
    page = client.get("/admin/users/auditentry/", {"q": "req-42"}).content.decode()
    assert "workflow.publish" in page
    assert client.get("/admin/users/auditentry/add/").status_code == 403
    assert client.post(f"/admin/users/auditentry/{entry.pk}/change/", {"action": "x"}).status_code == 403
    assert client.post(f"/admin/users/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEntry.objects.get(pk=entry.pk).action == "workflow.publish"
