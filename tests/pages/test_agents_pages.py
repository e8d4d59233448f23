"""
The agents pages: the list, the create and edit forms, deleting, and the test chat's streaming
endpoint (several chunks, one charge, refused without credits, never a secret).
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from asgiref.sync import async_to_sync
from django.db.models import Sum
from django.test import Client
from django.urls import reverse

from apps.agents import chat, services
from apps.agents.models import Agent, Credential, CredentialEvent, Tool
from apps.billing import services as billing
from apps.billing.models import MICRO, CreditTransaction, ModelPrice, credits
from tests.factories import UserFactory
from tests.pages.test_dashboard import text
from tests.support.llm_servers import OpenAIServer

pytestmark = [
    pytest.mark.django_db,
    # The sync test client reads the async event stream by collecting it (each event stays one chunk).
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume asynchronous iterators:Warning"),
]

SECRET = "sk-test-chat-secret-0123456789abcdef"
REPLY = "Hello Ada, here is a reply long enough to come in several pieces."


def an_agent(owner, name: str = "Helper", **fields) -> Agent:
    values = {"provider": "scripted", "model": "scripted-1", "parameters": {"replies": [REPLY], "chunk_size": 8}}
    return services.agent_create(owner=owner, values={"name": name, **values, **fields})


def form_data(**overrides) -> dict:
    data = {
        "name": "Researcher",
        "description": "",
        "provider": "scripted",
        "model": "scripted-1",
        "credential": "",
        "system_prompt": "  Be brief.",
        "parameters": '{"replies": ["Hi"]}',
        "tools": ["calculator"],
        "max_iterations": "5",
    }
    return {**data, **overrides}


def field_errors(html: str, field: str) -> str:
    """The errors Django renders next to `field` (linked to it by aria-describedby)."""
    match = re.search(rf'<ul class="errorlist" id="id_{field}_error">(.*?)</ul>', html, re.S)
    return text(match.group(1)) if match else ""


def events(response) -> list[tuple[str, dict]]:
    """The response's Server-Sent Events, (name, data)."""
    chunks = list(response)  # each event was yielded as a chunk of its own
    body = b"".join(chunks).decode()
    found = []
    for block in body.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if "event" in lines:
            found.append((lines["event"], json.loads(lines["data"])))
    return found


def post_chat(client: Client, agent: Agent, *messages: tuple[str, str]):
    body = {"messages": [{"role": role, "content": content} for role, content in messages]}
    return client.post(
        reverse("agents:agent_chat_stream", args=[agent.pk]), json.dumps(body), content_type="application/json"
    )


@pytest.fixture
def priced():
    ModelPrice.objects.filter(provider__in=["scripted", "openai_compatible"]).delete()
    for provider in ("scripted", "openai_compatible"):
        ModelPrice.objects.create(
            provider=provider, model="*", input_per_million=20 * MICRO, output_per_million=40 * MICRO
        )


# --- the list ----------------------------------------------------------------------------------


def test_a_visitor_is_sent_to_sign_in(client: Client, member) -> None:
    response = client.get("/agents/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/agents/")


def test_the_list_shows_the_empty_state_first(signed_in: Client, member) -> None:
    page = text(signed_in.get("/agents/").content.decode())
    assert "No agents yet" in page
    assert "Create an agent" in page


def test_the_list_shows_provider_model_credential_and_tool_count_of_own_agents_only(signed_in: Client, member) -> None:
    key = services.credential_create(owner=member, name="Team key", kind="openai", secret=SECRET)
    an_agent(
        member,
        "Writer",
        provider="openai",
        model="gpt-4o-mini",
        credential=key,
        parameters={},
        tools=["calculator", "current_time"],
    )
    an_agent(UserFactory(), "Not mine")

    html = signed_in.get("/agents/").content.decode()

    rows = [text(row) for row in re.findall(r"<tr>\s*<td data-label=\"Name\">(.*?)</tr>", html, re.S)]
    assert rows == ["Writer OpenAI gpt-4o-mini Team key 2 Chat with Writer"]
    assert "Not mine" not in html
    assert SECRET not in html


