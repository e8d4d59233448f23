"""
The browser pool against a real Chromium and pages served on loopback by the test: actions,
isolation between runs, egress rules, timeouts, crashes, hangs, idle closing, the circuit
breaker, two runs on two threads (two event loops) at once, and the metrics operators see.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from apps.agents import browser
from apps.agents.browser import BrowserError, BrowserPool
from tests.support.pages import TestPages
from tests.support.services import missing_service

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(autouse=True)
def _chromium() -> None:
    if not CHROMIUM.exists():
        missing_service("Chromium", f"{CHROMIUM} not installed")


@pytest.fixture
def site(settings) -> Iterator[TestPages]:
    pages = TestPages()
    settings.EGRESS_ALLOW = [pages.netloc]
    yield pages
    pages.close()


@pytest.fixture
def pool() -> Iterator[BrowserPool]:
    pool = BrowserPool()
    yield pool
    pool.shutdown()


async def eventually(condition: Callable[[], bool], timeout: float = 15.0, what: str = "the condition") -> None:
    """Wait until `condition()` holds, checking often, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child stays a zombie until reaped: it is gone all the same.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


# --- actions ---------------------------------------------------------------------------------


async def test_it_fills_and_submits_a_form_and_reads_the_result(pool, site):
    tab = pool.session("run-1", "node")
    opened = await tab.open(f"{site.url}/form")
    assert opened == {"url": f"{site.url}/form", "title": "Order form", "status": 200}
    await tab.fill("#name", "Ada Lovelace")
    assert await tab.select("#colour", "Green") == ["green"]  # by label as well as by value
    after = await tab.click("#send")
    # The POST answered 303 with a cookie; the browser followed to the page and kept the cookie.
    assert after["url"] == f"{site.url}/thanks?name=Ada%20Lovelace&colour=green"
    await tab.wait_for(selector="#result")
    assert await tab.extract_text("#result") == "Thanks, Ada Lovelace! You chose green."
    assert await tab.extract_text("#cookie") == "customer=Ada%20Lovelace"
    assert [(r["method"], r["path"].split("?")[0]) for r in site.requests] == [
        ("GET", "/form"),
        ("POST", "/submit"),
        ("GET", "/thanks"),
    ]


async def test_it_follows_links_and_extracts_them(pool, site):
    tab = pool.session("run-1", "node")
    await tab.open(f"{site.url}/links")
    links = await tab.extract_links("#menu")
    assert links == [
        {"text": "First page", "href": f"{site.url}/a"},
        {"text": "Second page", "href": f"{site.url}/b"},
        {"text": "Prices", "href": f"{site.url}/table"},
    ]
    assert await tab.click("text=Second page") == {"url": f"{site.url}/b", "title": "Page B"}
    await tab.wait_for(text="page b")
    redirected = await tab.open(f"{site.url}/redirect?to=/a")
    assert (redirected["url"], redirected["title"]) == (f"{site.url}/a", "Page A")


async def test_it_extracts_a_table_and_takes_a_screenshot(pool, site):
    tab = pool.session("run-1", "node")
    await tab.open(f"{site.url}/table")
    assert await tab.extract_table("#prices") == [{"Item": "Tea", "Price": "2.50"}, {"Item": "Coffee", "Price": "3.10"}]
    image = await tab.screenshot(full_page=True)
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    element = await tab.screenshot(selector="#prices")
    assert element.startswith(b"\x89PNG")
    assert len(element) < len(image)


async def test_a_failing_step_names_itself_and_its_selector(pool, site):
    tab = pool.session("run-1", "node")
    await tab.open(f"{site.url}/a")
    with pytest.raises(BrowserError) as missing:
        await tab.click("#nowhere", label="step 2 (click '#nowhere')", timeout=0.5)
    assert missing.value.code == "browser_timeout"
    assert str(missing.value) == "step 2 (click '#nowhere') did not finish within 0.5 s"
    with pytest.raises(BrowserError) as broken:
        await tab.click("#[", label="step 3 (click '#[')")
    assert broken.value.code == "browser_step_failed"
    assert str(broken.value).startswith("step 3 (click '#[') failed: ")
    with pytest.raises(BrowserError) as download:
        await tab.open(f"{site.url}/download")
    assert download.value.code == "browser_step_failed"
    assert "downloads are off" in str(download.value)


