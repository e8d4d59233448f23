"""
The agents' test chat: one turn of a conversation with an agent, streamed to the page.

The page posts the conversation so far (`{"messages": [{"role": "user" | "assistant", "content"}]}`,
the last one the user's) to `agent_chat_stream`, which answers with Server-Sent Events:
`delta` (`{"text"}`, the reply as the model produces it), then `done` (`{"usage", "cost",
"cost_display", "balance_display"}`) or `error` (`{"code", "message"}`). Refusals before the model
is called (bad input, no credits, an unusable credential or configuration) are a JSON error
(`{"error": {"code", "message"}}`) with a 4xx status instead.

The agent runs as the `agent` node runs it: `agent_runtime` (the provider's real LangChain class,
the owner's credential read through the vault, its tools) in LangChain's `create_agent` loop.

How it is paid for: like a node of a run. The turn's usage (tokens, tool calls) is priced by the
same `PriceBook` as an `agent` node at the moment the turn ends, and charged through the ledger as
one `usage` row keyed `chat:<agent id>:<random turn id>` (so it is posted once), described as a
test chat of that agent, with no run attached. A turn needs the balance a run needs to start
(`BILLING_RUN_MINIMUM_MICRO`). A turn whose page goes away mid-reply runs to its end and is
charged all the same; a turn that fails is charged for the tokens the provider reported before it
failed (usually none).

Secrets never reach the page: streamed text passes through the vault's `StreamRedactor` and error
messages through `provider_error`, both knowing the credential's secret.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from apps.agents.crypto import StreamRedactor
from apps.agents.models import Agent
from apps.agents.providers import provider_error
from apps.agents.runtime import AgentRuntime, agent_runtime
from apps.agents.services import CredentialUnavailable, credential_resolve
from apps.billing import services as billing
from apps.billing.models import CreditTransaction, credits

db = sync_to_async

MAX_MESSAGES = 50
MAX_MESSAGE_CHARS = 20_000
# Per provider call, as a node's default; max_iterations bounds the number of calls.
CALL_TIMEOUT_SECONDS = 120.0
CHAT_NODE_ID = "chat"


class ChatRefused(Exception):
    """A turn that may not start: `code` for programs, the message for people, the HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def response(self) -> JsonResponse:
        return JsonResponse({"error": {"code": self.code, "message": self.message}}, status=self.status)


def conversation_from(body: bytes) -> list[dict[str, str]]:
    """The posted conversation, checked: alternating turns are not required, the last must be the user's."""
    try:
        data = json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ChatRefused("invalid_json", _("The request body is not JSON.")) from None
    messages = data.get("messages") if isinstance(data, dict) else None
    if not isinstance(messages, list) or not messages:
        raise ChatRefused("invalid_messages", _("messages must be a non-empty list."))
    if len(messages) > MAX_MESSAGES:
        raise ChatRefused(
            "too_many_messages", _("A test chat keeps at most %(n)d messages: start again.") % {"n": MAX_MESSAGES}
        )
    conversation = []
    for message in messages:
        if (
            not isinstance(message, dict)
            or message.get("role") not in ("user", "assistant")
            or not isinstance(message.get("content"), str)
            or "\x00" in message["content"]
        ):
            raise ChatRefused(
                "invalid_messages", _("Each message needs a role (user or assistant) and a text content.")
            )
        if len(message["content"]) > MAX_MESSAGE_CHARS:
            raise ChatRefused(
                "message_too_long", _("A message may have at most %(n)d characters.") % {"n": MAX_MESSAGE_CHARS}
            )
        conversation.append({"role": message["role"], "content": message["content"]})
    if conversation[-1]["role"] != "user" or not conversation[-1]["content"].strip():
        raise ChatRefused("invalid_messages", _("The last message must be yours, and not empty."))
    return conversation


def chat_agent(user: Any, pk: Any) -> Agent:
    agent = Agent.objects.visible_to(user).select_related("credential").filter(pk=pk).first()
    if agent is None:
        raise Http404
    return agent


def chat_admission(user: Any) -> None:
    """A turn needs what a run needs to start: a balance of at least BILLING_RUN_MINIMUM_MICRO."""
    balance = billing.balance_of(user)
    minimum = settings.BILLING_RUN_MINIMUM_MICRO
    if balance < minimum:
        raise ChatRefused(
            "insufficient_credits",
            _("Your balance (%(balance)s credits) is below the %(minimum)s credits a chat turn needs: top up first.")
            % {"balance": credits(balance), "minimum": credits(minimum)},
            status=402,
        )


def chat_runtime(agent: Agent) -> tuple[AgentRuntime, str | None]:
    """The agent made ready as a node makes it, and the secret it uses (recorded as a `use` by the vault)."""
    secret = None
    if agent.credential_id is not None:
        try:
            _credential, secret = credential_resolve(
                owner_id=agent.owner_id, credential_id=agent.credential_id, execution_id=None, node_id=CHAT_NODE_ID
            )
        except CredentialUnavailable as exc:
            raise ChatRefused(exc.code, str(exc), status=409) from exc
    try:
        return agent_runtime(agent, secret=secret, timeout=CALL_TIMEOUT_SECONDS), secret
    except ValueError as exc:
        raise ChatRefused("invalid_agent", provider_error(exc, secret=secret).message, status=409) from exc


