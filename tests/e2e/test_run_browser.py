"""
The runs pages in a real Chromium against a real server process whose worker runs the runs: a
run watched live node by node, a reload midway and a dropped socket that both end on the same
timeline as a fresh load, cancel and retry from the page, and the list and a finished run page
at both widths, in both colour schemes, through axe-core.

`watch_run_to_the_end(page)` is for other journeys: on a run page, it waits for the run to end
and returns the timeline as drawn ("node_id:status" per attempt, in order).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from playwright.async_api import Page, expect

from apps.billing.models import MICRO, ModelPrice, credits
from apps.executions.models import Execution, ExecutionEvent
from apps.users.models import User
from tests.e2e.test_pages_browser import check_page, sign_in
from tests.factories import PASSWORD, UserFactory, published, scripted
from tests.support.services import ServerProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("worker")]

REPLY = "a reply that streams in a few letters at a time"
# About one and a half seconds per node: long enough to watch each one, reload and cancel.
SLOW_LLM = scripted(REPLY, chunk_size=3, delay_ms=90)
NODES = ["in", "a", "b", "c", "out"]
RUN_DEADLINE_MS = 45_000
# A worker process (Redis broker) imports the model stack on its first run: seconds, on a busy machine.
FIRST_NODE_MS = 30_000
STEP_MS = 15_000

TIMELINE = """() => [...document.querySelectorAll("#timeline-list > li")].map(
    (item) => `${item.dataset.nodeId}:${item.dataset.status}`)"""
# Every state the socket indicator shows, recorded as it changes.
RECORD_LIVE_STATES = """() => {
    const element = document.getElementById("live-state");
    window.liveStates = [element.dataset.state];
    new MutationObserver(() => liveStates.push(element.dataset.state))
        .observe(element, {attributes: true, attributeFilter: ["data-state"]});
}"""


async def timeline_of(page: Page) -> list[str]:
    return await page.evaluate(TIMELINE)


async def watch_run_to_the_end(page: Page, timeout_ms: int = RUN_DEADLINE_MS) -> list[str]:
    """On a run page: wait until the run has ended (followed live or drawn finished); its timeline."""
    await expect(page.locator("#live-state")).to_have_attribute("data-state", "finished", timeout=timeout_ms)
    return await timeline_of(page)


@pytest.fixture
async def workflow_id() -> int:
    """Ada's published input -> a -> b -> c -> output workflow of slow, priced scripted replies."""

    def create() -> int:
        user = UserFactory(username="ada", display_name="Ada Lovelace")
        hasher = PBKDF2PasswordHasher()  # the server process checks passwords with the real hashers
        User.objects.filter(pk=user.pk).update(password=hasher.encode(PASSWORD, hasher.salt()))
        ModelPrice.objects.filter(provider="scripted").delete()
        ModelPrice.objects.create(
            provider="scripted", model="scripted-1", input_per_million=20 * MICRO, output_per_million=40 * MICRO
        )
        nodes = [
            ("in", "input", {"name": "text"}),
            *[(name, "llm", {**SLOW_LLM, "prompt": "{{ x }}"}) for name in ("a", "b", "c")],
            ("out", "output", {"name": "result"}),
        ]
        edges = [
            ("in", "value", "a", "x"),
            ("a", "text", "b", "x"),
            ("b", "text", "c", "x"),
            ("c", "text", "out", "value"),
        ]
        return published(user, nodes, edges, name="Slow chain").workflow_id

    return await sync_to_async(create)()


async def start_run(page: Page, workflow_id: int) -> str:
    """A run started through the API with the page's session, so that the server's worker runs it."""
    token = next(c["value"] for c in await page.context.cookies() if c["name"] == settings.CSRF_COOKIE_NAME)
    response = await page.request.post(
        f"/api/v1/workflows/{workflow_id}/run/", data={"inputs": {"text": "go"}}, headers={"X-CSRFToken": token}
    )
    assert response.status == 202, await response.text()
    return (await response.json())["id"]


async def stored(execution_id: str) -> tuple[Execution, int]:
    def read() -> tuple[Execution, int]:
        run = Execution.objects.get(pk=execution_id)
        return run, ExecutionEvent.objects.filter(execution=run).order_by("-seq").values_list("seq", flat=True)[0]

    return await sync_to_async(read)()


def node(page: Page, node_id: str, status: str):
    return page.locator(f'#timeline-list > li[data-node-id="{node_id}"][data-status="{status}"]')


async def test_a_run_is_watched_live_and_a_reload_midway_ends_on_the_same_timeline(
    page: Page, server: ServerProcess, workflow_id: int
) -> None:
    await sign_in(page, "ada")
    execution_id = await start_run(page, workflow_id)
    await page.goto(f"/runs/{execution_id}/")
    await page.evaluate("window.loadedOnce = true")  # gone if the page reloads by itself

    await expect(page.locator("#live-state")).to_have_text("Live")
    # Each node appears and finishes without a reload; the LLM's text streams in while it runs.
    await expect(node(page, "a", "running")).to_have_count(1, timeout=FIRST_NODE_MS)
    await expect(node(page, "a", "running").locator(".llm-text")).not_to_be_empty(timeout=STEP_MS)
    await expect(node(page, "a", "succeeded")).to_have_count(1, timeout=STEP_MS)
    await expect(node(page, "a", "succeeded").locator(".llm-text")).to_have_text(REPLY)
    await expect(node(page, "b", "running")).to_have_count(1, timeout=STEP_MS)
    assert await page.evaluate("window.loadedOnce") is True
    assert await page.locator("#run-cost").text_content() != "0"

    await page.reload()  # midway: b is running
    await expect(page.locator("#live-state")).to_have_text("Live")
    live = await watch_run_to_the_end(page)

    assert live == [f"{name}:succeeded" for name in NODES]
    run, last_seq = await stored(execution_id)
    assert run.status == "succeeded"
    assert await page.get_attribute("#run", "data-last-seq") == str(last_seq)
    assert await page.locator("#run-status").text_content() == "Succeeded"
    assert await page.locator("#run-cost").text_content() == credits(run.cost)
    for name in ("a", "b", "c"):
        assert await page.locator(f'li[data-node-id="{name}"] .llm-text').text_content() == REPLY
    await expect(page.locator('[data-action="cancel"]')).to_be_hidden()

    await page.goto(f"/runs/{execution_id}/")
    assert await watch_run_to_the_end(page) == live


