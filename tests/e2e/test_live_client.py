"""
static/js/live.js in a real Chromium against a real server process: RunSocket follows a run
exactly once per event through a dropped connection and stops at the end or at a refusal;
MultiplexSocket follows a workflow's runs and a single run, answers heartbeats and resumes.
"""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import Client
from playwright.async_api import Page

from apps.executions import services
from apps.executions.models import Execution, ExecutionEvent
from tests.factories import UserFactory, published, scripted
from tests.support.services import ServerProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("worker")]

REPLY = "words that arrive a few letters at a time, slowly enough to follow them"
# About two seconds of streaming: time for a page to connect while the run is still going.
SLOW_LLM = scripted(REPLY, chunk_size=3, delay_ms=80)
DEADLINE_MS = 20_000

# In the page: the module under test as `window.live`, every WebSocket it opens in `window.sockets`
# and every message it sends in `window.sent`; `dropOnce` closes the connection as a network would
# (the browser discards what arrives after), the first time an event of node `dropAtNode` starts.
INSTALL = """async () => {
    const Native = window.WebSocket;
    window.sockets = [];
    window.sent = [];
    window.WebSocket = class extends Native {
        constructor(...args) { super(...args); sockets.push(this); }
        send(data) { sent.push(JSON.parse(data)); super.send(data); }
    };
    let dropped = false;
    window.dropOnce = (event, dropAtNode) => {
        if (dropAtNode && !dropped && event.event_type === "node.started" && event.node_id === dropAtNode) {
            dropped = true;
            sockets.at(-1).close(4000, "dropped by the test");
        }
    };
    window.live = await import("/static/js/live.js");
}"""

FOLLOW_RUN = """([executionId, dropAtNode]) => {
    window.seen = {events: [], statuses: [], closes: [], text: ""};
    window.run = new live.RunSocket(executionId, {
        onEvent: (event) => { seen.events.push(event); dropOnce(event, dropAtNode); },
        onDelta: (delta) => { seen.text += delta.text; },
        onStatus: (status) => seen.statuses.push(status),
        onClose: (close) => seen.closes.push(close),
    }).start();
}"""

FOLLOW_MULTIPLEXED = """(dropAtNode) => {
    window.seen = {events: [], statuses: [], replies: [], errors: [], pongs: 0};
    window.mux = new live.MultiplexSocket({
        heartbeatMs: 1000,
        onEvent: (event, envelope) => {
            seen.events.push({...event, channel: envelope.channel, method: envelope.method});
            dropOnce(event, dropAtNode);
        },
        onMessage: (envelope) => {
            if (envelope.method === "heartbeat") seen.pongs += 1;
            else if (!envelope.method.endsWith("_event")) seen.replies.push(envelope);
        },
        onError: (error) => seen.errors.push(error),
        onStatus: (status) => seen.statuses.push(status),
    });
}"""


@pytest.fixture
async def owner():
    # A superuser: runs are started through the admin, inside the server process.
    return await sync_to_async(UserFactory)(username="owner", is_staff=True, is_superuser=True)


@pytest.fixture
async def workflow(owner):
    def create():
        nodes = [
            ("in", "input", {"name": "t"}),
            ("l", "llm", {**SLOW_LLM, "prompt": "{{ x }}"}),
            ("o", "output", {"name": "o"}),
        ]
        edges = [("in", "value", "l", "x"), ("l", "text", "o", "value")]
        return published(owner, nodes, edges).workflow

    return await sync_to_async(create)()


async def open_client(page: Page, server: ServerProcess, user) -> None:
    """Sign the tab in as `user` (a session cookie), open a page of the site and import the module."""

    def session_key() -> str:
        client = Client()
        client.force_login(user)
        return client.cookies[settings.SESSION_COOKIE_NAME].value

    cookie = {"name": settings.SESSION_COOKIE_NAME, "value": await sync_to_async(session_key)(), "url": server.url}
    await page.context.add_cookies([cookie])
    await page.goto("/accounts/profile/")
    await page.evaluate(INSTALL)


