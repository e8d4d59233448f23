"""
The API keys, credentials and billing pages in a real Chromium against a real server process:
a key created, seen once, used against the API and revoked in the page; a credential added and
deleted without its secret ever reaching the page; the billing page with usage, its period
switch and a purchase sent to a (loopback) Stripe. Each page passes check_page (390 and 1440 px,
light and dark, axe-core) and leaves screenshots in var/screenshots/.

`create_and_revoke_key(page)` and `billing_total_cost(page)` are for journey tests too.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import Page, Route, expect

from apps.agents.models import Credential, CredentialEvent
from apps.users.models import ApiKey
from tests.billing import stripe_server as stripe
from tests.e2e.test_pages_browser import (  # noqa: F401  (fixtures used by name)
    check_page,
    member,
    sign_in,
)
from tests.support.services import ServerProcess, serve_process

pytestmark = pytest.mark.django_db(transaction=True)

STRIPE_KEY = "sk_test_51AccountBrowserLoopback"
# Never to be seen in any page: the credential's secret.
CANARY = "sk-browser-canary-5d1e0c9b8a7f-NEVER-SHOWN"


@pytest.fixture
def stripe_loopback():
    with stripe.StripeServer(api_key=STRIPE_KEY) as loopback:
        yield loopback


@pytest.fixture
def server(transactional_db, stripe_loopback):
    """DEBUG off as deployed, with payments pointed at the loopback Stripe."""
    with serve_process(
        DEBUG="false",
        STRIPE_SECRET_KEY=STRIPE_KEY,
        STRIPE_WEBHOOK_SECRET="whsec_AccountBrowserLoopback",
        STRIPE_API_BASE=stripe_loopback.url,
    ) as process:
        yield process


def origin(page: Page) -> str:
    parts = urlsplit(page.url)
    return f"{parts.scheme}://{parts.netloc}"


async def api_status(page: Page, key: str) -> int:
    async with httpx.AsyncClient(timeout=15) as client:
        response = await client.get(f"{origin(page)}/api/v1/me/", headers={"Authorization": f"Bearer {key}"})
    return response.status_code


async def create_and_revoke_key(page: Page, name: str = "Browser key") -> str:
    """
    On a signed-in page: create a key with the read scope, see it once, call /api/v1/me/ with it
    (200), reload and see it gone, revoke it in the page, and see the API refuse it (401).
    Returns the key, which no longer works.
    """
    await page.goto("/accounts/api-keys/")
    await page.locator("#id_name").fill(name)
    await page.get_by_label("Read", exact=True).check()
    await page.get_by_role("button", name="Create key").click()
    shown = page.locator("#new-key")
    await expect(shown).to_be_visible()
    key = (await shown.text_content() or "").strip()
    assert re.fullmatch(r"sb_[A-Za-z0-9]{12}_[A-Za-z0-9]{40}", key), key
    assert await api_status(page, key) == 200

    await page.reload()
    await expect(page.locator("#new-key")).to_have_count(0)
    assert key not in await page.content()
    row = page.get_by_role("row").filter(has_text=name)
    await expect(row.get_by_text("Active")).to_be_visible()

    await row.get_by_role("link", name=re.compile("^Revoke")).click()
    await page.get_by_role("button", name="Revoke the key").click()
    await expect(page.get_by_text(f"The key “{name}” was revoked.")).to_be_visible()
    await expect(page.get_by_role("row").filter(has_text=name).get_by_text("Revoked")).to_be_visible()
    assert await api_status(page, key) == 401
    return key


async def billing_total_cost(page: Page) -> str:
    """The credits spent over the billing page's default period (30 days), as the page shows them."""
    await page.goto("/billing/")
    return (await page.locator("#usage-total").text_content() or "").strip()


@pytest.mark.usefixtures("member")
async def test_a_member_creates_sees_once_uses_and_revokes_an_api_key(
    page: Page, server: ServerProcess, screenshots: Path
) -> None:
    await sign_in(page, "ada")

    key = await create_and_revoke_key(page)

    stored = await sync_to_async(ApiKey.objects.get)(owner__username="ada")
    assert stored.status == "revoked"
    assert key.startswith(stored.prefix)
    await check_page(page, "/accounts/api-keys/", "api-keys", screenshots)


