"""The tool catalogue API: built-in tools, HTTP tools, MCP servers, testing them, and agents using them."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.agents.models import Agent, Credential, Tool
from apps.users.models import AuditEntry
from tests.api.conftest import error
from tests.support.mcp_servers import TOOL_NAMES, McpHttpServer, stdio_command

pytestmark = pytest.mark.django_db

URL = "/api/v1/tools/"
SECRET = "tok-0c3e9b1d77aa4f62"


@pytest.fixture
def mcp_server():
    server = McpHttpServer()
    yield server
    server.close()


def header_credential(owner, name: str = "token") -> Credential:
    credential = Credential(owner=owner, name=name, kind=Credential.Kind.HTTP_HEADER, header_name="X-Token")
    credential.set_secret(SECRET)
    credential.save()
    return credential


def http_body(**fields) -> dict:
    return {
        "kind": "http",
        "name": "weather",
        "description": "The weather in a city.",
        "method": "GET",
        "url_template": "https://api.example.com/weather/{city}",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        **fields,
    }


def mcp_body(url: str = "https://mcp.example.com/mcp", **fields) -> dict:
    return {"kind": "mcp", "name": "search", "transport": "streamable_http", "url": url, **fields}


def tool_of(owner, **fields) -> Tool:
    values = {"kind": Tool.Kind.MCP, "name": "server", "transport": Tool.Transport.STREAMABLE_HTTP}
    return Tool.objects.create(owner=owner, **{"url": "https://mcp.example.com/mcp", **values, **fields})


def operator_stdio_server(owner) -> Tool:
    command, args = stdio_command()
    return Tool.objects.create(
        owner=owner, kind=Tool.Kind.MCP, name="local", transport=Tool.Transport.STDIO, command=command, args=args
    )


# --- creating -------------------------------------------------------------------------------------


def test_it_creates_an_http_tool_with_a_header_credential(api, owner):
    credential = header_credential(owner)
    response = api.post(URL, http_body(credentials=[credential.pk], headers={"Accept": "application/json"}))
    assert response.status_code == 201, response.json()
    body = response.json()
    tool = Tool.objects.get(pk=body["id"], owner=owner)
    assert list(tool.credentials.all()) == [credential]
    assert body["kind"] == "http"
    assert body["method"] == "GET"
    assert body["credentials"] == [credential.pk]
    assert body["agent_tools"] == [f"http:{tool.pk}"]
    assert SECRET not in response.content.decode()
    assert AuditEntry.objects.filter(action="tool.create", object_id=str(tool.pk)).exists()


def test_it_creates_a_streamable_http_mcp_server(api, owner):
    response = api.post(URL, mcp_body())
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["transport"], body["url"], body["listed_tools"], body["agent_tools"]) == (
        "streamable_http",
        "https://mcp.example.com/mcp",
        [],
        [],
    )


def test_an_internal_server_name_is_accepted_as_a_url(api):
    response = api.post(URL, mcp_body(url="http://mcp-search:8000/mcp"))
    assert response.status_code == 201, response.json()


def test_it_refuses_a_stdio_server_from_a_user_and_creates_nothing(api, owner):
    response = api.post(URL, mcp_body(url="", transport="stdio", command="/bin/sh", args=["-c", "id"]))
    assert response.status_code == 403
    assert error(response)["code"] == "forbidden"
    assert "stdio" in error(response)["message"]
    assert "operators" in error(response)["message"]
    assert not Tool.objects.exists()


def test_it_refuses_to_turn_a_server_into_a_stdio_one(api, owner):
    tool = tool_of(owner)
    response = api.patch(f"{URL}{tool.pk}/", {"transport": "stdio", "url": "", "command": "/bin/sh"})
    assert response.status_code == 403
    tool.refresh_from_db()
    assert (tool.transport, tool.command) == ("streamable_http", "")


def test_a_user_cannot_change_a_stdio_server_an_operator_defined(api, owner):
    tool = operator_stdio_server(owner)
    response = api.patch(f"{URL}{tool.pk}/", {"args": ["--evil"]})
    assert response.status_code == 403
    tool.refresh_from_db()
    assert tool.args == stdio_command()[1]
    assert api.get(f"{URL}{tool.pk}/").json()["command"] == stdio_command()[0]  # they may see it
    assert api.delete(f"{URL}{tool.pk}/").status_code == 204  # and remove it from their catalogue


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (http_body(headers={"Authorization": "Bearer x"}), "headers", "credential"),
        (http_body(headers={"X-Api-Key": "x"}), "headers", "credential"),
        (http_body(url_template="https://a.example/{town}"), "url_template", "town"),
        (http_body(url_template="ftp://a.example/{city}"), "url_template", "http"),
        (http_body(input_schema={"type": "array"}), "input_schema", "object"),
        (http_body(input_schema={"type": 5}), "input_schema", "JSON Schema"),
        (http_body(method=""), "method", "method"),
        (http_body(transport="streamable_http"), "transport", "MCP"),
        (mcp_body(url=""), "url", "URL"),
        (mcp_body(transport=""), "transport", "transport"),
        (mcp_body(method="GET"), "method", "HTTP tools"),
        ({**mcp_body(), "kind": "ftp"}, "kind", "valid choice"),
        (http_body(timeout_seconds=0), "timeout_seconds", "greater"),
        (http_body(name=""), "name", "blank"),
    ],
)
def test_it_refuses_bad_input_naming_the_field_and_creates_nothing(api, body, field, words):
    response = api.post(URL, body)
    assert response.status_code == 400, response.json()
    problem = error(response)
    assert problem["code"] == "invalid"
    assert field in problem["fields"], problem
    assert words.lower() in " ".join(problem["fields"][field]).lower(), problem
    assert not Tool.objects.exists()


def test_it_refuses_credentials_that_are_not_yours_or_not_header_credentials(api, owner, stranger):
    theirs = header_credential(stranger)
    response = api.post(URL, http_body(credentials=[theirs.pk]))
    assert response.status_code == 400
    assert error(response)["fields"]["credentials"] == [f"No credential {theirs.pk} of yours exists."]
    provider_key = Credential(owner=owner, name="openai", kind=Credential.Kind.OPENAI)
    provider_key.set_secret("sk-abcdefghijklmnop")
    provider_key.save()
    response = api.post(URL, http_body(credentials=[provider_key.pk]))
    assert response.status_code == 400
    assert "not an HTTP header credential" in error(response)["message"]
    assert not Tool.objects.exists()


def test_names_are_unique_per_owner(api, owner, stranger):
    tool_of(stranger, name="weather")
    assert api.post(URL, http_body()).status_code == 201
    response = api.post(URL, http_body())
    assert response.status_code == 400
    assert error(response)["fields"]["name"] == ["You already have a tool with this name."]


# --- reading and changing -------------------------------------------------------------------------


def test_it_lists_only_your_entries_newest_first_and_filters_by_kind(api, owner, stranger):
    tool_of(owner, name="a")
    api.post(URL, http_body())
    tool_of(stranger, name="theirs")
    assert [row["name"] for row in api.get(URL).json()["results"]] == ["weather", "a"]
    assert [row["name"] for row in api.get(URL, {"kind": "http"}).json()["results"]] == ["weather"]


def queries_to_list(api) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = api.get(URL)
    assert response.status_code == 200
    return len(captured)


def test_listing_costs_the_same_few_queries_for_2_or_12_entries(api, owner):
    credential = header_credential(owner)
    api.get(URL)  # the key's first use records when it was used
    for index in range(2):
        tool_of(owner, name=f"few {index}").credentials.set([credential])
    few = queries_to_list(api)
    for index in range(10):
        tool_of(owner, name=f"many {index}").credentials.set([credential])
    assert queries_to_list(api) == few == 3  # the key, the page, the credentials of the page


def test_patch_changes_what_it_names_and_keeps_the_rest(api, owner):
    tool = Tool.objects.get(pk=api.post(URL, http_body()).json()["id"])
    response = api.patch(f"{URL}{tool.pk}/", {"description": "Forecasts.", "enabled": False})
    assert response.status_code == 200, response.json()
    tool.refresh_from_db()
    assert (tool.description, tool.enabled, tool.method) == ("Forecasts.", False, "GET")


def test_the_kind_of_an_entry_cannot_change(api, owner):
    tool = tool_of(owner)
    response = api.patch(f"{URL}{tool.pk}/", {"kind": "http"})
    assert response.status_code == 400
    assert "kind" in error(response)["fields"]
    tool.refresh_from_db()
    assert tool.kind == "mcp"


def test_changing_a_servers_url_forgets_its_listed_tools(api, owner):
    tool = tool_of(owner, listed_tools=[{"name": "add", "description": "", "input_schema": {}}])
    Tool.objects.filter(pk=tool.pk).update(listed_at="2026-01-01T00:00:00Z")
    response = api.patch(f"{URL}{tool.pk}/", {"url": "https://other.example.com/mcp"})
    assert response.status_code == 200
    assert response.json()["listed_tools"] == []
    assert response.json()["listed_at"] is None


def test_another_users_entry_is_not_found(api, stranger):
    theirs = tool_of(stranger)
    for response in (
        api.get(f"{URL}{theirs.pk}/"),
        api.patch(f"{URL}{theirs.pk}/", {"description": "mine now"}),
        api.put(f"{URL}{theirs.pk}/", mcp_body()),
        api.delete(f"{URL}{theirs.pk}/"),
        api.post(f"{URL}{theirs.pk}/test/"),
    ):
        assert response.status_code == 404
        assert error(response)["code"] == "not_found"
    theirs.refresh_from_db()
    assert theirs.description == ""


def test_scopes_read_lists_write_changes_execute_tests(api_with, owner):
    tool = tool_of(owner)
    reader, writer = api_with("read"), api_with("write")
    assert reader.get(URL).status_code == 200
    assert reader.get(f"{URL}built-in/").status_code == 200
    denied = reader.post(URL, http_body())
    assert denied.status_code == 403
    assert error(denied)["code"] == "missing_scope"
    assert writer.post(URL, http_body()).status_code == 201
    denied = writer.post(f"{URL}{tool.pk}/test/")
    assert denied.status_code == 403
    assert "'execute'" in error(denied)["message"]


def test_the_built_in_tools_are_listed_with_their_schemas(api):
    rows = api.get(f"{URL}built-in/").json()
    calculator = next(row for row in rows if row["name"] == "calculator")
    assert calculator["input_schema"]["properties"]["expression"]["type"] == "string"
    assert "arithmetic" in calculator["description"]


# --- testing entries ----------------------------------------------------------------------------------


def test_testing_a_server_lists_its_tools_and_keeps_them(api, owner, mcp_server, egress_allow):
    egress_allow(mcp_server.host)
    tool = Tool.objects.get(pk=api.post(URL, mcp_body(url=mcp_server.url)).json()["id"])
    response = api.post(f"{URL}{tool.pk}/test/")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["ok"] is True
    assert body["error"] is None
    assert [listed["name"] for listed in body["tools"]] == TOOL_NAMES
    assert api.get(f"{URL}{tool.pk}/").json()["agent_tools"][0] == f"mcp:{tool.pk}:add"


def test_a_failed_test_is_reported_plainly_not_as_a_server_error(api, owner, mcp_server):
    tool = Tool.objects.get(pk=api.post(URL, mcp_body(url=mcp_server.url)).json()["id"])
    response = api.post(f"{URL}{tool.pk}/test/")  # no EGRESS_ALLOW for the loopback server
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False
    assert body["tools"] == []
    assert body["error"]["code"] == "egress_refused"
    assert mcp_server.headers == []


def test_testing_a_stdio_server_runs_it(api, owner):
    tool = operator_stdio_server(owner)
    body = api.post(f"{URL}{tool.pk}/test/").json()
    assert body["ok"] is True, body
    assert {listed["name"] for listed in body["tools"]} == set(TOOL_NAMES)


# --- agents using the catalogue ----------------------------------------------------------------------


def test_an_agent_may_be_given_catalogue_tools_of_yours_only(api, owner, stranger, mcp_server, egress_allow):
    egress_allow(mcp_server.host)
    server = Tool.objects.get(pk=api.post(URL, mcp_body(url=mcp_server.url)).json()["id"])
    api.post(f"{URL}{server.pk}/test/")
    http_tool = Tool.objects.get(pk=api.post(URL, http_body()).json()["id"])
    names = ["calculator", f"mcp:{server.pk}:add", f"http:{http_tool.pk}"]
    response = api.post("/api/v1/agents/", {"name": "helper", "model": "scripted-1", "tools": names})
    assert response.status_code == 201, response.json()
    assert Agent.objects.get(owner=owner, name="helper").tools == names

    theirs = tool_of(stranger)
    for bad, words in (
        (f"mcp:{theirs.pk}:add", f"No MCP server {theirs.pk} of yours exists."),
        (f"mcp:{server.pk}:nope", "has no tool nope"),
        ("http:abc", "http:abc is not a tool name"),
        ("browse", "unknown tools: browse"),
    ):
        response = api.post("/api/v1/agents/", {"name": "bad", "model": "scripted-1", "tools": [bad]})
        assert response.status_code == 400, bad
        assert words in " ".join(error(response)["fields"]["tools"]), error(response)
    assert not Agent.objects.filter(name="bad").exists()


def test_deleting_an_entry_removes_it(api, owner):
    tool = tool_of(owner)
    assert api.delete(f"{URL}{tool.pk}/").status_code == 204
    assert not Tool.objects.filter(pk=tool.pk).exists()
