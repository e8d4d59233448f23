"""The Anthropic provider: the real ChatAnthropic over HTTP to a loopback Messages API server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from langchain.agents import create_agent
from langchain_anthropic import ChatAnthropic
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool

from apps.agents.providers import build_chat_model, provider_error
from tests.support.llm_servers import AnthropicServer

WRONG_KEY = "sk-ant-api03-wrong-7c41d09e-LMNO"


@pytest.fixture
def server() -> Iterator[AnthropicServer]:
    with AnthropicServer() as server:
        yield server


def anthropic_model(server: AnthropicServer, **options: object) -> BaseChatModel:
    options = {"secret": server.api_key, **options}
    return build_chat_model(provider="anthropic", model="claude-sonnet-5", base_url=server.base_url, **options)


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def test_it_builds_chat_anthropic_without_client_retries() -> None:
    model = build_chat_model(provider="anthropic", model="claude-sonnet-5", secret="sk-ant-test", timeout=9)

    assert isinstance(model, ChatAnthropic)
    assert (model.max_retries, model.default_request_timeout, model.max_tokens) == (0, 9, 1024)


def test_it_invokes_and_reports_usage(server: AnthropicServer) -> None:
    server.reply("Bonjour!", input_tokens=9, output_tokens=2)

    reply = anthropic_model(server).invoke("Say hello in French.")

    assert reply.content == "Bonjour!"
    assert reply.usage_metadata is not None
    assert (reply.usage_metadata["input_tokens"], reply.usage_metadata["output_tokens"]) == (9, 2)
    request = server.requests[-1]
    assert request["path"] == "/v1/messages"
    assert request["json"]["max_tokens"] == 1024
    assert request["json"]["messages"] == [{"role": "user", "content": "Say hello in French."}]


def test_it_passes_parameters_under_anthropic_names(server: AnthropicServer) -> None:
    server.reply("ok")

    anthropic_model(server, parameters={"max_tokens": 64, "temperature": 0.3, "stop": ["END"]}).invoke("hi")

    sent = server.requests[-1]["json"]
    assert (sent["max_tokens"], sent["temperature"], sent["stop_sequences"]) == (64, 0.3, ["END"])


def test_it_streams_chunks_in_order(server: AnthropicServer) -> None:
    server.reply("Streaming from Claude.", chunk_size=6, input_tokens=5, output_tokens=3)

    chunks = list(anthropic_model(server).stream("Stream please."))
    merged = sum(chunks[1:], chunks[0])

    assert [chunk.content for chunk in chunks if chunk.content] == ["Stream", "ing fr", "om Cla", "ude."]
    assert merged.content == "Streaming from Claude."
    assert merged.usage_metadata is not None
    assert (merged.usage_metadata["input_tokens"], merged.usage_metadata["output_tokens"]) == (5, 3)


def test_it_parses_tool_calls(server: AnthropicServer) -> None:
    server.reply("I'll add them.", tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}, "id": "toolu_01"}])

    reply = anthropic_model(server).bind_tools([add]).invoke("What is 2 + 3?")

    assert reply.tool_calls == [{"name": "add", "args": {"a": 2, "b": 3}, "id": "toolu_01", "type": "tool_call"}]
    assert server.requests[-1]["json"]["tools"][0]["name"] == "add"


def test_it_parses_streamed_tool_calls(server: AnthropicServer) -> None:
    server.reply(tool_calls=[{"name": "add", "args": {"a": 40, "b": 2}}], chunk_size=4)

    chunks = list(anthropic_model(server).bind_tools([add]).stream("What is 40 + 2?"))
    merged = sum(chunks[1:], chunks[0])

    assert [(call["name"], call["args"]) for call in merged.tool_calls] == [("add", {"a": 40, "b": 2})]


def test_it_runs_a_tool_calling_agent_loop(server: AnthropicServer) -> None:
    server.reply(tool_calls=[{"name": "add", "args": {"a": 1, "b": 1}, "id": "toolu_add"}])
    server.reply("1 + 1 = 2")
    agent = create_agent(anthropic_model(server), tools=[add])

    result = agent.invoke({"messages": [HumanMessage("What is 1 + 1?")]})

    assert result["messages"][-1].content == "1 + 1 = 2"
    tool_result = server.requests[-1]["json"]["messages"][-1]["content"][0]
    assert {key: tool_result[key] for key in ("type", "tool_use_id", "content")} == {
        "type": "tool_result",
        "tool_use_id": "toolu_add",
        "content": "2",
    }


async def test_it_invokes_and_streams_asynchronously(server: AnthropicServer) -> None:
    server.reply("async hello")
    server.reply("async stream", chunk_size=6)
    model = anthropic_model(server)

    reply = await model.ainvoke("hi")
    chunks = [chunk.content async for chunk in model.astream("hi")]

    assert reply.content == "async hello"
    assert [content for content in chunks if content] == ["async ", "stream"]


def test_it_requires_a_key() -> None:
    with pytest.raises(ValueError, match="secret"):
        build_chat_model(provider="anthropic", model="claude-sonnet-5")


def test_it_reports_a_wrong_key_without_revealing_it(server: AnthropicServer) -> None:
    with pytest.raises(Exception) as caught:  # noqa: PT011 - the class is the client's; provider_error maps it.
        anthropic_model(server, secret=WRONG_KEY).invoke("hi")
    error = provider_error(caught.value, secret=WRONG_KEY)

    assert (error.code, str(error), error.transient) == ("provider_auth_failed", "invalid x-api-key", False)


def test_it_reports_a_timeout_within_the_time_limit(server: AnthropicServer) -> None:
    server.reply("too late", delay=5)

    started = time.monotonic()
    with pytest.raises(Exception) as caught:  # noqa: PT011 - mapped below.
        list(anthropic_model(server, timeout=0.5).stream("hi"))
    elapsed = time.monotonic() - started
    error = provider_error(caught.value)

    assert (error.code, error.transient) == ("provider_timeout", True)
    assert elapsed < 2.5


def test_it_reports_rate_limits_as_transient(server: AnthropicServer) -> None:
    server.reply(status=429, error_message="Number of request tokens has exceeded your per-minute rate limit.")

    with pytest.raises(Exception) as caught:  # noqa: PT011 - mapped below.
        anthropic_model(server).invoke("hi")
    error = provider_error(caught.value)

    assert (error.code, error.transient) == ("provider_rate_limited", True)
    assert str(error) == "Number of request tokens has exceeded your per-minute rate limit."


def test_it_reports_overload_as_a_transient_provider_error(server: AnthropicServer) -> None:
    server.reply(status=529, error_message="Overloaded")

    with pytest.raises(Exception) as caught:  # noqa: PT011 - mapped below.
        anthropic_model(server).invoke("hi")
    error = provider_error(caught.value)

    assert (error.code, str(error), error.transient) == ("provider_error", "HTTP 529: Overloaded", True)