async def test_a_dropped_socket_reconnects_and_catches_up_without_repeats(
    page: Page, server: ServerProcess, workflow_id: int
) -> None:
    await sign_in(page, "ada")
    execution_id = await start_run(page, workflow_id)
    await page.goto(f"/runs/{execution_id}/")
    await page.evaluate(RECORD_LIVE_STATES)
    await expect(node(page, "a", "running")).to_have_count(1, timeout=FIRST_NODE_MS)

    await page.evaluate("runSocket.socket.close(4000, 'dropped by the test')")  # as a network would
    live = await watch_run_to_the_end(page)

    states = await page.evaluate("liveStates")
    assert "reconnecting" in states
    assert states[-1] == "finished"
    assert live == [f"{name}:succeeded" for name in NODES]
    _, last_seq = await stored(execution_id)
    assert await page.get_attribute("#run", "data-last-seq") == str(last_seq)
    await page.goto(f"/runs/{execution_id}/")
    assert await watch_run_to_the_end(page) == live


async def test_cancel_shows_live_and_retry_lands_on_a_new_run_that_finishes(
    page: Page, server: ServerProcess, workflow_id: int
) -> None:
    await sign_in(page, "ada")
    execution_id = await start_run(page, workflow_id)
    await page.goto(f"/runs/{execution_id}/")
    await expect(node(page, "a", "running")).to_have_count(1, timeout=FIRST_NODE_MS)
    await page.evaluate("window.loadedOnce = true")

    await page.get_by_role("button", name="Cancel run").click()

    await expect(page.locator("#run-status")).to_have_text("Cancelled")
    await expect(page.locator("#live-state")).to_have_attribute("data-state", "finished")
    await expect(page.get_by_role("button", name="Cancel run")).to_be_hidden()
    # The node that was running records its end after the run's final status: the page reads it too.
    await expect(node(page, "a", "cancelled")).to_have_count(1)
    await expect(page.locator('#timeline-list > li[data-status="running"]')).to_have_count(0)
    assert await page.evaluate("window.loadedOnce") is True  # no reload: the socket said so
    run, _ = await stored(execution_id)
    assert run.status == "cancelled"

    await page.get_by_role("button", name="Retry").click()

    await expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}/$"))
    assert execution_id not in page.url
    await expect(page.get_by_text("A new run of the same version and inputs has started.")).to_be_visible()
    assert await watch_run_to_the_end(page) == [f"{name}:succeeded" for name in NODES]


async def test_the_list_and_a_finished_run_pass_the_page_checks(
    page: Page, server: ServerProcess, workflow_id: int, screenshots: Path
) -> None:
    await sign_in(page, "ada")
    execution_id = await start_run(page, workflow_id)
    await page.goto(f"/runs/{execution_id}/")
    await watch_run_to_the_end(page)

    await page.goto("/runs/")
    await expect(page.get_by_role("heading", name="Runs", level=1)).to_be_visible()
    await page.locator("#id_status").select_option("failed")  # htmx swaps the table
    await expect(page.get_by_text("No runs match these filters")).to_be_visible()
    await expect(page).to_have_url(re.compile(r"/runs/\?status=failed"))
    await page.locator("#id_status").select_option("succeeded")
    await expect(page.locator("#run-table tbody tr")).to_have_count(1)

    await check_page(page, "/runs/", "runs", screenshots)
    await check_page(page, f"/runs/{execution_id}/", "run", screenshots)
    await page.locator("#timeline-list details.node-inputs").first.locator("summary").click()
    await expect(page.locator("#timeline-list pre.json").first).to_be_visible()


async def test_values_too_long_for_an_event_are_shown_whole_without_a_reload(
    page: Page, server: ServerProcess, workflow_id: int
) -> None:
    await sign_in(page, "ada")
    token = next(c["value"] for c in await page.context.cookies() if c["name"] == settings.CSRF_COOKIE_NAME)
    headers = {"X-CSRFToken": token}
    long_text = "start-" + "x" * 6_000 + "-end"  # events carry 4,000 characters of a value
    created = await page.request.post(
        "/api/v1/executions/", data={"workflow": workflow_id, "inputs": {"text": long_text}}, headers=headers
    )
    assert created.status == 201, await created.text()
    execution_id = (await created.json())["id"]
    await page.goto(f"/runs/{execution_id}/")  # open before the run starts: every node is drawn live
    await expect(page.locator("#live-state")).to_have_text("Live")
    await page.evaluate("window.loadedOnce = true")

    started = await page.request.post(f"/api/v1/executions/{execution_id}/start/", headers=headers)
    assert started.status == 200, await started.text()

    outputs = node(page, "in", "succeeded").locator(".node-outputs")
    await expect(outputs).to_have_count(1, timeout=FIRST_NODE_MS)
    await expect(outputs).to_have_attribute("data-shortened", "false")  # it was, then the whole value came
    shown = await outputs.locator(".json-value").text_content()
    assert "-end" in shown
    assert "[truncated]" not in shown
    assert await page.evaluate("window.loadedOnce") is True
    await watch_run_to_the_end(page)
