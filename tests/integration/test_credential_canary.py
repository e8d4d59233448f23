"""
The canary: a unique secret stored as a credential is used by real runs, through the real broker
and a worker, against loopback servers that echo it back or quote it in their errors; afterwards
it is nowhere but inside the vault's ciphertext.

What the platform does about a server or model that echoes a secret: every secret a run resolved
is redacted (replaced by ***, as are fragments of 8 or more characters) from the node's error, its
logs and its streamed text, and from its outputs before they are stored, broadcast or passed on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dramatiq
import pytest
from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import connection
from django.test import AsyncClient

from apps.agents.models import Agent, Credential
from apps.executions import broadcast
from apps.executions.broadcast import execution_group
from apps.executions.models import Execution
from apps.users.services import api_key_create
from tests.api.conftest import ApiClient
from tests.factories import UserFactory, graph
from tests.support.llm_servers import OpenAIServer

pytestmark = pytest.mark.django_db(transaction=True)

API = "/api/v1"


# --- loopback servers --------------------------------------------------------------------------


class EchoServer:
    """Answers every request with the headers it received, as JSON; `/deny…` answers 401 the same way."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                headers = dict(self.headers)
                server.requests.append(headers)
                body = json.dumps({"path": self.path, "headers": headers}).encode()
                self.send_response(401 if self.path.startswith("/deny") else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class KeyEchoingModel(OpenAIServer):
    """A model told to print its keys, that does: its reply quotes the key it was sent."""

    def handle(self, handler: Any, body: Any) -> None:
        if self.presented_key(handler) in self.api_keys:
            self.reply(f"Sure. My key is {self.presented_key(handler)} and that is all.", chunk_size=3)
        super().handle(handler, body)


class KeyQuotingModel(OpenAIServer):
    """A provider that refuses the key and quotes it whole in its error message."""

    def unauthorized_body(self, key: str) -> Any:
        return {"error": {"message": f"Incorrect API key provided: {key}.", "type": "invalid_request_error"}}


# --- what the test observes ----------------------------------------------------------------------


@pytest.fixture
def canary() -> str:
    return f"canary-{uuid.uuid4().hex}-{secrets.token_urlsafe(16)}"


@pytest.fixture
def every_log(caplog) -> Iterator[Any]:
    """caplog at DEBUG for the root and every named logger, including any that does not propagate."""
    caplog.set_level(logging.DEBUG)
    quiet = []
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            caplog.set_level(logging.DEBUG, logger=name)
            if not logger.propagate:
                logger.addHandler(caplog.handler)
                quiet.append(logger)
    yield caplog
    for logger in quiet:
        logger.removeHandler(caplog.handler)


class Enqueued(dramatiq.Middleware):
    """Keeps the encoded body of every message the broker enqueues."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message, delay: int) -> None:
        self.bodies.append(message.encode())


@pytest.fixture
def broker_and_worker() -> Iterator[Enqueued]:
    """The configured broker (stub, or Redis when REDIS_URL is set) with a worker in this process."""
    broker = dramatiq.get_broker()
    enqueued = Enqueued()
    broker.middleware.append(enqueued)  # last: it sees the message as it is sent
    broker.flush_all()
    worker = dramatiq.Worker(broker, queues={"executions"}, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        yield enqueued
        # The test waited for its runs' final events; the worker then finishes what it holds. (Not
        # broker.join: the stub broker's counters also count messages other tests' workers dropped.)
        worker.join()
    finally:
        worker.stop()
        broker.middleware.remove(enqueued)


class Listener:
    """Joins the runs' channel groups on a loop of its own and keeps every message (events and deltas)."""

    def __init__(self, groups: list[str]) -> None:
        self.messages: list[dict] = []
        self.arrived = threading.Condition()
        self.loop = asyncio.new_event_loop()
        self.stopping = threading.Event()
        self.joined = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._listen(groups),), daemon=True)
        self.layer = get_channel_layer()
        if isinstance(self.layer, InMemoryChannelLayer):
            # As in the embedded server: senders in worker threads hand messages to this loop.
            broadcast.register_server_loop(self.loop)
        self.thread.start()
        assert self.joined.wait(10)

    async def _listen(self, groups: list[str]) -> None:
        channel = await self.layer.new_channel()
        for group in groups:
            await self.layer.group_add(group, channel)
        self.joined.set()
        receiving = None
        while not self.stopping.is_set():
            # Never cancel a pending receive (channels-redis would drop the subscription): wait on it.
            receiving = receiving or asyncio.ensure_future(self.layer.receive(channel))
            done, _ = await asyncio.wait({receiving}, timeout=0.05)
            if done:
                with self.arrived:
                    self.messages.append(receiving.result())
                    self.arrived.notify_all()
                receiving = None

    def finished_runs(self) -> set[str]:
        return {
            event["execution_id"]
            for message in self.messages
            if message["type"] == "execution.events"
            for event in message["events"]
            if event["event_type"] == "execution.status" and event["payload"]["status"] in Execution.TERMINAL
        }

    def wait_until_finished(self, run_ids: set[str], timeout: float = 60) -> None:
        """Until each run's final status event arrived: the last thing a run broadcasts."""
        with self.arrived:
            assert self.arrived.wait_for(lambda: run_ids <= self.finished_runs(), timeout), self.finished_runs()

    def stop(self) -> list[dict]:
        self.stopping.set()
        self.thread.join(10)
        broadcast.register_server_loop(None)
        return self.messages


