"""`/ws/`: many subscriptions on one socket in the AutoGPT platform's envelope; bad messages answered, socket kept."""

from __future__ import annotations

import json
import threading

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from apps.executions import engine, services
from tests.factories import UserFactory
from tests.support.services import closing_connections
from tests.support.sockets import close_shared_thread_connections, connect, flow, session_cookie

__all__ = ["close_shared_thread_connections"]  # an autouse fixture, imported to apply here

pytestmark = pytest.mark.django_db(transaction=True)

ENVELOPE = {"method", "data", "success", "channel", "error"}


async def send(socket: WebsocketCommunicator, method: str, data=None) -> None:
    await socket.send_to(text_data=json.dumps({"method": method, "data": data}))


async def receive(socket: WebsocketCommunicator) -> dict:
    message = json.loads(await socket.receive_from(timeout=10))
    assert set(message) == ENVELOPE
    return message


async def events_until_terminal(socket: WebsocketCommunicator, runs: int = 1) -> list[dict]:
    """Messages until `runs` runs have sent their final status."""
    messages, finished = [], 0
    while finished < runs:
        message = await receive(socket)
        messages.append(message)
        data = message["data"] or {}
        if message["method"] == "graph_execution_event" and data["payload"]["status"] in {"succeeded", "failed"}:
            finished += 1
    return messages


@pytest.fixture
async def owner():
    return await sync_to_async(UserFactory)(username="owner")


@pytest.fixture
async def socket(owner):
    communicator = await connect("/ws/", await sync_to_async(session_cookie)(owner))
    yield communicator
    await communicator.disconnect()


def stored_seqs(execution) -> list[int]:
    return list(execution.events.order_by("seq").values_list("seq", flat=True))


async def test_heartbeat_is_answered_pong(socket):
    await send(socket, "heartbeat")
    assert await receive(socket) == {
        "method": "heartbeat",
        "data": "pong",
        "success": True,
        "channel": None,
        "error": None,
    }


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "Malformed JSON"),
        ("[1, 2]", "JSON object with a 'method'"),
        ('{"method": 7}', "JSON object with a 'method'"),
        ('{"method": "drop_tables", "data": {}}', "Unknown method 'drop_tables'"),
        ('{"method": "subscribe_graph_execution", "data": "x"}', "needs an object in 'data'"),
        ('{"method": "subscribe_graph_execution", "data": {}}', "No such execution"),
        ('{"method": "subscribe_graph_execution", "data": {"graph_exec_id": "nope"}}', "No such execution"),
        (
            '{"method": "subscribe_graph_execution", "data": {"graph_exec_id": "x", "after_seq": -1}}',
            "'after_seq' must be a whole number",
        ),
        ('{"method": "subscribe_graph_executions", "data": {"graph_id": "1; drop"}}', "No such workflow"),
        ('{"method": "subscribe_graph_executions", "data": {"graph_id": "\u00b2"}}', "No such workflow"),
        ('{"method": "subscribe_graph_executions", "data": {"graph_id": true}}', "No such workflow"),
        ('{"method": "subscribe_graph_execution", "data": {"graph_exec_id": "x", "after_seq": "3"}}', "'after_seq'"),
        ('{"method": "unsubscribe", "data": {"channel": "1|graph_exec#x"}}', "Not subscribed"),
    ],
)
async def test_a_bad_message_gets_an_error_with_the_reason_and_the_socket_stays_open(socket, text, reason):
    await socket.send_to(text_data=text)
    error = await receive(socket)
    assert (error["method"], error["success"]) == ("error", False)
    assert reason in error["error"]
    await send(socket, "heartbeat")
    assert (await receive(socket))["data"] == "pong"


async def test_binary_and_oversized_messages_are_refused_and_the_socket_stays_open(socket):
    await socket.send_to(bytes_data=b"\x00\x01")
    assert "not binary" in (await receive(socket))["error"]
    huge = json.dumps({"method": "heartbeat", "data": "x" * (1024 * 1024)})
    await socket.send_to(text_data=huge)
    error = await receive(socket)
    assert "Message too large" in error["error"]
    assert str(len(huge)) in error["error"]
    await send(socket, "heartbeat")
    assert (await receive(socket))["data"] == "pong"


