"""`me/` and `api-keys/`: a user's profile and keys through the API, with the shared error shape."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from apps.users.models import ApiKey, AuditEntry
from apps.users.services import api_key_authenticate
from tests.api.conftest import error

pytestmark = pytest.mark.django_db


def test_me_shows_and_changes_the_profile(api, owner):
    assert api.get("/api/v1/me/").json()["username"] == "owner"
    response = api.patch("/api/v1/me/", {"display_name": "Ada", "time_zone": "Europe/Paris", "language": "zh-hans"})
    assert response.status_code == 200, response.json()
    owner.refresh_from_db()
    assert (owner.display_name, owner.time_zone, owner.language) == ("Ada", "Europe/Paris", "zh-hans")


def test_me_refuses_bad_values_naming_them_and_changes_nothing(api, owner):
    response = api.patch("/api/v1/me/", {"display_name": "Bob", "time_zone": "Mars/Olympus", "language": "xx"})
    assert response.status_code == 400
    assert set(error(response)["fields"]) == {"time_zone", "language"}
    owner.refresh_from_db()
    assert owner.display_name == ""


def test_a_key_is_shown_once_then_only_its_preview(api, owner):
    created = api.post("/api/v1/api-keys/", {"name": "ci", "scopes": ["read"]})
    assert created.status_code == 201
    key = created.json()["key"]
    assert api_key_authenticate(key).owner == owner
    listed = api.get("/api/v1/api-keys/").json()["results"]
    assert key not in str(listed)
    assert created.json()["key_preview"] in {row["key_preview"] for row in listed}
    assert "key" not in api.get(f"/api/v1/api-keys/{created.json()['id']}/").json()


def test_deleting_a_key_revokes_it_and_it_stops_working(api, owner):
    created = api.post("/api/v1/api-keys/", {"name": "temp", "scopes": ["read"]}).json()
    revoked = api.delete(f"/api/v1/api-keys/{created['id']}/")
    assert revoked.json()["status"] == "revoked"
    assert api_key_authenticate(created["key"]) is None
    assert ApiKey.objects.filter(pk=created["id"]).exists()


def test_a_key_cannot_mint_a_key_with_more_scopes_than_itself(api_with):
    weak = api_with("read", "write")
    response = weak.post("/api/v1/api-keys/", {"name": "escalate", "scopes": ["execute"]})
    assert (response.status_code, error(response)["code"]) == (403, "missing_scope")
    assert weak.post("/api/v1/api-keys/", {"name": "same", "scopes": ["read"]}).status_code == 201


def test_another_users_key_is_404(api, stranger, api_with):
    theirs = (
        api_with("read", "write", user=stranger).post("/api/v1/api-keys/", {"name": "x", "scopes": ["read"]}).json()
    )
    assert api.get(f"/api/v1/api-keys/{theirs['id']}/").status_code == 404
    response = api.delete(f"/api/v1/api-keys/{theirs['id']}/")
    assert (response.status_code, error(response)["code"]) == (404, "not_found")
    assert api_key_authenticate(theirs["key"]) is not None


def test_reading_needs_read_and_writing_needs_write(api_with):
    assert api_with("write").get("/api/v1/me/").status_code == 403
    response = api_with("read").patch("/api/v1/me/", {"display_name": "x"})
    assert response.status_code == 403
    assert error(response) == {"code": "missing_scope", "message": "The API key lacks the 'write' scope.", "fields": {}}


def test_missing_and_bad_credentials_are_401_with_a_bearer_challenge(client):
    for headers, code in (({}, "not_authenticated"), ({"Authorization": "Bearer sb_nope"}, "invalid_api_key")):
        response = client.get("/api/v1/me/", headers=headers)
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == 'Bearer realm="api"'
        assert error(response)["code"] == code


def test_browsers_use_the_session_and_need_the_csrf_token_to_write(owner):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(owner)
    assert browser.get("/api/v1/me/").status_code == 200
    response = browser.post("/api/v1/api-keys/", {"name": "x", "scopes": ["read"]}, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in error(response)["message"]
    assert not ApiKey.objects.exists()


def test_idempotent_creation_replays_the_first_answer_and_refuses_a_different_body(api):
    first = api.post("/api/v1/api-keys/", {"name": "once", "scopes": ["read"]}, **{"Idempotency-Key": "k-1"})
    again = api.post("/api/v1/api-keys/", {"name": "once", "scopes": ["read"]}, **{"Idempotency-Key": "k-1"})
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert again["Idempotent-Replayed"] == "true"
    assert ApiKey.objects.filter(name="once").count() == 1
    other = api.post("/api/v1/api-keys/", {"name": "twice", "scopes": ["read"]}, **{"Idempotency-Key": "k-1"})
    assert (other.status_code, error(other)["code"]) == (422, "idempotency_key_reused")
    assert not ApiKey.objects.filter(name="twice").exists()


def test_an_idempotent_validation_error_is_replayed_too_and_keys_are_per_user(api, api_with, stranger):
    bad = api.post("/api/v1/api-keys/", {"name": "", "scopes": ["read"]}, **{"Idempotency-Key": "k-2"})
    assert bad.status_code == 400
    assert (
        api.post("/api/v1/api-keys/", {"name": "", "scopes": ["read"]}, **{"Idempotency-Key": "k-2"}).json()
        == bad.json()
    )
    theirs = api_with("read", "write", user=stranger)
    assert (
        theirs.post("/api/v1/api-keys/", {"name": "x", "scopes": ["read"]}, **{"Idempotency-Key": "k-2"}).status_code
        == 201
    )


def test_writes_leave_an_audit_entry_and_reads_do_not(api, owner):
    api.get("/api/v1/me/")
    created = api.post("/api/v1/api-keys/", {"name": "audited", "scopes": ["read"]}).json()
    api.delete(f"/api/v1/api-keys/{created['id']}/")
    entries = list(AuditEntry.objects.order_by("created_at").values_list("action", "object_id", "actor", "method"))
    assert entries == [
        ("api-key.create", str(created["id"]), owner.pk, "POST"),
        ("api-key.destroy", str(created["id"]), owner.pk, "DELETE"),
    ]
    assert AuditEntry.objects.filter(api_key__isnull=False, request_id__gt="").count() == 2


def test_a_principal_over_its_rate_is_429_with_retry_after(api, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"principal": "3/min"}}
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    api_settings.reload()
    SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
    try:
        statuses = [api.get("/api/v1/me/").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        response = api.get("/api/v1/me/")
        assert error(response)["code"] == "throttled"
        assert 0 < int(response["Retry-After"]) <= 60
    finally:
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK}
        api_settings.reload()
        SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES


def test_unknown_api_urls_answer_in_the_error_shape_and_pages_stay_html(api, client):
    response = api.get("/api/v1/api-keys/not-a-number/")
    assert (response.status_code, response["Content-Type"]) == (404, "application/json")
    assert error(response)["code"] == "not_found"
    assert api.get("/api/v1/no-such-thing/").json()["error"]["code"] == "not_found"
    assert client.get("/no-such-page/")["Content-Type"].startswith("text/html")


def test_the_schema_is_public_and_documents_the_error_shape(client):
    schema = client.get("/api/schema/", headers={"Accept": "application/json"}).json()
    assert schema["components"]["schemas"]["Error"]["required"] == ["error"]
    me = schema["paths"]["/api/v1/me/"]["get"]["responses"]
    assert {"200", "401", "403", "429"} <= set(me)
    assert schema["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    for path, operations in schema["paths"].items():
        if "post" in operations:
            names = [parameter["name"] for parameter in operations["post"].get("parameters", [])]
            if not operations["post"].get("security"):
                # Stripe's webhook: no credentials, so none of the API's idempotency or auth answers.
                assert path == "/api/v1/billing/stripe/webhook/"
                assert "Idempotency-Key" not in names
                assert "401" not in operations["post"]["responses"]
                continue
            assert "Idempotency-Key" in names, path
            assert {"409", "422"} <= set(operations["post"]["responses"]), path


def test_a_mangled_cursor_is_a_400_naming_it(api):
    response = api.get("/api/v1/api-keys/", {"cursor": "not-a-cursor"})
    assert response.status_code == 400
    assert list(error(response)["fields"]) == ["cursor"]


def _multipart_patch(api, data: dict):
    from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

    return api.client.generic(
        "PATCH", "/api/v1/me/", encode_multipart(BOUNDARY, data), content_type=MULTIPART_CONTENT, headers=api.headers
    )


def test_an_avatar_is_uploaded_as_multipart_and_a_bad_one_is_refused(api, owner, settings, tmp_path):
    from tests.users.test_profile import image_upload

    settings.MEDIA_ROOT = tmp_path
    response = _multipart_patch(api, {"avatar": image_upload()})
    assert response.status_code == 200, response.json()
    owner.refresh_from_db()
    assert owner.avatar.name.endswith(".png")
    assert response.json()["avatar"].endswith(owner.avatar.url)

    fake = SimpleUploadedFile("x.png", b"#!/bin/sh\necho pwned\n", content_type="image/png")
    refused = _multipart_patch(api, {"avatar": fake, "display_name": "Changed"})
    assert refused.status_code == 400
    assert list(error(refused)["fields"]) == ["avatar"]
    owner.refresh_from_db()
    assert owner.display_name == ""

    settings.AVATAR_MAX_BYTES = 1000
    big = SimpleUploadedFile("big.png", image_upload(size=(300, 300)).read() + b"\0" * 2000, content_type="image/png")
    too_big = _multipart_patch(api, {"avatar": big})
    assert too_big.status_code == 400
    assert "1000" in error(too_big)["fields"]["avatar"][0].replace("\xa0", " ")
