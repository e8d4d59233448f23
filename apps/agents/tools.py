"""
Built-in tools an agent may be given (by name). One entry each; the tools issue adds the
browser and MCP servers the same way.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable

from langchain_core.tools import BaseTool, StructuredTool, ToolException

from apps.agents import browser_tools, egress, expressions

HTTP_GET_MAX_BYTES = 200_000
HTTP_GET_MAX_CHARS = 20_000


def calculator(expression: str) -> str:
    """Evaluate an arithmetic or logical expression, e.g. `(3 + 4) * 2` or `max(3, 9) / 4`."""
    try:
        return str(expressions.evaluate(expression, {}))
    except expressions.ExpressionError as exc:
        raise ToolException(str(exc)) from exc


def current_time(time_zone: str = "UTC") -> str:
    """The current date and time in a time zone such as `UTC` or `Asia/Shanghai`, ISO 8601."""
    try:
        zone = zoneinfo.ZoneInfo(time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ToolException(f"unknown time zone {time_zone!r}") from exc
    return dt.datetime.now(zone).isoformat(timespec="seconds")


async def http_get(url: str) -> str:
    """Fetch a web page or API by URL (http or https) and return the start of its text."""
    try:
        response = await egress.request("GET", url, timeout=20, max_bytes=HTTP_GET_MAX_BYTES)
    except egress.EgressRefused as exc:
        raise ToolException(str(exc)) from exc
    except Exception as exc:
        raise ToolException(f"{type(exc).__name__} fetching {url}") from exc
    return f"HTTP {response.status}\n{response.text[:HTTP_GET_MAX_CHARS]}"


def _tool(function: Callable, *, name: str, coroutine: bool = False) -> BaseTool:
    if coroutine:
        return StructuredTool.from_function(coroutine=function, name=name, handle_tool_error=True)
    return StructuredTool.from_function(func=function, name=name, handle_tool_error=True)


TOOLS: dict[str, Callable[[], BaseTool]] = {
    "calculator": lambda: _tool(calculator, name="calculator"),
    "current_time": lambda: _tool(current_time, name="current_time"),
    "http_get": lambda: _tool(http_get, name="http_get", coroutine=True),
    # browser_open, browser_click, …: the run's browser (apps.agents.browser_tools)
    **browser_tools.TOOLS,
}


def describe() -> list[dict]:
    described = []
    for name, factory in sorted(TOOLS.items()):
        tool = factory()
        schema = (
            tool.tool_call_schema.model_json_schema() if not isinstance(tool.args_schema, dict) else tool.args_schema
        )
        described.append({"name": name, "description": tool.description, "input_schema": schema})
    return described


def resolve(names: list[str]) -> list[BaseTool]:
    """The built-in tools among `names`; catalogue names (`http:<id>`, `mcp:<id>:<tool>`) are the runtime's."""
    from apps.agents import mcp

    unknown = [name for name in names if name not in TOOLS and mcp.parse_reference(name) is None]
    if unknown:
        raise ValueError(
            f"unknown tools: {', '.join(unknown)}; available: {', '.join(sorted(TOOLS))}, "
            "http:<id> and mcp:<id>:<tool> from your tool catalogue"
        )
    return [TOOLS[name]() for name in names if name in TOOLS]
