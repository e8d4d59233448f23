"""Every response carries X-Request-ID; every log line of the request carries the same id."""

from __future__ import annotations

import json
import uuid

from tests.support.services import serve_process


def test_a_request_id_is_generated_and_returned(client, db):
    response = client.get("/health/live")
    assert len(response["X-Request-ID"]) == 32
    assert client.get("/health/live")["X-Request-ID"] != response["X-Request-ID"]


def test_a_valid_incoming_request_id_is_kept(client, db):
    incoming = uuid.uuid4().hex
    response = client.get("/health/live", headers={"X-Request-ID": incoming})
    assert response["X-Request-ID"] == incoming


def test_an_invalid_incoming_request_id_is_replaced(client, db):
    response = client.get("/health/live", headers={"X-Request-ID": "<script>alert(1)</script>"})
    assert response["X-Request-ID"] != "<script>alert(1)</script>"
    uuid.UUID(response["X-Request-ID"])


def test_json_logs_carry_the_request_id(transactional_db):
    request_id = uuid.uuid4().hex
    with serve_process(LOG_FORMAT="json") as server:
        response = server.get("/no-such-page/", headers={"X-Request-ID": request_id})
        assert response.status_code == 404
        assert response.headers["X-Request-ID"] == request_id
        lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    matching = [line for line in lines if line.get("request_id") == request_id]
    assert matching, lines
    assert matching[0]["logger"] == "django.request"
    assert matching[0]["level"] == "WARNING"
    assert "Not Found" in matching[0]["message"]
