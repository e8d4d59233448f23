"""The scripted provider: a real LangChain chat model that answers from a script, for demos and tests."""

from __future__ import annotations

import asyncio
import pickle
import time
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessageChunk, HumanMessage, SystemMessage
from langchain_core.tools import tool
from pydantic import BaseModel

from apps.agents.providers import ProviderError, ScriptedChatModel, build_chat_model


def scripted(*replies: Any, **parameters: Any) -> ScriptedChatModel:
    model = build_chat_model(provider="scripted", model="demo", parameters={"replies": list(replies), **parameters})
    assert isinstance(model, ScriptedChatModel)
    return model


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class Verdict(BaseModel):
    approved: bool
    reason: str


def test_it_answers_replies_in_order_then_repeats_the_last() -> None:
    model = scripted("first", "second")

    answers = [model.invoke("hi").content for _ in range(4)]

    assert answers == ["first", "second", "second", "second"]


def test_it_replaces_input_with_the_last_human_message() -> None:
    model = scripted("You said: {input}")

    reply = model.invoke([HumanMessage("old question"), HumanMessage("new question")])

    assert reply.content == "You said: new question"


def test_it_answers_empty_text_without_replies() -> None:
    assert scripted().invoke("hi").content == ""


def test_it_streams_chunks_of_the_configured_size() -> None:
    model = scripted("abcdefghijklmnopqrst", chunk_size=8)

    chunks = list(model.stream("hi"))

    assert [chunk.content for chunk in chunks] == ["abcdefgh", "ijklmnop", "qrst"]
    assert chunks[-1].usage_metadata == {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2}
    assert chunks[-1].response_metadata["model_name"] == "demo"


def test_it_uses_a_chunk_size_of_eight_by_default() -> None:
    model = scripted("x" * 20)

    assert [len(chunk.content) for chunk in model.stream("hi")] == [8, 8, 4]


def test_it_returns_tool_calls_with_ids() -> None:
    model = scripted({"text": "Adding.", "tool_calls": [{"name": "add", "args": {"a": 2, "b": 3}}]})

    reply = model.invoke("What is 2 + 3?")

    assert reply.content == "Adding."
    assert [(call["name"], call["args"]) for call in reply.tool_calls] == [("add", {"a": 2, "b": 3})]
    assert reply.tool_calls[0]["id"].startswith("call_")
    assert reply.response_metadata == {"model_name": "demo", "finish_reason": "tool_calls"}


def test_it_streams_tool_calls_in_the_last_chunk() -> None:
    model = scripted({"tool_calls": [{"name": "add", "args": {"a": 1, "b": 1}}, {"name": "add", "args": {"a": 2}}]})

    chunks = list(model.stream("hi"))
    merged = sum(chunks[1:], chunks[0])

    assert all(not chunk.tool_call_chunks for chunk in chunks[:-1])
    assert [call["id"] for call in chunks[-1].tool_call_chunks] == [call["id"] for call in merged.tool_calls]
    assert [(call["name"], call["args"]) for call in merged.tool_calls] == [
        ("add", {"a": 1, "b": 1}),
        ("add", {"a": 2}),
    ]


def test_it_counts_words_as_tokens() -> None:
    model = scripted({"text": "three word reply", "tool_calls": [{"name": "add", "args": {}}]})

    reply = model.invoke([SystemMessage("You are terse."), HumanMessage("count these four words")])

    # Prompt: 3 + 4 words; reply: 3 words and one tool call.
    assert reply.usage_metadata == {"input_tokens": 7, "output_tokens": 4, "total_tokens": 11}


def test_it_parses_structured_output_into_a_pydantic_schema() -> None:
    model = scripted('{"approved": true, "reason": "looks fine"}')

    verdict = model.with_structured_output(Verdict).invoke("Review this.")

    assert verdict == Verdict(approved=True, reason="looks fine")


def test_it_parses_structured_output_into_a_dict_for_json_schemas() -> None:
    model = scripted('{"score": 7}')
    schema = {"title": "Score", "type": "object", "properties": {"score": {"type": "integer"}}}

    assert model.with_structured_output(schema).invoke("Rate it.") == {"score": 7}


def test_it_refuses_structured_output_that_is_not_json() -> None:
    model = scripted("Sure! Here you go.")

    with pytest.raises(ProviderError) as caught:
        model.with_structured_output(Verdict).invoke("Review this.")

    assert caught.value.code == "invalid_structured_output"
    assert "Sure! Here you go." in str(caught.value)
    assert not caught.value.transient


