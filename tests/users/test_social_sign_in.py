"""GitHub and Google sign-in appear only when their client ids are configured."""

from __future__ import annotations

import pytest

from tests.support.services import manage, process_env, serve_process

pytestmark = pytest.mark.django_db(transaction=True)


def test_configured_providers_are_offered_on_the_login_page():
    with serve_process(GITHUB_CLIENT_ID="gh-id", GITHUB_CLIENT_SECRET="gh-secret") as server:
        page = server.get("/accounts/login/").text
        redirect = server.get("/accounts/github/login/", follow_redirects=False)
    assert "GitHub" in page
    assert "Google" not in page
    assert "gh-secret" not in page
    assert redirect.status_code == 200  # allauth's confirmation page before leaving for GitHub


def test_no_provider_is_offered_by_default(client):
    page = client.get("/accounts/login/").content.decode()
    assert "GitHub" not in page
    assert "Google" not in page


def test_a_client_id_without_its_secret_stops_start_up():
    result = manage("check", env=process_env(GOOGLE_CLIENT_ID="g-id"))
    assert result.returncode == 2
    assert "GOOGLE_CLIENT_SECRET" in result.stderr