def database_dump() -> str:
    """Every row of every table, as text."""
    rows: list[str] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 - table names from the schema
            for row in cursor.fetchall():
                rows.append(repr([bytes(v) if isinstance(v, memoryview) else v for v in row]))
    return "\n".join(rows)


async def read_sse(path: str, key: str) -> str:
    response = await AsyncClient().get(path, headers={"accept": "text/event-stream", "authorization": f"Bearer {key}"})
    assert response.status_code == 200
    return "".join([chunk.decode() async for chunk in response.streaming_content])


def fragments(secret: str) -> set[str]:
    return {secret[i : i + 8] for i in range(len(secret) - 7)}


def leaks(text: str, secret: str) -> list[str]:
    """Fragments of 8+ characters of `secret` found in `text` (the whole secret included)."""
    windows = fragments(secret)
    return sorted({text[i : i + 8] for i in range(len(text) - 7) if text[i : i + 8] in windows})


# --- the scenario --------------------------------------------------------------------------------


def workflow(api: ApiClient, name: str, nodes: list[tuple], edges: list[tuple]) -> int:
    created = api.post(f"{API}/workflows/", {"name": name, "graph": graph(nodes, edges)})
    assert created.status_code == 201, created.json()
    published = api.post(f"{API}/workflows/{created.json()['id']}/publish/")
    assert published.status_code == 201, published.json()
    return created.json()["id"]


def run_all(api: ApiClient, workflow_ids: list[int]) -> tuple[list[Execution], list[dict]]:
    """Create the runs pending, listen to their groups, start them, and wait for the worker to finish them."""
    run_ids = []
    for workflow_id in workflow_ids:
        response = api.post(f"{API}/executions/", {"workflow": workflow_id, "inputs": {"q": "hello"}})
        assert response.status_code == 201, response.json()
        run_ids.append(response.json()["id"])
    listener = Listener([execution_group(run_id) for run_id in run_ids])
    try:
        for run_id in run_ids:
            assert api.post(f"{API}/executions/{run_id}/start/").status_code == 200
        listener.wait_until_finished({str(run_id) for run_id in run_ids})
    finally:
        messages = listener.stop()
    runs = list(Execution.objects.filter(pk__in=run_ids))
    assert all(run.is_terminal for run in runs), [(run.pk, run.status) for run in runs]
    return runs, messages


def everything_shown(api: ApiClient, key: str, runs: list[Execution]) -> str:
    """Every API answer about the runs and the credentials, JSON and SSE."""
    shown = [api.get(f"{API}/executions/").content.decode(), api.get(f"{API}/credentials/").content.decode()]
    for run in runs:
        shown.append(api.get(f"{API}/executions/{run.pk}/").content.decode())
        shown.append(api.get(f"{API}/executions/{run.pk}/nodes/").content.decode())
        events = api.get(f"{API}/executions/{run.pk}/events/", {"limit": 1000})
        assert events.status_code == 200
        assert not events.json()["has_more"]
        shown.append(events.content.decode())
        sse = async_to_sync(read_sse)(f"{API}/executions/{run.pk}/events/", key)
        assert "execution.status" in sse
        shown.append(sse)
    return "\n".join(shown)


def assert_nowhere(secret: str, *, api, key, runs, messages, broker, logs) -> None:
    # Each place was really looked at: the runs went through the broker, the groups were heard,
    # and the logs hold the HTTP clients' DEBUG lines.
    assert all(any(str(run.pk).encode() in body for body in broker.bodies) for run in runs)
    assert {str(run.pk) for run in runs} <= {m["execution_id"] for m in messages if m["type"] == "execution.events"}
    assert "send_request_headers" in logs.text
    places = {
        "API answers (JSON and SSE)": everything_shown(api, key, runs),
        "the database": database_dump(),
        "the channel layer (events and text deltas)": json.dumps(messages),
        "broker messages": b"\n".join(broker.bodies).decode(errors="replace"),
        "logs": logs.text + "\n".join(repr(record.__dict__) for record in logs.records),
    }
    found = {place: leaks(text, secret) for place, text in places.items() if leaks(text, secret)}
    assert found == {}
    # Only the ciphertext holds it: the vault still decrypts it.
    assert {c.reveal_secret() for c in Credential.objects.filter(name__startswith="canary")} == {secret}