def test_it_refuses_structured_output_that_misses_schema_fields() -> None:
    model = scripted('{"approved": true}')

    with pytest.raises(ProviderError) as caught:
        model.with_structured_output(Verdict).invoke("Review this.")

    assert caught.value.code == "invalid_structured_output"
    assert "reason" in str(caught.value)


def test_it_reports_parsing_errors_beside_the_raw_reply_when_asked() -> None:
    model = scripted("not json")

    result = model.with_structured_output(Verdict, include_raw=True).invoke("Review this.")

    assert result["raw"].content == "not json"
    assert result["parsed"] is None
    assert result["parsing_error"].code == "invalid_structured_output"


def test_it_keeps_error_details_across_pickling() -> None:
    error = ProviderError("provider_rate_limited", "Slow down.", transient=True)

    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes, round-tripped in memory.

    assert (copy.code, str(copy), copy.transient) == ("provider_rate_limited", "Slow down.", True)


def test_it_continues_the_script_after_binding_tools() -> None:
    model = scripted("one", "two")

    model.invoke("hi")
    bound = model.bind_tools([add])

    assert bound.invoke("hi").content == "two"
    assert model.calls == 2


def test_it_runs_a_tool_calling_agent_loop() -> None:
    model = scripted({"tool_calls": [{"name": "add", "args": {"a": 2, "b": 3}}]}, "The sum is 5.")
    agent = create_agent(model, tools=[add], system_prompt="You add numbers with the add tool.")

    result = agent.invoke({"messages": [{"role": "user", "content": "What is 2 + 3?"}]})

    human, call, tool_result, answer = result["messages"]
    assert (human.type, call.type, tool_result.type, answer.type) == ("human", "ai", "tool", "ai")
    assert tool_result.content == "5"
    assert tool_result.tool_call_id == call.tool_calls[0]["id"]
    assert answer.content == "The sum is 5."


def test_it_streams_agent_tokens_once_each() -> None:
    model = scripted({"tool_calls": [{"name": "add", "args": {"a": 2, "b": 3}}]}, "The sum is 5.", chunk_size=4)
    agent = create_agent(model, tools=[add])

    tokens = [
        message.content
        for message, _metadata in agent.stream({"messages": [HumanMessage("2 + 3?")]}, stream_mode="messages")
        if isinstance(message, AIMessageChunk) and message.content
    ]

    assert tokens == ["The ", "sum ", "is 5", "."]


async def test_it_answers_and_streams_asynchronously() -> None:
    model = scripted("Hello from the script", chunk_size=5)

    reply = await model.ainvoke("hi")
    chunks = [chunk.content async for chunk in model.astream("hi")]

    assert reply.content == "Hello from the script"
    assert chunks == ["Hello", " from", " the ", "scrip", "t"]


async def test_it_runs_an_agent_loop_asynchronously() -> None:
    model = scripted({"tool_calls": [{"name": "add", "args": {"a": 4, "b": 4}}]}, "Eight.")
    agent = create_agent(model, tools=[add])

    result = await agent.ainvoke({"messages": [HumanMessage("4 + 4?")]})

    assert [message.content for message in result["messages"][2:]] == ["8", "Eight."]


async def test_it_stops_a_slow_stream_at_once_when_cancelled() -> None:
    model = scripted("x" * 40, chunk_size=8, delay_ms=1000)
    received: list[str] = []
    first_chunk = asyncio.Event()

    async def consume() -> None:
        async for chunk in model.astream("hi"):
            received.append(chunk.content)
            first_chunk.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first_chunk.wait(), timeout=5)
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert time.monotonic() - cancelled_at < 0.5
    assert received == ["x" * 8]


def test_it_refuses_an_unknown_provider() -> None:
    with pytest.raises(ValueError, match="'gpt-oracle'"):
        build_chat_model(provider="gpt-oracle", model="demo")


def test_it_refuses_an_unknown_parameter() -> None:
    with pytest.raises(ValueError, match="'temperature'"):
        build_chat_model(provider="scripted", model="demo", parameters={"temperature": 0.2})


def test_it_refuses_a_malformed_reply() -> None:
    with pytest.raises(ValueError, match="needs a name"):
        scripted({"tool_calls": [{"args": {}}]})
