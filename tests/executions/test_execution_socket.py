"""`/ws/executions/<id>/`: authenticated, scoped, stored events then live ones, gap-free, then closed."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connections
from django.test import Client

from apps.executions import engine, services
from config.asgi import application
from tests.factories import UserFactory, published, scripted
from tests.support.services import closing_connections

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://testserver")


def session_cookie(user) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    return (b"cookie", f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode())


def flow(owner):
    node = ("l", "llm", {**scripted("streamed words here", chunk_size=6, delay_ms=50), "prompt": "{{ x }}"})
    return published(
        owner,
        [("in", "input", {"name": "t"}), node, ("o", "output", {"name": "o"})],
        [("in", "value", "l", "x"), ("l", "text", "o", "value")],
    )


async def connect(path: str, *headers: tuple[bytes, bytes]) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path, headers=[ORIGIN, *headers])
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def receive_until_closed(communicator: WebsocketCommunicator) -> tuple[list[dict], int]:
    messages = []
    while True:
        output = await communicator.receive_output(timeout=10)
        if output["type"] == "websocket.close":
            return messages, output.get("code", 1000)
        messages.append(json.loads(output["text"]))


@pytest.fixture(autouse=True)
async def _close_connections_of_the_shared_thread():
    # sync_to_async work from these tests and the consumer runs in one shared thread whose
    # connection PostgreSQL would otherwise still count when the test database is dropped.
    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture
async def owner():
    return await sync_to_async(UserFactory)(username="owner")


async def test_without_a_session_it_closes_4001_before_sending_anything():
    communicator = await connect(f"/ws/executions/{uuid.uuid4()}/")
    messages, code = await receive_until_closed(communicator)
    assert (messages, code) == ([], 4001)


async def test_another_users_run_and_a_missing_one_both_close_4004(owner):
    execution = await sync_to_async(
        lambda: services.execution_run(version=flow(owner), inputs={"t": "x"}, owner=owner)
    )()
    stranger = await sync_to_async(UserFactory)(username="stranger")
    cookie = await sync_to_async(session_cookie)(stranger)
    for path in (f"/ws/executions/{execution.pk}/", f"/ws/executions/{uuid.uuid4()}/", "/ws/executions/not-a-uuid/"):
        messages, code = await receive_until_closed(await connect(path, cookie))
        assert (messages, code) == ([], 4004), path


async def test_a_finished_run_is_replayed_in_order_then_closed(owner):
    def finished():
        execution = services.execution_run(version=flow(owner), inputs={"t": "go"}, owner=owner)
        engine.run_execution(execution.pk)
        return execution, list(execution.events.values_list("seq", flat=True))

    execution, stored = await sync_to_async(finished)()
    cookie = await sync_to_async(session_cookie)(owner)
    messages, code = await receive_until_closed(await connect(f"/ws/executions/{execution.pk}/", cookie))
    assert code == 1000
    assert [m["seq"] for m in messages if m["type"] == "event"] == stored
    assert messages[-1]["payload"]["status"] == "succeeded"

    later, _ = await receive_until_closed(await connect(f"/ws/executions/{execution.pk}/?after_seq=3", cookie))
    assert [m["seq"] for m in later] == stored[3:]
    bad, code = await receive_until_closed(await connect(f"/ws/executions/{execution.pk}/?after_seq=-1", cookie))
    assert (bad, code) == ([], 4400)


async def test_a_live_run_streams_every_event_once_in_order_and_its_text(owner):
    execution = await sync_to_async(
        lambda: services.execution_run(version=flow(owner), inputs={"t": "go"}, owner=owner)
    )()
    cookie = await sync_to_async(session_cookie)(owner)
    communicator = await connect(f"/ws/executions/{execution.pk}/", cookie)
    worker = threading.Thread(target=closing_connections(engine.run_execution, execution.pk))
    worker.start()
    messages, code = await receive_until_closed(communicator)
    await sync_to_async(worker.join)(10)
    stored = await sync_to_async(lambda: list(execution.events.values_list("seq", flat=True)))()
    assert code == 1000
    assert [m["seq"] for m in messages if m["type"] == "event"] == stored
    # Joined before the run started: every live-only text delta arrived too, before the node's completion.
    assert "".join(m["text"] for m in messages if m["type"] == "delta") == "streamed words here"
    kinds = [m.get("event_type", m["type"]) for m in messages]
    assert kinds.index("delta") < kinds.index("node.completed", kinds.index("delta"))
