"""The OpenAI and OpenAI-compatible providers: the real ChatOpenAI over HTTP to a loopback Chat Completions server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from apps.agents.providers import build_chat_model, provider_error, redact
from tests.support.llm_servers import OpenAIServer

WRONG_KEY = "sk-wrong-4f1c9e2ab7d3-QRST"


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


def openai_model(server: OpenAIServer, **options: object) -> BaseChatModel:
    options = {"secret": server.api_key, **options}
    return build_chat_model(provider="openai", model="gpt-4o-mini", base_url=f"{server.base_url}/v1", **options)


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class Verdict(BaseModel):
    approved: bool


def test_it_builds_chat_openai_without_client_retries() -> None:
    model = build_chat_model(provider="openai", model="gpt-4o-mini", secret="sk-test", timeout=7.5)

    assert isinstance(model, ChatOpenAI)
    assert (model.max_retries, model.request_timeout, model.stream_usage) == (0, 7.5, True)


def test_it_invokes_and_reports_usage(server: OpenAIServer) -> None:
    server.reply("Hello there!", input_tokens=12, output_tokens=3)
    model = openai_model(server, parameters={"temperature": 0.2, "max_tokens": 50})

    reply = model.invoke("Say hello.")

    assert reply.content == "Hello there!"
    assert reply.usage_metadata is not None
    assert (reply.usage_metadata["input_tokens"], reply.usage_metadata["output_tokens"]) == (12, 3)
    request = server.requests[-1]
    assert request["headers"]["authorization"] == f"Bearer {server.api_key}"
    assert request["json"]["model"] == "gpt-4o-mini"
    assert request["json"]["messages"] == [{"role": "user", "content": "Say hello."}]
    assert (request["json"]["temperature"], request["json"]["max_completion_tokens"]) == (0.2, 50)


def test_it_streams_chunks_in_order(server: OpenAIServer) -> None:
    server.reply("Streaming works fine.", chunk_size=5, input_tokens=4, output_tokens=3)

    chunks = list(openai_model(server).stream("Stream please."))
    merged = sum(chunks[1:], chunks[0])

    assert [chunk.content for chunk in chunks if chunk.content] == ["Strea", "ming ", "works", " fine", "."]
    assert merged.content == "Streaming works fine."
    assert merged.usage_metadata is not None
    assert (merged.usage_metadata["input_tokens"], merged.usage_metadata["output_tokens"]) == (4, 3)
    assert server.requests[-1]["json"]["stream_options"] == {"include_usage": True}


def test_it_parses_tool_calls(server: OpenAIServer) -> None:
    server.reply(tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}, "id": "call_abc"}])

    reply = openai_model(server).bind_tools([add]).invoke("What is 2 + 3?")

    assert reply.tool_calls == [{"name": "add", "args": {"a": 2, "b": 3}, "id": "call_abc", "type": "tool_call"}]
    assert server.requests[-1]["json"]["tools"][0]["function"]["name"] == "add"


def test_it_parses_streamed_tool_calls(server: OpenAIServer) -> None:
    server.reply("Let me add.", tool_calls=[{"name": "add", "args": {"a": 20, "b": 22}}], chunk_size=3)

    chunks = list(openai_model(server).bind_tools([add]).stream("What is 20 + 22?"))
    merged = sum(chunks[1:], chunks[0])

    assert merged.content == "Let me add."
    assert [(call["name"], call["args"]) for call in merged.tool_calls] == [("add", {"a": 20, "b": 22})]


def test_it_runs_a_tool_calling_agent_loop(server: OpenAIServer) -> None:
    server.reply(tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}, "id": "call_add"}])
    server.reply("2 + 3 = 5")
    agent = create_agent(openai_model(server), tools=[add], system_prompt="Use the add tool.")

    result = agent.invoke({"messages": [HumanMessage("What is 2 + 3?")]})

    assert [message.type for message in result["messages"]] == ["human", "ai", "tool", "ai"]
    assert result["messages"][-1].content == "2 + 3 = 5"
    # The tool really ran and its result went back to the model.
    second_request = server.requests[-1]["json"]["messages"]
    assert second_request[0] == {"role": "system", "content": "Use the add tool."}
    assert second_request[-1] == {"role": "tool", "content": "5", "tool_call_id": "call_add"}


def test_it_parses_structured_output(server: OpenAIServer) -> None:
    server.reply('{"approved": true}')

    assert openai_model(server).with_structured_output(Verdict).invoke("Approve?") == Verdict(approved=True)


async def test_it_invokes_and_streams_asynchronously(server: OpenAIServer) -> None:
    server.reply("async hello", output_tokens=2)
    server.reply("async stream", chunk_size=6)
    model = openai_model(server)

    reply = await model.ainvoke("hi")
    chunks = [chunk.content async for chunk in model.astream("hi")]

    assert reply.content == "async hello"
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["output_tokens"] == 2
    assert [content for content in chunks if content] == ["async ", "stream"]


def test_it_talks_to_an_openai_compatible_server(server: OpenAIServer) -> None:
    server.reply("deepseek says hi")
    model = build_chat_model(
        provider="openai_compatible", model="deepseek-chat", secret=server.api_key, base_url=f"{server.base_url}/v1"
    )

    assert model.invoke("hi").content == "deepseek says hi"
    assert server.requests[-1]["path"] == "/v1/chat/completions"
    assert server.requests[-1]["json"]["model"] == "deepseek-chat"


def test_it_never_sends_the_environment_key_to_a_compatible_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-operator-key-never-leaves")
    with OpenAIServer(api_keys=["not-needed"]) as keyless:
        keyless.reply("local model")
        model = build_chat_model(provider="openai_compatible", model="qwen", base_url=f"{keyless.base_url}/v1")

        assert model.invoke("hi").content == "local model"
        assert "sk-operator" not in keyless.requests[-1]["headers"]["authorization"]


def test_it_requires_a_base_url_for_compatible_servers() -> None:
    with pytest.raises(ValueError, match="base_url"):
        build_chat_model(provider="openai_compatible", model="deepseek-chat", secret="sk-test")


def test_it_requires_a_key_for_openai() -> None:
    with pytest.raises(ValueError, match="secret"):
        build_chat_model(provider="openai", model="gpt-4o-mini")


def test_it_refuses_a_parameter_chat_openai_does_not_take() -> None:
    with pytest.raises(ValueError, match="'top_k'"):
        build_chat_model(provider="openai", model="gpt-4o-mini", secret="sk-test", parameters={"top_k": 5})


def test_it_reports_a_wrong_key_without_revealing_it(server: OpenAIServer) -> None:
    model = openai_model(server, secret=WRONG_KEY)

    with pytest.raises(Exception) as caught:  # noqa: PT011 - the class is the client's; provider_error maps it.
        model.invoke("hi")
    error = provider_error(caught.value, secret=WRONG_KEY)

    assert error.code == "provider_auth_failed"
    assert not error.transient
    assert str(error).startswith("Incorrect API key provided: ***.")
    assert WRONG_KEY not in str(error)
    assert "QRST" not in str(error)


def test_it_reports_a_timeout_within_the_time_limit(server: OpenAIServer) -> None:
    server.reply("too late", delay=5)
    model = openai_model(server, timeout=0.5)

    started = time.monotonic()
    with pytest.raises(Exception) as caught:  # noqa: PT011 - mapped below.
        model.invoke("hi")
    elapsed = time.monotonic() - started
    error = provider_error(caught.value)

    assert (error.code, error.transient) == ("provider_timeout", True)
    assert elapsed < 2.5


def test_it_reports_rate_limits_as_transient(server: OpenAIServer) -> None:
    server.reply(status=429, error_message="Rate limit reached for gpt-4o-mini.")

    with pytest.raises(Exception) as caught:  # noqa: PT011 - mapped below.
        openai_model(server).invoke("hi")
    error = provider_error(caught.value)

    assert (error.code, error.transient) == ("provider_rate_limited", True)
    assert str(error) == "Rate limit reached for gpt-4o-mini."


@pytest.mark.parametrize(("status", "transient"), [(500, True), (503, True), (400, False), (404, False)])
def test_it_reports_other_http_errors_with_their_status(server: OpenAIServer, status: int, transient: bool) -> None:
    server.reply(status=status, error_message="The model says no.")

    with pytest.raises(Exception) as caught:  # noqa: PT011 - mapped below.
        openai_model(server).invoke("hi")
    error = provider_error(caught.value)

    assert (error.code, error.transient) == ("provider_error", transient)
    assert str(error) == f"HTTP {status}: The model says no."


def test_it_reports_an_unreachable_server_as_transient() -> None:
    with OpenAIServer() as gone:
        model = openai_model(gone)
    # Closed: the port now refuses connections.

    with pytest.raises(Exception) as caught:  # noqa: PT011 - mapped below.
        model.invoke("hi")
    error = provider_error(caught.value)

    assert (error.code, error.transient) == ("provider_unreachable", True)


def test_it_redacts_a_key_its_fragments_and_its_masked_forms() -> None:
    secret = "sk-proj-9f8e7d6c5b4a3210ZYXW"
    text = (
        f"key {secret}; prefix sk-proj-9f8e7d; tail 5b4a3210ZYXW; masked sk-...ZYXW and sk-proj-****ZYXW; "
        "short 9f8e7 and someone else's sk-...ABCD"
    )

    redacted = redact(text, secret)

    assert redacted == "key ***; prefix ***; tail ***; masked *** and ***; short 9f8e7 and someone else's sk-...ABCD"


def test_it_redacts_the_key_from_unknown_errors() -> None:
    error = provider_error(RuntimeError("boom with sk-live-0123456789abcdef inside"), secret="sk-live-0123456789abcdef")

    assert (error.code, str(error)) == ("provider_error", "RuntimeError: boom with *** inside")