@pytest.mark.usefixtures("member")
async def test_a_member_adds_and_deletes_a_credential_whose_secret_never_shows(
    page: Page, server: ServerProcess, screenshots: Path
) -> None:
    await sign_in(page, "ada")
    await page.goto("/credentials/")
    await expect(page.get_by_text("No credentials yet")).to_be_visible()
    await page.get_by_role("link", name="Add a credential").first.click()

    await page.locator("#id_name").fill("Status API")
    await page.locator("#id_kind").select_option("http_header")
    # Only the fields the kind uses are shown.
    await expect(page.locator("#id_header_name")).to_be_visible()
    await expect(page.locator("#id_base_url")).to_be_hidden()
    await page.locator("#id_secret").fill(CANARY)
    await page.locator("#id_header_name").fill("X-Status-Token")
    await page.get_by_role("button", name="Add credential").click()

    await expect(page.get_by_text("The credential “Status API” was added.")).to_be_visible()
    row = page.get_by_role("row").filter(has_text="Status API")
    await expect(row).to_contain_text("HTTP header")
    await expect(row).to_contain_text("…HOWN")
    assert CANARY not in await page.content()
    await check_page(page, "/credentials/", "credentials", screenshots)
    await check_page(page, "/credentials/new/", "credential-form", screenshots)
    assert CANARY not in await page.content()

    await page.goto("/credentials/")
    await page.get_by_role("row").filter(has_text="Status API").get_by_role("link", name=re.compile("^Delete")).click()
    await page.get_by_role("button", name="Delete the credential").click()
    await expect(page.get_by_text("The credential “Status API” was deleted.")).to_be_visible()
    await expect(page.get_by_text("No credentials yet")).to_be_visible()

    actions = await sync_to_async(
        lambda: list(CredentialEvent.objects.filter(credential_name="Status API").values_list("action", flat=True))
    )()
    assert actions == ["delete", "create"]
    assert not await sync_to_async(Credential.objects.filter(name="Status API").exists)()


@pytest.mark.usefixtures("member")
async def test_the_billing_page_shows_usage_switches_period_and_sends_a_purchase_to_stripe(
    page: Page, server: ServerProcess, stripe_loopback, screenshots: Path
) -> None:
    await sign_in(page, "ada")

    assert await billing_total_cost(page) == "3.4"
    await expect(page.get_by_role("heading", name="Billing", level=1)).to_be_visible()
    await expect(
        page.get_by_role("img", name=re.compile(r"^Credits used per day from .*: 3.4 in all\.$"))
    ).to_be_visible()
    transactions = page.get_by_role("region", name="Transactions")
    await expect(transactions.get_by_role("row")).to_have_count(7)  # the header, five usage rows, the grant
    await page.get_by_text("Show the numbers as a table").click()
    await expect(page.get_by_role("region", name="Usage by day").get_by_role("row")).to_have_count(31)

    await page.get_by_role("navigation", name="Period").get_by_role("link", name="7 days").click()
    await expect(page.locator("#usage-total")).to_have_text("3")
    await page.get_by_role("navigation", name="Kind of transaction").get_by_role("link", name="Grant").click()
    await expect(transactions.get_by_role("row")).to_have_count(2)

    await check_page(page, "/billing/", "billing", screenshots)

    # Stripe's hosted page is outside the test: answer it here and check where the buyer went.
    async def stripe_page(route: Route) -> None:
        await route.fulfill(status=200, content_type="text/html", body="<title>Stripe Checkout</title>")

    await page.route(re.compile(r"^https://checkout\.stripe\.com/"), stripe_page)
    await page.goto("/billing/#buy")
    await page.get_by_role("button", name="Buy 50 credits").click()
    await expect(page).to_have_url(re.compile(r"^https://checkout\.stripe\.com/c/pay/cs_test_"))
    [sent] = stripe_loopback.requests
    assert sent["form"]["metadata[pack]"] == "builder"
    assert sent["form"]["success_url"] == f"{server.url}/billing/?checkout=success"

    await page.goto(f"{server.url}/billing/?checkout=success")
    await expect(page.get_by_role("status").filter(has_text="Thank you!")).to_be_visible()
