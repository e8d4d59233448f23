"""The Ollama provider: the real ChatOllama over HTTP to a loopback `/api/chat` server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.tools import tool
from langchain_ollama import ChatOllama

from apps.agents.providers import build_chat_model, provider_error
from tests.support.llm_servers import OllamaServer


@pytest.fixture
def server() -> Iterator[OllamaServer]:
    with OllamaServer() as server:
        yield server


def ollama_model(server: OllamaServer, **options: object) -> BaseChatModel:
    return build_chat_model(provider="ollama", model="llama3.2", base_url=server.base_url, **options)


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def test_it_defaults_to_the_local_ollama() -> None:
    model = build_chat_model(provider="ollama", model="llama3.2", timeout=12)

    assert isinstance(model, ChatOllama)
    assert (model.base_url, model.client_kwargs) == ("http://127.0.0.1:11434", {"timeout": 12})


def test_it_invokes_and_reports_usage_from_eval_counts(server: OllamaServer) -> None:
    server.reply("Hi from llama.", input_tokens=11, output_tokens=4)

    reply = ollama_model(server, parameters={"temperature": 0.1, "max_tokens": 32}).invoke("Say hi.")

    assert reply.content == "Hi from llama."
    assert reply.usage_metadata == {"input_tokens": 11, "output_tokens": 4, "total_tokens": 15}
    sent = server.requests[-1]["json"]
    assert sent["messages"] == [{"role": "user", "content": "Say hi."}]
    assert (sent["options"]["temperature"], sent["options"]["num_predict"]) == (0.1, 32)


def test_it_reads_a_non_streaming_reply(server: OllamaServer) -> None:
    server.reply("One piece.", input_tokens=2, output_tokens=2)

    reply = ollama_model(server).invoke("hi", stream=False)

    assert reply.content == "One piece."
    assert server.requests[-1]["json"]["stream"] is False
    assert reply.usage_metadata == {"input_tokens": 2, "output_tokens": 2, "total_tokens": 4}


def test_it_streams_chunks_in_order(server: OllamaServer) -> None:
    server.reply("Local models stream.", chunk_size=7)

    chunks = list(ollama_model(server).stream("Stream please."))
    merged = sum(chunks[1:], chunks[0])

    assert [chunk.content for chunk in chunks if chunk.content] == ["Local m", "odels s", "tream."]
    assert merged.content == "Local models stream."
    assert merged.usage_metadata == {"input_tokens": 2, "output_tokens": 3, "total_tokens": 5}


def test_it_parses_tool_calls(server: OllamaServer) -> None:
    server.reply(tool_calls=[{"name": "add", "args": {"a": 6, "b": 7}}])

    reply = ollama_model(server).bind_tools([add]).invoke("What is 6 + 7?")

    assert [(call["name"], call["args"]) for call in reply.tool_calls] == [("add", {"a": 6, "b": 7})]
    assert reply.tool_calls[0]["id"]
    assert server.requests[-1]["json"]["tools"][0]["function"]["name"] == "add"


async def test_it_invokes_and_streams_asynchronously(server: OllamaServer) -> None:
    server.reply("async hello")
    server.reply("async stream", chunk_size=6)
    model = ollama_model(server)

    reply = await model.ainvoke("hi")
    chunks = [chunk.content async for chunk in model.astream("hi")]

    assert reply.content == "async hello"
    assert [content for content in chunks if content] == ["async ", "stream"]


def test_it_sends_a_secret_as_a_bearer_token() -> None:
    with OllamaServer(api_keys=["ollama-cloud-key-123456"]) as guarded:
        guarded.reply("authorised")

        reply = ollama_model(guarded, secret="ollama-cloud-key-123456").invoke("hi")

        assert reply.content == "authorised"
        assert guarded.requests[-1]["headers"]["authorization"] == "Bearer ollama-cloud-key-123456"


def test_it_reports_a_missing_model_as_a_permanent_error(server: OllamaServer) -> None:
    server.reply(status=404, error_message="model 'llama3.2' not found, try pulling it first")

    with pytest.raises(Exception) as caught:  # noqa: PT011 - the class is the client's; provider_error maps it.
        ollama_model(server).invoke("hi")
    error = provider_error(caught.value)

    assert (error.code, error.transient) == ("provider_error", False)
    assert str(error) == "HTTP 404: model 'llama3.2' not found, try pulling it first"


def test_it_reports_a_timeout_within_the_time_limit(server: OllamaServer) -> None:
    server.reply("too late", delay=5)

    started = time.monotonic()
    with pytest.raises(Exception) as caught:  # noqa: PT011 - mapped below.
        ollama_model(server, timeout=0.5).invoke("hi")
    elapsed = time.monotonic() - started
    error = provider_error(caught.value)

    assert (error.code, error.transient) == ("provider_timeout", True)
    assert elapsed < 2.5


async def test_it_reports_an_async_timeout_within_the_time_limit(server: OllamaServer) -> None:
    server.reply("too late", delay=5)

    started = time.monotonic()
    with pytest.raises(Exception) as caught:  # noqa: PT011 - mapped below.
        await ollama_model(server, timeout=0.5).ainvoke("hi")
    elapsed = time.monotonic() - started
    error = provider_error(caught.value)

    assert (error.code, error.transient) == ("provider_timeout", True)
    assert elapsed < 2.5


def test_it_reports_rate_limits_as_transient(server: OllamaServer) -> None:
    server.reply(status=429, error_message="too many requests")

    with pytest.raises(Exception) as caught:  # noqa: PT011 - mapped below.
        ollama_model(server).invoke("hi")
    error = provider_error(caught.value)

    assert (error.code, str(error), error.transient) == ("provider_rate_limited", "too many requests", True)


def test_it_reports_an_unreachable_server_as_transient() -> None:
    with OllamaServer() as gone:
        model = ollama_model(gone)
    # Closed: the port now refuses connections.

    with pytest.raises(Exception) as caught:  # noqa: PT011 - mapped below.
        model.invoke("hi")
    error = provider_error(caught.value)

    assert (error.code, error.transient) == ("provider_unreachable", True)
