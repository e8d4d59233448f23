"""
The pool itself: the loop thread, Chromium processes, the runs' contexts and tabs, health and
housekeeping. Everything Playwright lives on the pool's loop (see the package docstring).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from django.conf import settings

from apps.agents import egress
from apps.agents.browser import traffic
from apps.agents.browser.breaker import CircuitBreaker
from apps.agents.browser.errors import BrowserError, action_limit, first_line
from apps.agents.browser.session import BrowserSession

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page, Playwright

logger = logging.getLogger(__name__)

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Containment: all page traffic is fulfilled by the route handler, so Chromium needs no network
# of its own. Name resolution fails and the proxy is a closed port, so anything that escapes
# routing (WebRTC, a future request type) goes nowhere.
CONTAINMENT_FLAGS = [
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
]
DEAD_END_PROXY = "http://127.0.0.1:1"
MARKER_FLAG = "--switchboard-browser="

VIEWPORT = {"width": 1280, "height": 800}
HANG_GRACE_SECONDS = 5.0  # beyond an action's own timeout before the pool gives up on Playwright
PROBE_TIMEOUT_SECONDS = 3.0  # a healthy browser answers a CDP call in milliseconds
CLOSE_TIMEOUT_SECONDS = 10.0
PUBLISH_EVERY_SECONDS = 15.0


@dataclass(eq=False)
class _Slot:
    """One Chromium process."""

    browser: Browser
    marker: str
    launched_at: float
    idle_since: float
    sessions: set[str] = field(default_factory=set)
    alive: bool = True
    closing: bool = False

    def pid(self) -> int | None:
        return pid_of_marker(self.marker)


@dataclass(eq=False)
class _Tab:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    page: Page | None = None


@dataclass(eq=False)
class OpenContext:
    """One run's browser context."""

    key: str
    slot: _Slot
    context: BrowserContext
    client: httpx.AsyncClient
    tabs: dict[str, _Tab] = field(default_factory=dict)
    problems: dict[str, tuple[str, str]] = field(default_factory=dict)  # URL -> (code, why it was not fetched)

    def failed_to_fetch(self, url: str, code: str, reason: str) -> None:
        self.problems[url] = (code, reason)
        while len(self.problems) > 50:
            self.problems.pop(next(iter(self.problems)))


def pid_of_marker(marker: str) -> int | None:
    """The browser process launched with this marker flag (Linux /proc), or None."""
    needle = f"{MARKER_FLAG}{marker}".encode()
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if needle in (entry / "cmdline").read_bytes().split(b"\0"):
                return int(entry.name)
    return None