async def start_run(page: Page, workflow) -> str:
    """
    A run of the workflow started through the admin's run action, as an operator would. The run
    must start inside the server process: its embedded worker and in-memory channel layer live
    there, and a run started from the test process would wait in the test's own stub broker.
    """

    def run_ids() -> set[str]:
        return {str(pk) for pk in Execution.objects.filter(workflow=workflow).values_list("pk", flat=True)}

    before = await sync_to_async(run_ids)()
    changelist = "/admin/workflows/workflow/"
    assert (await page.request.get(changelist)).ok  # sets the CSRF cookie
    token = next(c["value"] for c in await page.context.cookies() if c["name"] == settings.CSRF_COOKIE_NAME)
    form = {
        "csrfmiddlewaretoken": token,
        "action": "run_latest",
        "_selected_action": str(workflow.pk),
        "inputs": json.dumps({"t": "go"}),
        "apply": "Run",
    }
    response = await page.request.post(changelist, form=form)
    assert response.ok, await response.text()
    (started,) = await sync_to_async(run_ids)() - before
    return started


async def stored_seqs(execution_id: str) -> list[int]:
    query = ExecutionEvent.objects.filter(execution_id=execution_id).order_by("seq").values_list("seq", flat=True)
    return await sync_to_async(list)(query)


async def test_a_run_followed_from_the_start_delivers_every_stored_event_once_then_closes(
    page: Page, server: ServerProcess, owner, workflow
) -> None:
    await open_client(page, server, owner)
    execution_id = await start_run(page, workflow)
    await page.evaluate(FOLLOW_RUN, [execution_id, None])

    await page.wait_for_function("seen.statuses.at(-1) === 'closed'", timeout=DEADLINE_MS)
    seen = await page.evaluate("seen")
    assert [event["seq"] for event in seen["events"]] == await stored_seqs(execution_id)
    assert seen["events"][-1]["event_type"] == "execution.status"
    assert seen["events"][-1]["payload"]["status"] == "succeeded"
    assert seen["statuses"] == ["connecting", "open", "closed"]
    assert [close["code"] for close in seen["closes"]] == [1000]
    # Deltas are live only: whatever arrived is the end of the reply, in order.
    assert REPLY.endswith(seen["text"])
    assert await page.evaluate("[run.lastSeq, run.finished, sockets.map((s) => s.url)]") == [
        seen["events"][-1]["seq"],
        True,
        [f"{server.url.replace('http', 'ws')}/ws/executions/{execution_id}/?after_seq=0"],
    ]


async def test_a_dropped_connection_resumes_after_the_last_seq_without_gap_or_duplicate(
    page: Page, server: ServerProcess, owner, workflow
) -> None:
    await open_client(page, server, owner)
    execution_id = await start_run(page, workflow)
    await page.evaluate(FOLLOW_RUN, [execution_id, "l"])

    await page.wait_for_function("seen.statuses.at(-1) === 'closed'", timeout=DEADLINE_MS)
    seen = await page.evaluate("seen")
    seqs = [event["seq"] for event in seen["events"]]
    assert seqs == await stored_seqs(execution_id)
    assert seen["events"][-1]["payload"]["status"] == "succeeded"
    assert seen["statuses"] == ["connecting", "open", "reconnecting", "open", "closed"]
    assert [close["code"] for close in seen["closes"]] == [1000]
    # The second connection asked for what came after the last event the first one delivered.
    dropped_at = next(e["seq"] for e in seen["events"] if e["event_type"] == "node.started" and e["node_id"] == "l")
    urls = await page.evaluate("sockets.map((socket) => socket.url)")
    assert [url.rsplit("?", 1)[1] for url in urls] == ["after_seq=0", f"after_seq={dropped_at}"]


