"""Password change and reset, and email change, through allauth."""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail

from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a different long passphrase"


@pytest.fixture
def user(client):
    user = UserFactory(username="grace")
    client.force_login(user)
    return user


def test_a_user_changes_the_password_and_stays_signed_in(client, user):
    response = client.post(
        "/accounts/password/change/",
        {"oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert client.session["_auth_user_id"] == str(user.pk)


def test_a_wrong_current_password_changes_nothing(client, user):
    response = client.post(
        "/accounts/password/change/",
        {"oldpassword": "not it", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 200
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_a_password_reset_link_sets_a_new_password(client, db):
    user = UserFactory(username="ada")
    client.post("/accounts/password/reset/", {"email": "ada@example.com"})
    link = re.search(r"http://\S+/accounts/password/reset/key/\S+", mail.outbox[-1].body).group(0)
    response = client.get(link)
    assert response.status_code == 302  # allauth moves the key out of the address first
    response = client.post(response["Location"], {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)


def test_a_new_email_is_used_only_once_confirmed(client, user):
    response = client.post("/accounts/email/", {"action_add": "", "email": "grace@new.example.com"})
    assert response.status_code == 302
    assert mail.outbox[-1].to == ["grace@new.example.com"]
    code = re.search(r"^\s*([A-Z0-9]{4}-[A-Z0-9]{4})\s*$", mail.outbox[-1].body, re.MULTILINE).group(1)
    user.refresh_from_db()
    assert user.email == "grace@example.com"

    response = client.post("/accounts/confirm-email/", {"code": code})
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.email == "grace@new.example.com"
    assert EmailAddress.objects.get(user=user).email == "grace@new.example.com"
