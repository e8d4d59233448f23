"""Runs against real provider clients (loopback servers speaking the OpenAI and Anthropic APIs)."""

from __future__ import annotations

import pytest

from apps.agents.models import Agent, Credential
from apps.executions.models import Execution
from tests.factories import published
from tests.support.llm_servers import AnthropicServer, OpenAIServer

IN = ("in", "input", {"name": "text"})
OUT = ("out", "output", {"name": "result"})


def credential(owner, kind: str, secret: str, base_url: str) -> Credential:
    stored = Credential(owner=owner, name=f"{kind}-key", kind=kind, base_url=base_url)
    stored.set_secret(secret)
    stored.save()
    return stored


def llm_flow(owner, provider: str, credential_id: int):
    node = ("l", "llm", {"provider": provider, "model": "m-1", "credential": credential_id, "prompt": "Hi {{ x }}"})
    return published(owner, [IN, node, OUT], [("in", "value", "l", "x"), ("l", "text", "out", "value")])


def everything_stored(execution: Execution) -> str:
    return " ".join(
        [
            execution.error_message,
            str(list(execution.events.values_list("payload", flat=True))),
            str(list(execution.node_executions.values_list("inputs", "outputs", "error_message", "usage"))),
        ]
    )


def test_an_openai_node_streams_through_the_real_client(owner, run):
    with OpenAIServer() as server:
        server.reply("Hello from OpenAI", input_tokens=11, output_tokens=3)
        stored = credential(owner, "openai", server.api_key, f"{server.base_url}/v1")
        execution = run(llm_flow(owner, "openai", stored.pk), {"text": "there"})
        sent = server.requests[-1]
    assert execution.status == "succeeded", execution.error_message
    assert execution.outputs == {"result": "Hello from OpenAI"}
    assert sent["json"]["messages"][-1]["content"] == "Hi there"
    usage = execution.node_executions.get(node_id="l").usage
    assert (usage["input_tokens"], usage["output_tokens"]) == (11, 3)


@pytest.mark.parametrize(
    ("kind", "server_class", "message"),
    [
        ("openai", OpenAIServer, "Incorrect API key provided"),
        ("anthropic", AnthropicServer, "invalid x-api-key"),
    ],
)
def test_a_refused_key_fails_the_run_with_the_providers_message_and_never_the_key(
    owner, run, kind, server_class, message
):
    wrong = "sk-wrong-but-secret-key-0123456789"
    with server_class() as server:
        base_url = f"{server.base_url}/v1" if kind == "openai" else server.base_url
        stored = credential(owner, kind, wrong, base_url)
        execution = run(llm_flow(owner, kind, stored.pk), {"text": "there"})
    assert (execution.status, execution.error_code) == ("failed", "provider_auth_failed")
    assert message in execution.error_message
    assert wrong not in everything_stored(execution)
    assert wrong[-12:] not in everything_stored(execution)


def test_an_openai_node_without_a_credential_fails_clearly(owner, run):
    node = ("l", "llm", {"provider": "openai", "model": "m", "credential": None, "prompt": "{{ x }}"})
    version = published(owner, [IN, node, OUT], [("in", "value", "l", "x"), ("l", "text", "out", "value")])
    execution = run(version, {"text": "x"})
    assert (execution.status, execution.error_code) == ("failed", "invalid_model_config")
    assert "secret" in execution.error_message


def test_a_credential_deleted_after_publishing_fails_the_node_by_name(owner, run):
    stored = credential(owner, "openai", "sk-whatever-0123456789", "http://127.0.0.1:9/v1")
    version = llm_flow(owner, "openai", stored.pk)
    credential_id = stored.pk
    stored.delete()
    execution = run(version, {"text": "x"})
    assert (execution.status, execution.error_code) == ("failed", "unknown_credential")
    assert f"no credential {credential_id} of yours" in execution.error_message


def test_an_agent_on_openai_calls_a_tool_then_answers(owner, run):
    with OpenAIServer() as server:
        server.reply(tool_calls=[{"name": "calculator", "args": {"expression": "2 + 3"}}])
        server.reply("It is 5.")
        stored = credential(owner, "openai", server.api_key, f"{server.base_url}/v1")
        agent = Agent.objects.create(
            owner=owner, name="calc", provider="openai", model="gpt-test", credential=stored, tools=["calculator"]
        )
        version = published(
            owner,
            [IN, ("a", "agent", {"agent": agent.pk, "prompt": "{{ q }}"}), OUT],
            [("in", "value", "a", "q"), ("a", "text", "out", "value")],
        )
        execution = run(version, {"text": "2+3?"})
        tool_result = server.requests[-1]["json"]["messages"][-1]
    assert execution.outputs == {"result": "It is 5."}, execution.error_message
    assert (tool_result["role"], tool_result["content"]) == ("tool", "5")
