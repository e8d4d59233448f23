"""
`browser`: a list of steps in a headless Chromium (open, click, fill, select, wait for, extract
text, links or a table, screenshot), on the run's browser context (apps.agents.browser).

Each node works in a new tab of its run's context: cookies and storage carry over from the
run's earlier browser nodes, the page does not, so the first step opens a URL. Screenshots are
stored as run artifacts. `usage.browser_seconds` is the wall time the node used the browser.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any
from urllib.parse import urlsplit

from apps.agents.browser import BrowserError, BrowserSession
from apps.workflows import templating
from apps.workflows.nodes.base import NodeContext, NodeError, NodeResult, NodeType, object_schema, register

MAX_STEPS = 50
TEMPLATED = ("url", "selector", "value", "text")
# What each action needs besides `action`; `wait_for` needs one of selector or text.
REQUIRED = {
    "open": ("url",),
    "click": ("selector",),
    "fill": ("selector", "value"),
    "select": ("selector", "value"),
    "wait_for": (),
    "extract_text": (),
    "extract_links": (),
    "extract_table": ("selector",),
    "screenshot": (),
}
EXTRACTS = {"extract_text", "extract_links", "extract_table", "screenshot"}

STEP_SCHEMA = {
    "type": "object",
    "properties": {
        "action": {"enum": list(REQUIRED)},
        "url": {"type": "string", "minLength": 1, "maxLength": 4000},
        "selector": {"type": "string", "minLength": 1, "maxLength": 1000},
        "value": {"type": "string", "maxLength": 10_000},
        "text": {"type": "string", "minLength": 1, "maxLength": 1000},
        "full_page": {"type": "boolean"},
        "as": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,63}$"},
    },
    "required": ["action"],
    "additionalProperties": False,
}


def _sources(config: dict) -> list[tuple[str, str]]:
    return [
        (f"steps[{index}].{key}", step[key])
        for index, step in enumerate(config.get("steps") or [])
        if isinstance(step, dict)
        for key in TEMPLATED
        if isinstance(step.get(key), str)
    ]


def variables(config: dict) -> set[str]:
    names: set[str] = set()
    for _field, source in _sources(config):
        with contextlib.suppress(templating.TemplateProblem):
            names |= templating.variables(source)
    return names


def pins(config: dict, resolver) -> tuple[dict, dict]:
    names = sorted(variables(config))
    return object_schema({name: {} for name in names}, names), BROWSER.outputs_schema


def check(config: dict, resolver) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    steps = [step for step in config.get("steps") or [] if isinstance(step, dict)]
    if steps and steps[0].get("action") != "open":
        problems.append(("steps[0].action", "the first step must be `open`: each browser node starts on a new tab"))
    names: set[str] = set()
    for index, step in enumerate(steps):
        action = step.get("action")
        for key in REQUIRED.get(action, ()):
            if key not in step:
                problems.append((f"steps[{index}].{key}", f"step {index + 1} ({action}) needs a {key}"))
        if action == "wait_for" and ("selector" in step) == ("text" in step):
            problems.append((f"steps[{index}]", f"step {index + 1} (wait_for) needs either a selector or a text"))
        name = step.get("as")
        if name and action not in EXTRACTS:
            problems.append((f"steps[{index}].as", f"step {index + 1} ({action}) produces nothing to name"))
        if name and name in names:
            problems.append((f"steps[{index}].as", f"the name {name!r} is used by an earlier step"))
        names.add(name)
    for field, source in _sources(config):
        try:
            templating.check(source)
        except templating.TemplateProblem as exc:
            problems.append((field, str(exc)))
    return problems


def _rendered(step: dict, inputs: dict, number: int) -> dict:
    try:
        return {
            key: templating.render(value, inputs) if key in TEMPLATED and isinstance(value, str) else value
            for key, value in step.items()
        }
    except templating.TemplateProblem as exc:
        raise NodeError("template_error", f"step {number}: {exc}") from exc


def describe_step(number: int, step: dict) -> str:
    """`step 3 (click '#send')`: how errors name a step (a URL without its query, which may hold a token)."""
    url = urlsplit(step.get("url") or "")._replace(query="", fragment="").geturl()
    subject = step.get("selector") or step.get("text") or url
    return f"step {number} ({step['action']}{f' {subject!r}' if subject else ''})"


async def _perform(session: BrowserSession, step: dict, label: str, timeout: float | None) -> Any:
    action, selector = step["action"], step.get("selector")
    if action == "open":
        return await session.open(step["url"], label=label, timeout=timeout)
    if action == "click":
        return await session.click(selector, label=label, timeout=timeout)
    if action == "fill":
        return await session.fill(selector, step["value"], label=label, timeout=timeout)
    if action == "select":
        return await session.select(selector, step["value"], label=label, timeout=timeout)
    if action == "wait_for":
        return await session.wait_for(selector=selector, text=step.get("text"), label=label, timeout=timeout)
    if action == "extract_text":
        return await session.extract_text(selector, label=label, timeout=timeout)
    if action == "extract_links":
        return await session.extract_links(selector, label=label, timeout=timeout)
    if action == "extract_table":
        return await session.extract_table(selector, label=label, timeout=timeout)
    return await session.screenshot(
        selector=selector, full_page=bool(step.get("full_page")), label=label, timeout=timeout
    )


async def run(context: NodeContext, config: dict, inputs: dict) -> NodeResult:
    session = context.browser()
    timeout = config.get("action_timeout_seconds")
    data: dict[str, Any] = {}
    screenshots: list[dict] = []
    started = time.monotonic()
    try:
        for number, raw in enumerate(config["steps"], start=1):
            step = _rendered(raw, inputs, number)
            label = describe_step(number, step)
            result = await _perform(session, step, label, timeout)
            if step["action"] == "screenshot":
                result = await context.save_artifact(
                    kind="screenshot",
                    content=result,
                    content_type="image/png",
                    name=f"{context.node_id}-step{number}.png",
                )
                screenshots.append(result)
            if step["action"] in EXTRACTS:
                data[step.get("as") or f"step_{number}"] = result
        where = await session.location(label="reading the final page")
    except BrowserError as exc:
        raise NodeError(exc.code, str(exc), transient=exc.transient) from exc
    finally:
        await session.close()
        seconds = time.monotonic() - started
    return NodeResult(
        outputs={"data": data, "url": where["url"], "title": where["title"], "screenshots": screenshots},
        usage={"browser_seconds": round(seconds, 3), "browser_steps": len(config["steps"])},
    )


BROWSER = register(
    NodeType(
        type="browser",
        description=(
            "Drives a headless browser through steps (open, click, fill, select, wait_for, extract_text, "
            "extract_links, extract_table, screenshot); URL, selectors and values may use {{ variables }}."
        ),
        category="integration",
        config_schema={
            "type": "object",
            "properties": {
                "steps": {"type": "array", "items": STEP_SCHEMA, "minItems": 1, "maxItems": MAX_STEPS},
                "action_timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 300},
            },
            "required": ["steps"],
        },
        inputs_schema=object_schema({}),
        outputs_schema=object_schema(
            {
                "data": {"type": "object"},
                "url": {"type": "string"},
                "title": {"type": "string"},
                "screenshots": {"type": "array"},
            }
        ),
        cost={"basis": "browser_minute"},
        run=run,
        default_timeout=120,
        pins=pins,
        check=check,
    )
)
