"""
The browser pool: headless Chromium for the `browser` node and the agents' browser tools.

One pool per worker process. It owns a thread running one asyncio event loop, and Playwright
(its driver and every browser, context and page) lives on that loop only: Playwright objects
are bound to the loop that created them, while the engine runs each run on a loop of its own
(async_to_sync in one of several worker threads). Callers on any loop reach the pool through
`asyncio.run_coroutine_threadsafe` + `asyncio.wrap_future`, so cancelling the caller (a node
timeout, a cancelled run) cancels the action inside the pool too.

- At most BROWSER_MAX_PROCESSES Chromium processes, each serving at most
  BROWSER_MAX_CONTEXTS_PER_PROCESS browser contexts. A run gets one context on first use (its
  cookies, storage and cache belong to it alone) with one tab per node; the engine closes the
  context when the run ends. A browser with no context for BROWSER_IDLE_SECONDS is closed.
- Health: a browser that exits is forgotten (the run that used it gets `browser_crashed` once,
  then a fresh context on another browser); after a timed-out action the browser is probed and,
  if it does not answer, killed and replaced. Launch failures count towards a circuit breaker:
  while it is open browser work fails at once with `browser_unavailable`; after the cool-down
  one trial launch decides.
- Traffic: every request of a context is routed here and fetched through the egress path
  (`egress.EgressTransport`, which resolves once, checks every address and connects to the
  checked one), one hop at a time; Chromium itself never opens a connection (its resolver maps
  every name to nothing and its proxy is a dead end, so a request that escaped routing, such as
  WebRTC, fails). Redirects of a navigation become a small page that refreshes to the target,
  so the next hop is a new, routed request; WebSockets are refused; downloads are off.
"""

from apps.agents.browser.errors import BrowserError
from apps.agents.browser.metrics import BrowserPoolCollector, publish, snapshots
from apps.agents.browser.pool import BrowserPool, current_pool, get_pool, release_run, session_for, shutdown_pool
from apps.agents.browser.session import BrowserSession

__all__ = [
    "BrowserError",
    "BrowserPool",
    "BrowserPoolCollector",
    "BrowserSession",
    "current_pool",
    "get_pool",
    "publish",
    "release_run",
    "session_for",
    "shutdown_pool",
    "snapshots",
]
