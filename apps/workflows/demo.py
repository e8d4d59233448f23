"""The demo content `make run` seeds: agents and workflows that run offline on the scripted provider."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from apps.agents.models import Agent
from apps.workflows.models import Workflow
from apps.workflows.services import workflow_publish


def _graph(nodes: list[tuple], edges: list[tuple]) -> dict:
    return {
        "nodes": [
            {"id": node_id, "type": node_type, "config": config, "position": {"x": 220 * index, "y": 80 * (index % 2)}}
            for index, (node_id, node_type, config) in enumerate(nodes)
        ],
        "edges": [{"source": s, "source_output": so, "target": t, "target_input": ti} for s, so, t, ti in edges],
    }


def _agents(owner: Any) -> tuple[Agent, Agent]:
    calculator, _ = Agent.objects.get_or_create(
        owner=owner,
        name="Calculator",
        defaults={
            "description": "Answers arithmetic questions with its calculator tool (scripted, offline).",
            "system_prompt": "You are precise. Use the calculator for any arithmetic.",
            "provider": "scripted",
            "model": "scripted-demo",
            "tools": ["calculator"],
            "parameters": {
                "replies": [
                    {"tool_calls": [{"name": "calculator", "args": {"expression": "(12 + 30) * 2"}}]},
                    "(12 + 30) * 2 = 84.",
                ],
                "delay_ms": 30,
            },
        },
    )
    writer, _ = Agent.objects.get_or_create(
        owner=owner,
        name="Writer",
        defaults={
            "description": "Rewrites a message politely (scripted, offline).",
            "provider": "scripted",
            "model": "scripted-demo",
            "parameters": {"replies": ["Thanks for writing in. In short: {input}"], "delay_ms": 30},
        },
    )
    return calculator, writer


def _triage() -> dict:
    summarise = {
        "provider": "scripted",
        "model": "scripted-demo",
        "parameters": {"replies": ["Summary: {input}"], "chunk_size": 4, "delay_ms": 40},
        "system_prompt": "Summarise support messages in one line.",
        "prompt": "{{ message }}",
    }
    return _graph(
        [
            ("message", "input", {"name": "message", "description": "A support message"}),
            ("is_urgent", "condition", {"expression": "contains(lower(message), 'urgent')"}),
            ("escalate", "template", {"template": "ESCALATE to on-call: {{ message }}"}),
            ("summarise", "llm", summarise),
            ("reply", "output", {"name": "reply"}),
        ],
        [
            ("message", "value", "is_urgent", "message"),
            ("message", "value", "is_urgent", "value"),
            ("is_urgent", "true", "escalate", "message"),
            ("is_urgent", "false", "summarise", "message"),
            ("escalate", "text", "reply", "value"),
            ("summarise", "text", "reply", "value"),
        ],
    )


def _math(calculator: Agent) -> dict:
    return _graph(
        [
            ("question", "input", {"name": "question", "default": "What is (12 + 30) * 2?"}),
            ("solve", "agent", {"agent": calculator.pk, "prompt": "{{ question }}"}),
            ("answer", "output", {"name": "answer"}),
        ],
        [("question", "value", "solve", "question"), ("solve", "text", "answer", "value")],
    )


def _report(triage: Workflow) -> dict:
    return _graph(
        [
            ("message", "input", {"name": "message"}),
            ("triage", "subworkflow", {"workflow": triage.pk}),
            ("format", "template", {"template": "Daily report\n- message: {{ message }}\n- triage: {{ reply }}"}),
            ("report", "output", {"name": "report"}),
        ],
        [
            ("message", "value", "triage", "message"),
            ("message", "value", "format", "message"),
            ("triage", "reply", "format", "reply"),
            ("format", "text", "report", "value"),
        ],
    )


# The page this server serves itself (static/demo/browser.html); `make run` listens on this address,
# which the settings allow the browser to reach on the embedded default outside production.
DEMO_PAGE = "http://127.0.0.1:8000/static/demo/browser.html"


def _browser_quote() -> dict:
    steps = [
        {"action": "open", "url": "{{ page }}"},
        {"action": "fill", "selector": "#item", "value": "{{ item }}"},
        {"action": "select", "selector": "#size", "value": "large"},
        {"action": "click", "selector": "#ask"},
        {"action": "wait_for", "selector": "#quote-result:not(:empty)"},
        {"action": "extract_text", "selector": "#quote-result", "as": "quote"},
        {"action": "extract_table", "selector": "#prices", "as": "prices"},
        {"action": "screenshot", "as": "screenshot"},
    ]
    return _graph(
        [
            ("page", "input", {"name": "page", "default": DEMO_PAGE, "description": "The shop page's address"}),
            ("item", "input", {"name": "item", "default": "Tea", "description": "What to ask a price for"}),
            ("shop", "browser", {"steps": steps, "action_timeout_seconds": 15}),
            ("quote", "output", {"name": "quote"}),
        ],
        [("page", "value", "shop", "page"), ("item", "value", "shop", "item"), ("shop", "data", "quote", "value")],
    )


def _workflow(owner: Any, name: str, description: str, graph: dict) -> Workflow:
    workflow, created = Workflow.objects.get_or_create(
        owner=owner, name=name, defaults={"description": description, "graph": graph}
    )
    if created or not workflow.latest_version_number:
        workflow_publish(workflow=workflow, actor=owner)
    return workflow


@transaction.atomic
def demo_seed(*, owner: Any) -> list[Workflow]:
    """Create what is missing (idempotent); returns the demo workflows."""
    calculator, _ = _agents(owner)
    triage = _workflow(owner, "Support triage", "Branches on 'urgent': escalate, or summarise with an LLM.", _triage())
    math = _workflow(owner, "Math helper", "An agent answers with the help of its calculator tool.", _math(calculator))
    report = _workflow(
        owner, "Daily report", "Runs 'Support triage' as a sub-workflow and formats a report.", _report(triage)
    )
    quote = _workflow(
        owner,
        "Browser quote",
        "A headless browser fills the demo shop's form, reads its price table and keeps a screenshot.",
        _browser_quote(),
    )
    return [triage, math, report, quote]
