"""
MCP servers and HTTP tools from the catalogue, against real servers the tests start: FastMCP over
streamable HTTP (uvicorn on loopback) and over stdio (a subprocess), and a scripted HTTP server.
Agent runs go through the real engine with the scripted provider.
"""

from __future__ import annotations

import json
import time

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.agents import mcp
from apps.agents.models import Agent, Credential, CredentialEvent, Tool
from apps.agents.services import credential_revoke
from apps.executions import engine, services
from apps.executions.models import Execution
from tests.factories import UserFactory, published
from tests.support.http_server import Answer, ScriptedHTTPServer
from tests.support.mcp_servers import TOOL_NAMES, McpHttpServer, stdio_command

SECRET = "tok-4f1c9a7e55b2d830"


@pytest.fixture
def owner(db):
    return UserFactory(username="owner")


@pytest.fixture
def mcp_server():
    server = McpHttpServer()
    yield server
    server.close()


@pytest.fixture
def http_server():
    server = ScriptedHTTPServer()
    yield server
    server.close()


def header_credential(owner, name: str = "token", header: str = "X-Token") -> Credential:
    credential = Credential(owner=owner, name=name, kind=Credential.Kind.HTTP_HEADER, header_name=header)
    credential.set_secret(SECRET)
    credential.save()
    return credential


def http_server_entry(owner, url: str, *, credentials=(), timeout: int = 10, name: str = "tools") -> Tool:
    tool = Tool.objects.create(
        owner=owner, kind=Tool.Kind.MCP, name=name, transport=Tool.Transport.STREAMABLE_HTTP, url=url,
        timeout_seconds=timeout,
    )  # fmt: skip
    tool.credentials.set(credentials)
    return tool


def stdio_entry(owner, *, timeout: int = 10) -> Tool:
    """A stdio server as an operator defines it in the admin (the API refuses these)."""
    command, args = stdio_command()
    return Tool.objects.create(
        owner=owner, kind=Tool.Kind.MCP, name="local", transport=Tool.Transport.STDIO, command=command, args=args,
        timeout_seconds=timeout,
    )  # fmt: skip


def agent_calling(owner, tools: list[str], *calls: tuple[str, dict], answer: str = "Done.") -> Agent:
    """A scripted agent: one reply per tool call, then `answer`."""
    replies = [{"tool_calls": [{"name": name, "args": args}]} for name, args in calls] + [answer]
    return Agent.objects.create(
        owner=owner, name="caller", provider="scripted", model="scripted-1", tools=tools,
        parameters={"replies": replies},
    )  # fmt: skip


def run_agent(owner, agent: Agent) -> Execution:
    version = published(
        owner,
        [
            ("in", "input", {"name": "text"}),
            ("a", "agent", {"agent": agent.pk, "prompt": "Please: {{ q }}"}),
            ("result", "output", {"name": "result"}),
        ],
        [("in", "value", "a", "q"), ("a", "text", "result", "value")],
    )
    execution = services.execution_run(version=version, inputs={"text": "go"}, owner=owner)
    engine.run_execution(execution.pk)
    execution.refresh_from_db()
    return execution


def tool_answers(execution: Execution) -> list[str]:
    logs = execution.events.filter(type="node.log").order_by("seq")
    return [event.payload["data"]["result"] for event in logs if "result" in event.payload["data"]]


def everything_recorded(execution: Execution) -> str:
    """The run's outputs, error, events and node records as one text, to look for secrets in."""
    nodes = list(execution.node_executions.values("inputs", "outputs", "error_message", "usage"))
    events = list(execution.events.values_list("payload", flat=True))
    return json.dumps([execution.outputs, execution.error_message, nodes, events], default=str)


# --- listing (the test action) ------------------------------------------------------------------


