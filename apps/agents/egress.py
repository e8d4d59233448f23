"""
The one path for outbound HTTP that a user's graph can direct (the http_request node, agent tools).

Today: http/https only, redirects followed by hand (each hop checked, credentials dropped when
the origin changes), a time limit per request and a cap on the response size. The tools issue
adds address checks (private ranges, metadata endpoints, DNS pinning) here, in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

MAX_REDIRECTS = 5
SENSITIVE_HEADERS = {"authorization", "cookie", "proxy-authorization", "x-api-key"}


class EgressRefused(Exception):
    """The request was not sent or its answer was refused; the message is for the user."""


@dataclass
class EgressResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    url: str

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise EgressRefused(f"only http and https URLs may be fetched, not {parts.scheme or 'a relative URL'!r}")
    if not parts.hostname:
        raise EgressRefused("the URL has no host")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port


async def request(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    content: bytes | str | None = None,
    timeout: float,
    max_bytes: int,
) -> EgressResponse:
    headers = dict(headers or {})
    check_url(url)
    async with httpx.AsyncClient(timeout=httpx.Timeout(timeout), follow_redirects=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            async with client.stream(method, url, headers=headers, content=content) as response:
                if response.is_redirect and "location" in response.headers:
                    target = urljoin(url, response.headers["location"])
                    check_url(target)
                    if _origin(target) != _origin(url):
                        headers = {k: v for k, v in headers.items() if k.lower() not in SENSITIVE_HEADERS}
                    if response.status_code in (301, 302, 303) and method.upper() != "HEAD":
                        method, content = "GET", None
                    url = target
                    continue
                body = await _read_capped(response, max_bytes)
                return EgressResponse(response.status_code, dict(response.headers), body, str(response.url))
    raise EgressRefused(f"more than {MAX_REDIRECTS} redirects")


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise EgressRefused(f"the response is larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