class BrowserPool:
    """The process's Chromium processes and the runs' contexts; see the package docstring."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.worker = f"{socket.gethostname()}:{self.pid}"
        self.breaker = CircuitBreaker()
        self.counters: dict[str, int] = {"launches": 0, "launch_failures": 0, "crashes": 0, "hangs": 0, "idle": 0}
        self.failures: dict[str, int] = {}
        self.open_keys: set[str] = set()  # read from other threads: which runs hold a context
        self._start_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._home: str | None = None
        self._playwright: Playwright | None = None
        self._slots: list[_Slot] = []
        self._sessions: dict[str, OpenContext] = {}
        self._launching = 0
        self._opening: dict[str, asyncio.Task] = {}
        self._capacity: asyncio.Condition | None = None
        self._housekeeping: asyncio.Task | None = None

    # --- the loop thread ----------------------------------------------------------------

    def _started_loop(self) -> asyncio.AbstractEventLoop:
        with self._start_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                self._home = tempfile.mkdtemp(prefix="switchboard-browser-")
                self._thread = threading.Thread(
                    target=self._serve, args=(loop, ready), name="browser-pool", daemon=True
                )
                self._thread.start()
                ready.wait()
                self._loop = loop
                atexit.register(self.shutdown)
            return self._loop

    def _serve(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        self._capacity = asyncio.Condition()
        self._housekeeping = loop.create_task(self._keep_house())
        loop.call_soon(ready.set)
        loop.run_forever()
        loop.close()

    async def call(self, coroutine: Awaitable[Any]) -> Any:
        """Run `coroutine` on the pool's loop and wait for it from the caller's loop."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self._started_loop())
        return await asyncio.wrap_future(future)

    def shutdown(self) -> None:
        """Close every context and browser, stop the driver and the loop thread."""
        with self._start_lock:
            loop, thread, self._loop = self._loop, self._thread, None
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._close_everything(), loop).result(CLOSE_TIMEOUT_SECONDS * 2)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(CLOSE_TIMEOUT_SECONDS)
        if self._home:
            shutil.rmtree(self._home, ignore_errors=True)
        atexit.unregister(self.shutdown)

    # --- what other threads may read -----------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Numbers for metrics and operators (a copy; safe from any thread)."""
        slots = list(self._slots)
        return {
            "worker": self.worker,
            "processes": sum(1 for slot in slots if slot.alive),
            "contexts": len(self.open_keys),
            "capacity": int(settings.BROWSER_MAX_PROCESSES) * int(settings.BROWSER_MAX_CONTEXTS_PER_PROCESS),
            "breaker_open": self.breaker.is_open,
            **self.counters,
            "action_failures": dict(self.failures),
        }

    def browser_pids(self) -> list[int]:
        return [pid for slot in list(self._slots) if slot.alive and (pid := slot.pid()) is not None]

    # --- launching and choosing a browser (pool loop) ------------------------------------

    async def _driver(self) -> Playwright:
        if self._playwright is None:
            from playwright.async_api import async_playwright

            self._playwright = await async_playwright().start()
        return self._playwright

    async def _launch(self) -> _Slot:
        """Start a browser. Shielded from the caller's cancellation: a launch that completes after
        its caller gave up still lands in the pool (as spare capacity) instead of leaking a process."""
        self.breaker.before_launch(time.monotonic())
        self._launching += 1
        task = asyncio.get_running_loop().create_task(self._launch_unshielded())
        task.add_done_callback(self._done_launching)
        return await asyncio.shield(task)

    def _done_launching(self, task: asyncio.Task) -> None:
        self._launching -= 1
        if not task.cancelled():
            task.exception()  # retrieved: a caller that gave up would leave it unread
        self._notify()

    async def _launch_unshielded(self) -> _Slot:
        marker = uuid.uuid4().hex
        try:
            driver = await self._driver()
            browser = await driver.chromium.launch(
                executable_path=str(settings.BROWSER_EXECUTABLE),
                args=[
                    *CHROMIUM_FLAGS,
                    *CONTAINMENT_FLAGS,
                    f"--js-flags=--max-old-space-size={int(settings.BROWSER_JS_HEAP_MB)}",
                    f"{MARKER_FLAG}{marker}",
                ],
                proxy={"server": DEAD_END_PROXY},
                # Chromium writes into $HOME even with a temporary profile.
                env={**os.environ, "HOME": self._home or tempfile.gettempdir()},
                timeout=float(settings.BROWSER_LAUNCH_TIMEOUT_SECONDS) * 1000,
            )
        except Exception as exc:
            reason = first_line(exc)[:300]
            self.counters["launch_failures"] += 1
            self.breaker.failed(time.monotonic(), reason)
            logger.warning("browser launch failed (%d in a row): %s", self.breaker.failures, reason)
            if not self._slots:
                await self._stop_driver()  # a dead driver is restarted by the next launch
            raise BrowserError(
                "browser_unavailable", f"the browser could not start: {reason}", transient=True
            ) from None
        self.breaker.succeeded()
        self.counters["launches"] += 1
        now = time.monotonic()
        slot = _Slot(browser=browser, marker=marker, launched_at=now, idle_since=now)
        browser.on("disconnected", lambda _browser: self._gone(slot))
        self._slots.append(slot)
        logger.info("browser launched (pid %s; %d running)", slot.pid(), len(self._slots))
        return slot

    def _gone(self, slot: _Slot) -> None:
        if not slot.alive:
            return
        slot.alive = False
        if slot in self._slots:
            self._slots.remove(slot)
        if not slot.closing:
            self.counters["crashes"] += 1
            logger.warning("a browser process exited unexpectedly; %d runs lose their context", len(slot.sessions))
        self._notify()

    def _notify(self) -> None:
        async def notify() -> None:
            async with self._capacity:
                self._capacity.notify_all()

        asyncio.get_running_loop().create_task(notify())

    def _free_slot(self) -> _Slot | None:
        limit = int(settings.BROWSER_MAX_CONTEXTS_PER_PROCESS)
        free = [slot for slot in self._slots if slot.alive and not slot.closing and len(slot.sessions) < limit]
        # Pack contexts onto the fewest browsers: an unused one can then close when idle.
        return max(free, key=lambda slot: len(slot.sessions), default=None)

    def _may_launch(self) -> bool:
        running = sum(1 for slot in self._slots if slot.alive) + self._launching
        return running < int(settings.BROWSER_MAX_PROCESSES)

    async def _slot_for_new_context(self, timeout: float) -> _Slot:
        deadline = time.monotonic() + timeout
        while True:
            slot = self._free_slot()
            if slot is not None:
                return slot
            if self._may_launch():
                return await self._launch()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrowserError(
                    "browser_busy",
                    f"all {self.snapshot()['capacity']} browser contexts of this worker are in use; try again later",
                    transient=True,
                )
            async with self._capacity:
                # Checked again under the lock: a release notified before we waited is not lost.
                if self._free_slot() is None and not self._may_launch():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._capacity.wait(), remaining)

    # --- a run's context (pool loop) ----------------------------------------------------

    async def _open_session(self, key: str, timeout: float) -> OpenContext:
        """The run's context, opened by a task of its own: a caller cancelled meanwhile (a node
        timeout) leaves it to the run's end to close, instead of leaking a half-made context."""
        opening = self._opening.get(key)
        if opening is None:
            self.open_keys.add(key)
            opening = self._opening[key] = asyncio.get_running_loop().create_task(self._open_unshielded(key, timeout))
            opening.add_done_callback(lambda task: self._opened(key, task))
        return await asyncio.shield(opening)

    def _opened(self, key: str, task: asyncio.Task) -> None:
        self._opening.pop(key, None)
        if task.cancelled() or task.exception() is not None:
            self.open_keys.discard(key)

    async def _open_unshielded(self, key: str, timeout: float) -> OpenContext:
        slot = await self._slot_for_new_context(timeout)
        slot.sessions.add(key)  # reserved before the next await, so no other run takes the place
        context = None
        try:
            context = await asyncio.wait_for(
                slot.browser.new_context(
                    accept_downloads=False, service_workers="block", viewport=VIEWPORT, locale="en-US"
                ),
                timeout,
            )
            limit = action_limit(None)
            transport = egress.EgressTransport(max_bytes=int(settings.BROWSER_MAX_RESPONSE_BYTES), total_timeout=limit)
            client = egress.async_client(timeout=httpx.Timeout(limit), transport=transport)
            session = OpenContext(key=key, slot=slot, context=context, client=client)
            await context.route("**/*", lambda route: traffic.route_through_egress(session, route))
            await context.route_web_socket("**/*", traffic.refuse_web_socket)
        except Exception as exc:
            slot.sessions.discard(key)
            if context is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(context.close(), CLOSE_TIMEOUT_SECONDS)
            self._notify()
            raise BrowserError(
                "browser_crashed", f"the browser could not open a context: {first_line(exc)}", transient=True
            ) from None
        self._sessions[key] = session
        return session

    async def _close_session(self, key: str) -> None:
        if key in self._opening:
            await asyncio.wait([self._opening[key]])
        session = self._sessions.pop(key, None)
        self.open_keys.discard(key)
        if session is None:
            return
        session.slot.sessions.discard(key)
        if not session.slot.sessions:
            session.slot.idle_since = time.monotonic()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(session.context.close(), CLOSE_TIMEOUT_SECONDS)
        with contextlib.suppress(Exception):
            await session.client.aclose()
        self._notify()

    async def _tab(self, key: str, tab_key: str, timeout: float) -> tuple[OpenContext, _Tab]:
        session = self._sessions.get(key)
        if session is not None and not session.slot.alive:
            was_in_use = tab_key in session.tabs
            await self._close_session(key)
            session = None
            if was_in_use:
                raise BrowserError(
                    "browser_crashed",
                    "the browser of this run stopped (it crashed or hung) and was replaced; "
                    "the page has to be opened again",
                    transient=True,
                )
        if session is None:
            session = await self._open_session(key, timeout)
        return session, session.tabs.setdefault(tab_key, _Tab())

    async def close_tab(self, key: str, tab_key: str) -> None:
        session = self._sessions.get(key)
        tab = session.tabs.pop(tab_key, None) if session else None
        if tab is not None and tab.page is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(tab.page.close(), CLOSE_TIMEOUT_SECONDS)

    # --- actions (pool loop) ------------------------------------------------------------

    async def act(
        self, key: str, tab_key: str, label: str, timeout: float, action: Callable[[Page, OpenContext], Awaitable[Any]]
    ) -> Any:
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        session: OpenContext | None = None
        tab: _Tab | None = None
        try:
            # Playwright times each call itself; this outer limit catches a driver or browser that
            # no longer answers at all (and covers getting a context and a tab).
            async with asyncio.timeout(timeout + HANG_GRACE_SECONDS):
                session, tab = await self._tab(key, tab_key, timeout)
                async with tab.lock:
                    if tab.page is None or tab.page.is_closed():
                        tab.page = await session.context.new_page()
                    tab.page.set_default_timeout(timeout * 1000)
                    return await action(tab.page, session)
        except BrowserError as exc:
            self._count(exc.code)
            raise
        except (PlaywrightTimeout, TimeoutError):
            if session is not None and not await self._responds(session.slot):
                await self._replace(session.slot)
                await self._close_session(key)  # told now: the run's next use starts afresh
                raise self._failed(
                    "browser_crashed", f"{label}: the browser stopped responding and was replaced", True
                ) from None
            raise self._failed("browser_timeout", f"{label} did not finish within {timeout:g} s", True) from None
        except PlaywrightError as exc:
            reason = first_line(exc)
            if session is not None and (not session.slot.alive or not session.slot.browser.is_connected()):
                await self._close_session(key)  # told now: the run's next use starts afresh
                raise self._failed("browser_crashed", f"{label}: the browser process stopped", True) from None
            if tab is not None and tab.page is not None and "crash" in reason.lower():
                crashed, tab.page = tab.page, None  # the renderer died; the next action gets a new tab
                with contextlib.suppress(Exception):
                    await crashed.close()
                raise self._failed("browser_step_failed", f"{label} failed: the page crashed", False) from None
            raise self._failed("browser_step_failed", f"{label} failed: {reason}", False) from None

    def _failed(self, code: str, message: str, transient: bool) -> BrowserError:
        self._count(code)
        return BrowserError(code, message, transient=transient)

    def _count(self, code: str) -> None:
        self.failures[code] = self.failures.get(code, 0) + 1

    async def _responds(self, slot: _Slot) -> bool:
        if not slot.alive:
            return False

        async def ping() -> None:
            cdp = await slot.browser.new_browser_cdp_session()
            await cdp.send("Browser.getVersion")
            await cdp.detach()

        try:
            await asyncio.wait_for(ping(), PROBE_TIMEOUT_SECONDS)
        except Exception:
            return False
        return True

    async def _replace(self, slot: _Slot) -> None:
        """Kill a browser that stopped answering; its runs get a fresh one on their next use."""
        self.counters["hangs"] += 1
        slot.closing = True
        logger.warning("a browser stopped responding; killing it (pid %s)", slot.pid())
        pid = slot.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(slot.browser.close(), CLOSE_TIMEOUT_SECONDS)
        self._gone(slot)

    # --- housekeeping (pool loop) --------------------------------------------------------

    async def _keep_house(self) -> None:
        last_publish = 0.0
        while True:
            idle_limit = float(settings.BROWSER_IDLE_SECONDS)
            await asyncio.sleep(max(0.1, min(idle_limit / 4, 5.0)))
            now = time.monotonic()
            for slot in [s for s in self._slots if s.alive and not s.sessions and not s.closing]:
                if now - slot.idle_since >= idle_limit:
                    self.counters["idle"] += 1
                    await self._close_slot(slot)
            if now - last_publish >= PUBLISH_EVERY_SECONDS:
                last_publish = now
                from apps.agents.browser.metrics import publish  # metrics imports this module

                with contextlib.suppress(Exception):
                    await asyncio.get_running_loop().run_in_executor(None, publish, self.snapshot())

    async def _close_slot(self, slot: _Slot) -> None:
        slot.closing = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(slot.browser.close(), CLOSE_TIMEOUT_SECONDS)
        self._gone(slot)

    async def _stop_driver(self) -> None:
        driver, self._playwright = self._playwright, None
        if driver is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(driver.stop(), CLOSE_TIMEOUT_SECONDS)

    async def _close_everything(self) -> None:
        for key in list(self._sessions):
            await self._close_session(key)
        for slot in list(self._slots):
            await self._close_slot(slot)
        await self._stop_driver()
        if self._housekeeping is not None:
            self._housekeeping.cancel()

    # --- the API for callers on any loop --------------------------------------------------

    def session(self, run_key: str, tab_key: str) -> BrowserSession:
        return BrowserSession(self, run_key, tab_key)

    async def release(self, run_key: str) -> None:
        """Close the run's context (the run ended)."""
        if run_key in self.open_keys:
            await self.call(self._close_session(run_key))


_pool: BrowserPool | None = None
_pool_lock = threading.Lock()


def get_pool() -> BrowserPool:
    """This process's pool (a forked child gets its own)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool.pid != os.getpid():
            _pool = BrowserPool()
        return _pool


def shutdown_pool() -> None:
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None and pool.pid == os.getpid():
        pool.shutdown()


def session_for(run_key: str, tab_key: str) -> BrowserSession:
    return get_pool().session(run_key, tab_key)


async def release_run(run_key: str) -> None:
    """Close a run's browser context if it has one; never raises (the run is ending anyway)."""
    pool = _pool
    if pool is None or pool.pid != os.getpid() or run_key not in pool.open_keys:
        return
    try:
        await asyncio.wait_for(pool.release(run_key), CLOSE_TIMEOUT_SECONDS + 5)
    except Exception:
        logger.warning("closing the browser context of run %s failed", run_key, exc_info=True)


def current_pool() -> BrowserPool | None:
    """This process's pool if one was started (never starts one)."""
    pool = _pool
    return pool if pool is not None and pool.pid == os.getpid() else None
