"""
A context's traffic: every request is fetched through the egress path here, one hop at a time,
and the answer handed to Chromium (`route.fulfill`). Chromium never connects anywhere itself.

A fulfilled 3xx would be followed by Chromium *without* passing the route again (Playwright
routes only a redirect chain's first request), so a navigation's redirect is answered with a
small page that refreshes to the target: a new navigation, routed and checked like any other.
A subresource's redirects are followed here, each hop checked, and the last answer fulfilled.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from apps.agents import egress
from apps.agents.browser.errors import action_limit

if TYPE_CHECKING:
    from playwright.async_api import Request, Route

    from apps.agents.browser.pool import OpenContext

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 5
REDIRECT_MARKER = "switchboard-redirect"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host", "upgrade"}


@dataclass
class _Answer:
    status: int
    headers: dict[str, str]
    body: bytes


async def refuse_web_socket(socket_route: Any) -> None:
    logger.info("browser WebSocket to %s refused", urlsplit(socket_route.url).hostname)
    with contextlib.suppress(Exception):
        await socket_route.close(code=1008, reason="WebSockets are not available to the browser")


async def route_through_egress(session: OpenContext, route: Route) -> None:
    request = route.request
    try:
        egress.check_url(request.url)
        answer = await asyncio.wait_for(_fetch(session, request), action_limit(None))
    except egress.EgressRefused as refused:
        session.failed_to_fetch(request.url, "egress_refused", str(refused))
        with contextlib.suppress(Exception):
            await route.abort("blockedbyclient")
        return
    except Exception as exc:
        host = urlsplit(request.url).netloc
        logger.info("browser request to %s failed: %s", host, type(exc).__name__)
        session.failed_to_fetch(
            request.url, "browser_step_failed", f"could not fetch from {host} ({type(exc).__name__})"
        )
        with contextlib.suppress(Exception):
            await route.abort("failed")
        return
    with contextlib.suppress(Exception):  # the page may have gone meanwhile
        await route.fulfill(status=answer.status, headers=answer.headers, body=answer.body)


async def _fetch(session: OpenContext, request: Request) -> _Answer:
    method, url, body = request.method, request.url, request.post_data_buffer
    headers = {k: v for k, v in (await request.all_headers()).items() if k.lower() not in HOP_BY_HOP}
    headers["accept-encoding"] = "gzip, deflate"
    navigation = request.is_navigation_request()
    for _ in range(MAX_REDIRECTS + 1):
        status, response_headers, cookies, content = await _hop(session, method, url, headers, body)
        location = response_headers.get("location")
        if not (300 <= status < 400 and location):
            return _Answer(status, fulfil_headers(response_headers, cookies), content)
        target = urljoin(url, location)
        egress.check_url(target)
        if navigation:
            # A fulfilled redirect would be followed by Chromium without passing this route:
            # answer with a page that navigates there instead, a new request that is routed.
            return _Answer(200, fulfil_headers({"content-type": "text/html"}, cookies), redirect_page(target))
        if urlsplit(target)[:2] != urlsplit(url)[:2] or urlsplit(target).port != urlsplit(url).port:
            headers = {k: v for k, v in headers.items() if k.lower() not in egress.SENSITIVE_HEADERS}
        if status == 303 or (status in (301, 302) and method not in ("GET", "HEAD")):
            method, body = "GET", None
        url = target
    raise egress.EgressRefused(f"more than {MAX_REDIRECTS} redirects from {urlsplit(request.url).hostname}")


async def _hop(
    session: OpenContext, method: str, url: str, headers: dict, body: bytes | None
) -> tuple[int, dict[str, str], list[str], bytes]:
    # One hop through the egress transport: it checks and pins the address, caps the body
    # (BROWSER_MAX_RESPONSE_BYTES) and the time, and raises EgressRefused / EgressTimeout.
    async with session.client.stream(method, url, headers=headers, content=body) as response:
        content = await response.aread()
        return (
            response.status_code,
            {k.lower(): v for k, v in response.headers.items() if k.lower() != "set-cookie"},
            response.headers.get_list("set-cookie"),
            content,
        )


def fulfil_headers(headers: dict[str, str], cookies: list[str]) -> dict[str, str]:
    kept = {k: v for k, v in headers.items() if k not in HOP_BY_HOP and k != "location"}
    if cookies:
        kept["set-cookie"] = "\n".join(cookies)  # Playwright's way to send several
    return kept


def redirect_page(target: str) -> bytes:
    url = html.escape(target, quote=True)
    return (
        f'<!doctype html><html><head><meta name="{REDIRECT_MARKER}">'
        f'<meta http-equiv="refresh" content="0;url={url}"></head><body></body></html>'
    ).encode()