@dataclass
class TurnUsage:
    """What the provider reported during one turn, added up chunk by chunk (so a cut-off turn has it too)."""

    input_tokens: int = 0
    output_tokens: int = 0
    tool_calls: int = 0

    def add(self, usage: dict | None) -> None:
        if usage:
            self.input_tokens += int(usage.get("input_tokens") or 0)
            self.output_tokens += int(usage.get("output_tokens") or 0)

    def as_node_usage(self, agent: Agent) -> dict[str, Any]:
        """The shape an `agent` node's usage has, which the price book reads."""
        return {
            "agent_id": agent.pk,
            "provider": agent.provider,
            "model": agent.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "tool_calls": self.tool_calls,
        }


def chat_charge(*, agent: Agent, usage: dict[str, Any], turn_id: str) -> tuple[int, int]:
    """
    Charge a finished (or cut-off) turn at an `agent` node's prices: (micro-credits charged, balance
    after). One ledger row under a key of its own; nothing posted when the turn costs nothing.
    """
    cost = billing.PriceBook(timezone.now()).cost(node_type="agent", usage=usage)
    if cost.amount <= 0:
        return 0, billing.balance_of(agent.owner_id)
    row, _posted = billing.ledger_post(
        user=agent.owner_id,
        kind=CreditTransaction.Kind.USAGE,
        amount=-cost.amount,
        idempotency_key=f"chat:{agent.pk}:{turn_id}",
        description=f"Test chat with agent {agent.pk} ({agent.name}): {'; '.join(cost.lines)}",
        fallback_price=cost.fallback,
    )
    return cost.amount, row.balance_after


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


# Turns still running: a reference keeps each task alive after its page went away (asyncio
# holds only weak ones), and lets tests wait for them.
turns_running: set[asyncio.Task] = set()


async def chat_turn_events(
    agent: Agent, runtime: AgentRuntime, secret: str | None, conversation: list[dict[str, str]]
) -> AsyncIterator[str]:
    """
    The turn as Server-Sent Events. The agent runs in a task of its own that the response only
    reads from: when the page goes away mid-reply the turn still runs to its end and is charged
    for everything the provider reported, as a node of a cancelled run would have been.
    """
    events: asyncio.Queue[str | None] = asyncio.Queue()
    task = asyncio.create_task(chat_turn(agent, runtime, secret, conversation, events.put_nowait))
    turns_running.add(task)
    task.add_done_callback(turns_running.discard)
    # A comment line first, so the page knows the turn started before the model's first token.
    yield ": turn started\n\n"
    while (event := await events.get()) is not None:
        yield event


async def chat_turn(
    agent: Agent,
    runtime: AgentRuntime,
    secret: str | None,
    conversation: list[dict[str, str]],
    send: Callable[[str | None], None],
) -> None:
    """Run the turn, `send` each event, charge it, and `send(None)` at the end, whatever happens."""
    # Imported here, as the node does: LangChain's agent stack is slow to import.
    from langchain.agents import create_agent
    from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
    from langgraph.errors import GraphRecursionError

    history = [
        HumanMessage(message["content"]) if message["role"] == "user" else AIMessage(message["content"])
        for message in conversation
    ]
    redactor = StreamRedactor([secret] if secret else [])
    usage = TurnUsage()
    failure: dict[str, str] | None = None
    try:
        graph = create_agent(runtime.model, runtime.tools, system_prompt=runtime.system_prompt or None)
        async for message, _metadata in graph.astream(
            {"messages": history},
            # Each iteration is a model step and a tool step.
            {"recursion_limit": 2 * runtime.max_iterations + 1},
            stream_mode="messages",
        ):
            if isinstance(message, ToolMessage):
                usage.tool_calls += 1
            elif isinstance(message, AIMessageChunk):
                usage.add(message.usage_metadata)
                if message.text and (shown := redactor.feed(message.text)):
                    send(sse("delta", {"text": shown}))
    except GraphRecursionError:
        failure = {
            "code": "agent_iteration_limit",
            "message": _("The agent did not finish within %(n)d iterations.") % {"n": runtime.max_iterations},
        }
    except Exception as exc:  # Any provider or tool-loop failure: shown plainly, the secret redacted.
        error = provider_error(exc, secret=secret)
        failure = {"code": error.code, "message": error.message}
    try:
        charged, balance = await db(chat_charge)(
            agent=agent, usage=usage.as_node_usage(agent), turn_id=uuid.uuid4().hex
        )
        summary = {
            "usage": {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "tool_calls": usage.tool_calls,
            },
            "cost": charged,
            "cost_display": credits(charged),
            "balance_display": credits(balance),
        }
        send(sse("error", {**failure, **summary}) if failure is not None else sse("done", summary))
    finally:
        send(None)


@require_POST
async def agent_chat_stream(request: HttpRequest, pk: int) -> HttpResponse:
    """POST agents/<id>/chat/stream/: one turn of the test chat, streamed (see the module's docstring)."""
    user = await request.auser()
    if not user.is_authenticated:
        return ChatRefused("not_authenticated", _("Sign in to chat with your agents."), status=401).response()
    agent = await db(chat_agent)(user, pk)
    try:
        conversation = conversation_from(request.body)
        await db(chat_admission)(user)
        runtime, secret = await db(chat_runtime)(agent)
    except ChatRefused as refused:
        return refused.response()
    response = StreamingHttpResponse(
        chat_turn_events(agent, runtime, secret, conversation), content_type="text/event-stream; charset=utf-8"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a proxy in front (nginx) must pass each event on at once
    return response