@pytest.mark.parametrize("count", [1, 12])
def test_the_list_takes_the_same_queries_for_one_agent_or_many(
    signed_in: Client, member, count: int, django_assert_num_queries
) -> None:
    key = services.credential_create(owner=member, name="Team key", kind="openai", secret=SECRET)
    for index in range(count):
        an_agent(member, f"Agent {index}", credential=key if index % 2 else None)
    # session, user, agents with their credential; the layout's balance
    with django_assert_num_queries(4):
        response = signed_in.get("/agents/")
    assert response.content.decode().count('data-label="Name"') == count


# --- create and edit ---------------------------------------------------------------------------


def test_creating_an_agent_saves_it_through_the_service_and_opens_its_chat(signed_in: Client, member) -> None:
    response = signed_in.post("/agents/new/", form_data())

    agent = Agent.objects.get(owner=member)
    assert response.status_code == 302
    assert response["Location"] == reverse("agents:agent_chat", args=[agent.pk])
    assert (agent.name, agent.provider, agent.model, agent.system_prompt) == (
        "Researcher",
        "scripted",
        "scripted-1",
        "  Be brief.",
    )
    assert (agent.parameters, agent.tools, agent.max_iterations) == ({"replies": ["Hi"]}, ["calculator"], 5)
    assert "Agent “Researcher” created." in text(signed_in.get(response["Location"]).content.decode())


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"model": ""}, "model", "This field is required."),
        ({"parameters": "{not json"}, "parameters", "Enter a valid JSON."),
        ({"parameters": "[1, 2]"}, "parameters", "Parameters must be a JSON object."),
        ({"max_iterations": "99"}, "max_iterations", "less than or equal to 50"),
        ({"provider": "skynet"}, "provider", "Select a valid choice."),
        ({"tools": ["http:999999"]}, "tools", "Select a valid choice."),
    ],
)
def test_a_bad_form_keeps_what_was_typed_names_the_field_and_saves_nothing(
    signed_in: Client, member, overrides: dict, field: str, message: str
) -> None:
    response = signed_in.post("/agents/new/", form_data(**overrides))

    assert response.status_code == 400
    html = response.content.decode()
    assert message in field_errors(html, field)
    assert 'value="Researcher"' in html
    assert "  Be brief.</textarea>" in html
    assert not Agent.objects.exists()


def test_a_second_agent_with_the_same_name_is_an_error_on_the_name(signed_in: Client, member) -> None:
    an_agent(member, "Researcher")
    response = signed_in.post("/agents/new/", form_data())
    assert response.status_code == 400
    assert "You already have an agent with this name." in field_errors(response.content.decode(), "name")
    assert Agent.objects.filter(owner=member).count() == 1


def test_the_service_refuses_what_the_api_refuses_on_the_field_it_names(signed_in: Client, member) -> None:
    header = services.credential_create(
        owner=member, name="Header", kind="http_header", secret="header-secret-123456", header_name="X-Key"
    )
    response = signed_in.post("/agents/new/", form_data(credential=str(header.pk)))
    assert response.status_code == 400
    assert "An HTTP header credential cannot sign in to a model provider." in field_errors(
        response.content.decode(), "credential"
    )
    response = signed_in.post("/agents/new/", form_data(parameters='{"bad": "\\u0000"}'))
    assert response.status_code == 400
    assert "Null characters are not allowed." in field_errors(response.content.decode(), "parameters")
    assert not Agent.objects.exists()