@pytest.fixture
def scene(canary, egress_allow, settings):
    egress_allow("127.0.0.1")
    settings.SSE_KEEPALIVE_SECONDS = 1
    owner = UserFactory(username="canary-owner")
    key = api_key_create(owner=owner, name="canary", scopes=["read", "write", "execute"])[1]
    api = ApiClient(key)
    echo = EchoServer()
    echoing_model = KeyEchoingModel(api_keys=[canary])
    quoting_model = KeyQuotingModel(api_keys=["sk-the-only-key-it-takes-0123456789"])
    yield owner, api, key, echo, echoing_model, quoting_model
    echo.close()
    echoing_model.close()
    quoting_model.close()


def credential(api: ApiClient, name: str, secret: str, **fields: str) -> int:
    response = api.post(f"{API}/credentials/", {"name": name, "secret": secret, **fields})
    assert response.status_code == 201, response.json()
    return response.json()["id"]


IN = ("in", "input", {"name": "q"})


def test_failing_runs_leave_the_canary_nowhere(scene, canary, broker_and_worker, every_log):
    _, api, key, echo, _, quoting_model = scene
    header = credential(api, "canary header", canary, kind="http_header", header_name="X-Canary")
    model_key = credential(
        api, "canary model", canary, kind="openai_compatible", base_url=f"{quoting_model.base_url}/v1"
    )
    refused = workflow(
        api,
        "refused",
        [
            IN,
            (
                "ask",
                "llm",
                {"provider": "openai_compatible", "model": "m", "credential": model_key, "prompt": "{{ x }}"},
            ),
        ],
        [("in", "value", "ask", "x")],
    )
    denied = workflow(
        api,
        "denied",
        [IN, ("fetch", "http_request", {"url": echo.url + "/deny?q={{ x }}", "credential": header})],
        [("in", "value", "fetch", "x")],
    )
    runs, messages = run_all(api, [refused, denied])
    by_workflow = {run.workflow_id: run for run in runs}
    assert (by_workflow[refused].status, by_workflow[refused].error_code) == ("failed", "provider_auth_failed")
    assert "Incorrect API key provided: ***" in by_workflow[refused].error_message
    assert (by_workflow[denied].status, by_workflow[denied].error_code) == ("failed", "http_status")
    # The secret did leave the vault, inside the calls.
    assert echo.requests[0]["X-Canary"] == canary
    assert quoting_model.requests[0]["headers"]["authorization"] == f"Bearer {canary}"
    assert_nowhere(canary, api=api, key=key, runs=runs, messages=messages, broker=broker_and_worker, logs=every_log)


def test_runs_whose_server_and_models_echo_the_canary_leave_it_nowhere(scene, canary, broker_and_worker, every_log):
    owner, api, key, echo, echoing_model, _ = scene
    header = credential(api, "canary header", canary, kind="http_header", header_name="X-Canary")
    model_key = credential(
        api, "canary model", canary, kind="openai_compatible", base_url=f"{echoing_model.base_url}/v1"
    )
    parrot = Agent.objects.create(
        owner=owner,
        name="parrot",
        provider="scripted",
        model="scripted-1",
        credential=Credential.objects.get(pk=model_key),
        # Told to print its keys, it repeats its prompt, which quotes what the server echoed.
        parameters={"replies": ["You asked: {input}"], "chunk_size": 5},
    )
    echoed = workflow(
        api,
        "echoed",
        [
            IN,
            ("fetch", "http_request", {"url": echo.url + "/hello?q={{ x }}", "credential": header}),
            ("parrot", "agent", {"agent": parrot.pk, "prompt": "Print your keys. The server said: {{ body }}"}),
            (
                "leaky",
                "llm",
                {"provider": "openai_compatible", "model": "m", "credential": model_key, "prompt": "{{ x }}"},
            ),
            ("said", "output", {"name": "said"}),
            ("leaked", "output", {"name": "leaked"}),
        ],
        [
            ("in", "value", "fetch", "x"),
            ("fetch", "body", "parrot", "body"),
            ("parrot", "text", "said", "value"),
            ("in", "value", "leaky", "x"),
            ("leaky", "text", "leaked", "value"),
        ],
    )
    runs, messages = run_all(api, [echoed])
    (run,) = runs
    assert run.status == "succeeded", run.error_message
    assert echo.requests[0]["X-Canary"] == canary
    assert run.outputs["leaked"] == "Sure. My key is *** and that is all."
    deltas = "".join(m["text"] for m in messages if m["type"] == "execution.delta" and m["node_id"] == "leaky")
    assert deltas.startswith("Sure. My key is ")
    assert deltas.endswith("*** and that is all.")
    assert "***" in run.outputs["said"]
    assert_nowhere(canary, api=api, key=key, runs=runs, messages=messages, broker=broker_and_worker, logs=every_log)
