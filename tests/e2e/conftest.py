"""A real headless Chromium for the browser tests, driven through Playwright's async API."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.support.services import BASE_DIR, ServerProcess, missing_service, serve_process, worker_process

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = BASE_DIR / "var" / "screenshots"
# Generous for a cold server on a busy CI machine; a healthy page takes well under a second.
TIMEOUT_MS = 15_000


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        missing_service("Chromium", f"{CHROMIUM} not installed")
    # Chromium writes into $HOME even with a temporary profile.
    home = tmp_path / "browser-home"
    home.mkdir()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            env={**os.environ, "HOME": str(home)},
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def page(browser: Browser, server: ServerProcess) -> AsyncIterator[Page]:
    """A fresh tab (its own cookies) whose relative URLs go to the server process."""
    context: BrowserContext = await browser.new_context(base_url=server.url)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield await context.new_page()
    finally:
        await context.close()


@pytest.fixture
def screenshots() -> Path:
    """Where screenshots go; CI keeps them as artifacts."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def server(transactional_db):
    """The server as deployed would answer: DEBUG off, so a missing page gets the 404 page, not Django's report."""
    with serve_process(DEBUG="false") as process:
        yield process


@pytest.fixture
def worker(server: ServerProcess):
    """On a real broker (Redis in CI) runs wait for a worker process; the embedded server has its own."""
    if settings.EMBEDDED_WORKER:
        yield None
        return
    with worker_process() as process:
        yield process


@pytest.fixture(autouse=True)
async def _close_connections_of_the_shared_thread():
    # The sync_to_async work of these tests runs in one shared thread whose connection would
    # otherwise still be open when the test database is dropped.
    yield
    await sync_to_async(connections.close_all)()
