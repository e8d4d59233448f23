"""Every stored event reaches the channel layer after commit, in seq order; LLM text streams live."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from apps.executions import engine, services
from apps.executions.broadcast import execution_group, workflow_group
from tests.factories import published, scripted
from tests.support.services import closing_connections

pytestmark = pytest.mark.django_db(transaction=True)


async def drain(layer, channel: str, until_status: str, timeout: float = 10) -> list[dict]:
    """Messages until the given final status, with event batches unpacked in order."""
    received = []
    async with asyncio.timeout(timeout):
        while True:
            message = await layer.receive(channel)
            if message["type"] != "execution.events":
                received.append(message)
                continue
            for event in message["events"]:
                received.append({"type": "execution.event", **event})
                if event["event_type"] == "execution.status" and event["payload"]["status"] == until_status:
                    return received


def test_events_are_broadcast_in_order_after_commit_with_text_deltas(owner):
    node = ("l", "llm", {**scripted("alpha beta gamma", chunk_size=5), "prompt": "{{ x }}"})
    version = published(
        owner,
        [("in", "input", {"name": "t"}), node, ("o", "output", {"name": "o"})],
        [("in", "value", "l", "x"), ("l", "text", "o", "value")],
    )
    layer = get_channel_layer()

    execution = services.execution_create(version=version, inputs={"t": "go"}, owner=owner)

    async def scenario() -> tuple[list[dict], list[dict]]:
        by_workflow, by_run = await layer.new_channel(), await layer.new_channel()
        await layer.group_add(workflow_group(version.workflow_id), by_workflow)
        await layer.group_add(execution_group(execution.pk), by_run)
        await asyncio.to_thread(closing_connections(services.execution_start, execution=execution))
        await asyncio.to_thread(closing_connections(engine.run_execution, execution.pk))
        return await drain(layer, by_workflow, "succeeded"), await drain(layer, by_run, "succeeded")

    workflow_messages, run_messages = async_to_sync(scenario)()
    stored = list(execution.events.values_list("seq", flat=True))
    # The pending event was committed (and sent, asynchronously) around the time the test began
    # listening, so it may or may not arrive; everything after it arrives, once, in order.
    for received in (
        [m["seq"] for m in workflow_messages],
        [m["seq"] for m in run_messages if m["type"] == "execution.event"],
    ):
        assert received in (stored, stored[1:])
    deltas = [m["text"] for m in run_messages if m["type"] == "execution.delta"]
    assert "".join(deltas) == "alpha beta gamma"
    assert len(deltas) == 4  # chunks of 5 characters, streamed before the node's completion event