def test_it_lists_a_streamable_http_servers_tools_with_their_schemas(owner, mcp_server, egress_allow):
    egress_allow(mcp_server.host)
    tool = http_server_entry(owner, mcp_server.url)
    result = mcp.tool_test(tool=tool)
    assert result["ok"], result
    assert [listed["name"] for listed in result["tools"]] == TOOL_NAMES
    add = result["tools"][0]
    assert add["description"] == "Add two whole numbers."
    assert add["input_schema"]["required"] == ["a", "b"]
    assert add["input_schema"]["properties"]["a"]["type"] == "integer"
    tool.refresh_from_db()
    assert tool.listed_at is not None
    assert tool.agent_tool_names() == [f"mcp:{tool.pk}:{name}" for name in TOOL_NAMES]


def test_it_lists_the_tools_of_a_stdio_server(owner):
    result = mcp.tool_test(tool=stdio_entry(owner))
    assert result["ok"], result
    assert {listed["name"] for listed in result["tools"]} == set(TOOL_NAMES)


def test_without_the_allow_list_egress_refuses_a_loopback_server(owner, mcp_server):
    tool = http_server_entry(owner, mcp_server.url)
    result = mcp.tool_test(tool=tool)
    assert not result["ok"]
    assert result["error"]["code"] == "egress_refused"
    assert "loopback" in result["error"]["message"]
    assert mcp_server.headers == []  # nothing was sent
    tool.refresh_from_db()
    assert tool.listed_at is None


def test_a_server_that_is_down_is_reported_unreachable(owner, egress_allow):
    server = McpHttpServer()
    url, host = server.url, server.host
    server.close()  # the port is now closed
    egress_allow(host)
    result = mcp.tool_test(tool=http_server_entry(owner, url))
    assert result["error"]["code"] == "unreachable", result
    assert host in result["error"]["message"] or "unreachable" in result["error"]["message"]


def test_a_server_that_never_answers_is_reported_within_its_timeout(owner, http_server, egress_allow):
    egress_allow(http_server.netloc)
    http_server.route("/mcp", Answer(200, "late", delay=30))
    started = time.monotonic()
    result = mcp.tool_test(tool=http_server_entry(owner, http_server.url + "/mcp", timeout=1))
    assert result["error"]["code"] == "timeout", result
    assert time.monotonic() - started < 10


def test_a_server_that_does_not_speak_mcp_is_reported(owner, http_server, egress_allow):
    egress_allow(http_server.netloc)
    http_server.route("/mcp", Answer(500, "oops"))
    result = mcp.tool_test(tool=http_server_entry(owner, http_server.url + "/mcp"))
    assert result["error"]["code"] == "http_error", result
    assert "HTTP 500" in result["error"]["message"]


def test_a_url_that_is_not_an_mcp_endpoint_is_reported(owner, http_server, egress_allow):
    egress_allow(http_server.netloc)
    result = mcp.tool_test(tool=http_server_entry(owner, http_server.url + "/nothing-here"))
    assert result["error"]["code"] == "http_error", result
    assert "HTTP 404" in result["error"]["message"]


def test_a_stdio_command_that_does_not_exist_is_reported(owner):
    tool = stdio_entry(owner)
    tool.command = "/nonexistent/mcp-server"
    tool.save()
    result = mcp.tool_test(tool=tool)
    assert result["error"]["code"] == "command_failed", result


def test_the_server_receives_the_credential_header_and_the_secret_is_never_shown(owner, mcp_server, egress_allow):
    egress_allow(mcp_server.host)
    tool = http_server_entry(owner, mcp_server.url, credentials=[header_credential(owner)])
    result = mcp.tool_test(tool=tool)
    assert result["ok"], result
    assert {request.get("x-token") for request in mcp_server.headers} == {SECRET}
    assert SECRET not in json.dumps(result)


# --- agent runs ------------------------------------------------------------------------------------


