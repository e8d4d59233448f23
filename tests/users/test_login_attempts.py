"""Every sign-in attempt is recorded; failures are rate limited on the site and the admin alike."""

from __future__ import annotations

import pytest

from apps.users.models import LoginAttempt
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Switchboard-Test"


def site_login(client, login: str, password: str):
    return client.post("/accounts/login/", {"login": login, "password": password}, headers={"User-Agent": BROWSER})


def test_a_successful_login_is_recorded_with_address_and_agent(client):
    user = UserFactory(username="grace")
    site_login(client, "grace", PASSWORD)
    attempt = LoginAttempt.objects.get()
    assert attempt.user == user
    assert attempt.outcome == LoginAttempt.Outcome.SUCCEEDED
    assert attempt.source == LoginAttempt.Source.SITE
    assert attempt.ip_address == "127.0.0.1"
    assert attempt.user_agent == BROWSER


def test_a_failed_login_is_recorded_against_the_account_it_named(client):
    user = UserFactory(username="grace")
    site_login(client, "grace@example.com", "wrong password")
    attempt = LoginAttempt.objects.get()
    assert attempt.outcome == LoginAttempt.Outcome.FAILED
    assert attempt.identifier == "grace@example.com"
    assert attempt.user == user


def test_a_failed_login_for_an_unknown_name_is_recorded_without_a_user(client):
    site_login(client, "nobody", "whatever")
    attempt = LoginAttempt.objects.get()
    assert (attempt.identifier, attempt.user, attempt.outcome) == ("nobody", None, "failed")


def test_failed_logins_are_rate_limited_per_login_name(client, settings):
    UserFactory(username="grace")
    for _ in range(5):
        assert site_login(client, "grace", "wrong").status_code == 200
    response = site_login(client, "grace", PASSWORD)  # even the right password, once limited
    assert "Too many failed login attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session
    outcomes = list(LoginAttempt.objects.order_by("created_at", "pk").values_list("outcome", flat=True))
    assert outcomes == ["failed"] * 5 + ["rate_limited"]


def test_the_admin_login_is_recorded_and_rate_limited_too(client):
    UserFactory(username="root", is_staff=True, is_superuser=True)
    for _ in range(5):
        response = client.post("/admin/login/", {"username": "root", "password": "wrong"})
        assert response.status_code == 200
    response = client.post("/admin/login/?next=/admin/", {"username": "root", "password": PASSWORD})
    assert response.status_code == 200
    assert "Too many failed login attempts" in response.content.decode()
    assert set(LoginAttempt.objects.values_list("source", flat=True)) == {"admin"}
    assert LoginAttempt.objects.filter(outcome="rate_limited").count() == 1


def test_the_admin_login_admits_staff_and_records_it(client):
    user = UserFactory(username="root", is_staff=True)
    response = client.post("/admin/login/?next=/admin/", {"username": "root", "password": PASSWORD})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)
    assert LoginAttempt.objects.get().source == "admin"


def test_the_admin_login_refuses_a_non_staff_user(client):
    UserFactory(username="member")
    response = client.post("/admin/login/?next=/admin/", {"username": "member", "password": PASSWORD})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
