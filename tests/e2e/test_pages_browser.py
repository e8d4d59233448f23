"""
The end-user pages in a real Chromium against a real server process: sign in, the dashboard at
390 px and 1440 px (no sideways scrolling, the menu button on narrow screens), axe-core on the
dashboard, the sign-in page and the 404 page in light and dark (no serious or critical
violations), the switch to Simplified Chinese. Screenshots go to var/screenshots/.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.utils import timezone
from playwright.async_api import Page, expect

from apps.billing import services as billing
from apps.billing.models import MICRO, CreditTransaction
from apps.users.models import User
from tests.factories import PASSWORD, UserFactory, published
from tests.pages.conftest import stored_runs
from tests.support.services import BASE_DIR, ServerProcess

pytestmark = pytest.mark.django_db(transaction=True)

AXE = BASE_DIR / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = {"narrow": {"width": 390, "height": 844}, "wide": {"width": 1440, "height": 900}}
# Every violation axe finds, with where, so a failure says what to fix.
AXE_RUN = """async () => {
    const result = await axe.run(document, {resultTypes: ["violations"]});
    return result.violations.map((v) => ({
        id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")),
    }));
}"""


@pytest.fixture
async def member():
    """A member with a few runs in every state and some usage spread over the last days."""

    def create():
        user = UserFactory(username="ada", display_name="Ada Lovelace")
        # The tests hash with MD5 for speed; the server process keeps the real hashers.
        hasher = PBKDF2PasswordHasher()
        User.objects.filter(pk=user.pk).update(password=hasher.encode(PASSWORD, hasher.salt()))
        version = published(user, [("in", "input", {"name": "text"})], [], name="Support triage")
        stored_runs(version, user, ["succeeded", "failed", "running", "pending", "cancelled", "timed_out", "succeeded"])
        now = timezone.now()
        for days_ago, spent in [(12, 0.4), (6, 1.2), (3, 0.7), (1, 0.2), (0, 0.9)]:
            row, _ = billing.ledger_post(
                user=user, kind="usage", amount=-int(spent * MICRO), idempotency_key=f"e2e-usage:{user.pk}:{days_ago}"
            )
            # History for the chart: the ledger only ever writes "now".
            CreditTransaction.objects.filter(pk=row.pk).update(created_at=now - timedelta(days=days_ago))
        return user

    return await sync_to_async(create)()


def axe_missing() -> None:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `npm ci` (make test does)", pytrace=False)


async def serious_violations(page: Page) -> list[dict]:
    axe_missing()
    await page.add_script_tag(path=str(AXE))
    violations = await page.evaluate(AXE_RUN)
    return [violation for violation in violations if violation["impact"] in ("serious", "critical")]


async def fits(page: Page) -> bool:
    return await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


async def check_page(page: Page, path: str, name: str, screenshots: Path) -> None:
    """At both widths and in both colour schemes: no sideways scroll, no serious axe finding, a screenshot."""
    for width, size in WIDTHS.items():
        for scheme in ("light", "dark"):
            await page.set_viewport_size(size)
            await page.emulate_media(color_scheme=scheme)
            await page.goto(path)
            assert await fits(page), f"{path} scrolls sideways at {size['width']} px"
            assert await serious_violations(page) == [], f"{path} at {size['width']} px, {scheme}"
            await page.screenshot(path=screenshots / f"{name}-{width}-{scheme}.png", full_page=True)


async def sign_in(page: Page, username: str) -> None:
    await page.goto("/")
    await expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    await page.locator("input[name=login]").fill(username)
    await page.locator("input[name=password]").fill(PASSWORD)
    await page.get_by_role("button", name="Sign In").click()
    await expect(page).to_have_url(re.compile(r"^http://[^/]+/$"))


async def test_the_dashboard_works_at_both_widths_and_passes_axe(
    page: Page, server: ServerProcess, member, screenshots: Path
) -> None:
    await sign_in(page, "ada")

    await expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()
    runs = page.get_by_role("region", name="Recent runs").get_by_role("row")
    await expect(runs).to_have_count(8)  # the header row and seven runs
    await expect(
        page.get_by_role("img", name="Credits used per day over the last 30 days: 3.4 in all.")
    ).to_be_visible()
    await expect(page.locator(".balance")).to_have_text("Credit balance: 6.6 credits")

    await check_page(page, "/", "dashboard", screenshots)


async def test_under_768_px_the_navigation_folds_behind_the_menu_button(
    page: Page, server: ServerProcess, member
) -> None:
    await sign_in(page, "ada")
    navigation = page.get_by_role("navigation", name="Main")
    menu = page.get_by_role("button", name="Menu")

    await page.set_viewport_size(WIDTHS["wide"])
    await expect(navigation).to_be_visible()
    await expect(menu).to_be_hidden()

    await page.set_viewport_size(WIDTHS["narrow"])
    await expect(navigation).to_be_hidden()
    await expect(menu).to_have_attribute("aria-expanded", "false")
    await menu.click()
    await expect(menu).to_have_attribute("aria-expanded", "true")
    await expect(navigation.get_by_role("link", name="Dashboard")).to_be_visible()
    await expect(navigation.get_by_role("link", name="Workflows")).to_be_visible()
    assert await fits(page)
    await page.keyboard.press("Escape")
    await expect(navigation).to_be_hidden()
    await expect(menu).to_be_focused()


async def test_the_sign_in_and_404_pages_pass_axe_at_both_widths(
    page: Page, server: ServerProcess, screenshots: Path
) -> None:
    await check_page(page, "/accounts/login/", "sign-in", screenshots)
    response = await page.goto("/no/such/page/")
    assert response.status == 404
    await check_page(page, "/no/such/page/", "not-found", screenshots)
    await expect(page.get_by_role("heading", name="Page not found")).to_be_visible()


async def test_a_member_switches_the_dashboard_to_simplified_chinese(
    page: Page, server: ServerProcess, member, screenshots: Path
) -> None:
    await sign_in(page, "ada")

    await page.locator("#language-select").select_option("zh-hans")
    await page.get_by_role("button", name="Switch").click()

    await expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    await expect(page.get_by_role("heading", name="仪表盘", level=1)).to_be_visible()
    await expect(page.get_by_role("heading", name="最近的运行")).to_be_visible()
    await expect(page.get_by_role("navigation", name="主导航").get_by_role("link", name="仪表盘")).to_be_visible()
    assert await serious_violations(page) == []
    await page.screenshot(path=screenshots / "dashboard-zh-hans.png", full_page=True)


async def test_the_account_pages_pass_axe_at_both_widths(
    page: Page, server: ServerProcess, member, screenshots: Path
) -> None:
    await check_page(page, "/accounts/signup/", "sign-up", screenshots)
    await check_page(page, "/accounts/password/reset/", "password-reset", screenshots)
    await sign_in(page, "ada")
    for path, name in [
        ("/accounts/profile/", "profile"),
        ("/accounts/email/", "email"),
        ("/accounts/password/change/", "password-change"),
    ]:
        await check_page(page, path, name, screenshots)
    await expect(page.get_by_role("heading", name="Change Password")).to_be_visible()
