"""
Real processes end to end: a daphne server and a separate Dramatiq worker on Redis (and the
suite's database: PostgreSQL in CI). Programs follow a branching run over WebSockets and SSE,
drop the connection halfway and resume, and end with the run's exact event sequence.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator

import httpx
import pytest
import websockets
from asgiref.sync import sync_to_async
from dramatiq.brokers.redis import RedisBroker

from apps.executions.models import Execution
from apps.users.services import api_key_create
from tests.factories import UserFactory, published, scripted
from tests.support.services import ServerProcess, manage, process_env, serve_process, worker_process

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}


def branching_flow(owner):
    """A condition picks a slow streaming LLM branch; the other branch is skipped."""
    slow = ("big", "llm", {**scripted("a big number indeed", chunk_size=3, delay_ms=60), "prompt": "{{ n }}"})
    return published(
        owner,
        [
            ("n", "input", {"name": "n", "schema": {"type": "integer"}}),
            ("check", "condition", {"expression": "n > 10"}),
            slow,
            ("small", "template", {"template": "small {{ n }}"}),
            ("answer", "output", {"name": "answer"}),
        ],
        [
            ("n", "value", "check", "n"),
            ("n", "value", "check", "value"),
            ("check", "true", "big", "n"),
            ("check", "false", "small", "n"),
            ("big", "text", "answer", "value"),
            ("small", "text", "answer", "value"),
        ],
        name="branching",
    )


@pytest.fixture
def platform(redis_url) -> Iterator[tuple[ServerProcess, dict]]:
    RedisBroker(url=redis_url).flush_all()
    env = {"REDIS_URL": redis_url, "DRAMATIQ_BROKER_URL": None}
    with serve_process(**env) as server, worker_process(**env):
        yield server, env


@pytest.fixture
def program():
    owner = UserFactory(username="program-owner")
    _, key = api_key_create(owner=owner, name="integration", scopes=["read", "execute"])
    return owner, branching_flow(owner), {"Authorization": f"Bearer {key}"}


def start_run(workflow_id: int, env: dict) -> str:
    """Start a run the way an operator's script would: the CLI, enqueuing on Redis for the worker."""
    result = manage("run_workflow", str(workflow_id), "--input", "n=42", env=process_env(**env))
    assert result.returncode == 0, result.stderr
    return re.search(r"run ([0-9a-f-]{36})", result.stdout).group(1)


async def read_socket(url: str, headers: dict, *, stop_after: int | None = None) -> tuple[list[dict], int | None]:
    """Events from /ws/executions/<id>/ until the server closes (or `stop_after` events, then hang up)."""
    events = []
    async with websockets.connect(url, additional_headers=headers, open_timeout=10) as socket:
        try:
            while True:
                message = json.loads(await asyncio.wait_for(socket.recv(), timeout=30))
                if message["type"] == "event":
                    events.append(message)
                    if stop_after is not None and len(events) == stop_after:
                        return events, None
        except websockets.ConnectionClosed as closed:
            return events, closed.rcvd.code if closed.rcvd else None


async def read_sse(url: str, headers: dict, *, stop_after: int | None = None) -> list[dict]:
    events, fields = [], {}
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream("GET", url, headers={**headers, "Accept": "text/event-stream"}) as response,
    ):
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                fields["data"] = json.loads(line.removeprefix("data: "))
            elif line.startswith("id: "):
                fields["id"] = int(line.removeprefix("id: "))
            elif line == "" and "data" in fields:
                assert fields["id"] == fields["data"]["seq"]
                events.append(fields["data"])
                fields = {}
                if stop_after is not None and len(events) == stop_after:
                    return events
    return events


def stored(execution_id: str) -> list[int]:
    return list(Execution.objects.get(pk=execution_id).events.order_by("seq").values_list("seq", flat=True))


