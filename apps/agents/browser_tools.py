"""
The browser as agent tools: open a page, click, fill, select, wait, extract text, links or a
table, take a screenshot; all on the run's browser context (apps.agents.browser), in a tab of
the node that runs the agent, so a page opened by one call is there for the next.

A tool needs the run it acts for. The engine's RunContext binds itself (`bind`) when it builds
an agent; the binding is a context variable, so it follows the agent's tool calls (asyncio tasks
copy it) and never leaks into another run, whose nodes run in tasks of their own.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, Protocol

from langchain_core.tools import BaseTool, StructuredTool, ToolException

from apps.agents.browser import BrowserError, BrowserSession

OPEN_TEXT_CHARS = 4_000


class RunBrowser(Protocol):
    """What a tool needs from the run (implemented by apps.executions.context.RunContext)."""

    def browser(self) -> BrowserSession: ...

    async def save_artifact(self, *, kind: str, content: bytes, content_type: str, name: str) -> dict: ...


current: ContextVar[RunBrowser | None] = ContextVar("switchboard_browser_run", default=None)


def bind(run: RunBrowser) -> None:
    """Let the browser tools called from here on (in this task and those it starts) act for `run`."""
    current.set(run)


def _run() -> RunBrowser:
    run = current.get()
    if run is None:
        raise ToolException("the browser is available only to agents running inside a workflow run")
    return run


async def _act(action: Callable[[BrowserSession], Awaitable[Any]]) -> Any:
    try:
        return await action(_run().browser())
    except BrowserError as exc:
        raise ToolException(f"{exc.code}: {exc}") from exc


async def browser_open(url: str) -> str:
    """Open a web page (http or https URL) in the browser; returns its URL, title and the start of its text."""
    where = await _act(lambda session: session.open(url, label=f"browser_open {url}"))
    text = await _act(lambda session: session.extract_text(label="browser_open (reading the page)"))
    return json.dumps({**where, "text": text[:OPEN_TEXT_CHARS]}, ensure_ascii=False)


async def browser_click(selector: str) -> str:
    """Click the first element matching a CSS selector (or `text=Label`); returns the page's URL and title after."""
    where = await _act(lambda session: session.click(selector, label=f"browser_click {selector!r}"))
    return json.dumps(where, ensure_ascii=False)


async def browser_fill(selector: str, value: str) -> str:
    """Type `value` into the input or text area matching a CSS selector, replacing what was there."""
    await _act(lambda session: session.fill(selector, value, label=f"browser_fill {selector!r}"))
    return f"filled {selector}"


async def browser_select(selector: str, value: str) -> str:
    """Choose an option (by value or by its label) in the drop-down matching a CSS selector."""
    chosen = await _act(lambda session: session.select(selector, value, label=f"browser_select {selector!r}"))
    return json.dumps({"selected": chosen})


async def browser_wait_for(selector: str = "", text: str = "") -> str:
    """Wait until an element matching a CSS selector, or the given text, is visible on the page."""
    if bool(selector) == bool(text):
        raise ToolException("give either a selector or a text to wait for")
    label = f"browser_wait_for {selector or text!r}"
    await _act(lambda session: session.wait_for(selector=selector or None, text=text or None, label=label))
    return f"visible: {selector or text}"


async def browser_extract_text(selector: str = "") -> str:
    """The visible text of the element matching a CSS selector (the whole page when empty)."""
    label = f"browser_extract_text {selector or 'body'!r}"
    return await _act(lambda session: session.extract_text(selector or None, label=label))


async def browser_extract_links(selector: str = "") -> str:
    """The links (text and absolute URL) inside the element matching a CSS selector (the whole page when empty)."""
    label = f"browser_extract_links {selector or 'body'!r}"
    links = await _act(lambda session: session.extract_links(selector or None, label=label))
    return json.dumps(links, ensure_ascii=False)


async def browser_extract_table(selector: str) -> str:
    """The rows of the HTML table matching a CSS selector: objects keyed by the header cells, or lists."""
    rows = await _act(lambda session: session.extract_table(selector, label=f"browser_extract_table {selector!r}"))
    return json.dumps(rows, ensure_ascii=False)


async def browser_screenshot(full_page: bool = False) -> str:
    """Take a PNG screenshot of the page, stored with the run; returns the artifact's id and download URL."""
    run = _run()
    image = await _act(lambda session: session.screenshot(full_page=full_page, label="browser_screenshot"))
    artifact = await run.save_artifact(
        kind="screenshot", content=image, content_type="image/png", name="screenshot.png"
    )
    return json.dumps(artifact)


def _tool(function: Callable[..., Awaitable[str]]) -> Callable[[], BaseTool]:
    return lambda: StructuredTool.from_function(coroutine=function, name=function.__name__, handle_tool_error=True)


TOOLS: dict[str, Callable[[], BaseTool]] = {
    function.__name__: _tool(function)
    for function in (
        browser_open,
        browser_click,
        browser_fill,
        browser_select,
        browser_wait_for,
        browser_extract_text,
        browser_extract_links,
        browser_extract_table,
        browser_screenshot,
    )
}
