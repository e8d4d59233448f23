"""`GET /api/v1/executions/<id>/events/`: stored events as JSON, or a Server-Sent Events stream that resumes."""

from __future__ import annotations

import json
import threading

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient, Client

from apps.executions import engine, services
from tests.factories import UserFactory
from tests.support.services import closing_connections
from tests.support.sockets import close_shared_thread_connections, flow

__all__ = ["close_shared_thread_connections"]  # an autouse fixture, imported to apply here

pytestmark = pytest.mark.django_db(transaction=True)

SSE = {"accept": "text/event-stream"}


def url(execution) -> str:
    return f"/api/v1/executions/{execution.pk}/events/"


def parse_sse(text: str) -> tuple[list[dict], list[str]]:
    """Events (`id`, `event`, `data`) and comment lines of a complete stream."""
    events, comments = [], []
    for block in text.split("\n\n"):
        fields: dict = {}
        for line in block.splitlines():
            if line.startswith(":"):
                comments.append(line)
            elif line:
                name, _, value = line.partition(": ")
                fields[name] = value
        if "data" in fields:
            events.append({"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])})
    return events, comments


async def read_stream(client: AsyncClient, path: str, **headers: str) -> tuple[list[dict], list[str]]:
    response = await client.get(path, headers={**SSE, **headers})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache"
    text = "".join([chunk.decode() async for chunk in response.streaming_content])
    return parse_sse(text)


def finished_run(owner):
    execution = services.execution_run(version=flow(owner), inputs={"t": "go"}, owner=owner)
    engine.run_execution(execution.pk)
    return execution, list(execution.events.order_by("seq").values_list("seq", flat=True))


@pytest.fixture
async def owner():
    return await sync_to_async(UserFactory)(username="owner")


@pytest.fixture
async def client(owner):
    client = AsyncClient()
    await sync_to_async(client.force_login)(owner)
    return client


async def test_json_lists_stored_events_a_page_at_a_time(owner, client):
    execution, stored = await sync_to_async(finished_run)(owner)
    body = (await client.get(url(execution))).json()
    assert [e["seq"] for e in body["events"]] == stored
    assert (body["next_after_seq"], body["has_more"]) == (stored[-1], False)
    assert body["events"][-1]["payload"]["status"] == "succeeded"

    page = (await client.get(url(execution), {"after_seq": 2, "limit": 3})).json()
    assert [e["seq"] for e in page["events"]] == stored[2:5]
    assert (page["next_after_seq"], page["has_more"]) == (stored[4], True)


async def test_sse_replays_a_finished_run_and_ends_after_its_final_status(owner, client):
    execution, stored = await sync_to_async(finished_run)(owner)
    events, _ = await read_stream(client, url(execution))
    assert [e["id"] for e in events] == stored
    assert [e["data"]["seq"] for e in events] == stored
    assert [e["event"] for e in events] == [e["data"]["event_type"] for e in events]
    assert events[-1] == {"id": stored[-1], "event": "execution.status", "data": events[-1]["data"]}
    assert events[-1]["data"]["payload"]["status"] == "succeeded"


async def test_sse_resumes_after_last_event_id_and_it_wins_over_the_query(owner, client):
    execution, stored = await sync_to_async(finished_run)(owner)
    events, _ = await read_stream(client, f"{url(execution)}?after_seq=1", **{"Last-Event-ID": "4"})
    assert [e["id"] for e in events] == stored[4:]
    events, _ = await read_stream(client, f"{url(execution)}?after_seq=2")
    assert [e["id"] for e in events] == stored[2:]
    events, _ = await read_stream(client, url(execution), **{"Last-Event-ID": str(stored[-1])})
    assert events == []  # resumed at the end of a finished run: the stream ends at once


async def test_sse_follows_a_live_run_with_keep_alives_exactly_once(owner, client, settings):
    settings.SSE_KEEPALIVE_SECONDS = 0.02  # the scripted model pauses 50 ms between chunks
    execution = await sync_to_async(
        lambda: services.execution_run(version=flow(owner), inputs={"t": "go"}, owner=owner)
    )()
    response = await client.get(url(execution), headers=SSE)
    chunks = response.streaming_content
    assert (await anext(chunks)).decode() == "retry: 3000\n\n"
    worker = threading.Thread(target=closing_connections(engine.run_execution, execution.pk))
    worker.start()
    text = "".join([chunk.decode() async for chunk in chunks])
    await sync_to_async(worker.join)(10)
    events, comments = parse_sse(text)
    stored = await sync_to_async(lambda: list(execution.events.order_by("seq").values_list("seq", flat=True)))()
    assert [e["id"] for e in events] == stored
    assert ": keep-alive" in comments


async def test_programs_use_a_key_with_the_read_scope(owner):
    from apps.users.services import api_key_create

    execution, stored = await sync_to_async(finished_run)(owner)
    _, key = await sync_to_async(api_key_create)(owner=owner, name="k", scopes=["read"])
    _, unscoped = await sync_to_async(api_key_create)(owner=owner, name="k2", scopes=["execute"])
    client = AsyncClient()
    ok = await client.get(url(execution), headers={"Authorization": f"Bearer {key}"})
    assert [e["seq"] for e in ok.json()["events"]] == stored
    also = await client.get(url(execution), headers={"X-API-Key": key})
    assert also.status_code == 200
    forbidden = await client.get(url(execution), headers={"Authorization": f"Bearer {unscoped}"})
    assert (forbidden.status_code, forbidden.json()["error"]["code"]) == (403, "missing_scope")
    assert "'read'" in forbidden.json()["error"]["message"]


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "not_authenticated"),
        ({"Authorization": "Bearer sb_forged"}, 401, "invalid_api_key"),
        ({"X-API-Key": "sb_" + "a" * 53}, 401, "invalid_api_key"),
    ],
)
async def test_requests_without_valid_credentials_are_refused_in_the_error_shape(owner, headers, status, code):
    execution, _ = await sync_to_async(finished_run)(owner)
    for accept in ({}, SSE):
        response = await AsyncClient().get(url(execution), headers={**headers, **accept})
        assert response.status_code == status
        assert response.json() == {
            "error": {"code": code, "message": response.json()["error"]["message"], "fields": {}}
        }
        assert "sb_" not in response.json()["error"]["message"]
        assert response["WWW-Authenticate"].startswith("Bearer")


