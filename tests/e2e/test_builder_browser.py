"""
The workflow builder in a real Chromium against a real server process: a branching workflow built
with the mouse (palette drops, node drags, wires from output to input ports), its settings typed,
a validation error shown on the node it concerns, fixed, saved, published, version 1 listed; the
keyboard path (add, connect, delete); the list, the builder and the run form at both widths and in
both colour schemes with axe-core.

`build_branching_workflow(page, name)` is reusable: a journey test imports it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from playwright.async_api import Locator, Page, expect

from apps.users.models import User
from apps.workflows.models import Workflow
from tests.e2e.test_pages_browser import (
    check_page,
    serious_violations,
    sign_in,
)
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def member():
    def create():
        user = UserFactory(username="ada", display_name="Ada Lovelace")
        hasher = PBKDF2PasswordHasher()  # the server process keeps the real hashers
        User.objects.filter(pk=user.pk).update(password=hasher.encode(PASSWORD, hasher.salt()))
        return user

    return await sync_to_async(create)()


# --- Driving the builder --------------------------------------------------------------------


def node(page: Page, node_id: str) -> Locator:
    return page.locator(f'.node[data-node-id="{node_id}"]')


def port(page: Page, node_id: str, pin: str, side: str) -> Locator:
    return page.locator(f'.port.is-{side}[data-node="{node_id}"][data-pin="{pin}"]')


async def drop_from_palette(page: Page, node_type: str, x: float, y: float) -> None:
    """Drag a node type from the palette with the mouse and drop it at (x, y) of the canvas."""
    source = page.get_by_role("button", name=f"Add {node_type} node")
    await source.scroll_into_view_if_needed()
    box = await source.bounding_box()
    await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await page.mouse.down()
    canvas = await page.locator("#builder-canvas").bounding_box()
    await page.mouse.move(canvas["x"] + x, canvas["y"] + y, steps=8)
    await page.mouse.up()


async def wire(page: Page, source: str, output: str, target: str, input_: str) -> None:
    """Drag from an output port to an input port."""
    await port(page, source, output, "output").drag_to(port(page, target, input_, "input"))


async def edit_setting(page: Page, node_id: str, key: str, value: str) -> None:
    await node(page, node_id).locator(".node-title").click()
    await page.locator(f"#cfg-{node_id}-{key}").fill(value)


async def build_branching_workflow(page: Page, name: str) -> int:
    """
    With the mouse, in a signed-in page: a new workflow `name` where the starter input feeds a
    condition whose `true` branch goes through a template to the output `approved` and whose
    `false` branch goes to the output `rejected`. The first save leaves the condition's expression
    empty and must show that on the condition; once fixed, it saves and publishes version 1.
    Returns the workflow's id.
    """
    await page.goto("/workflows/new/")
    await page.get_by_label("Name").fill(name)
    await page.get_by_role("button", name="Create and open the builder").click()
    await expect(page).to_have_url(re.compile(r"/workflows/\d+/$"))
    workflow_id = int(re.search(r"/workflows/(\d+)/$", page.url).group(1))
    await expect(node(page, "input_1")).to_be_visible()
    await expect(page.get_by_role("button", name="Add condition node")).to_be_visible()

    # The canvas box is about 650 px wide at 1440 px: two columns of nodes fit.
    await drop_from_palette(page, "condition", 380, 60)
    await expect(node(page, "condition_1")).to_be_visible()
    await drop_from_palette(page, "template", 140, 280)
    await drop_from_palette(page, "output", 380, 400)
    await drop_from_palette(page, "output", 520, 240)
    await expect(node(page, "output_2")).to_be_visible()

    # A node moves by its header: the output that ended up under the others goes down a little.
    header = node(page, "output_2").locator(".node-header")
    before = await node(page, "output_2").bounding_box()
    box = await header.bounding_box()
    await page.mouse.move(box["x"] + 20, box["y"] + box["height"] / 2)
    await page.mouse.down()
    await page.mouse.move(box["x"] + 20, box["y"] + box["height"] / 2 + 20, steps=5)
    await page.mouse.up()
    after = await node(page, "output_2").bounding_box()
    assert round(after["y"] - before["y"]) == 20

    await edit_setting(page, "output_1", "name", "approved")
    await edit_setting(page, "output_2", "name", "rejected")
    await edit_setting(page, "template_1", "template", "Approved: {{ value }}")
    # The template's variable becomes an input pin once the server has read it.
    await expect(port(page, "template_1", "value", "input")).to_be_visible()

    await wire(page, "input_1", "value", "condition_1", "value")
    await wire(page, "condition_1", "true", "template_1", "value")
    await wire(page, "template_1", "text", "output_1", "value")
    await wire(page, "condition_1", "false", "output_2", "value")
    await expect(page.locator("path.edge")).to_have_count(4)
    await expect(page.locator("#builder-status")).to_have_text("Unsaved changes")

    # The condition has no expression yet: the error is shown on that node and on its field.
    await page.get_by_role("button", name="Save draft").click()
    await expect(node(page, "condition_1")).to_have_class(re.compile(r"\bhas-error\b"))
    await expect(node(page, "condition_1").locator(".node-errors")).to_contain_text(
        "'expression' is a required property"
    )
    for other in ("input_1", "template_1", "output_1", "output_2"):
        await expect(node(page, other)).not_to_have_class(re.compile(r"\bhas-error\b"))
    await expect(page.locator("#problems-body")).to_contain_text("'expression' is a required property")
    await expect(page.locator("#builder-status")).to_have_text("Not saved: fix the problems listed below.")

    await page.locator("#problems-body").get_by_role("button", name="condition_1").click()
    expression = page.locator("#cfg-condition_1-expression")
    await expect(expression).to_be_focused()
    await expect(expression).to_have_attribute("aria-invalid", "true")
    await expression.fill("value == 'yes'")
    await page.get_by_role("button", name="Save draft").click()
    await expect(page.locator("#builder-status")).to_have_text("All changes saved")
    await expect(node(page, "condition_1")).not_to_have_class(re.compile(r"\bhas-error\b"))

    await page.get_by_role("button", name="Publish").click()
    await expect(page.locator("#builder-status")).to_have_text("Version 1 published.")
    await expect(page.locator("#versions-body")).to_contain_text("Version 1")
    return workflow_id


# --- The tests ------------------------------------------------------------------------------


async def test_a_member_builds_a_branching_workflow_with_the_mouse_and_publishes_it(
    page: Page, member, screenshots: Path
) -> None:
    await sign_in(page, "ada")
    await page.set_viewport_size({"width": 1440, "height": 900})

    workflow_id = await build_branching_workflow(page, "Approvals")
    await page.screenshot(path=screenshots / "builder-published.png", full_page=True)

    workflow = await sync_to_async(Workflow.objects.get)(pk=workflow_id, owner=member)
    assert workflow.latest_version_number == 1
    nodes = {item["id"]: item for item in workflow.graph["nodes"]}
    assert {key: value["type"] for key, value in nodes.items()} == {
        "input_1": "input",
        "condition_1": "condition",
        "template_1": "template",
        "output_1": "output",
        "output_2": "output",
    }
    assert nodes["condition_1"]["config"]["expression"] == "value == 'yes'"
    assert nodes["output_1"]["config"]["name"] == "approved"
    assert {(e["source"], e["source_output"], e["target"], e["target_input"]) for e in workflow.graph["edges"]} == {
        ("input_1", "value", "condition_1", "value"),
        ("condition_1", "true", "template_1", "value"),
        ("template_1", "text", "output_1", "value"),
        ("condition_1", "false", "output_2", "value"),
    }
    assert nodes["output_2"]["position"]["y"] > 200  # moved, and the move was saved

    # A reload paints the saved draft from the page itself.
    await page.reload()
    await expect(page.locator(".node")).to_have_count(5)
    await expect(page.locator("path.edge")).to_have_count(4)
    await expect(page.locator("#builder-status")).to_have_text("All changes saved")

    await page.goto("/workflows/")
    row = page.get_by_role("row").filter(has_text="Approvals")
    await expect(row).to_contain_text("Version 1")
    await row.get_by_role("link", name="Run Approvals").click()
    await expect(page.get_by_role("heading", name="Run Approvals", level=1)).to_be_visible()
    await expect(page.get_by_role("textbox", name="input")).to_be_visible()

    await check_page(page, "/workflows/", "workflow-list", screenshots)
    await check_page(page, f"/workflows/{workflow_id}/", "workflow-builder", screenshots)
    await check_page(page, f"/workflows/{workflow_id}/run/", "workflow-run", screenshots)


async def test_the_builder_works_from_the_keyboard(page: Page, member) -> None:
    await sign_in(page, "ada")
    await page.goto("/workflows/new/")
    await page.get_by_label("Name").fill("Keys")
    await page.get_by_role("button", name="Create and open the builder").click()

    await page.get_by_role("button", name="Add output node").focus()
    await page.keyboard.press("Enter")
    await expect(node(page, "output_1")).to_be_visible()

    await port(page, "input_1", "value", "output").focus()
    await page.keyboard.press("Enter")
    await expect(port(page, "input_1", "value", "output")).to_have_attribute("aria-pressed", "true")
    await port(page, "output_1", "value", "input").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("path.edge")).to_have_count(1)

    await page.get_by_role("button", name="Save draft").click()
    await expect(page.locator("#builder-status")).to_have_text("All changes saved")

    await page.get_by_role("button", name=re.compile("^Delete connection from input_1.value")).click()
    await expect(page.locator("path.edge")).to_have_count(0)
    await node(page, "output_1").locator(".node-title").click()
    await page.keyboard.press("Delete")
    await expect(node(page, "output_1")).to_have_count(0)
    await expect(page.locator("#builder-status")).to_have_text("Unsaved changes")
    await page.get_by_role("button", name="Save draft").click()
    await expect(page.locator("#builder-status")).to_have_text("All changes saved")
    # Reloaded: the "created" message of base.html's message list is not the builder's to check.
    await page.reload()
    await expect(node(page, "input_1")).to_be_visible()
    assert await serious_violations(page) == []


async def test_unsaved_work_comes_back_on_the_next_visit_unless_the_draft_changed(page: Page, member) -> None:
    await sign_in(page, "ada")
    await page.goto("/workflows/new/")
    await page.get_by_label("Name").fill("Later")
    await page.get_by_role("button", name="Create and open the builder").click()
    await expect(page).to_have_url(re.compile(r"/workflows/\d+/$"))
    builder_url = page.url
    workflow_id = int(re.search(r"/workflows/(\d+)/$", builder_url).group(1))
    await page.get_by_role("button", name="Add output node").click()
    await expect(node(page, "output_1")).to_be_visible()
    await expect(page.locator("#builder-status")).to_have_text("Unsaved changes")

    # Another visit in this browser (the tab could have closed): the work is back, not saved.
    later = await page.context.new_page()
    await later.goto(builder_url)
    await expect(node(later, "output_1")).to_be_visible()
    await expect(later.locator("#builder-status")).to_have_text("Unsaved changes from your last visit were restored.")
    stored = await sync_to_async(Workflow.objects.get)(pk=workflow_id)
    assert [item["id"] for item in stored.graph["nodes"]] == ["input_1"]

    await later.get_by_role("button", name="Discard unsaved changes").click()
    await expect(later.locator("#builder-status")).to_have_text("All changes saved")
    await expect(node(later, "output_1")).to_have_count(0)
    await expect(later.get_by_role("button", name="Discard unsaved changes")).to_be_hidden()

    # Unsaved work made on a draft that has changed since (saved elsewhere) does not come back.
    await page.get_by_role("button", name="Add template node").click()
    await expect(node(page, "template_1")).to_be_visible()

    def saved_elsewhere() -> None:
        workflow = Workflow.objects.get(pk=workflow_id)
        workflow.description = "changed"
        workflow.graph = {**workflow.graph, "nodes": [{**workflow.graph["nodes"][0], "position": {"x": 300, "y": 40}}]}
        workflow.save()

    await sync_to_async(saved_elsewhere)()
    await later.goto(builder_url)
    await expect(later.locator("#builder-status")).to_have_text("All changes saved")
    await expect(node(later, "template_1")).to_have_count(0)