async def test_no_action_outlasts_the_setting_whatever_the_caller_asks(pool, site, settings):
    settings.BROWSER_ACTION_TIMEOUT_SECONDS = 0.5
    tab = pool.session("run-1", "node")
    await tab.open(f"{site.url}/a")
    started = time.monotonic()
    with pytest.raises(BrowserError) as caught:
        await tab.wait_for(selector="#never", timeout=60)
    assert caught.value.code == "browser_timeout"
    assert "within 0.5 s" in str(caught.value)
    assert time.monotonic() - started < 10


# --- isolation -----------------------------------------------------------------------------------


async def test_cookies_and_storage_of_one_run_never_reach_another(pool, site):
    first = pool.session("run-1", "node")
    await first.open(f"{site.url}/remember")
    await first.open(f"{site.url}/recall")
    seen = await first.extract_text("#state")
    assert "server_cookie=set-by-server" in seen
    assert "js_cookie=from-script" in seen
    assert "storage=[run-one]" in seen

    second = pool.session("run-2", "node")  # another run, served by the same Chromium process
    await second.open(f"{site.url}/recall")
    assert await second.extract_text("#state") == "cookie=[] storage=[]"
    assert pool.snapshot()["processes"] == 1
    assert pool.snapshot()["contexts"] == 2

    # Another node of the first run shares its context (not its tab): what it stored is there.
    other_node = pool.session("run-1", "another-node")
    await other_node.open(f"{site.url}/recall")
    assert "storage=[run-one]" in await other_node.extract_text("#state")

    await pool.release("run-1")
    assert pool.snapshot()["contexts"] == 1
    again = pool.session("run-1", "node")  # a new context even under the same key
    await again.open(f"{site.url}/recall")
    assert await again.extract_text("#state") == "cookie=[] storage=[]"


async def test_two_runs_on_two_threads_use_the_pool_at_once(pool, site):
    """Each run has its own event loop in its own worker thread, as in the engine."""
    barrier = threading.Barrier(2, timeout=30)
    results: dict[str, str] = {}
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        async def run() -> str:
            tab = pool.session(f"run-{name}", "node")
            await tab.open(f"{site.url}/form")
            await asyncio.get_running_loop().run_in_executor(None, barrier.wait)  # both mid-run together
            await tab.fill("#name", name)
            await tab.click("#send")
            await tab.wait_for(selector="#result")
            return await tab.extract_text("#result")

        try:
            results[name] = asyncio.run(run())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(name,)) for name in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert results == {"alice": "Thanks, alice! You chose red.", "bob": "Thanks, bob! You chose red."}
    assert pool.snapshot()["contexts"] == 2


async def test_a_full_pool_makes_a_run_wait_then_fail_busy(pool, site, settings):
    settings.BROWSER_MAX_PROCESSES = 1
    settings.BROWSER_MAX_CONTEXTS_PER_PROCESS = 1
    holder = pool.session("run-1", "node")
    await holder.open(f"{site.url}/a")
    with pytest.raises(BrowserError) as caught:
        await pool.session("run-2", "node").open(f"{site.url}/b", timeout=0.5)
    assert caught.value.code == "browser_busy"
    assert "all 1 browser contexts" in str(caught.value)

    waiting = asyncio.ensure_future(pool.session("run-2", "node").open(f"{site.url}/b", timeout=20))
    await pool.release("run-1")
    assert (await waiting)["title"] == "Page B"


# --- the egress rules --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "chrome://version", "data:text/html,<p>hi</p>", "javascript:alert(1)", "about:blank"],
)
async def test_only_http_and_https_pages_are_opened(pool, site, url):
    with pytest.raises(BrowserError) as caught:
        await pool.session("run-1", "node").open(url)
    assert caught.value.code == "egress_refused"
    assert "only http and https" in str(caught.value)


