"""Error pages: 403, 404 and 500 in the pages' design; JSON errors under /api/ as before."""

from __future__ import annotations

import re

import pytest
from django.test import Client, RequestFactory

from config import errors

pytestmark = pytest.mark.urls("tests.pages.urls")

LAYOUT = ('<a class="skip-link" href="#main">', 'href="/static/css/app.css"', '<main id="main"')


def in_the_design(html: str) -> bool:
    return all(marker in html for marker in LAYOUT)


@pytest.fixture
def browser_client(db) -> Client:
    """A client that gets the error page instead of the exception, as a browser would."""
    return Client(raise_request_exception=False)


@pytest.mark.parametrize("signed_in", [False, True])
def test_a_missing_page_is_a_404_page_in_the_design(browser_client: Client, member, signed_in: bool) -> None:
    if signed_in:
        browser_client.force_login(member)
    response = browser_client.get("/no/such/page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert in_the_design(html)
    assert '<h1 id="error-title">Page not found</h1>' in html
    assert ("Back to the dashboard" in html) is signed_in
    # The signed-in layout (navigation, balance) is there for a member, the visitor's otherwise.
    assert ('aria-label="Main"' in html) is signed_in
    assert ('href="/accounts/login/"' in html) is not signed_in


def test_a_refusal_is_a_403_page_that_keeps_its_reason_to_itself(browser_client: Client, member) -> None:
    browser_client.force_login(member)
    response = browser_client.get("/forbidden/")

    assert response.status_code == 403
    html = response.content.decode()
    assert in_the_design(html)
    assert '<h1 id="error-title">You may not do this</h1>' in html
    assert "internal reason" not in html


@pytest.mark.parametrize("signed_in", [False, True])
def test_a_crash_is_a_500_page_with_the_request_id_and_no_details(
    browser_client: Client, member, signed_in: bool
) -> None:
    if signed_in:
        browser_client.force_login(member)
    response = browser_client.get("/broken/")

    assert response.status_code == 500
    html = response.content.decode()
    assert in_the_design(html)
    assert '<h1 id="error-title">Something went wrong</h1>' in html
    assert f"<code>{response['X-Request-ID']}</code>" in html
    assert "a bug in a page" not in html
    assert "RuntimeError" not in html
    # Drawn without the user: no navigation, no balance, nobody's name.
    assert 'aria-label="Main"' not in html
    assert "Ada" not in html


def test_the_500_page_needs_no_database_and_no_user() -> None:
    # No `db` fixture: pytest-django fails any query this test makes.
    request = RequestFactory().get("/somewhere/")
    response = errors.server_error(request)

    assert response.status_code == 500
    html = response.content.decode()
    assert in_the_design(html)
    assert "Something went wrong" in html


def test_the_500_page_falls_back_to_plain_html_when_its_template_fails(settings, tmp_path) -> None:
    (tmp_path / "500.html").write_text('{% include "no/such/template.html" %}')
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path, *settings.TEMPLATES[0]["DIRS"]]}]

    response = errors.server_error(RequestFactory().get("/somewhere/"))

    assert response.status_code == 500
    html = response.content.decode()
    assert "<h1>Something went wrong</h1>" in html
    assert "no/such/template" not in html


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v1/no-such-endpoint/", 404, "not_found"),
        ("/api/v1/forbidden/", 403, "forbidden"),
        ("/api/v1/broken/", 500, "server_error"),
    ],
)
def test_the_api_still_answers_errors_in_json(browser_client: Client, path: str, status: int, code: str) -> None:
    response = browser_client.get(path)

    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == code
    assert not re.search(r"<html", response.content.decode())
