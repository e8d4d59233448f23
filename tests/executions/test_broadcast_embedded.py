"""On the embedded default, events from a worker thread reach consumers waiting on the server's loop."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, channel_layers
from django.utils import timezone

from apps.executions import broadcast
from apps.executions.models import ExecutionEvent


@pytest.fixture
def server_loop(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends.clear()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    broadcast.register_server_loop(loop)
    yield loop
    broadcast.register_server_loop(None)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    channel_layers.backends.clear()


def test_a_batch_from_an_engine_loop_wakes_a_consumer_on_the_server_loop(server_loop):
    layer = channel_layers["default"]
    assert isinstance(layer, InMemoryChannelLayer)

    async def consumer() -> dict:
        channel = await layer.new_channel()
        await layer.group_add("execution.run-1", channel)
        ready.set()
        return await layer.receive(channel)

    ready = threading.Event()
    waiting = asyncio.run_coroutine_threadsafe(consumer(), server_loop)
    assert ready.wait(5)
    event = ExecutionEvent(
        execution_id="run-1", seq=7, type="node.started", node_id="a", payload={}, created_at=timezone.now()
    )

    async def engine_side() -> None:  # a run's own loop, in another thread, as in a worker
        await broadcast.on_sender_loop(broadcast.events_committed([event], workflow_id=1))

    async_to_sync(engine_side)()
    message = waiting.result(timeout=5)
    assert message["type"] == "execution.events"
    assert [e["seq"] for e in message["events"]] == [7]


def test_a_server_loop_that_never_runs_the_send_does_not_hold_the_run(server_loop, monkeypatch, caplog):
    """The loop can stop (or stall) between the check and the hand-over: the sender gives up, bounded."""
    monkeypatch.setattr(broadcast, "SEND_TIMEOUT_SECONDS", 0.2)
    stalled, release = threading.Event(), threading.Event()
    server_loop.call_soon_threadsafe(lambda: (stalled.set(), release.wait(10)))  # the loop is busy elsewhere
    assert stalled.wait(5)
    event = ExecutionEvent(
        execution_id="run-2", seq=1, type="node.started", node_id="a", payload={}, created_at=timezone.now()
    )
    try:

        async def engine_side() -> None:
            await broadcast.on_sender_loop(broadcast.events_committed([event], workflow_id=1))

        async_to_sync(engine_side)()  # returns: without the bound it would wait for ever
        broadcast.event_committed(event, workflow_id=1)  # the synchronous path too
    finally:
        release.set()
    assert [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()] == [
        "a broadcast was not sent within 0.2 s; dropped",
        "event run-2#1 was not sent within 0.2 s; dropped",
    ]