def test_an_agent_calls_a_tool_of_a_streamable_http_server(owner, mcp_server, egress_allow):
    egress_allow(mcp_server.host)
    server = http_server_entry(owner, mcp_server.url)
    agent = agent_calling(owner, [f"mcp:{server.pk}:add", "calculator"], ("add", {"a": 20, "b": 22}), answer="42.")
    execution = run_agent(owner, agent)
    assert execution.status == Execution.Status.SUCCEEDED, execution.error_message
    assert execution.outputs == {"result": "42."}
    assert tool_answers(execution) == ["42"]
    assert execution.node_executions.get(node_id="a").usage["tool_calls"] == 1


def test_an_agent_calls_a_tool_of_a_stdio_server_an_operator_defined(owner):
    server = stdio_entry(owner)
    agent = agent_calling(owner, [f"mcp:{server.pk}:add"], ("add", {"a": 1, "b": 2}))
    execution = run_agent(owner, agent)
    assert execution.status == Execution.Status.SUCCEEDED, execution.error_message
    assert tool_answers(execution) == ["3"]


def test_a_stdio_server_does_not_inherit_the_workers_environment(owner, monkeypatch):
    monkeypatch.setenv("SB_WORKER_SECRET", "not for tools")
    server = stdio_entry(owner)
    calls = [("has_env", {"name": "SB_WORKER_SECRET"}), ("has_env", {"name": "PATH"})]
    execution = run_agent(owner, agent_calling(owner, [f"mcp:{server.pk}:has_env"], *calls))
    assert execution.status == Execution.Status.SUCCEEDED, execution.error_message
    assert tool_answers(execution) == ["false", "true"]


def test_the_credential_header_reaches_the_mcp_server_but_not_the_runs_records(owner, mcp_server, egress_allow):
    egress_allow(mcp_server.host)
    server = http_server_entry(owner, mcp_server.url, credentials=[header_credential(owner)])
    execution = run_agent(owner, agent_calling(owner, [f"mcp:{server.pk}:whoami"], ("whoami", {})))
    assert execution.status == Execution.Status.SUCCEEDED, execution.error_message
    assert {request.get("x-token") for request in mcp_server.headers} == {SECRET}
    # The server echoed the token back: the answer the agent saw is redacted.
    assert tool_answers(execution) == ["token=***"]
    assert SECRET not in everything_recorded(execution)
    # The vault recorded each read: the listing and the call.
    assert CredentialEvent.objects.filter(credential__name="token", action=CredentialEvent.Action.USE).count() == 2


def test_a_revoked_credential_is_not_sent(owner, mcp_server, egress_allow):
    egress_allow(mcp_server.host)
    credential = header_credential(owner)
    credential_revoke(credential=credential, actor=None)
    result = mcp.tool_test(tool=http_server_entry(owner, mcp_server.url, credentials=[credential]))
    assert result["error"]["code"] == "credential_revoked"
    assert mcp_server.headers == []


def test_a_tool_that_raises_answers_the_model_with_its_error(owner, mcp_server, egress_allow):
    egress_allow(mcp_server.host)
    server = http_server_entry(owner, mcp_server.url)
    execution = run_agent(owner, agent_calling(owner, [f"mcp:{server.pk}:fail"], ("fail", {"message": "boom"})))
    assert execution.status == Execution.Status.SUCCEEDED, execution.error_message
    [answer] = tool_answers(execution)
    assert "boom" in answer


def test_a_tool_that_hangs_times_out_and_the_agent_goes_on(owner, mcp_server, egress_allow):
    egress_allow(mcp_server.host)
    server = http_server_entry(owner, mcp_server.url, timeout=1)
    started = time.monotonic()
    execution = run_agent(owner, agent_calling(owner, [f"mcp:{server.pk}:hang"], ("hang", {}), answer="Gave up."))
    assert execution.status == Execution.Status.SUCCEEDED, execution.error_message
    assert tool_answers(execution) == ["tool 'hang' of MCP server 'tools' did not answer within 1 s"]
    assert execution.outputs == {"result": "Gave up."}
    assert time.monotonic() - started < 15