async def test_programs_follow_a_branching_run_over_websockets_and_sse_and_resume(platform, program):
    server, env = platform
    _, version, headers = program
    ws_base = server.url.replace("http://", "ws://")

    async with websockets.connect(f"{ws_base}/ws/", additional_headers=headers, open_timeout=10) as mux:
        # Subscribed to the workflow before the run exists: every event must come live through Redis.
        await mux.send(json.dumps({"method": "subscribe_graph_executions", "data": {"graph_id": version.workflow_id}}))
        assert json.loads(await mux.recv())["success"] is True
        execution_id = await sync_to_async(start_run)(version.workflow_id, env)
        run_url = f"{ws_base}/ws/executions/{execution_id}/"
        sse_url = f"{server.url}/api/v1/executions/{execution_id}/events/"

        whole, halves, sse_whole, sse_halves = await asyncio.gather(
            read_socket(run_url, headers),
            resumed_socket(run_url, headers),
            read_sse(sse_url, headers),
            resumed_sse(sse_url, headers),
        )
        live = []
        while not live or live[-1]["data"]["payload"].get("status") not in TERMINAL:
            message = json.loads(await asyncio.wait_for(mux.recv(), timeout=30))
            if message["method"] in {"graph_execution_event", "node_execution_event"}:
                live.append(message)

    expected = await sync_to_async(stored)(execution_id)
    events, code = whole
    assert code == 1000
    assert [e["seq"] for e in events] == expected
    assert events[-1]["payload"]["status"] == "succeeded"
    kinds = {(e["event_type"], e["node_id"]) for e in events}
    assert ("node.skipped", "small") in kinds
    assert ("node.completed", "big") in kinds
    assert halves == events
    assert [e["seq"] for e in sse_whole] == expected
    assert sse_halves == sse_whole
    assert [m["data"]["seq"] for m in live] == expected
    assert {m["data"]["graph_exec_id"] for m in live} == {execution_id}


async def resumed_socket(url: str, headers: dict) -> list[dict]:
    first, _ = await read_socket(url, headers, stop_after=3)
    rest, code = await read_socket(f"{url}?after_seq={first[-1]['seq']}", headers)
    assert code == 1000
    return first + rest


async def resumed_sse(url: str, headers: dict) -> list[dict]:
    first = await read_sse(url, headers, stop_after=3)
    return first + await read_sse(url, {**headers, "Last-Event-ID": str(first[-1]["seq"])})


async def test_bad_handshakes_are_refused_and_the_server_stays_healthy(platform, program):
    server, env = platform
    _, version, headers = program
    ws_base = server.url.replace("http://", "ws://")
    execution_id = await sync_to_async(start_run)(version.workflow_id, env)
    stranger = await sync_to_async(UserFactory)(username="stranger")
    _, strangers_key = await sync_to_async(api_key_create)(owner=stranger, name="s", scopes=["read"])

    async def close_code(path: str, extra: dict) -> int:
        async with websockets.connect(f"{ws_base}{path}", additional_headers=extra, open_timeout=10) as socket:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(socket.recv(), timeout=10)
            return closed.value.rcvd.code

    run_path = f"/ws/executions/{execution_id}/"
    assert await close_code(run_path, {}) == 4001
    assert await close_code(run_path, {"Authorization": "Bearer sb_forgedforgedf_" + "x" * 40}) == 4003
    assert await close_code(run_path, {"Authorization": f"Bearer {strangers_key}"}) == 4004
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(
            f"{ws_base}{run_path}", additional_headers={**headers, "Origin": "http://evil.example"}
        )
    assert refused.value.response.status_code == 403

    async with websockets.connect(f"{ws_base}/ws/", additional_headers=headers) as mux:
        # 1 MB: answered by the consumer (it accepts 64 KiB), the socket stays open.
        await mux.send(json.dumps({"method": "heartbeat", "data": "x" * 1_000_000}))
        reply = json.loads(await asyncio.wait_for(mux.recv(), timeout=10))
        assert "Message too large" in reply["error"]
        await mux.send(json.dumps({"method": "heartbeat"}))
        assert json.loads(await asyncio.wait_for(mux.recv(), timeout=10))["data"] == "pong"
        # Past daphne's own frame limit (1 MiB) the server drops the connection before buffering more.
        await mux.send("x" * (2 * 1024 * 1024))
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(mux.recv(), timeout=10)
    assert (await asyncio.to_thread(server.get, "/health/ready")).status_code == 200
