"""`/ws/executions/<id>/`: authenticated, scoped, stored events then live ones, gap-free, then closed."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction

from apps.executions import engine, services
from tests.factories import UserFactory
from tests.support.services import closing_connections
from tests.support.sockets import close_shared_thread_connections, connect, flow, receive_until_closed, session_cookie

__all__ = ["close_shared_thread_connections"]  # an autouse fixture, imported to apply here

pytestmark = pytest.mark.django_db(transaction=True)


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
    for cursor in ("-1", "%C2%B2", "1e3", "9" * 19):
        bad, code = await receive_until_closed(
            await connect(f"/ws/executions/{execution.pk}/?after_seq={cursor}", cookie)
        )
        assert (bad, code) == ([], 4400), cursor
    for past_the_end in (stored[-1], stored[-1] + 10):
        nothing, code = await receive_until_closed(
            await connect(f"/ws/executions/{execution.pk}/?after_seq={past_the_end}", cookie)
        )
        assert (nothing, code) == ([], 1000)


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


async def test_an_event_committed_between_joining_and_reading_is_delivered_once(owner, monkeypatch):
    """The consumer joins the live group, then reads stored events: one committed in between comes both ways."""
    from apps.executions import events, streams
    from apps.executions.models import Execution

    execution = await sync_to_async(
        lambda: services.execution_run(version=flow(owner), inputs={"t": "go"}, owner=owner)
    )()
    read = streams.stored_events_after
    committed = []

    def commit_status(status: str) -> None:
        with transaction.atomic():
            committed.append(events.execution_status(Execution.objects.get(pk=execution.pk), status=status).seq)

    async def read_after_a_commit(execution_id, seq, *, limit):
        if not committed:
            await sync_to_async(commit_status)("running")  # broadcast on commit, into the joined group
        return await read(execution_id, seq, limit=limit)

    monkeypatch.setattr(streams, "stored_events_after", read_after_a_commit)
    cookie = await sync_to_async(session_cookie)(owner)
    communicator = await connect(f"/ws/executions/{execution.pk}/", cookie)
    first = json.loads((await communicator.receive_output(timeout=10))["text"])
    await sync_to_async(commit_status)("succeeded")
    messages, code = await receive_until_closed(communicator)
    stored = await sync_to_async(lambda: list(execution.events.values_list("seq", flat=True)))()
    assert code == 1000
    assert [first["seq"], *(m["seq"] for m in messages)] == stored
    assert committed[0] in stored