async def test_pages_and_their_parts_on_hosts_not_allowed_are_refused(pool, site):
    elsewhere = TestPages()  # a loopback server the allow-list does not name
    try:
        tab = pool.session("run-1", "node")
        with pytest.raises(BrowserError) as caught:
            await tab.open(f"{elsewhere.url}/a")
        assert caught.value.code == "egress_refused"
        assert f"refused {elsewhere.netloc}: it is a loopback address" in str(caught.value)

        with pytest.raises(BrowserError) as redirected:
            await tab.open(f"{site.url}/redirect?to={elsewhere.url}/a")
        assert redirected.value.code == "egress_refused"
        assert elsewhere.netloc in str(redirected.value)

        await tab.open(f"{site.url}/embed?src={elsewhere.url}/picture.png")
        await tab.wait_for(text="blocked")  # the page's fetch() failed

        await tab.open(f"{site.url}/socket")
        await tab.wait_for(text="refused")  # WebSockets are closed by the pool
        assert elsewhere.requests == []
        assert "/socket" in site.paths()  # the page itself came through
        assert not any(request["headers"].get("Upgrade") for request in site.requests)
    finally:
        elsewhere.close()


# --- health --------------------------------------------------------------------------------------


async def test_a_page_that_never_finishes_loading_times_out_and_the_pool_stays_healthy(pool, site):
    tab = pool.session("run-1", "node")
    await tab.open(f"{site.url}/a")
    [pid] = pool.browser_pids()
    with pytest.raises(BrowserError) as caught:
        await tab.open(f"{site.url}/hang", label="step 1 (open)", timeout=1)
    assert caught.value.code == "browser_timeout"
    assert str(caught.value) == "step 1 (open) did not finish within 1 s"
    assert (await tab.open(f"{site.url}/b"))["title"] == "Page B"
    assert pool.browser_pids() == [pid]
    assert pool.snapshot()["hangs"] == pool.snapshot()["crashes"] == 0


async def test_a_page_that_exhausts_its_memory_crashes_alone(pool, site, settings):
    settings.BROWSER_JS_HEAP_MB = 64
    tab = pool.session("run-1", "node")
    await tab.open(f"{site.url}/memory")
    [pid] = pool.browser_pids()

    async def eat_and_wait() -> None:
        # The renderer dies during one of the two, depending on how fast it allocates.
        await tab.click("#eat", label="step 2 (click '#eat')")
        await tab.wait_for(selector="#never", label="step 3 (wait_for '#never')", timeout=30)

    with pytest.raises(BrowserError) as caught:
        await eat_and_wait()
    assert caught.value.code == "browser_step_failed"
    assert str(caught.value).endswith("failed: the page crashed")
    # Only the renderer died: the same browser serves the same tab's next page.
    assert (await tab.open(f"{site.url}/a"))["title"] == "Page A"
    assert pool.browser_pids() == [pid]
    assert pool.snapshot()["crashes"] == 0


async def test_a_killed_browser_is_replaced_on_next_use(pool, site):
    tab = pool.session("run-1", "node")
    await tab.open(f"{site.url}/a")
    [pid] = pool.browser_pids()
    os.kill(pid, signal.SIGKILL)
    await eventually(lambda: pool.snapshot()["crashes"] == 1, what="noticing the crash")
    assert pool.snapshot()["processes"] == 0

    with pytest.raises(BrowserError) as caught:
        await tab.extract_text()
    assert caught.value.code == "browser_crashed"
    assert caught.value.transient
    # The run's next use gets a fresh browser and a fresh context.
    assert (await tab.open(f"{site.url}/b"))["title"] == "Page B"
    [fresh] = pool.browser_pids()
    assert fresh != pid
    assert pool.snapshot()["launches"] == 2


async def test_a_browser_that_stops_answering_is_killed_and_replaced(pool, site):
    tab = pool.session("run-1", "node")
    await tab.open(f"{site.url}/a")
    [pid] = pool.browser_pids()
    os.kill(pid, signal.SIGSTOP)  # hangs: the process exists but answers nothing
    try:
        with pytest.raises(BrowserError) as caught:
            await tab.open(f"{site.url}/b", label="step 1 (open)", timeout=1)
        assert caught.value.code == "browser_crashed"
        assert str(caught.value) == "step 1 (open): the browser stopped responding and was replaced"
        await eventually(lambda: not alive(pid), what="the hung browser's end")
        assert pool.snapshot()["hangs"] == 1
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    assert (await tab.open(f"{site.url}/b"))["title"] == "Page B"
    assert pool.browser_pids() != [pid]


