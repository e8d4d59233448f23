"""Real Chromium, real server: sign up, confirm by code, sign in and out, switch language."""

from __future__ import annotations

import asyncio
import re
from email import message_from_string, policy
from email.message import EmailMessage
from pathlib import Path

from playwright.async_api import Locator, Page, expect

from tests.support.services import ServerProcess, wait_until

PASSWORD = "correct horse battery staple"
# The console email backend ends every message it prints with this line.
CONSOLE_EMAIL_END = "-" * 79
MESSAGE_START = re.compile(r"^Content-Type: ", re.MULTILINE)
CODE = re.compile(r"^\s*([A-Z0-9]{4}-[A-Z0-9]{4})\s*$", re.MULTILINE)


def emails_in(log: str) -> list[EmailMessage]:
    """The messages the console email backend printed, in order, among the server's other output."""
    messages = []
    for chunk in log.split(CONSOLE_EMAIL_END)[:-1]:
        # Server log lines come before the headers; a message's first header is Content-Type.
        start = MESSAGE_START.search(chunk)
        if start:
            messages.append(message_from_string(chunk[start.start() :], policy=policy.default))
    return messages


def last_code_sent_to(log: str, recipient: str) -> str | None:
    codes = []
    for message in emails_in(log):
        if message["To"] != recipient:
            continue
        # get_content() undoes quoted-printable or base64 and the charset.
        for part in message.walk():
            if part.get_content_type() == "text/plain":
                codes += CODE.findall(part.get_content())
    return codes[-1] if codes else None


async def wait_for_code(server: ServerProcess, recipient: str) -> str:
    # In a thread: polling the log must not block the event loop Playwright runs on.
    return await asyncio.to_thread(
        wait_until,
        lambda: last_code_sent_to(server.log(), recipient),
        timeout=15,
        what=f"a verification code for {recipient} in the server's console email",
    )


def account_nav(page: Page) -> Locator:
    return page.get_by_role("navigation", name="Account")


async def test_a_person_signs_up_confirms_by_code_and_signs_out_and_in_by_email(
    page: Page, server: ServerProcess, screenshots: Path
) -> None:
    await page.goto("/accounts/signup/")
    await expect(page.get_by_role("heading", name="Sign Up")).to_be_visible()
    await page.screenshot(path=screenshots / "signup.png", full_page=True)
    await page.locator("input[name=username]").fill("ada")
    await page.locator("input[name=email]").fill("ada@example.com")
    await page.locator("input[name=password1]").fill(PASSWORD)
    await page.locator("input[name=password2]").fill(PASSWORD)
    await page.get_by_role("button", name="Sign Up").click()

    await page.wait_for_url("**/accounts/confirm-email/")
    await page.locator("input[name=code]").fill(await wait_for_code(server, "ada@example.com"))
    await page.get_by_role("button", name="Confirm").click()

    await page.wait_for_url(re.compile(r"^http://[^/]+/$"))
    await expect(account_nav(page).get_by_role("link", name="ada", exact=True)).to_be_visible()

    await page.goto("/accounts/logout/")
    await page.get_by_role("button", name="Sign Out").click()
    await expect(account_nav(page).get_by_role("link", name="Sign in")).to_be_visible()
    await expect(account_nav(page).get_by_role("link", name="ada", exact=True)).to_have_count(0)

    await page.goto("/accounts/login/")
    await page.locator("input[name=login]").fill("ada@example.com")
    await page.locator("input[name=password]").fill(PASSWORD)
    await page.get_by_role("button", name="Sign In").click()

    await page.wait_for_url(re.compile(r"^http://[^/]+/$"))  # signed in: the dashboard
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    await expect(account_nav(page).get_by_role("link", name="ada", exact=True)).to_be_visible()
    await page.goto("/accounts/profile/")
    await expect(page.get_by_role("heading", name="Profile")).to_be_visible()
    await page.screenshot(path=screenshots / "profile.png", full_page=True)


async def test_a_visitor_switches_to_simplified_chinese_from_the_footer(page: Page) -> None:
    await page.goto("/accounts/login/")
    await expect(page.locator("html")).to_have_attribute("lang", "en")

    await page.locator("#language-select").select_option("zh-hans")
    await page.get_by_role("button", name="Switch").click()

    await expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    await expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    await expect(page.get_by_role("heading", name="登录")).to_be_visible()
