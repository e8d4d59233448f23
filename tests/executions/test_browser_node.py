"""
The `browser` node and the browser tools, run by the real engine against a real Chromium and
pages the test serves on loopback: steps, outputs and usage, screenshots as run artifacts that
only their owner downloads, clear step errors, isolation between runs, an agent's browser tools.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.agents import browser
from apps.agents.models import Agent
from apps.billing.models import CreditTransaction
from apps.executions.models import Execution, ExecutionEvent, RunArtifact
from apps.workflows.graph import GraphInvalid, validate
from apps.workflows.services import OwnerResolver
from tests.factories import UserFactory, graph, published
from tests.support.pages import TestPages
from tests.support.services import missing_service

CHROMIUM = Path("/usr/bin/chromium")
NAME_IN = ("in", "input", {"name": "name"})
OUT = ("out", "output", {"name": "result"})


@pytest.fixture(autouse=True)
def _browser_pool() -> Iterator[None]:
    if not CHROMIUM.exists():
        missing_service("Chromium", f"{CHROMIUM} not installed")
    yield
    browser.shutdown_pool()  # each test starts with a fresh pool (and breaker)


@pytest.fixture
def site(settings) -> Iterator[TestPages]:
    pages = TestPages()
    settings.EGRESS_ALLOW = [pages.netloc]
    yield pages
    pages.close()


def browser_flow(owner, steps: list[dict], *, name: str = "flow", **config):
    """input `name` -> browser -> output; without the input when no step uses `{{ name }}`."""
    node = ("web", "browser", {"steps": steps, **config})
    if "{{ name }}" not in json.dumps(steps):
        return published(owner, [node, OUT], [("web", "data", "out", "value")], name=name)
    return published(
        owner, [NAME_IN, node, OUT], [("in", "value", "web", "name"), ("web", "data", "out", "value")], name=name
    )


def order_steps(site: TestPages) -> list[dict]:
    return [
        {"action": "open", "url": f"{site.url}/form"},
        {"action": "fill", "selector": "#name", "value": "{{ name }}"},
        {"action": "select", "selector": "#colour", "value": "blue"},
        {"action": "click", "selector": "#send"},
        {"action": "wait_for", "selector": "#result"},
        {"action": "extract_text", "selector": "#result", "as": "result"},
        {"action": "screenshot", "full_page": True, "as": "shot"},
    ]


def test_a_browser_workflow_fills_a_form_and_keeps_its_screenshot(owner, run, site):
    execution = run(browser_flow(owner, order_steps(site)), {"name": "Ada"})
    assert execution.status == Execution.Status.SUCCEEDED, execution.error_message

    record = execution.node_executions.get(node_id="web")
    artifact = RunArtifact.objects.get()
    described = {
        "id": artifact.pk,
        "kind": "screenshot",
        "name": "web-step7.png",
        "content_type": "image/png",
        "size": artifact.size,
        "url": f"/api/v1/executions/{execution.pk}/artifacts/{artifact.pk}/",
    }
    assert execution.outputs == {"result": {"result": "Thanks, Ada! You chose blue.", "shot": described}}
    assert record.outputs["screenshots"] == [described]
    assert record.outputs["url"].startswith(f"{site.url}/thanks?")
    assert record.outputs["title"] == "Thanks"
    assert (artifact.execution_id, artifact.node_execution_id) == (execution.pk, record.pk)
    with artifact.file.open("rb") as file:
        content = file.read()
    assert content.startswith(b"\x89PNG")
    assert len(content) == artifact.size
    # Metered for billing: the wall time the node used the browser.
    assert 0 < record.usage["browser_seconds"] <= record.duration_ms / 1000
    assert record.usage["browser_steps"] == 7
    # Announced while the run went on.
    log = ExecutionEvent.objects.get(execution=execution, type="node.log", node_id="web")
    assert log.payload["data"] == {"artifact": described}
    # The run's browser context ended with the run.
    assert str(execution.pk) not in browser.get_pool().open_keys


def test_only_the_owner_downloads_a_runs_screenshot(owner, run, site, client):
    execution = run(browser_flow(owner, order_steps(site)), {"name": "Ada"})
    other_run = run(browser_flow(owner, order_steps(site), name="again"), {"name": "Bob"})
    artifact = RunArtifact.objects.get(execution=execution)
    url = f"/api/v1/executions/{execution.pk}/artifacts/{artifact.pk}/"

    client.force_login(owner)
    response = client.get(url, headers={"Accept": "image/png"})
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"] == 'inline; filename="web-step7.png"'
    with artifact.file.open("rb") as file:
        assert b"".join(response.streaming_content) == file.read()
    detail = client.get(f"/api/v1/executions/{execution.pk}/").json()
    [web] = [node for node in detail["nodes"] if node["node_id"] == "web"]
    assert [entry["url"] for entry in web["artifacts"]] == [url]

    # Another run's artifact through this run's address, or no such artifact: 404.
    foreign = RunArtifact.objects.get(execution=other_run)
    assert client.get(f"/api/v1/executions/{execution.pk}/artifacts/{foreign.pk}/").status_code == 404
    assert client.get(f"/api/v1/executions/{execution.pk}/artifacts/999999/").status_code == 404

    client.force_login(UserFactory(username="stranger"))
    refused = client.get(url)
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "not_found"
    client.logout()
    assert client.get(url).status_code in (401, 403)


def test_operators_see_a_runs_artifacts_on_its_admin_page(owner, run, site, client):
    execution = run(browser_flow(owner, order_steps(site)), {"name": "Ada"})
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    page = client.get(f"/admin/executions/execution/{execution.pk}/change/")
    assert page.status_code == 200
    artifact = RunArtifact.objects.get()
    assert "web-step7.png" in page.content.decode()
    assert f"{artifact.size}" in page.content.decode()


def test_a_failing_step_fails_the_node_naming_the_step_and_selector(owner, run, site):
    steps = [{"action": "open", "url": f"{site.url}/a"}, {"action": "click", "selector": "#missing"}]
    execution = run(browser_flow(owner, steps, action_timeout_seconds=1), {})
    assert execution.status == Execution.Status.FAILED
    assert execution.error_code == "browser_timeout"
    assert execution.error_message == "step 2 (click '#missing') did not finish within 1 s"
    record = execution.node_executions.get(node_id="web")
    assert (record.status, record.error_code, record.usage) == ("failed", "browser_timeout", {})


def test_a_page_the_egress_rules_refuse_fails_the_node(owner, run, site):
    steps = [{"action": "open", "url": "http://169.254.169.254/latest/meta-data/"}]
    execution = run(browser_flow(owner, steps), {})
    assert execution.error_code == "egress_refused"
    assert "169.254.169.254" in execution.error_message


def test_browser_nodes_fail_fast_while_the_browser_cannot_start(owner, run, site, settings):
    settings.BROWSER_EXECUTABLE = "/nonexistent/chromium"
    settings.BROWSER_BREAKER_FAILURES = 1
    settings.BROWSER_BREAKER_COOLDOWN_SECONDS = 300
    version = browser_flow(owner, [{"action": "open", "url": f"{site.url}/a"}])
    first = run(version, {})
    assert first.error_code == "browser_unavailable"
    assert first.error_message.startswith("the browser could not start: ")
    second = run(version, {})
    assert second.error_code == "browser_unavailable"
    assert "1 launches failed in a row" in second.error_message
    assert browser.get_pool().snapshot()["launch_failures"] == 1  # the second run tried no launch
    assert site.requests == []


def test_cookies_and_storage_stay_inside_one_run(owner, run, site):
    """Two nodes of one run share its context; the next run of the same user starts empty."""
    recall = {"action": "extract_text", "selector": "#state", "as": "state"}
    version = published(
        owner,
        [
            ("store", "browser", {"steps": [{"action": "open", "url": f"{site.url}/remember"}]}),
            (
                "read",
                "browser",
                {"steps": [{"action": "open", "url": f"{site.url}/recall?after={{{{ after }}}}"}, recall]},
            ),
            OUT,
        ],
        [("store", "url", "read", "after"), ("read", "data", "out", "value")],
    )
    first = run(version, {})
    assert first.status == Execution.Status.SUCCEEDED, first.error_message
    state = first.outputs["result"]["state"]
    assert "server_cookie=set-by-server" in state
    assert "js_cookie=from-script" in state
    assert "storage=[run-one]" in state

    reader = browser_flow(owner, [{"action": "open", "url": f"{site.url}/recall"}, recall], name="reader")
    second = run(reader, {})
    assert second.outputs == {"result": {"state": "cookie=[] storage=[]"}}


def test_an_agent_browses_with_its_tools(owner, run, site):
    agent = Agent.objects.create(
        owner=owner,
        name="shopper",
        provider="scripted",
        model="scripted-1",
        tools=["browser_open", "browser_extract_table", "browser_screenshot"],
        parameters={
            "replies": [
                {"tool_calls": [{"name": "browser_open", "args": {"url": f"{site.url}/table"}}]},
                {"tool_calls": [{"name": "browser_extract_table", "args": {"selector": "#prices"}}]},
                {"tool_calls": [{"name": "browser_screenshot", "args": {}}]},
                "Tea costs 2.50.",
            ]
        },
    )
    version = published(
        owner,
        [NAME_IN, ("shop", "agent", {"agent": agent.pk, "prompt": "Price of {{ name }}?"}), OUT],
        [("in", "value", "shop", "name"), ("shop", "text", "out", "value")],
    )
    execution = run(version, {"name": "tea"})
    assert execution.status == Execution.Status.SUCCEEDED, execution.error_message
    assert execution.outputs == {"result": "Tea costs 2.50."}

    answers = {
        event.payload["data"]["tool"]: event.payload["data"]["result"]
        for event in ExecutionEvent.objects.filter(execution=execution, type="node.log")
        if event.payload["message"].startswith("tool ")
    }
    opened = json.loads(answers["browser_open"])
    assert (opened["url"], opened["title"]) == (f"{site.url}/table", "Prices")
    assert json.loads(answers["browser_extract_table"]) == [
        {"Item": "Tea", "Price": "2.50"},
        {"Item": "Coffee", "Price": "3.10"},
    ]
    artifact = RunArtifact.objects.get(execution=execution)
    assert json.loads(answers["browser_screenshot"])["id"] == artifact.pk
    assert artifact.node_execution == execution.node_executions.get(node_id="shop")
    shop = execution.node_executions.get(node_id="shop")
    assert shop.usage["tool_calls"] == 3
    # Its tools' browser time is metered and charged per browser-minute, beside tokens and calls.
    assert shop.usage["browser_seconds"] > 0
    assert "s of browser" in CreditTransaction.objects.get(idempotency_key=f"node:{shop.pk}").description
    assert str(execution.pk) not in browser.get_pool().open_keys


def test_a_browser_tool_outside_a_run_says_so(owner):
    from apps.agents.tools import resolve

    [tool] = resolve(["browser_open"])
    import asyncio

    answer = asyncio.run(tool.ainvoke({"url": "https://example.com/"}))
    assert answer == "the browser is available only to agents running inside a workflow run"


def problems(owner, config: dict) -> list[dict]:
    with pytest.raises(GraphInvalid) as caught:
        validate(graph([("web", "browser", config)], []), OwnerResolver(owner))
    return caught.value.as_list()


def test_invalid_steps_are_named_when_validating(owner):
    found = problems(
        owner,
        {
            "steps": [
                {"action": "click", "selector": "#go"},
                {"action": "fill", "selector": "#q"},
                {"action": "wait_for"},
                {"action": "click", "selector": "#x", "as": "clicked"},
                {"action": "extract_text", "selector": "{{ broken", "as": "text"},
            ]
        },
    )
    messages = {(problem.get("field"), problem["message"]) for problem in found}
    assert (
        "config.steps[0].action",
        "the first step must be `open`: each browser node starts on a new tab",
    ) in messages
    assert ("config.steps[1].value", "step 2 (fill) needs a value") in messages
    assert ("config.steps[2]", "step 3 (wait_for) needs either a selector or a text") in messages
    assert ("config.steps[3].as", "step 4 (click) produces nothing to name") in messages
    assert any(field == "config.steps[4].selector" for field, _ in messages)
    bad_action = problems(owner, {"steps": [{"action": "download", "url": "https://example.com"}]})
    assert bad_action  # not one of the actions


@pytest.mark.django_db(transaction=True)
def test_the_demo_browser_workflow_runs_on_the_page_the_server_serves(owner, run, server, settings):
    from apps.workflows.demo import demo_seed

    settings.EGRESS_ALLOW = [server.url.removeprefix("http://")]
    quote = {workflow.name: workflow for workflow in demo_seed(owner=owner)}["Browser quote"]
    execution = run(quote.versions.get(), {"page": f"{server.url}/static/demo/browser.html"})
    assert execution.status == Execution.Status.SUCCEEDED, execution.error_message
    result = execution.outputs["quote"]
    assert result["quote"] == "A large Tea costs 3.20."
    assert result["prices"][0] == {"Item": "Tea", "Small": "2.50", "Large": "3.20"}
    assert RunArtifact.objects.get(execution=execution).pk == result["screenshot"]["id"]
