"""
The tool catalogue at work: MCP servers and HTTP tools, the entries of `Tool`.

- Rules: creating and changing entries (`tool_create`, `tool_update`; users never define stdio
  servers, which run a command on the worker) and checking the catalogue names in an agent's
  `tools` (`check_agent_tools`).
- MCP: sessions through langchain-mcp-adapters' `create_session`, one per listing and one per call
  (as `MultiServerMCPClient` does), so every session is closed by the end of the call that opened
  it. Streamable HTTP goes through `egress.EgressTransport`, like every request a user directs.
- HTTP tools: one templated request through `egress.request`.
- Agent runs: `agent_catalogue` gives the runtime the agent's catalogue tools.

Secrets (header credentials) are read inside each listing or call and redacted from whatever the
tool answers; failures become a `ToolFailure`, whose code and message are safe to show.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import jsonschema
from asgiref.sync import async_to_sync, sync_to_async
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import ConfigDict

from apps.agents import egress
from apps.agents.models import URL_PLACEHOLDER, Credential, Tool
from apps.agents.providers import ProviderError, redact
from apps.agents.services import CredentialUnavailable, credential_resolve

__all__ = [
    "Reference",
    "StdioRefused",
    "ToolFailure",
    "agent_catalogue",
    "check_agent_tools",
    "is_reference",
    "parse_reference",
    "tool_create",
    "tool_test",
    "tool_update",
]

# The whole test of an entry (connect, list) from the API or the admin, whatever its own timeout.
TEST_TIME_LIMIT = 20.0
HTTP_TOOL_MAX_BYTES = 200_000
MAX_RESULT_CHARS = 20_000
MAX_LISTED_TOOLS = 200
# A stdio server is a process to start (an interpreter, its imports) before it can answer.
STDIO_START_TIMEOUT = 15.0
_MODEL_NAME = re.compile(r"[^A-Za-z0-9_-]")
_REFERENCE = re.compile(r"^(?:http:(?P<http>[1-9][0-9]{0,17})|mcp:(?P<mcp>[1-9][0-9]{0,17}):(?P<tool>[^\s:]{1,128}))$")


# =============================================================================
# Names in an agent's `tools`
# =============================================================================


@dataclass(frozen=True)
class Reference:
    """`http:<id>` or `mcp:<id>:<tool>`; `model_name` is what the model calls it."""

    text: str
    tool_id: int
    mcp_tool: str | None

    @property
    def model_name(self) -> str:
        if self.mcp_tool is None:
            return f"http_{self.tool_id}"
        return _MODEL_NAME.sub("_", self.mcp_tool)[:64]


def parse_reference(name: str) -> Reference | None:
    match = _REFERENCE.match(name)
    if match is None:
        return None
    if match["http"]:
        return Reference(name, int(match["http"]), None)
    return Reference(name, int(match["mcp"]), match["tool"])


def is_reference(name: str) -> bool:
    """Whether `name` names a catalogue tool (else it is a built-in's name)."""
    return name.startswith(("http:", "mcp:"))


def check_agent_tools(*, owner_id: int, names: Sequence[str]) -> list[str]:
    """
    Problems with the catalogue names among an agent's tools, for `owner_id`: entries that are not
    theirs, of the wrong kind, MCP tools their server did not list at its last test, and two tools
    the model would know by the same name.
    """
    references, problems = [], []
    for name in names:
        if not is_reference(name):
            continue
        reference = parse_reference(name)
        if reference is None:
            problems.append(_("%(n)s is not a tool name: use http:<id> or mcp:<id>:<tool>.") % {"n": name})
        else:
            references.append(reference)
    entries = Tool.objects.filter(owner_id=owner_id, pk__in={r.tool_id for r in references}).in_bulk()
    for reference in references:
        entry = entries.get(reference.tool_id)
        kind = Tool.Kind.HTTP if reference.mcp_tool is None else Tool.Kind.MCP
        if entry is None or entry.kind != kind:
            problems.append(_("No %(kind)s %(id)s of yours exists.") % {"kind": kind.label, "id": reference.tool_id})
        elif entry.listed_at and reference.mcp_tool not in {tool["name"] for tool in entry.listed_tools}:
            problems.append(
                _("%(server)s has no tool %(tool)s (its tools at the last test: %(all)s); test it again if it changed.")
                % {
                    "server": entry.name,
                    "tool": reference.mcp_tool,
                    "all": ", ".join(tool["name"] for tool in entry.listed_tools) or "none",
                }
            )
    model_names = [ref.model_name for ref in references] + [name for name in names if not is_reference(name)]
    if twice := sorted({name for name in model_names if model_names.count(name) > 1}):
        problems.append(_("Two tools would both be called %(n)s.") % {"n": ", ".join(twice)})
    return problems


# =============================================================================
# Creating and changing entries
# =============================================================================

TOOL_FIELDS = (
    "name",
    "description",
    "enabled",
    "timeout_seconds",
    "headers",
    "method",
    "url_template",
    "input_schema",
    "transport",
    "url",
    "command",
    "args",
)


class StdioRefused(Exception):
    """A user tried to define or change a stdio MCP server, which only operators may (in the admin)."""

    def __init__(self) -> None:
        super().__init__(_("A stdio MCP server runs a command on the worker: only operators define one, in the admin."))


def _header_credentials(owner_id: int, credentials: Sequence[Credential]) -> None:
    for credential in credentials:
        if credential.owner_id != owner_id:
            raise ValidationError({"credentials": _("No credential %(id)s of yours exists.") % {"id": credential.pk}})
        if credential.kind != Credential.Kind.HTTP_HEADER:
            raise ValidationError(
                {"credentials": _("Credential %(name)s is not an HTTP header credential.") % {"name": credential.name}}
            )


def _save(tool: Tool, credentials: Sequence[Credential] | None) -> Tool:
    if tool.is_stdio:
        raise StdioRefused()
    if credentials is not None:
        _header_credentials(tool.owner_id, credentials)
    tool.full_clean(exclude=["owner"], validate_constraints=False)
    siblings = Tool.objects.filter(owner_id=tool.owner_id, name=tool.name).exclude(pk=tool.pk)
    if siblings.exists():
        raise ValidationError({"name": _("You already have a tool with this name.")})
    try:
        with transaction.atomic():
            tool.save()
            if credentials is not None:
                tool.credentials.set(credentials)
    except IntegrityError as exc:
        if siblings.exists():  # two requests raced for one name
            raise ValidationError({"name": _("You already have a tool with this name.")}) from exc
        raise
    return tool


def tool_create(*, owner: Any, kind: str, values: dict[str, Any], credentials: Sequence[Credential] = ()) -> Tool:
    """A new catalogue entry of `owner`'s; a stdio server is refused (`StdioRefused`)."""
    tool = Tool(owner=owner, kind=kind, **{name: values[name] for name in TOOL_FIELDS if name in values})
    return _save(tool, list(credentials))


def tool_update(*, tool: Tool, values: dict[str, Any], credentials: Sequence[Credential] | None = None) -> Tool:
    """Change the given fields (the kind never changes); on an error nothing is saved."""
    if tool.is_stdio:
        raise StdioRefused()
    for name in TOOL_FIELDS:
        if name in values:
            setattr(tool, name, values[name])
    if tool.kind == Tool.Kind.MCP and {"transport", "url"} & set(values):
        tool.listed_tools, tool.listed_at = [], None  # another server: its listing is unknown
    return _save(tool, None if credentials is None else list(credentials))


# =============================================================================
# Failures
# =============================================================================


class ToolFailure(Exception):
    """A catalogue tool could not be reached or used; `code` is a stable word, the message is safe to show."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    """The exception, the members of exception groups (anyio's task groups raise those) and causes."""
    pending, seen = [exc], set()
    while pending and len(seen) < 50:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                pending.append(linked)


def failure_from(exc: BaseException, *, where: str, secrets: Sequence[str] = ()) -> ToolFailure:
    """The `ToolFailure` an exception from connecting to, listing or calling `where` means."""
    from mcp.shared.exceptions import McpError

    leaves = list(_leaves(exc))
    found: tuple[str, str] | None = None
    for leaf in leaves:
        if isinstance(leaf, ToolFailure):
            return leaf
        if isinstance(leaf, egress.EgressRefused):
            found = ("egress_refused", f"{where}: refused by the egress rules: {leaf}")
            break
    for leaf in leaves if found is None else ():
        if isinstance(leaf, TimeoutError | httpx.TimeoutException) or (
            isinstance(leaf, McpError) and leaf.error.code == httpx.codes.REQUEST_TIMEOUT
        ):
            found = ("timeout", f"{where} did not answer in time")
        elif isinstance(leaf, httpx.HTTPStatusError):
            found = ("http_error", f"{where} answered HTTP {leaf.response.status_code}")
        elif isinstance(leaf, httpx.ConnectError | ConnectionError):
            found = ("unreachable", f"{where} is unreachable: {leaf or type(leaf).__name__}")
        elif isinstance(leaf, FileNotFoundError | PermissionError):
            found = ("command_failed", f"{where}: the command could not start: {leaf.strerror or leaf}")
        elif isinstance(leaf, McpError) and leaf.error.message == "Session terminated":
            # What MCP's client makes of an HTTP 404 answer.
            found = ("http_error", f"{where} answered HTTP 404: is the URL its MCP endpoint?")
        elif isinstance(leaf, McpError):
            found = ("protocol_error", f"{where}: {leaf.error.message}")
        elif isinstance(leaf, httpx.RequestError):
            found = ("unreachable", f"{where}: {type(leaf).__name__}: {leaf}")
        if found:
            break
    if found is None:
        found = ("protocol_error", f"{where}: {type(exc).__name__}: {exc}")
    code, message = found
    for secret in secrets:
        message = redact(message, secret)
    return ToolFailure(code, message[:1000])


# =============================================================================
# Connections and header secrets
# =============================================================================


@dataclass(frozen=True)
class Entry:
    """What a listing or a call needs of a `Tool`, read in the database thread; no secret."""

    id: int
    name: str
    kind: str
    enabled: bool
    timeout: float
    headers: dict[str, str]
    credential_ids: tuple[int, ...]
    method: str = ""
    url_template: str = ""
    input_schema: dict = field(default_factory=dict)
    transport: str = ""
    url: str = ""
    command: str = ""
    args: tuple[str, ...] = ()
    description: str = ""

    @classmethod
    def of(cls, tool: Tool) -> Entry:
        return cls(
            id=tool.pk,
            name=tool.name,
            kind=tool.kind,
            enabled=tool.enabled,
            timeout=float(tool.timeout_seconds),
            headers=dict(tool.headers or {}),
            credential_ids=tuple(credential.pk for credential in tool.credentials.all()),
            method=tool.method,
            url_template=tool.url_template,
            input_schema=dict(tool.input_schema or {}),
            transport=tool.transport,
            url=tool.url,
            command=tool.command,
            args=tuple(tool.args or ()),
            description=tool.description,
        )

    @property
    def label(self) -> str:
        return f"{Tool.Kind(self.kind).label} {self.name!r}"


def header_secrets(owner_id: int, credential_ids: Sequence[int]) -> dict[str, str]:
    """
    The header credentials' headers (name -> secret), read now through the vault, which refuses a
    revoked or unreadable credential and records the use; call in the database thread.
    """
    headers = {}
    for credential_id in credential_ids:
        try:
            # Catalogue tools do not know their run, so their uses carry no run or node.
            credential, secret = credential_resolve(
                owner_id=owner_id, credential_id=credential_id, execution_id=None, node_id=""
            )
        except CredentialUnavailable as exc:
            raise ToolFailure(exc.code, str(exc)) from None
        if credential.kind != Credential.Kind.HTTP_HEADER:
            raise ToolFailure(
                "wrong_credential_kind", f"credential {credential.name!r} is not an HTTP header credential"
            )
        headers[credential.header_name or "Authorization"] = secret
    return headers


def connection(entry: Entry, secret_headers: dict[str, str], timeout: float) -> dict[str, Any]:
    """langchain-mcp-adapters' connection for the server; a stdio command gets MCP's safe environment."""
    if entry.transport == Tool.Transport.STDIO:
        return {"transport": "stdio", "command": entry.command, "args": list(entry.args)}
    return {
        "transport": "streamable_http",
        "url": entry.url,
        "headers": {**entry.headers, **secret_headers},
        "timeout": timedelta(seconds=timeout),
        "sse_read_timeout": timedelta(seconds=timeout),
        # No redirects, no proxies from the environment: every request checked and pinned.
        "httpx_client_factory": egress.async_client,
    }


@asynccontextmanager
async def mcp_session(entry: Entry, secret_headers: dict[str, str], timeout: float) -> AsyncIterator[Any]:
    """An initialized MCP session, closed on leaving; a stdio server gets time to start."""
    from langchain_mcp_adapters.sessions import create_session

    start = max(timeout, STDIO_START_TIMEOUT) if entry.transport == Tool.Transport.STDIO else timeout
    async with create_session(connection(entry, secret_headers, timeout)) as session:
        await asyncio.wait_for(session.initialize(), start)
        yield session


async def list_tools(entry: Entry, secret_headers: dict[str, str], *, timeout: float) -> list[Any]:
    """The server's tools (MCP `Tool` objects), through one session opened and closed here."""
    try:
        found, cursor = [], None
        async with mcp_session(entry, secret_headers, timeout) as session:
            while len(found) < MAX_LISTED_TOOLS:
                page = await asyncio.wait_for(session.list_tools(cursor=cursor), timeout)
                found.extend(page.tools)
                if not (cursor := page.nextCursor):
                    break
        return found[:MAX_LISTED_TOOLS]
    except Exception as exc:
        raise failure_from(exc, where=entry.label, secrets=list(secret_headers.values())) from None


def listed(tools: Sequence[Any]) -> list[dict]:
    return [
        {"name": tool.name, "description": tool.description or "", "input_schema": tool.inputSchema or {}}
        for tool in tools
    ]


def _content_text(content: Sequence[Any]) -> str:
    """An MCP result's content as text: text blocks as they are, others by their kind."""
    return "\n".join(
        block.text if getattr(block, "type", "") == "text" else f"[{getattr(block, 'type', 'content')}]"
        for block in content
    )


async def call_mcp_tool(
    entry: Entry, mcp_tool: Any, arguments: dict, secret_headers: dict[str, str], *, timeout: float
) -> str:
    """
    One call in a session of its own, answered within `timeout` (starting the session has its own
    time); what the tool reports as an error, and any failure, becomes a ToolException.
    """
    secrets = list(secret_headers.values())
    where = f"tool {mcp_tool.name!r} of {entry.label}"
    try:
        async with mcp_session(entry, secret_headers, timeout) as session:
            result = await session.call_tool(mcp_tool.name, arguments, read_timeout_seconds=timedelta(seconds=timeout))
    except Exception as exc:
        failure = failure_from(exc, where=where, secrets=secrets)
        if failure.code == "timeout":
            raise ToolException(f"{where} did not answer within {timeout:g} s") from None
        raise ToolException(failure.message) from None
    text = _redacted(_content_text(result.content), secrets)[:MAX_RESULT_CHARS]
    if result.isError:
        raise ToolException(text or f"{where} failed without saying why")
    return text


def _redacted(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = redact(text, secret)
    return text


# =============================================================================
# HTTP tools
# =============================================================================


def _query_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def http_request_parts(entry: Entry, arguments: dict) -> tuple[str, bytes | None]:
    """The URL (placeholders filled, escaped) and body: other arguments go in the query or a JSON body."""
    try:
        jsonschema.validate(arguments, entry.input_schema or {"type": "object"})
    except jsonschema.ValidationError as exc:
        path = ".".join(str(part) for part in exc.absolute_path)
        raise ToolException(f"invalid arguments{' at ' + path if path else ''}: {exc.message}") from None
    names = re.findall(URL_PLACEHOLDER, entry.url_template)
    url = re.sub(URL_PLACEHOLDER, lambda m: quote(_query_value(arguments[m[1]]), safe=""), entry.url_template)
    rest = {key: value for key, value in arguments.items() if key not in names}
    if entry.method in (Tool.Method.GET, Tool.Method.DELETE):
        if rest:
            url += ("&" if "?" in url else "?") + urlencode({k: _query_value(v) for k, v in rest.items()})
        return url, None
    return url, json.dumps(rest).encode()


async def call_http_tool(
    entry: Entry, arguments: dict, secret_headers: dict[str, str], *, timeout: float | None = None
) -> str:
    url, body = http_request_parts(entry, arguments)
    headers = {**entry.headers, **secret_headers}
    if body is not None:
        headers.setdefault("Content-Type", "application/json")
    secrets = list(secret_headers.values())
    try:
        response = await egress.request(
            entry.method,
            url,
            headers=headers,
            content=body,
            timeout=timeout or entry.timeout,
            max_bytes=HTTP_TOOL_MAX_BYTES,
            secret_headers=tuple(secret_headers),
        )
    except Exception as exc:
        failure = failure_from(exc, where=entry.label, secrets=secrets)
        raise ToolException(failure.message) from None
    return _redacted(f"HTTP {response.status}\n{response.text[:MAX_RESULT_CHARS]}", secrets)


# =============================================================================
# Testing an entry (API and admin)
# =============================================================================


def tool_test(*, tool: Tool, arguments: dict | None = None) -> dict[str, Any]:
    """
    Connect to an MCP server and list its tools (kept on the entry, for agents' names), or call an
    HTTP tool once with `arguments`. Within TEST_TIME_LIMIT; a failure is reported, never raised:
    `{"ok", "error": {"code", "message"} | None, "tools", "output", "elapsed_ms"}`.
    """
    entry = Entry.of(tool)
    limit = min(entry.timeout, TEST_TIME_LIMIT)
    started = time.monotonic()
    result: dict[str, Any] = {"ok": False, "error": None, "tools": [], "output": None}
    try:
        secrets = header_secrets(tool.owner_id, entry.credential_ids)
        if entry.kind == Tool.Kind.MCP:
            result["tools"] = listed(async_to_sync(_within)(list_tools(entry, secrets, timeout=limit), entry))
        else:
            call = call_http_tool(entry, arguments or {}, secrets, timeout=limit)
            result["output"] = async_to_sync(_within)(call, entry)
        result["ok"] = True
    except ToolFailure as exc:
        result["error"] = {"code": exc.code, "message": exc.message}
    except ToolException as exc:
        result["error"] = {"code": "tool_error", "message": str(exc)}
    result["elapsed_ms"] = round((time.monotonic() - started) * 1000)
    if result["ok"] and entry.kind == Tool.Kind.MCP:
        Tool.objects.filter(pk=tool.pk).update(listed_tools=result["tools"], listed_at=timezone.now())
        tool.refresh_from_db(fields=["listed_tools", "listed_at"])
    return result


async def _within(work: Awaitable[Any], entry: Entry) -> Any:
    """The whole test, starting a stdio server included, ends within TEST_TIME_LIMIT."""
    try:
        return await asyncio.wait_for(work, TEST_TIME_LIMIT)
    except TimeoutError:
        raise ToolFailure("timeout", f"{entry.label} did not answer within {TEST_TIME_LIMIT:g} s") from None


# =============================================================================
# Agent runs
# =============================================================================


class AgentCatalogue:
    """
    The catalogue tools of one agent run. The agent node builds its LangChain agent synchronously,
    so the tools exist first as stand-ins with the right names; at the first model call
    (`CatalogueChatModel`) the entries are read, MCP servers listed, and the stand-ins given their
    descriptions and schemas before the model sees them. Each call then opens its own session.
    """

    def __init__(self, owner_id: int, references: Sequence[Reference], timeout: float) -> None:
        self.owner_id = owner_id
        self.references = list(references)
        self.timeout = timeout
        self.tools = [
            StructuredTool(
                name=reference.model_name,
                description=f"{reference.text} (loading)",
                args_schema={"type": "object", "properties": {}},
                coroutine=self._caller(reference),
                handle_tool_error=True,
            )
            for reference in self.references
        ]
        self._entries: dict[int, Entry] = {}
        self._mcp_tools: dict[str, Any] = {}
        self._loaded: asyncio.Future | None = None

    async def load(self) -> None:
        # One load per run, shared by concurrent model calls; a failure fails each of them.
        if self._loaded is None:
            self._loaded = asyncio.ensure_future(self._load())
        await asyncio.shield(self._loaded)

    async def _load(self) -> None:
        self._entries = await sync_to_async(self._read_entries)()
        servers = {ref.tool_id for ref in self.references if ref.mcp_tool is not None}
        listings = await asyncio.gather(*(self._list(self._entries[server]) for server in sorted(servers)))
        by_server = dict(zip(sorted(servers), listings, strict=True))
        for reference, stand_in in zip(self.references, self.tools, strict=True):
            entry = self._entries[reference.tool_id]
            if reference.mcp_tool is None:
                stand_in.description = entry.description or entry.name
                stand_in.args_schema = entry.input_schema or {"type": "object", "properties": {}}
                continue
            mcp_tool = by_server[entry.id].get(reference.mcp_tool)
            if mcp_tool is None:
                known = ", ".join(by_server[entry.id]) or "none"
                raise ProviderError("unknown_tool", f"{entry.label} has no tool {reference.mcp_tool!r}; it has {known}")
            self._mcp_tools[reference.text] = mcp_tool
            stand_in.description = mcp_tool.description or mcp_tool.name
            stand_in.args_schema = mcp_tool.inputSchema or {"type": "object", "properties": {}}

    def _read_entries(self) -> dict[int, Entry]:
        wanted = {reference.tool_id for reference in self.references}
        tools = Tool.objects.filter(owner_id=self.owner_id, pk__in=wanted).prefetch_related("credentials")
        entries = {tool.pk: Entry.of(tool) for tool in tools}
        for reference in self.references:
            entry = entries.get(reference.tool_id)
            kind = Tool.Kind.HTTP if reference.mcp_tool is None else Tool.Kind.MCP
            if entry is None or entry.kind != kind:
                raise ProviderError("unknown_tool", f"no {kind.label} {reference.tool_id} of yours exists")
            if not entry.enabled:
                raise ProviderError("tool_disabled", f"{entry.label} is disabled")
        return entries

    async def _list(self, entry: Entry) -> dict[str, Any]:
        try:
            secrets = await sync_to_async(header_secrets)(self.owner_id, entry.credential_ids)
            tools = await list_tools(entry, secrets, timeout=min(entry.timeout, self.timeout))
        except ToolFailure as exc:
            code = exc.code if exc.code == "egress_refused" else f"mcp_{exc.code}"
            raise ProviderError(code, exc.message, transient=exc.code in {"unreachable", "timeout"}) from None
        return {tool.name: tool for tool in tools}

    def _caller(self, reference: Reference) -> Callable[..., Any]:
        async def call(**arguments: Any) -> str:
            entry = self._entries[reference.tool_id]
            try:
                secrets = await sync_to_async(header_secrets)(self.owner_id, entry.credential_ids)
            except ToolFailure as exc:
                raise ToolException(exc.message) from None
            timeout = min(entry.timeout, self.timeout)
            if reference.mcp_tool is None:
                return await call_http_tool(entry, arguments, secrets, timeout=timeout)
            return await call_mcp_tool(entry, self._mcp_tools[reference.text], arguments, secrets, timeout=timeout)

        return call


class CatalogueChatModel(BaseChatModel):
    """
    The agent's model, which loads the catalogue tools (`AgentCatalogue.load`) before its first
    call and binds their real schemas; async only, as the agent node runs it.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    inner: BaseChatModel
    catalogue: Any

    @property
    def _llm_type(self) -> str:
        return self.inner._llm_type

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raise NotImplementedError("catalogue tools load asynchronously: run the agent with ainvoke or astream")

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable:
        async def call(messages: Any, config: RunnableConfig) -> Any:
            await self.catalogue.load()
            return await self.inner.bind_tools(tools, **kwargs).ainvoke(messages, config)

        def refuse(messages: Any) -> Any:
            raise NotImplementedError("catalogue tools load asynchronously: run the agent with ainvoke or astream")

        return RunnableLambda(refuse, afunc=call, name=self.inner.get_name())


def agent_catalogue(
    model: BaseChatModel, *, owner_id: int, names: Sequence[str], timeout: float
) -> tuple[BaseChatModel, list[BaseTool]]:
    """The model and the stand-in tools for the catalogue names among `names` (none: `model` as it is)."""
    references = [parse_reference(name) for name in names if is_reference(name)]
    if not references:
        return model, []
    if None in references:
        raise ValueError(f"not tool names: {', '.join(n for n in names if is_reference(n) and not parse_reference(n))}")
    model_names = [ref.model_name for ref in references] + [name for name in names if not is_reference(name)]
    if twice := sorted({name for name in model_names if model_names.count(name) > 1}):
        raise ValueError(f"two tools would both be called {', '.join(twice)}")
    catalogue = AgentCatalogue(owner_id, references, timeout)  # type: ignore[arg-type]
    return CatalogueChatModel(inner=model, catalogue=catalogue), catalogue.tools