async def test_a_browser_with_no_run_closes_when_idle(pool, site, settings):
    settings.BROWSER_IDLE_SECONDS = 0.5
    tab = pool.session("run-1", "node")
    await tab.open(f"{site.url}/a")
    [pid] = pool.browser_pids()
    await pool.release("run-1")
    await eventually(lambda: pool.snapshot()["processes"] == 0, what="closing the idle browser")
    await eventually(lambda: not alive(pid), what="the idle browser's exit")
    assert pool.snapshot()["idle"] == 1
    assert pool.snapshot()["crashes"] == 0


async def test_a_busy_browser_is_not_closed_as_idle(pool, site, settings):
    settings.BROWSER_IDLE_SECONDS = 0.3
    tab = pool.session("run-1", "node")
    await tab.open(f"{site.url}/a")
    deadline = time.monotonic() + 1.5  # five idle periods while the run holds its context
    while time.monotonic() < deadline:
        assert pool.snapshot()["processes"] == 1
        await asyncio.sleep(0.1)
    assert (await tab.extract_text("#where")) == "page a"


async def test_failed_launches_open_the_breaker_until_a_trial_launch_succeeds(pool, site, settings):
    settings.BROWSER_EXECUTABLE = "/nonexistent/chromium"
    settings.BROWSER_BREAKER_FAILURES = 2
    settings.BROWSER_BREAKER_COOLDOWN_SECONDS = 1.5
    tab = pool.session("run-1", "node")
    for _ in range(2):
        with pytest.raises(BrowserError) as failed:
            await tab.open(f"{site.url}/a")
        assert failed.value.code == "browser_unavailable"
        assert str(failed.value).startswith("the browser could not start: ")
        assert "/nonexistent/chromium" in str(failed.value)
    assert pool.snapshot()["breaker_open"]

    started = time.monotonic()
    with pytest.raises(BrowserError) as fast:
        await tab.open(f"{site.url}/a")
    assert time.monotonic() - started < 0.5  # no launch tried
    assert fast.value.code == "browser_unavailable"
    assert "2 launches failed in a row" in str(fast.value)
    assert pool.snapshot()["launch_failures"] == 2

    async def attempt() -> tuple[dict | None, BrowserError | None]:
        try:
            return await tab.open(f"{site.url}/a"), None
        except BrowserError as refused:
            return None, refused

    settings.BROWSER_EXECUTABLE = str(CHROMIUM)
    deadline = time.monotonic() + 15
    opened, refused = await attempt()
    while opened is None:
        assert refused.code == "browser_unavailable"
        assert "the next attempt is in" in str(refused)  # still cooling down: no launch
        assert time.monotonic() < deadline, "the breaker never let a trial launch through"
        await asyncio.sleep(0.1)
        opened, refused = await attempt()
    assert time.monotonic() - started >= 1.5
    assert opened["title"] == "Page A"
    snapshot = pool.snapshot()
    assert (snapshot["breaker_open"], snapshot["launch_failures"], snapshot["launches"]) == (False, 2, 1)


# --- metrics ---------------------------------------------------------------------------------------


@pytest.fixture
def process_pool() -> Iterator[BrowserPool]:
    yield browser.get_pool()
    browser.shutdown_pool()


@pytest.mark.django_db
async def test_metrics_show_every_workers_pool(process_pool, site, client):
    tab = process_pool.session("run-1", "node")
    await tab.open(f"{site.url}/a")
    with pytest.raises(BrowserError):
        await tab.click("#nowhere", timeout=0.3)
    # Another worker process left its numbers in the shared cache.
    await asyncio.to_thread(
        browser.publish, {**process_pool.snapshot(), "worker": "worker-2:77", "processes": 2, "launches": 5}
    )

    response = await asyncio.to_thread(client.get, "/metrics")
    text = response.content.decode()
    me = process_pool.worker
    assert f'switchboard_browser_processes{{worker="{me}"}} 1.0' in text
    assert f'switchboard_browser_contexts_busy{{worker="{me}"}} 1.0' in text
    assert f'switchboard_browser_launches_total{{worker="{me}"}} 1.0' in text
    assert f'switchboard_browser_action_failures_total{{code="browser_timeout",worker="{me}"}} 1.0' in text
    assert 'switchboard_browser_processes{worker="worker-2:77"} 2.0' in text
    assert 'switchboard_browser_launches_total{worker="worker-2:77"} 5.0' in text
    assert f'switchboard_browser_breaker_open{{worker="{me}"}} 0.0' in text