async def test_another_users_run_a_missing_one_and_a_malformed_id_are_404(owner):
    execution, _ = await sync_to_async(finished_run)(owner)
    stranger = await sync_to_async(UserFactory)(username="stranger")
    client = AsyncClient()
    await sync_to_async(client.force_login)(stranger)
    for path in (
        url(execution),
        "/api/v1/executions/00000000-0000-0000-0000-000000000000/events/",
        "/api/v1/executions/not-a-uuid/events/",
    ):
        for accept in ({}, SSE):
            response = await client.get(path, headers=accept)
            assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found"), path


async def test_bad_cursors_are_400_naming_the_parameter(owner, client):
    execution, _ = await sync_to_async(finished_run)(owner)
    cases = [
        ({"after_seq": "-1"}, {}, "after_seq"),
        ({"after_seq": "abc"}, {}, "after_seq"),
        ({"after_seq": "\u00b2"}, {}, "after_seq"),
        ({"limit": "x"}, {}, "limit"),
        ({}, {**SSE, "Last-Event-ID": "seven"}, "Last-Event-ID"),
    ]
    for query, headers, name in cases:
        response = await client.get(url(execution), query, headers=headers)
        assert response.status_code == 400
        assert response.json()["error"]["fields"] == {name: ["Not a number."]}


def test_only_get_is_allowed(owner):
    client = Client()
    client.force_login(owner)
    assert client.post("/api/v1/executions/00000000-0000-0000-0000-000000000000/events/").status_code == 405