def test_a_stdio_tool_that_hangs_times_out(owner):
    server = stdio_entry(owner, timeout=1)
    execution = run_agent(owner, agent_calling(owner, [f"mcp:{server.pk}:hang"], ("hang", {})))
    assert execution.status == Execution.Status.SUCCEEDED, execution.error_message
    assert tool_answers(execution) == ["tool 'hang' of MCP server 'local' did not answer within 1 s"]


def test_a_server_that_is_down_fails_the_agent_node(owner, egress_allow):
    server = McpHttpServer()
    url, host = server.url, server.host
    server.close()
    egress_allow(host)
    entry = http_server_entry(owner, url)
    execution = run_agent(owner, agent_calling(owner, [f"mcp:{entry.pk}:add"], ("add", {"a": 1, "b": 1})))
    assert execution.status == Execution.Status.FAILED
    assert execution.error_code == "mcp_unreachable", execution.error_message


def test_egress_refuses_the_server_in_a_run_without_the_allow_list(owner, mcp_server):
    entry = http_server_entry(owner, mcp_server.url)
    execution = run_agent(owner, agent_calling(owner, [f"mcp:{entry.pk}:add"], ("add", {"a": 1, "b": 1})))
    assert execution.error_code == "egress_refused", execution.error_message
    assert mcp_server.headers == []


def test_a_tool_the_server_does_not_have_fails_the_node_naming_the_ones_it_has(owner, mcp_server, egress_allow):
    egress_allow(mcp_server.host)
    entry = http_server_entry(owner, mcp_server.url)
    execution = run_agent(owner, agent_calling(owner, [f"mcp:{entry.pk}:nope"], ("nope", {})))
    assert execution.error_code == "unknown_tool"
    assert ", ".join(TOOL_NAMES) in execution.error_message


def test_a_disabled_entry_fails_the_node(owner, mcp_server, egress_allow):
    egress_allow(mcp_server.host)
    entry = http_server_entry(owner, mcp_server.url)
    Tool.objects.filter(pk=entry.pk).update(enabled=False)
    execution = run_agent(owner, agent_calling(owner, [f"mcp:{entry.pk}:add"], ("add", {"a": 1, "b": 1})))
    assert execution.error_code == "tool_disabled"
    assert mcp_server.headers == []


def test_another_users_entry_is_unknown_to_a_run(owner, mcp_server, egress_allow):
    egress_allow(mcp_server.host)
    theirs = http_server_entry(UserFactory(username="other"), mcp_server.url)
    execution = run_agent(owner, agent_calling(owner, [f"mcp:{theirs.pk}:add"], ("add", {"a": 1, "b": 1})))
    assert execution.error_code == "unknown_tool"
    assert mcp_server.headers == []


# --- HTTP tools --------------------------------------------------------------------------------------


