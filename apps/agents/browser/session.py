"""A node's handle on its run's browser context, and what each action does on the page."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from apps.agents import egress
from apps.agents.browser.errors import BrowserError, action_limit, first_line
from apps.agents.browser.traffic import REDIRECT_MARKER

if TYPE_CHECKING:
    from playwright.async_api import Page

    from apps.agents.browser.pool import BrowserPool, OpenContext

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 20_000
MAX_LINKS = 200
MAX_TABLE_ROWS = 1_000

SETTLED = f"() => !document.querySelector('meta[name=\"{REDIRECT_MARKER}\"]')"

LINKS_JS = """(root, limit) => [...root.querySelectorAll('a[href]')].slice(0, limit).map(
    (a) => ({text: a.innerText.trim(), href: a.href}))"""

TABLE_JS = """(table, limit) => {
    const cells = (row) => [...row.querySelectorAll('th,td')].map((cell) => cell.innerText.trim());
    const rows = [...table.querySelectorAll('tr')].slice(0, limit + 1);
    if (!rows.length) return [];
    const head = rows[0].querySelector('th') && !rows[0].querySelector('td') ? cells(rows[0]) : null;
    const body = (head ? rows.slice(1) : rows).slice(0, limit).map(cells);
    if (!head) return body;
    const named = (values) => head.map((name, i) => [name || `column_${i + 1}`, values[i] ?? '']);
    return body.map((values) => Object.fromEntries(named(values)));
}"""


async def _settle(page: Page) -> None:
    """Wait until a redirect page (see traffic.py) has given way to its target and that has loaded."""
    await page.wait_for_function(SETTLED)
    await page.wait_for_load_state("load")


async def _where(page: Page) -> dict[str, str]:
    return {"url": page.url, "title": await page.title()}


class BrowserSession:
    """
    A node's handle on its run's browser context (its own tab in it). Every method is one
    action, run on the pool's loop with a timeout; failures are BrowserErrors naming `label`.
    """

    def __init__(self, pool: BrowserPool, run_key: str, tab_key: str) -> None:
        self.pool, self.run_key, self.tab_key = pool, run_key, tab_key
        self.seconds = 0.0  # wall time spent in this handle's actions

    async def _do(
        self, label: str, timeout: float | None, action: Callable[[Page, OpenContext], Awaitable[Any]]
    ) -> Any:
        limit = action_limit(timeout)
        started = time.monotonic()
        try:
            return await self.pool.call(self.pool.act(self.run_key, self.tab_key, label, limit, action))
        finally:
            self.seconds += time.monotonic() - started

    async def open(self, url: str, *, label: str = "open", timeout: float | None = None) -> dict[str, Any]:
        try:
            egress.check_url(url)
        except egress.EgressRefused as refused:
            raise BrowserError("egress_refused", f"{label}: {refused}") from None

        async def action(page: Page, session: OpenContext) -> dict[str, Any]:
            from playwright.async_api import Error as PlaywrightError

            session.problems.pop(url, None)
            try:
                response = await page.goto(url, wait_until="load")
            except PlaywrightError as exc:
                # The tab would go on to show Chromium's error page, a navigation of its own that
                # could cut short the next step's: close it, and the next action gets a fresh tab.
                with contextlib.suppress(PlaywrightError):
                    await page.close()
                if url in session.problems:
                    code, reason = session.problems[url]
                    raise BrowserError(code, f"{label}: {reason}") from None
                if "Download is starting" in first_line(exc):
                    raise BrowserError(
                        "browser_step_failed", f"{label}: the URL is a download; downloads are off"
                    ) from None
                if "ERR_" in first_line(exc):
                    # "net::ERR_… at <url>": the step names the URL already (without a query that may hold a token).
                    reason = first_line(exc).split(" at ", 1)[0]
                    raise BrowserError("browser_step_failed", f"{label} failed: {reason}") from None
                raise
            await _settle(page)
            return {**await _where(page), "status": response.status if response else None}

        return await self._do(label, timeout, action)

    async def click(self, selector: str, *, label: str = "click", timeout: float | None = None) -> dict[str, str]:
        async def action(page: Page, session: OpenContext) -> dict[str, str]:
            await page.locator(selector).first.click()
            await _settle(page)
            return await _where(page)

        return await self._do(label, timeout, action)

    async def fill(self, selector: str, value: str, *, label: str = "fill", timeout: float | None = None) -> None:
        async def action(page: Page, session: OpenContext) -> None:
            await page.locator(selector).first.fill(value)

        await self._do(label, timeout, action)

    async def select(
        self, selector: str, value: str, *, label: str = "select", timeout: float | None = None
    ) -> list[str]:
        async def action(page: Page, session: OpenContext) -> list[str]:
            locator = page.locator(selector).first
            try:
                return await locator.select_option(value=value)
            except Exception:
                return await locator.select_option(label=value)

        return await self._do(label, timeout, action)

    async def wait_for(
        self, *, selector: str | None = None, text: str | None = None, label: str = "wait", timeout: float | None = None
    ) -> None:
        async def action(page: Page, session: OpenContext) -> None:
            await _settle(page)
            locator = page.locator(selector) if selector else page.get_by_text(text or "")
            await locator.first.wait_for(state="visible")

        await self._do(label, timeout, action)

    async def extract_text(
        self, selector: str | None = None, *, label: str = "extract text", timeout: float | None = None
    ) -> str:
        async def action(page: Page, session: OpenContext) -> str:
            text = await page.locator(selector or "body").first.inner_text()
            return text.strip()[:MAX_TEXT_CHARS]

        return await self._do(label, timeout, action)

    async def extract_links(
        self, selector: str | None = None, *, label: str = "extract links", timeout: float | None = None
    ) -> list[dict[str, str]]:
        async def action(page: Page, session: OpenContext) -> list[dict[str, str]]:
            return await page.locator(selector or "body").first.evaluate(LINKS_JS, MAX_LINKS)

        return await self._do(label, timeout, action)

    async def extract_table(
        self, selector: str, *, label: str = "extract table", timeout: float | None = None
    ) -> list[Any]:
        async def action(page: Page, session: OpenContext) -> list[Any]:
            return await page.locator(selector).first.evaluate(TABLE_JS, MAX_TABLE_ROWS)

        return await self._do(label, timeout, action)

    async def screenshot(
        self,
        *,
        selector: str | None = None,
        full_page: bool = False,
        label: str = "screenshot",
        timeout: float | None = None,
    ) -> bytes:
        async def action(page: Page, session: OpenContext) -> bytes:
            if selector:
                return await page.locator(selector).first.screenshot(type="png")
            return await page.screenshot(type="png", full_page=full_page)

        return await self._do(label, timeout, action)

    async def location(self, *, label: str = "location", timeout: float | None = None) -> dict[str, str]:
        async def action(page: Page, session: OpenContext) -> dict[str, str]:
            return await _where(page)

        return await self._do(label, timeout, action)

    async def close(self) -> None:
        """Close this handle's tab (the run's context stays open for its other nodes); never raises."""
        if self.run_key in self.pool.open_keys:
            try:
                await self.pool.call(self.pool.close_tab(self.run_key, self.tab_key))
            except Exception:
                logger.warning("closing a browser tab of run %s failed", self.run_key, exc_info=True)