async def test_subscribing_to_a_finished_run_replays_its_events_in_the_envelope(owner, socket):
    def finished():
        execution = services.execution_run(version=flow(owner), inputs={"t": "go"}, owner=owner)
        engine.run_execution(execution.pk)
        return execution, stored_seqs(execution)

    execution, stored = await sync_to_async(finished)()
    channel = f"{owner.pk}|graph_exec#{execution.pk}"
    await send(socket, "subscribe_graph_execution", {"graph_exec_id": str(execution.pk)})
    assert await receive(socket) == {
        "method": "subscribe_graph_execution",
        "success": True,
        "channel": channel,
        "data": None,
        "error": None,
    }
    messages = await events_until_terminal(socket)
    assert [m["data"]["seq"] for m in messages] == stored
    assert {m["channel"] for m in messages} == {channel}
    for message in messages:
        kind = message["data"]["event_type"]
        expected = "graph_execution_event" if kind.startswith("execution.") else "node_execution_event"
        assert message["method"] == expected
        assert message["data"]["graph_exec_id"] == str(execution.pk)
        assert message["data"]["graph_id"] == execution.version.workflow_id

    # after_seq: only what follows, on a second subscription to another run's replay.
    await send(socket, "unsubscribe", {"channel": channel})
    assert (await receive(socket))["method"] == "unsubscribe"
    await send(socket, "subscribe_graph_execution", {"graph_exec_id": str(execution.pk), "after_seq": 3})
    assert (await receive(socket))["success"] is True
    assert [m["data"]["seq"] for m in await events_until_terminal(socket)] == stored[3:]

    # A cursor at the end of a finished run: acknowledged, nothing follows.
    await send(socket, "unsubscribe", {"graph_exec_id": str(execution.pk)})
    await receive(socket)
    await send(socket, "subscribe_graph_execution", {"graph_exec_id": str(execution.pk), "after_seq": stored[-1]})
    assert (await receive(socket))["method"] == "subscribe_graph_execution"
    await send(socket, "heartbeat")
    assert (await receive(socket))["data"] == "pong"


async def test_another_users_run_and_workflow_look_missing(owner, socket):
    def strangers_run():
        stranger = UserFactory(username="stranger")
        execution = services.execution_run(version=flow(stranger), inputs={"t": "go"}, owner=stranger)
        return execution, execution.version.workflow_id

    execution, workflow_id = await sync_to_async(strangers_run)()
    await send(socket, "subscribe_graph_execution", {"graph_exec_id": str(execution.pk)})
    assert (await receive(socket))["error"] == "No such execution."
    await send(socket, "subscribe_graph_executions", {"graph_id": workflow_id})
    assert (await receive(socket))["error"] == "No such workflow."
    await send(socket, "subscribe_graph_executions", {"graph_id": 999_999})
    assert (await receive(socket))["error"] == "No such workflow."


async def test_a_workflow_subscription_follows_every_new_run_of_it_once(owner, socket):
    version = await sync_to_async(flow)(owner)
    await send(socket, "subscribe_graph_executions", {"graph_id": str(version.workflow_id)})
    subscribed = await receive(socket)
    channel = f"{owner.pk}|graph#{version.workflow_id}|executions"
    assert (subscribed["method"], subscribed["channel"]) == ("subscribe_graph_executions", channel)

    def two_runs():
        return [services.execution_run(version=version, inputs={"t": str(n)}, owner=owner) for n in range(2)]

    runs = await sync_to_async(two_runs)()
    # Also subscribed to the first run itself: its events must still arrive once each. Until the
    # acknowledgement, the runs' first status events come through the workflow's channel.
    await send(socket, "subscribe_graph_execution", {"graph_exec_id": str(runs[0].pk)})
    before = []
    while (message := await receive(socket))["method"] != "subscribe_graph_execution":
        before.append(message)
    workers = [threading.Thread(target=closing_connections(engine.run_execution, run.pk)) for run in runs]
    for worker in workers:
        worker.start()
    after = await events_until_terminal(socket, runs=2)
    for worker in workers:
        await sync_to_async(worker.join)(10)
    for run in runs:
        received = [m["data"]["seq"] for m in before + after if m["data"]["graph_exec_id"] == str(run.pk)]
        assert received == await sync_to_async(stored_seqs)(run)
    assert {m["channel"] for m in before} <= {channel}  # on Redis they may come after the acknowledgement
    assert {m["channel"] for m in after if m["data"]["graph_exec_id"] == str(runs[0].pk)} == {
        f"{owner.pk}|graph_exec#{runs[0].pk}"
    }
    assert {m["channel"] for m in after if m["data"]["graph_exec_id"] == str(runs[1].pk)} == {channel}


async def test_after_unsubscribing_no_more_events_arrive(owner, socket):
    version = await sync_to_async(flow)(owner)
    await send(socket, "subscribe_graph_executions", {"graph_id": version.workflow_id})
    await receive(socket)
    await send(socket, "unsubscribe", {"graph_id": version.workflow_id})
    ack = await receive(socket)
    assert (ack["method"], ack["channel"]) == ("unsubscribe", f"{owner.pk}|graph#{version.workflow_id}|executions")

    def run_to_the_end():
        execution = services.execution_run(version=version, inputs={"t": "go"}, owner=owner)
        engine.run_execution(execution.pk)

    await sync_to_async(run_to_the_end)()
    await send(socket, "heartbeat")
    assert (await receive(socket))["data"] == "pong"  # no event came before it