def test_another_users_credential_and_catalogue_tool_are_not_offered_nor_accepted(signed_in: Client, member) -> None:
    stranger = UserFactory()
    theirs = services.credential_create(owner=stranger, name="Their key", kind="openai", secret=SECRET)
    their_tool = Tool.objects.create(
        owner=stranger, kind="http", name="their-tool", method="GET", url_template="https://example.com/"
    )
    mine = Tool.objects.create(
        owner=member, kind="http", name="my-tool", method="GET", url_template="https://example.com/"
    )

    form = signed_in.get("/agents/new/").content.decode()
    assert "Their key" not in form
    assert "their-tool" not in form
    assert f'value="http:{mine.pk}"' in form

    response = signed_in.post("/agents/new/", form_data(credential=str(theirs.pk), tools=[f"http:{their_tool.pk}"]))
    assert response.status_code == 400
    assert "No such credential of yours exists." in field_errors(response.content.decode(), "credential")
    assert "Select a valid choice." in field_errors(response.content.decode(), "tools")

    response = signed_in.post("/agents/new/", form_data(tools=["calculator", f"http:{mine.pk}"]))
    assert response.status_code == 302
    assert Agent.objects.get(owner=member).tools == ["calculator", f"http:{mine.pk}"]


def test_editing_shows_the_agent_and_saves_changes(signed_in: Client, member) -> None:
    agent = an_agent(member, "Helper", tools=["calculator"])
    page = signed_in.get(f"/agents/{agent.pk}/").content.decode()
    assert 'value="Helper"' in page
    assert re.search(r'<input[^>]*value="calculator"[^>]*checked', page)

    response = signed_in.post(f"/agents/{agent.pk}/", form_data(name="Helper 2", tools=[]))

    assert response.status_code == 302
    agent.refresh_from_db()
    assert (agent.name, agent.tools, agent.parameters) == ("Helper 2", [], {"replies": ["Hi"]})


def test_a_refused_edit_changes_nothing_and_keeps_the_title(signed_in: Client, member) -> None:
    agent = an_agent(member, "Helper")
    an_agent(member, "Taken")
    response = signed_in.post(f"/agents/{agent.pk}/", form_data(name="Taken"))
    assert response.status_code == 400
    assert "<h1>Helper</h1>" in response.content.decode()
    assert 'value="Taken"' in response.content.decode()
    agent.refresh_from_db()
    assert agent.name == "Helper"


def test_deleting_asks_first_then_deletes_on_post(signed_in: Client, member) -> None:
    agent = an_agent(member)
    confirm = signed_in.get(f"/agents/{agent.pk}/delete/")
    assert confirm.status_code == 200
    assert "Delete “Helper”?" in text(confirm.content.decode())
    assert Agent.objects.filter(pk=agent.pk).exists()

    response = signed_in.post(f"/agents/{agent.pk}/delete/")
    assert response.status_code == 302
    assert response["Location"] == "/agents/"
    assert not Agent.objects.filter(pk=agent.pk).exists()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/agents/{pk}/"),
        ("post", "/agents/{pk}/"),
        ("get", "/agents/{pk}/delete/"),
        ("post", "/agents/{pk}/delete/"),
        ("get", "/agents/{pk}/chat/"),
        ("post", "/agents/{pk}/chat/stream/"),
    ],
)
def test_another_users_agent_is_not_found(signed_in: Client, member, method: str, path: str) -> None:
    theirs = an_agent(UserFactory(), "Theirs")
    response = getattr(signed_in, method)(path.format(pk=theirs.pk), form_data())
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.name == "Theirs"


# --- the test chat -----------------------------------------------------------------------------


def test_the_chat_page_names_the_agent_and_its_stream(signed_in: Client, member) -> None:
    agent = an_agent(member)
    html = signed_in.get(f"/agents/{agent.pk}/chat/").content.decode()
    assert "Chat with Helper" in text(html)
    assert f'data-stream-url="/agents/{agent.pk}/chat/stream/"' in html
    assert 'src="/static/js/chat.js"' in html


