"""
A newcomer's whole journey in a real Chromium, against a real server process and its worker:
sign up, confirm the email with the emailed code, sign in; build a branching workflow with the
mouse, publish it, run it from its form, watch every node finish live, reload midway and find the
same timeline; see what the run cost on the billing page; create an API key, use it and revoke
it; switch the pages to Chinese. Screenshots of each step go to var/screenshots/journey-*.png.

The pieces come from the pages' own browser tests (builder, runs, account); this test strings
them together the way a user would, with nothing prepared but the operator's price list.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import Page, expect

from apps.billing.models import MICRO, ModelPrice, credits
from apps.executions.models import Execution
from tests.e2e.test_account_browser import billing_total_cost, create_and_revoke_key
from tests.e2e.test_browser_accounts import PASSWORD, wait_for_code
from tests.e2e.test_builder_browser import drop_from_palette, edit_setting, node, port, wire
from tests.e2e.test_pages_browser import serious_violations
from tests.e2e.test_run_browser import timeline_of, watch_run_to_the_end
from tests.support.services import ServerProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("worker")]

# The approving branch asks a model; its reply streams slowly enough (about 3 s) to reload midway.
REPLY = "Approved after a careful look at every line of the request."
SLOW_SCRIPTED = {"replies": [REPLY], "chunk_size": 2, "delay_ms": 100}
# Every node once: the approving branch ran, the rejecting one was skipped.
TIMELINE = {
    "input_1:succeeded",
    "condition_1:succeeded",
    "llm_1:succeeded",
    "output_1:succeeded",
    "output_2:skipped",
}
FIRST_NODE_MS = 30_000  # a worker process imports the model stack on its first run


@pytest.fixture
async def price_list() -> None:
    """What an operator sets up in the admin: a price for the scripted model, so a run costs credits."""

    def create() -> None:
        ModelPrice.objects.filter(provider="scripted").delete()
        ModelPrice.objects.create(
            provider="scripted", model="scripted-1", input_per_million=200 * MICRO, output_per_million=400 * MICRO
        )

    await sync_to_async(create)()


async def sign_up(page: Page, server: ServerProcess, screenshots: Path) -> None:
    await page.goto("/accounts/signup/")
    await page.locator("input[name=username]").fill("grace")
    await page.locator("input[name=email]").fill("grace@example.com")
    await page.locator("input[name=password1]").fill(PASSWORD)
    await page.locator("input[name=password2]").fill(PASSWORD)
    await page.get_by_role("button", name="Sign Up").click()
    await page.wait_for_url("**/accounts/confirm-email/")
    await page.locator("input[name=code]").fill(await wait_for_code(server, "grace@example.com"))
    await page.get_by_role("button", name="Confirm").click()
    await expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()

    # Signed out and in again with the confirmed address.
    await page.goto("/accounts/logout/")
    await page.get_by_role("button", name="Sign Out").click()
    await page.goto("/accounts/login/")
    await page.locator("input[name=login]").fill("grace@example.com")
    await page.locator("input[name=password]").fill(PASSWORD)
    await page.get_by_role("button", name="Sign In").click()
    await expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()
    await expect(page.get_by_text("No runs yet")).to_be_visible()
    await page.screenshot(path=screenshots / "journey-1-dashboard.png", full_page=True)


async def build_and_publish(page: Page, screenshots: Path) -> int:
    """input -> condition: true -> llm (slow) -> output "approved"; false -> output "rejected"."""
    await page.goto("/workflows/new/")
    await page.get_by_label("Name").fill("Approvals")
    await page.get_by_role("button", name="Create and open the builder").click()
    await expect(page).to_have_url(re.compile(r"/workflows/\d+/$"))
    workflow_id = int(re.search(r"/workflows/(\d+)/$", page.url).group(1))

    await drop_from_palette(page, "condition", 380, 60)
    await drop_from_palette(page, "llm", 140, 280)
    await drop_from_palette(page, "output", 380, 420)
    await drop_from_palette(page, "output", 540, 240)
    await expect(node(page, "output_2")).to_be_visible()

    await edit_setting(page, "input_1", "name", "request")
    await edit_setting(page, "condition_1", "expression", "value == 'yes'")
    await edit_setting(page, "llm_1", "provider", "scripted")
    await edit_setting(page, "llm_1", "model", "scripted-1")
    await edit_setting(page, "llm_1", "parameters", json.dumps(SLOW_SCRIPTED))
    await edit_setting(page, "llm_1", "prompt", "Review: {{ request }}")
    await expect(port(page, "llm_1", "request", "input")).to_be_visible()
    await edit_setting(page, "output_1", "name", "approved")
    await edit_setting(page, "output_2", "name", "rejected")

    await wire(page, "input_1", "value", "condition_1", "value")
    await wire(page, "condition_1", "true", "llm_1", "request")
    await wire(page, "llm_1", "text", "output_1", "value")
    await wire(page, "condition_1", "false", "output_2", "value")
    await expect(page.locator("path.edge")).to_have_count(4)

    await page.get_by_role("button", name="Publish").click()
    await expect(page.locator("#builder-status")).to_have_text("Version 1 published.")
    await expect(page.locator("#versions-body")).to_contain_text("Version 1")
    await page.screenshot(path=screenshots / "journey-2-builder.png", full_page=True)
    return workflow_id


async def run_and_watch(page: Page, workflow_id: int, screenshots: Path) -> str:
    """Start from the run form, reload while the model streams, and follow the run to its end."""
    await page.goto(f"/workflows/{workflow_id}/run/")
    await page.get_by_role("textbox", name="request").fill("yes")
    await page.get_by_role("button", name=re.compile("^Start")).click()
    await expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}/$"))
    run_id = re.search(r"/runs/([0-9a-f-]{36})/$", page.url).group(1)

    # Midway: the model's node is running and some of its text has arrived.
    model = page.locator('#timeline-list > li[data-node-id="llm_1"]')
    await expect(model).to_have_attribute("data-status", "running", timeout=FIRST_NODE_MS)
    await expect(model).to_contain_text(REPLY[:8])
    await page.screenshot(path=screenshots / "journey-3-run-live.png", full_page=True)
    await page.reload()

    followed = await watch_run_to_the_end(page)
    assert len(followed) == len(TIMELINE)
    assert set(followed) == TIMELINE
    await expect(model).to_contain_text(REPLY)
    await expect(page.locator("#run-cost-label")).to_have_text("Cost")  # no longer "so far"
    await page.screenshot(path=screenshots / "journey-4-run-finished.png", full_page=True)
    await page.reload()  # a fresh load draws the same timeline from the database
    assert await timeline_of(page) == followed
    return run_id


async def test_a_newcomer_builds_runs_watches_pays_and_switches_to_chinese(
    page: Page, server: ServerProcess, price_list, screenshots: Path
) -> None:
    await page.set_viewport_size({"width": 1440, "height": 900})
    await sign_up(page, server, screenshots)

    workflow_id = await build_and_publish(page, screenshots)
    run_id = await run_and_watch(page, workflow_id, screenshots)

    run = await sync_to_async(Execution.objects.get)(pk=run_id)
    assert (run.status, run.outputs) == ("succeeded", {"approved": REPLY})
    assert run.cost > 0
    # Nothing else has cost anything: the period's total on the billing page is this run's cost.
    assert await billing_total_cost(page) == credits(run.cost)
    await expect(page.locator("#transactions")).to_contain_text("Approvals")
    await page.screenshot(path=screenshots / "journey-5-billing.png", full_page=True)

    await create_and_revoke_key(page, name="Journey key")
    await page.screenshot(path=screenshots / "journey-6-api-keys.png", full_page=True)

    await page.locator("#language-select").select_option("zh-hans")
    await page.get_by_role("button", name="Switch").click()
    await expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    await page.goto("/")
    await expect(page.get_by_role("heading", name="仪表盘", level=1)).to_be_visible()
    await expect(page.get_by_role("navigation", name="主导航").get_by_role("link", name="工作流")).to_be_visible()
    assert await serious_violations(page) == []
    await page.screenshot(path=screenshots / "journey-7-dashboard-zh-hans.png", full_page=True)