def weather_tool(owner, url: str, **fields) -> Tool:
    tool = Tool.objects.create(
        owner=owner, kind=Tool.Kind.HTTP, name="weather", description="The weather in a city.",
        method=fields.pop("method", Tool.Method.GET), url_template=url + "/weather/{city}",
        input_schema={
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
        **fields,
    )  # fmt: skip
    tool.full_clean()
    return tool


def test_an_agent_calls_an_http_tool_with_a_credential_header(owner, http_server, egress_allow):
    egress_allow(http_server.netloc)
    # The server answers with the token it received, as a careless API might.
    http_server.route("/weather/S%C3%A3o%20Paulo", Answer(200, {"forecast": "sunny", "echo": SECRET}))
    tool = weather_tool(owner, http_server.url, headers={"Accept": "application/json"})
    tool.credentials.set([header_credential(owner)])
    agent = agent_calling(owner, [f"http:{tool.pk}"], (f"http_{tool.pk}", {"city": "São Paulo", "days": 2}))
    execution = run_agent(owner, agent)
    assert execution.status == Execution.Status.SUCCEEDED, execution.error_message
    [request] = http_server.requests
    assert request["method"] == "GET"
    assert request["path"] == "/weather/S%C3%A3o%20Paulo?days=2"
    assert request["headers"]["X-Token"] == SECRET
    assert request["headers"]["Accept"] == "application/json"
    [answer] = tool_answers(execution)
    assert answer.startswith("HTTP 200\n")
    assert "sunny" in answer
    assert SECRET not in everything_recorded(execution)


def test_an_http_tool_sends_other_arguments_as_a_json_body(owner, http_server, egress_allow):
    egress_allow(http_server.netloc)
    http_server.route("/weather/Oslo", Answer(201, {"ok": True}))
    tool = weather_tool(owner, http_server.url, method=Tool.Method.POST)
    result = mcp.tool_test(tool=tool, arguments={"city": "Oslo", "days": 3})
    assert result["ok"], result
    assert result["output"].startswith("HTTP 201")
    [request] = http_server.requests
    assert json.loads(request["body"]) == {"days": 3}
    assert request["headers"]["Content-Type"] == "application/json"


def test_an_http_tool_refuses_arguments_its_schema_does_not_allow(owner, http_server, egress_allow):
    egress_allow(http_server.netloc)
    result = mcp.tool_test(tool=weather_tool(owner, http_server.url), arguments={"days": "many"})
    assert result["error"]["code"] == "tool_error"
    assert "city" in result["error"]["message"] or "days" in result["error"]["message"]
    assert http_server.requests == []


def test_an_http_tool_goes_through_egress(owner, http_server):
    result = mcp.tool_test(tool=weather_tool(owner, http_server.url), arguments={"city": "Oslo"})
    assert result["error"]["code"] == "tool_error"
    assert "refused" in result["error"]["message"]
    assert http_server.requests == []


# --- names in an agent's tools --------------------------------------------------------------------


def test_agent_tool_names_are_checked_against_the_owners_catalogue(owner, mcp_server, egress_allow):
    egress_allow(mcp_server.host)
    server = http_server_entry(owner, mcp_server.url)
    http_tool = weather_tool(owner, "http://example.com")
    theirs = weather_tool(UserFactory(username="other"), "http://example.com")
    assert mcp.check_agent_tools(owner_id=owner.pk, names=["calculator", f"http:{http_tool.pk}"]) == []
    assert mcp.check_agent_tools(owner_id=owner.pk, names=[f"mcp:{server.pk}:anything"]) == []  # never listed
    mcp.tool_test(tool=server)
    assert mcp.check_agent_tools(owner_id=owner.pk, names=[f"mcp:{server.pk}:add"]) == []
    [unlisted] = mcp.check_agent_tools(owner_id=owner.pk, names=[f"mcp:{server.pk}:nope"])
    assert "has no tool nope" in unlisted
    assert ", ".join(TOOL_NAMES) in unlisted
    [stranger] = mcp.check_agent_tools(owner_id=owner.pk, names=[f"http:{theirs.pk}"])
    assert stranger == f"No HTTP tool {theirs.pk} of yours exists."
    [wrong_kind] = mcp.check_agent_tools(owner_id=owner.pk, names=[f"mcp:{http_tool.pk}:add"])
    assert "No MCP server" in wrong_kind
    [bad] = mcp.check_agent_tools(owner_id=owner.pk, names=["mcp:x"])
    assert "is not a tool name" in bad


def test_two_tools_with_one_name_are_refused(owner, mcp_server, egress_allow):
    egress_allow(mcp_server.host)
    first = http_server_entry(owner, mcp_server.url, name="one")
    second = http_server_entry(owner, mcp_server.url, name="two")
    problems = mcp.check_agent_tools(owner_id=owner.pk, names=[f"mcp:{first.pk}:add", f"mcp:{second.pk}:add"])
    assert problems == ["Two tools would both be called add."]


def test_an_agent_with_catalogue_tools_still_streams_its_text(owner, mcp_server, egress_allow):
    # The node streams the model's text as it comes; the model that loads catalogue tools must
    # pass the chunks through. Same loop as the agent node, on the runtime it gets.
    from langchain.agents import create_agent
    from langchain_core.messages import AIMessageChunk, HumanMessage

    from apps.agents.runtime import agent_runtime

    egress_allow(mcp_server.host)
    server = http_server_entry(owner, mcp_server.url)
    agent = agent_calling(owner, [f"mcp:{server.pk}:add"], ("add", {"a": 1, "b": 2}), answer="alpha beta gamma")
    agent.parameters = {**agent.parameters, "chunk_size": 5}
    runtime = agent_runtime(agent, secret=None, timeout=10)
    graph = create_agent(runtime.model, runtime.tools)

    async def chunks() -> list[str]:
        texts = []
        async for mode, payload in graph.astream(
            {"messages": [HumanMessage("go")]}, stream_mode=["messages", "values"]
        ):
            if mode == "messages" and isinstance(payload[0], AIMessageChunk) and payload[0].text:
                texts.append(payload[0].text)
        return texts

    assert async_to_sync(chunks)() == ["alpha", " beta", " gamm", "a"]


# --- the admin ---------------------------------------------------------------------------------------


@pytest.fixture
def operator(client, db):
    user = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


def admin_form(owner, **fields) -> dict:
    command, args = stdio_command()
    return {
        "owner": owner.pk,
        "kind": "mcp",
        "name": "local",
        "description": "",
        "enabled": "on",
        "timeout_seconds": 10,
        "headers": "{}",
        "method": "",
        "url_template": "",
        "input_schema": "{}",
        "transport": "stdio",
        "url": "",
        "command": command,
        "args": json.dumps(args),
        **fields,
    }


def test_an_operator_defines_a_stdio_server_and_tests_it_from_the_admin(client, operator, owner):
    response = client.post("/admin/agents/tool/add/", admin_form(owner))
    assert response.status_code == 302, response.context["adminform"].form.errors
    tool = Tool.objects.get(owner=owner, name="local")
    assert tool.is_stdio
    response = client.post(
        "/admin/agents/tool/", {"action": "test_servers", "_selected_action": [str(tool.pk)]}, follow=True
    )
    shown = [str(message) for message in response.context["messages"]]
    assert shown[-1] == f"local: tools {', '.join(TOOL_NAMES)}"
    tool.refresh_from_db()
    assert [listed["name"] for listed in tool.listed_tools] == TOOL_NAMES


def test_the_admin_action_reports_a_server_it_cannot_reach(client, operator, owner, mcp_server):
    tool = http_server_entry(owner, mcp_server.url)  # no EGRESS_ALLOW for it
    response = client.post(
        "/admin/agents/tool/", {"action": "test_servers", "_selected_action": [str(tool.pk)]}, follow=True
    )
    [shown] = [str(message) for message in response.context["messages"]]
    assert shown.startswith("tools: egress_refused: ")


def test_the_admin_refuses_another_users_credential_and_bad_servers(client, operator, owner):
    theirs = header_credential(UserFactory(username="other"))
    response = client.post("/admin/agents/tool/add/", admin_form(owner, credentials=[theirs.pk]))
    assert response.status_code == 200
    assert "belongs to another user" in str(response.context["adminform"].form.errors["credentials"])
    response = client.post("/admin/agents/tool/add/", admin_form(owner, command=""))
    assert "needs a command" in str(response.context["adminform"].form.errors["command"])
    assert not Tool.objects.exists()


def test_the_admin_list_costs_the_same_queries_for_2_or_12_entries(client, operator, owner):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/admin/agents/tool/").status_code == 200
        return len(captured)

    for index in range(2):
        http_server_entry(owner, "https://mcp.example.com/mcp", name=f"few {index}")
    few = queries()
    for index in range(10):
        http_server_entry(owner, "https://mcp.example.com/mcp", name=f"many {index}")
    assert queries() == few