def test_a_reply_streams_in_several_chunks_and_is_charged_once(signed_in: Client, member, priced) -> None:
    agent = an_agent(member)
    before = billing.balance_of(member)

    response = post_chat(signed_in, agent, ("user", "Hi"), ("assistant", "Hello"), ("user", "Tell me more"))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    received = events(response)
    deltas = [data["text"] for name, data in received if name == "delta"]
    assert len(deltas) >= 5
    assert "".join(deltas) == REPLY
    name, done = received[-1]
    assert name == "done"
    charge = CreditTransaction.objects.get(user=member, idempotency_key__startswith=f"chat:{agent.pk}:")
    assert (charge.kind, charge.execution_id) == ("usage", None)
    assert charge.description.startswith(f"Test chat with agent {agent.pk} (Helper): scripted/scripted-1:")
    # Words in (the three messages), words out, at 20 and 40 credits per million.
    assert done["usage"] == {"input_tokens": 5, "output_tokens": len(REPLY.split()), "tool_calls": 0}
    expected = -(-5 * 20 * MICRO // 1_000_000) + -(-len(REPLY.split()) * 40 * MICRO // 1_000_000)
    assert -charge.amount == done["cost"] == expected
    assert done["cost_display"] == credits(expected)
    assert billing.balance_of(member) == before - expected
    assert done["balance_display"] == credits(before - expected)


def test_a_tool_call_is_counted_and_its_answer_streamed(signed_in: Client, member, priced) -> None:
    replies = [{"tool_calls": [{"name": "calculator", "args": {"expression": "6 * 7"}}]}, "It is 42."]
    agent = an_agent(member, tools=["calculator"], parameters={"replies": replies})
    received = events(post_chat(signed_in, agent, ("user", "6 times 7?")))
    assert "".join(data["text"] for name, data in received if name == "delta") == "It is 42."
    assert received[-1][1]["usage"]["tool_calls"] == 1
    assert CreditTransaction.objects.filter(user=member, kind="usage").count() == 1


def test_a_turn_whose_page_goes_away_mid_reply_runs_to_its_end_and_is_charged(member, priced) -> None:
    agent = an_agent(member)
    runtime, secret = chat.chat_runtime(agent)

    async def read_one_piece_then_leave() -> str:
        stream = chat.chat_turn_events(agent, runtime, secret, [{"role": "user", "content": "Hi"}])
        async for event in stream:
            if event.startswith("event: delta"):
                break
        await stream.aclose()  # what the server does when the browser disconnects
        await asyncio.gather(*chat.turns_running)
        return event

    first = async_to_sync(read_one_piece_then_leave)()

    assert json.loads(first.split("data: ", 1)[1]) == {"text": REPLY[:8]}
    charge = CreditTransaction.objects.get(user=member, kind="usage")
    output_tokens = len(REPLY.split())
    assert -charge.amount == -(-1 * 20 * MICRO // 1_000_000) + -(-output_tokens * 40 * MICRO // 1_000_000)


def test_with_no_credits_the_chat_is_refused_before_the_model_runs(signed_in: Client, member) -> None:
    agent = an_agent(member)
    billing.ledger_post(user=member, kind="adjustment", amount=-billing.balance_of(member), idempotency_key="empty-it")
    rows = CreditTransaction.objects.count()

    response = post_chat(signed_in, agent, ("user", "Hi"))

    assert response.status_code == 402
    error = response.json()["error"]
    assert error["code"] == "insufficient_credits"
    assert "top up first" in error["message"]
    assert CreditTransaction.objects.count() == rows


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        json.dumps({"messages": []}),
        json.dumps({"messages": [{"role": "system", "content": "x"}]}),
        json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}),
        json.dumps({"messages": [{"role": "user", "content": "x" * 20_001}]}),
    ],
)
def test_a_bad_conversation_is_a_clear_400_and_costs_nothing(signed_in: Client, member, body: str) -> None:
    agent = an_agent(member)
    response = signed_in.post(f"/agents/{agent.pk}/chat/stream/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["message"]
    assert not CreditTransaction.objects.filter(kind="usage").exists()


def test_the_stream_takes_only_post_from_a_signed_in_user(client: Client, signed_in: Client, member) -> None:
    agent = an_agent(member)
    assert signed_in.get(f"/agents/{agent.pk}/chat/stream/").status_code == 405
    anonymous = Client()
    assert post_chat(anonymous, agent, ("user", "Hi")).status_code == 401


def test_the_stream_needs_the_csrf_token(member) -> None:
    agent = an_agent(member)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(member)
    assert post_chat(browser, agent, ("user", "Hi")).status_code == 403


def test_a_revoked_credential_is_refused_plainly(signed_in: Client, member) -> None:
    key = services.credential_create(owner=member, name="Old key", kind="openai", secret=SECRET)
    agent = an_agent(member, provider="openai", model="gpt-test", credential=key, parameters={})
    services.credential_revoke(credential=key, actor=member)
    response = post_chat(signed_in, agent, ("user", "Hi"))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "credential_revoked"
    assert SECRET not in response.content.decode()


def test_the_real_openai_class_streams_and_never_echoes_the_secret(
    signed_in: Client, member, priced, egress_allow
) -> None:
    with OpenAIServer(api_keys=[SECRET]) as server:
        egress_allow(server.base_url.removeprefix("http://"))
        # A model that repeats the key it was sent: the page must never see it.
        server.reply(f"Your key is {SECRET}, and that is all I know.", input_tokens=9, output_tokens=11, chunk_size=5)
        key = services.credential_create(
            owner=member, name="Loopback", kind="openai_compatible", secret=SECRET, base_url=f"{server.base_url}/v1"
        )
        agent = an_agent(member, provider="openai_compatible", model="gpt-test", credential=key, parameters={})
        response = post_chat(signed_in, agent, ("user", "What is my key?"))
        received = events(response)
        sent = server.requests[-1]

    body = json.dumps(received)
    assert SECRET not in body
    assert SECRET[-8:] not in body
    assert SECRET[:8] not in body
    deltas = [data["text"] for name, data in received if name == "delta"]
    assert len(deltas) > 3
    # At most a secret's first three characters pass before it is recognised (StreamRedactor).
    assert "".join(deltas) == "Your key is sk-***, and that is all I know."
    assert sent["json"]["messages"][-1]["content"] == "What is my key?"
    assert received[-1][1]["usage"] == {"input_tokens": 9, "output_tokens": 11, "tool_calls": 0}
    assert CreditTransaction.objects.get(user=member, kind="usage").amount == -(9 * 20 + 11 * 40)
    use = CredentialEvent.objects.get(credential=key, action="use")
    assert (use.execution_id, use.node_id) == (None, "chat")


def test_a_provider_error_is_shown_plainly_without_the_key(signed_in: Client, member, egress_allow) -> None:
    wrong = "sk-wrong-but-secret-key-0123456789"
    with OpenAIServer() as server:
        egress_allow(server.base_url.removeprefix("http://"))
        key = services.credential_create(
            owner=member, name="Wrong", kind="openai_compatible", secret=wrong, base_url=f"{server.base_url}/v1"
        )
        agent = an_agent(member, provider="openai_compatible", model="gpt-test", credential=key, parameters={})
        response = post_chat(signed_in, agent, ("user", "Hi"))
        received = events(response)

    assert response.status_code == 200
    name, error = received[-1]
    assert name == "error"
    assert error["code"] == "provider_auth_failed"
    assert "Incorrect API key provided" in error["message"]
    assert wrong not in json.dumps(received)
    assert wrong[-12:] not in json.dumps(received)
    assert error["cost"] == 0
    spent = CreditTransaction.objects.filter(user=member, kind="usage").aggregate(total=Sum("amount"))["total"]
    assert spent is None


def test_credentials_in_the_form_show_names_never_secrets(signed_in: Client, member) -> None:
    key = services.credential_create(owner=member, name="Team key", kind="openai", secret=SECRET)
    agent = an_agent(member, provider="openai", model="gpt-4o", credential=key, parameters={})
    for path in ("/agents/new/", f"/agents/{agent.pk}/", f"/agents/{agent.pk}/chat/"):
        html = signed_in.get(path).content.decode()
        assert SECRET not in html
        assert SECRET[-8:] not in html
    assert Credential.objects.get(pk=key.pk).name in signed_in.get(f"/agents/{agent.pk}/").content.decode()
