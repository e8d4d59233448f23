"""Sign up, confirm the email by code, sign in by username or email, sign out."""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth.models import Group
from django.core import mail

from apps.users.models import User
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def sign_up(client, username: str = "ada", email: str = "ada@example.com"):
    return client.post(
        "/accounts/signup/",
        {"username": username, "email": email, "password1": PASSWORD, "password2": PASSWORD},
    )


def code_from_last_email() -> str:
    match = re.search(r"^\s*([A-Z0-9]{4}-[A-Z0-9]{4})\s*$", mail.outbox[-1].body, re.MULTILINE)
    assert match, mail.outbox[-1].body
    return match.group(1)


def test_sign_up_sends_a_code_and_the_code_confirms_and_signs_in(client):
    response = sign_up(client)
    assert response.status_code == 302
    assert response["Location"] == "/accounts/confirm-email/"
    user = User.objects.get(username="ada")
    assert not EmailAddress.objects.get(user=user).verified
    assert "_auth_user_id" not in client.session
    assert mail.outbox[-1].to == ["ada@example.com"]

    response = client.post("/accounts/confirm-email/", {"code": code_from_last_email()})
    assert response.status_code == 302
    assert EmailAddress.objects.get(user=user).verified
    assert client.session["_auth_user_id"] == str(user.pk)


def test_a_wrong_code_is_refused_and_verifies_nothing(client):
    sign_up(client)
    response = client.post("/accounts/confirm-email/", {"code": "WRONG1"})
    assert response.status_code == 200
    assert "Incorrect code" in response.content.decode()
    assert not EmailAddress.objects.get(email="ada@example.com").verified


def test_a_new_user_joins_the_members_group(client):
    sign_up(client)
    assert list(User.objects.get(username="ada").groups.values_list("name", flat=True)) == ["Members"]
    assert Group.objects.filter(name="Members").exists()


def test_a_duplicate_email_creates_nothing_and_reveals_nothing(client):
    UserFactory(username="first", email="taken@example.com")
    response = sign_up(client, username="second", email="taken@example.com")
    # The same answer as a fresh sign-up (no account enumeration); the owner is told by mail.
    assert response.status_code == 302
    assert not User.objects.filter(username="second").exists()
    assert "already" in mail.outbox[-1].body


def test_an_unverified_user_cannot_sign_in(client):
    UserFactory(username="grace", verified_email=False)
    response = client.post("/accounts/login/", {"login": "grace", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/confirm-email/"
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("login", ["grace", "grace@example.com", "GRACE@example.com"])
def test_a_verified_user_signs_in_by_username_or_email_and_out(client, login):
    user = UserFactory(username="grace")
    response = client.post("/accounts/login/", {"login": login, "password": PASSWORD})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)
    client.post("/accounts/logout/")
    assert "_auth_user_id" not in client.session


def test_a_wrong_password_is_refused(client):
    UserFactory(username="grace")
    response = client.post("/accounts/login/", {"login": "grace", "password": "not it"})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_password_reset_mails_a_link(client):
    UserFactory(username="grace")
    response = client.post("/accounts/password/reset/", {"email": "grace@example.com"})
    assert response.status_code == 302
    assert "/accounts/password/reset/key/" in mail.outbox[-1].body


def test_pages_are_served_in_simplified_chinese(client):
    response = client.get("/accounts/login/", headers={"Accept-Language": "zh-hans"})
    assert response["Content-Language"] == "zh-hans"
    assert "登录" in response.content.decode()
