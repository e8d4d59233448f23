"""
The agents pages in a real Chromium against a real server process: create an agent in the form,
open its test chat, send a message and watch the reply arrive in pieces, then its cost; the list,
the form and the chat at both widths and in both colour schemes with axe-core.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from playwright.async_api import Page, expect

from apps.agents.models import Agent
from apps.billing.models import MICRO, CreditTransaction, ModelPrice, credits
from apps.users.models import User
from tests.e2e.test_pages_browser import (
    check_page,
    serious_violations,
    sign_in,
)
from tests.factories import PASSWORD, UserFactory
from tests.support.services import ServerProcess

pytestmark = pytest.mark.django_db(transaction=True)

REPLY = "Streams arrive in pieces: this reply is cut into small chunks, one after another."


@pytest.fixture
async def member():
    """A member with the default plan's credits; the scripted model is priced so a reply costs something."""

    def create():
        user = UserFactory(username="ada", display_name="Ada Lovelace")
        hasher = PBKDF2PasswordHasher()  # the server process keeps the real hashers
        User.objects.filter(pk=user.pk).update(password=hasher.encode(PASSWORD, hasher.salt()))
        ModelPrice.objects.filter(provider="scripted").delete()
        ModelPrice.objects.create(
            provider="scripted", model="*", input_per_million=20_000 * MICRO, output_per_million=40_000 * MICRO
        )
        return user

    return await sync_to_async(create)()


async def test_a_member_creates_an_agent_and_watches_its_reply_stream_in(
    page: Page, server: ServerProcess, member, screenshots: Path
) -> None:
    await sign_in(page, "ada")
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Agents").click()
    await expect(page.get_by_role("heading", name="No agents yet")).to_be_visible()
    await page.get_by_role("link", name="Create an agent").click()

    await page.get_by_label("Name:", exact=True).fill("Streamer")
    await page.get_by_label("Provider").select_option("scripted")
    await page.get_by_label("Model:", exact=True).fill("scripted-1")
    await page.get_by_label("System prompt").fill("Answer in one sentence.")
    # Small chunks, paced, so that the page shows the reply growing.
    await page.get_by_label("Parameters").fill(json.dumps({"replies": [REPLY], "chunk_size": 4, "delay_ms": 40}))
    await page.get_by_label("calculator").check()
    await page.get_by_role("button", name="Create agent").click()

    await expect(page).to_have_url(re.compile(r"/agents/\d+/chat/$"))
    await expect(page.get_by_role("heading", name="Chat with Streamer", level=1)).to_be_visible()
    await expect(page.get_by_role("status").first).to_contain_text("Agent “Streamer” created.")
    agent = await sync_to_async(Agent.objects.get)(owner=member)
    assert (agent.tools, agent.system_prompt) == (["calculator"], "Answer in one sentence.")
    # Opened again without the flash message: base.html's <ul role="status"> of messages is an axe
    # "listitem" finding of the layout's own, not of this page.
    await page.goto(f"/agents/{agent.pk}/chat/")

    await page.get_by_label("Your message").fill("How do streams arrive?")
    await page.get_by_role("button", name="Send").click()

    reply = page.locator(".chat-message.is-assistant .chat-text")
    # A partial reply: some text, not all of it, while the reply is still streaming.
    partial = await page.wait_for_function(
        """(full) => {
            const text = document.querySelector(".chat-message.is-assistant .chat-text")?.textContent || "";
            return text.length > 0 && text.length < full.length && text;
        }""",
        arg=REPLY,
    )
    seen = await partial.json_value()
    assert REPLY.startswith(seen)
    assert len(seen) < len(REPLY)
    await expect(reply).to_have_text(REPLY)
    cost = page.locator(".chat-note.is-cost")
    await expect(cost).to_contain_text("Cost: ")
    await expect(page.get_by_role("status").last).to_have_text("Reply complete.")
    await expect(page.get_by_role("button", name="Send")).to_be_enabled()

    charge = await sync_to_async(CreditTransaction.objects.get)(user=member, kind="usage")
    assert charge.idempotency_key.startswith(f"chat:{agent.pk}:")
    await expect(cost).to_contain_text(f"Cost: {credits(-charge.amount)} credits")
    await expect(page.locator("[data-chat-balance]")).to_have_text(f"Balance: {credits(charge.balance_after)} credits")
    assert await serious_violations(page) == []
    await page.screenshot(path=screenshots / "agent-chat-reply.png", full_page=True)

    # A second turn carries the conversation so far.
    await page.get_by_label("Your message").fill("Thanks")
    await page.get_by_label("Your message").press("Enter")
    await expect(page.locator(".chat-message.is-assistant .chat-text")).to_have_count(2)
    await expect(cost).to_have_count(2)
    assert await sync_to_async(CreditTransaction.objects.filter(user=member, kind="usage").count)() == 2


async def test_a_refused_turn_is_shown_plainly_in_the_chat(page: Page, server: ServerProcess, member) -> None:
    def create() -> Agent:
        # An OpenAI agent with no credential: refused before the model is called, plainly.
        return Agent.objects.create(owner=member, name="Keyless", provider="openai", model="gpt-test")

    agent = await sync_to_async(create)()
    await sign_in(page, "ada")
    await page.goto(f"/agents/{agent.pk}/chat/")
    await page.get_by_label("Your message").fill("Hello?")
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator(".chat-note.is-error")).to_contain_text("needs a secret (its API key)")
    await expect(page.get_by_role("button", name="Send")).to_be_enabled()


async def test_the_agents_pages_work_at_both_widths_and_pass_axe(
    page: Page, server: ServerProcess, member, screenshots: Path
) -> None:
    def create() -> Agent:
        for index in range(3):
            Agent.objects.create(
                owner=member,
                name=f"Agent with a rather long name number {index}",
                provider="scripted",
                model="scripted-1",
                tools=["calculator", "current_time"][: index + 1],
            )
        return Agent.objects.filter(owner=member).first()

    agent = await sync_to_async(create)()
    await sign_in(page, "ada")
    await check_page(page, "/agents/", "agents-list", screenshots)
    await check_page(page, "/agents/new/", "agents-new", screenshots)
    await check_page(page, f"/agents/{agent.pk}/", "agents-edit", screenshots)
    await check_page(page, f"/agents/{agent.pk}/chat/", "agents-chat", screenshots)
    await check_page(page, f"/agents/{agent.pk}/delete/", "agents-delete", screenshots)