async def test_another_users_run_is_refused_with_4004_and_never_retried(
    page: Page, server: ServerProcess, owner, workflow
) -> None:
    def pending_run() -> str:
        version = workflow.versions.get()
        return str(services.execution_create(version=version, inputs={"t": "go"}, owner=owner).pk)

    execution_id = await sync_to_async(pending_run)()
    stranger = await sync_to_async(UserFactory)(username="stranger")
    await open_client(page, server, stranger)
    await page.evaluate(FOLLOW_RUN, [execution_id, None])

    await page.wait_for_function("seen.statuses.at(-1) === 'closed'", timeout=DEADLINE_MS)
    seen = await page.evaluate("seen")
    assert seen["events"] == []
    assert [close["code"] for close in seen["closes"]] == [4004]
    # A retry would have reported "reconnecting" from the close handler, before "closed".
    assert seen["statuses"] == ["connecting", "open", "closed"]
    assert await page.evaluate("[sockets.length, run.socket]") == [1, None]


async def test_a_multiplexed_workflow_subscription_follows_each_new_run_and_answers_heartbeats(
    page: Page, server: ServerProcess, owner, workflow
) -> None:
    await open_client(page, server, owner)
    await page.evaluate(FOLLOW_MULTIPLEXED, None)
    await page.evaluate("(id) => { mux.subscribeWorkflow(id); mux.start(); }", workflow.pk)
    channel = f"{owner.pk}|graph#{workflow.pk}|executions"
    await page.wait_for_function(
        "(channel) => seen.replies.some((r) => r.success && r.channel === channel)", arg=channel, timeout=DEADLINE_MS
    )

    runs = [await start_run(page, workflow), await start_run(page, workflow)]
    await page.wait_for_function(
        "seen.events.filter((e) => live.isTerminal(e)).length === 2 && seen.pongs >= 2", timeout=DEADLINE_MS
    )
    seen = await page.evaluate("seen")
    for execution_id in runs:
        events = [event for event in seen["events"] if event["graph_exec_id"] == execution_id]
        assert [event["seq"] for event in events] == await stored_seqs(execution_id)
        assert events[-1]["payload"]["status"] == "succeeded"
        assert {(event["channel"], event["graph_id"]) for event in events} == {(channel, workflow.pk)}
        for event in events:
            run_level = event["event_type"].startswith("execution.")
            assert event["method"] == ("graph_execution_event" if run_level else "node_execution_event")
    assert seen["errors"] == []
    assert seen["statuses"] == ["connecting", "open"]  # every heartbeat answered in time: never reconnected

    await page.evaluate("mux.stop()")
    assert await page.evaluate("seen.statuses.at(-1)") == "closed"


async def test_a_multiplexed_run_subscription_resubscribes_after_a_drop_from_its_last_seq(
    page: Page, server: ServerProcess, owner, workflow
) -> None:
    await open_client(page, server, owner)
    await page.evaluate(FOLLOW_MULTIPLEXED, "l")
    execution_id = await start_run(page, workflow)
    await page.evaluate("(id) => { mux.subscribeRun(id); mux.start(); }", execution_id)
    await page.wait_for_function("seen.events.some((e) => live.isTerminal(e))", timeout=DEADLINE_MS)

    seen = await page.evaluate("seen")
    assert [event["seq"] for event in seen["events"]] == await stored_seqs(execution_id)
    assert {event["channel"] for event in seen["events"]} == {f"{owner.pk}|graph_exec#{execution_id}"}
    assert seen["statuses"] == ["connecting", "open", "reconnecting", "open"]
    replies = [r["channel"] for r in seen["replies"] if r["method"] == "subscribe_graph_execution"]
    assert replies == [f"{owner.pk}|graph_exec#{execution_id}"] * 2
    # The second subscription asked for what came after the last event the first connection delivered.
    dropped_at = next(e["seq"] for e in seen["events"] if e["event_type"] == "node.started" and e["node_id"] == "l")
    subscriptions = [m["data"] for m in await page.evaluate("sent") if m["method"] == "subscribe_graph_execution"]
    assert subscriptions == [{"graph_exec_id": execution_id, "after_seq": s} for s in (0, dropped_at)]
    assert await page.evaluate("(id) => mux.lastSeq(id)", execution_id) == seen["events"][-1]["seq"]
