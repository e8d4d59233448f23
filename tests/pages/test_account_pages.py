"""allauth's pages and the profile in the shared layout: tabs, fields that keep what was typed, htmx's CSRF header."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from apps.users.models import User

pytestmark = pytest.mark.django_db


def field_block(html: str, name: str) -> str:
    """The `.field` wrapper of the control named `name`."""
    for block in re.findall(
        r'<div class="field[^"]*">.*?</div>\s*(?=<div class="field|<div class="form-actions)', html, re.S
    ):
        if f'name="{name}"' in block:
            return block
    raise AssertionError(f"no field {name!r} in the page")


def test_a_failed_sign_up_keeps_what_was_typed_and_says_what_is_wrong_beside_the_field(client: Client) -> None:
    response = client.post(
        "/accounts/signup/",
        {"username": "grace", "email": "grace@example.com", "password1": "a long passphrase", "password2": "another"},
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert 'value="grace@example.com"' in field_block(html, "email")
    assert 'value="grace"' in field_block(html, "username")
    password2 = field_block(html, "password2")
    assert 'aria-invalid="true"' in password2
    assert 'class="errorlist" id="id_password2_error"' in password2
    assert "same password" in password2
    assert not User.objects.filter(username="grace").exists()


def test_the_account_pages_share_the_settings_tabs(client: Client, member) -> None:
    client.force_login(member)

    profile = client.get("/accounts/profile/").content.decode()
    email = client.get("/accounts/email/").content.decode()

    tabs = re.compile(r'<nav class="subnav" aria-label="Settings">(.*?)</nav>', re.S)
    assert '<a class="" href="/accounts/profile/" aria-current="page">Profile</a>' in tabs.search(profile).group(1)
    assert '<a class="" href="/accounts/email/" aria-current="page">Email</a>' in tabs.search(email).group(1)
    # The sign-in page of a visitor has no tabs.
    client.logout()
    assert 'class="subnav"' not in client.get("/accounts/login/").content.decode()


def test_the_token_in_the_pages_htmx_header_passes_the_csrf_check(member) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(member)
    html = browser.get("/").content.decode()
    headers = json.loads(re.search(r"hx-headers='([^']+)'", html).group(1))

    refused = browser.post("/accounts/language/", {"language": "zh-hans", "next": "/"})
    assert refused.status_code == 403
    member.refresh_from_db()
    assert member.language == ""

    accepted = browser.post("/accounts/language/", {"language": "zh-hans", "next": "/"}, headers=headers)
    assert accepted.status_code == 302
    member.refresh_from_db()
    assert member.language == "zh-hans"


def test_the_loading_indicator_is_hidden_until_htmx_marks_a_request() -> None:
    from django.template import Context, Template

    html = Template('{% include "app/components/loading.html" with id="runs-loading" %}').render(Context())
    assert html == '<span class="spinner htmx-indicator" id="runs-loading">Loading…</span>\n'
