"""
The one path for outbound HTTP that a user's graph can direct: the http_request node, agent tools,
MCP clients (through `EgressTransport`) and the browser pool's request handler (through `request`).

Every request, and every redirect hop, passes the same three steps:

1. `check_url` (no I/O): http or https; no credentials in the URL; a host in a standard form (a DNS
   name, a dotted-quad IPv4 address or a bracketed IPv6 address: no decimal, octal, hex or short
   numeric forms, no zone ids, no percent signs); a port in 1..65535; no localhost or cloud metadata
   name; no refused address literal.
2. One lookup (`loop.getaddrinfo`, or the resolver a test installs with `override_resolver`): every
   address it returns must be allowed, else the request is refused.
3. The connection goes to a checked address: the request is sent to that IP with the `Host` header,
   the TLS server name (httpcore's `sni_hostname` extension) and the certificate check of the real
   name, so no second lookup happens that a hostile DNS server could answer differently.

Refused: loopback, private, link-local, carrier-grade NAT, multicast, unspecified, reserved and
broadcast, benchmarking and documentation ranges, IPv4 addresses embedded in IPv6 (mapped,
compatible, NAT64 and 6to4 forms embedding a refused address), Teredo, and cloud metadata endpoints.
Any port is allowed on a public address: the address is the boundary, and refusing ports would break
ordinary APIs served on 8080 or 8443.

`settings.EGRESS_ALLOW` is the only way to reach internal addresses: `host` (that name, any port,
and whatever it resolves to), `host:port` (that name on that port), an address or CIDR (those
addresses, any port) or `address:port` / `[v6]:port`. A cloud metadata address is reached only
through an entry naming exactly that address, never through a wider range or a host name.

Each refusal is an `EgressRefused` whose message names the host (never the path or query, which may
carry a token) and the reason, logged once on the `apps.agents.egress` logger.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import re
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass

import httpx
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

__all__ = [
    "MAX_REDIRECTS",
    "SENSITIVE_HEADERS",
    "EgressRefused",
    "EgressResponse",
    "EgressTimeout",
    "EgressTransport",
    "async_client",
    "check_url",
    "current_resolver",
    "override_resolver",
    "request",
    "resolve",
    "system_resolver",
]

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 5
SENSITIVE_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization", "x-api-key"})
# Callers forget to mark their own secret headers (an `X-Token` credential header, say), so names
# that look like they carry one are dropped on a cross-origin redirect as well.
_SECRET_LOOKING = re.compile(r"auth|token|secret|key|session|password|credential|signature", re.IGNORECASE)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle
        "169.254.170.2",  # AWS ECS task credentials
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
        "168.63.129.16",  # Azure WireServer (a public address, hence named here)
        "fd00:ec2::254",  # AWS over IPv6
    )
)
METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
    }
)

_REFUSED_NETWORKS: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(network), reason)
    for network, reason in (
        ("0.0.0.0/8", "an unspecified ('this network') address"),
        ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a carrier-grade NAT address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),
        ("172.16.0.0/12", "a private address"),
        ("192.0.0.0/24", "an IETF protocol address"),
        ("192.0.2.0/24", "a documentation address"),
        ("192.88.99.0/24", "a 6to4 relay address"),
        ("192.168.0.0/16", "a private address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("224.0.0.0/4", "a multicast address"),
        ("255.255.255.255/32", "the broadcast address"),
        ("240.0.0.0/4", "a reserved address"),
        ("::/128", "the unspecified address"),
        ("::1/128", "the loopback address"),
        ("::/8", "a reserved address"),
        ("100::/64", "a discard-only address"),
        ("2001::/32", "a Teredo tunnel address"),
        ("2001:2::/48", "a benchmarking address"),
        ("2001:db8::/32", "a documentation address"),
        ("3fff::/20", "a documentation address"),
        ("fc00::/7", "a unique local (private) address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")

_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")
# WHATWG URL rule: a host whose last label is a number is an IPv4 address, in whatever form.
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(rf"{_OCTET}(\.{_OCTET}){{3}}")
_VIA = "switchboard.egress.via"  # request extension: "a redirect from X to", for messages


class EgressRefused(Exception):
    """The request was not sent or its answer was refused; the message is for the user."""


class EgressTimeout(httpx.TimeoutException):
    """The whole exchange (lookup, connection, redirects, body) outlasted its time limit."""


@dataclass
class EgressResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    url: str

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


# --- The allow-list -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AllowList:
    """`EGRESS_ALLOW`, parsed: host names and networks, each with an optional port."""

    names: frozenset[tuple[str, int | None]]
    networks: tuple[tuple[IPNetwork, int | None], ...]

    def allows_name(self, name: str, port: int) -> bool:
        return (name, None) in self.names or (name, port) in self.names

    def allows_address(self, address: IPAddress, port: int, *, exact: bool = False) -> bool:
        return any(
            allowed_port in (None, port)
            and network.version == address.version
            and address in network
            and (not exact or network.num_addresses == 1)
            for network, allowed_port in self.networks
        )


def allow_list() -> AllowList:
    """The current `settings.EGRESS_ALLOW`, parsed (and cached per value)."""
    raw = getattr(settings, "EGRESS_ALLOW", ())
    if isinstance(raw, str):
        raw = raw.split(",")
    return _parse_allow_list(tuple(entry.strip() for entry in raw if entry and entry.strip()))


@functools.lru_cache(maxsize=16)
def _parse_allow_list(entries: tuple[str, ...]) -> AllowList:
    names: set[tuple[str, int | None]] = set()
    networks: list[tuple[IPNetwork, int | None]] = []
    for position, entry in enumerate(entries, start=1):
        try:
            kind, value, port = _parse_allow_entry(entry)
        except ValueError as exc:
            shown = f" ({entry!r})" if "@" not in entry else ""
            raise ImproperlyConfigured(
                f"EGRESS_ALLOW entry {position}{shown} is not a host, host:port, address, address:port or CIDR: {exc}."
            ) from exc
        if kind == "name":
            names.add((value, port))
        else:
            networks.append((value, port))
    return AllowList(frozenset(names), tuple(networks))


def _parse_allow_entry(entry: str) -> tuple[str, object, int | None]:
    if "/" in entry:
        try:
            return "network", ipaddress.ip_network(entry, strict=False), None
        except ValueError:
            raise ValueError("not a valid CIDR range") from None
    host, port = entry, None
    if entry.startswith("["):
        host, bracket, rest = entry[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError("a bracketed IPv6 address must be [address] or [address]:port")
        port = _allow_port(rest[1:]) if rest else None
    elif entry.count(":") == 1:
        host, port_text = entry.split(":")
        port = _allow_port(port_text)
    try:
        return "network", ipaddress.ip_network(host), port
    except ValueError:
        pass
    name = host.lower().removesuffix(".")
    if not _NAME.fullmatch(name):
        raise ValueError("not a valid host name (use the xn-- form for international names)")
    if _NUMERIC_LABEL.fullmatch(name.rsplit(".", 1)[-1]):
        raise ValueError("a numeric host must be a dotted-quad address")
    return "name", name, port


def _allow_port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError("the port must be a number from 1 to 65535")
    return int(text)


@checks.register(checks.Tags.security)
def check_egress_allow(app_configs: Iterable | None = None, **kwargs: object) -> list[checks.CheckMessage]:
    """A malformed EGRESS_ALLOW stops `manage.py check`, `serve` and the worker at start-up."""
    try:
        allow_list()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="egress.E001")]
    return []


# --- Checks without I/O -------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A URL's destination as the checks see it."""

    scheme: str
    host: str  # ASCII, as the URL spells it (IDNA applied): what is looked up
    name: str  # lower case, no trailing dot: what allow entries, SNI and name rules compare
    port: int
    address: IPAddress | None  # set when the host is an address literal
    subject: str  # for messages: host[:port], never a path, query or userinfo


def check_url(url: str) -> None:
    """Refuse `url` (EgressRefused) unless its scheme, host form, port and literal address pass."""
    _check(url)


def _check(url: str | httpx.URL, via: str | None = None) -> Target:
    allow = allow_list()
    target = _parse_target(url, via)
    refusal = _name_problem(target, allow)
    if refusal is None and target.address is not None:
        problem = _address_problem_for(target, target.address, allow)
        refusal = f"it is {problem}" if problem else None
    if refusal is not None:
        raise _refuse(_subject(target.subject, via), refusal)
    return target


def _parse_target(url: str | httpx.URL, via: str | None) -> Target:
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise _refuse(_subject("the URL", via), f"it is not a valid URL ({exc})") from exc
    if parsed.scheme not in {"http", "https"}:
        raise _refuse(
            _subject("the URL", via),
            f"only http and https URLs may be fetched, not {parsed.scheme or 'a relative URL'!r}",
        )
    host = parsed.raw_host.decode("ascii", errors="replace")
    subject = _shorten(parsed.netloc.decode("ascii", errors="replace")) or "the URL"
    if not host:
        raise _refuse(_subject(subject, via), "the URL has no host")
    if parsed.userinfo:
        raise _refuse(_subject(subject, via), "credentials in the URL are not accepted (use a credential)")
    if "%" in host:
        raise _refuse(_subject(subject, via), "a host with '%' (an IPv6 zone id or an escape) is not accepted")
    port = parsed.port if parsed.port is not None else (443 if parsed.scheme == "https" else 80)
    if not 1 <= port <= 65535:
        raise _refuse(_subject(subject, via), f"port {port} is out of range")
    if ":" in host:
        address = ipaddress.IPv6Address(host)
        return Target(parsed.scheme, host, str(address), port, address, subject)
    name = host.lower().removesuffix(".")
    if not _NAME.fullmatch(name):
        raise _refuse(_subject(subject, via), "it is not a valid host name")
    if _NUMERIC_LABEL.fullmatch(name.rsplit(".", 1)[-1]):
        if not _DOTTED_QUAD.fullmatch(name):
            raise _refuse(
                _subject(subject, via), "a numeric host must be written as a dotted quad (a.b.c.d), not in another form"
            )
        return Target(parsed.scheme, host, name, port, ipaddress.IPv4Address(name), subject)
    return Target(parsed.scheme, host, name, port, None, subject)


def _name_problem(target: Target, allow: AllowList) -> str | None:
    if target.address is not None or allow.allows_name(target.name, target.port):
        return None
    if target.name in METADATA_NAMES:
        return "it is a cloud metadata name"
    if target.name == "localhost" or target.name.endswith(".localhost"):
        return "localhost names the machine itself"
    return None


def _address_problem_for(target: Target, address: IPAddress, allow: AllowList) -> str | None:
    """Why `address` may not be reached for `target`, or None when it may."""
    if address in METADATA_ADDRESSES:
        return None if allow.allows_address(address, target.port, exact=True) else "a cloud metadata address"
    if allow.allows_address(address, target.port) or (
        target.address is None and allow.allows_name(target.name, target.port)
    ):
        return None
    return address_problem(address)


def address_problem(address: IPAddress) -> str | None:
    """Why `address` is refused without an allow-list entry, or None for a public address."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            problem = address_problem(embedded)
            if problem:
                return f"an IPv6 form of {embedded}, {problem}"
            if address in _NAT64 or address.sixtofour is not None:
                return None  # a public IPv4 address behind NAT64 or 6to4: a real public destination
            return "an IPv4 address written as IPv6 (use the IPv4 address)"
    for network, reason in _REFUSED_NETWORKS:
        if network.version == address.version and address in network:
            return reason
    if not address.is_global:
        return "not a public address"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _subject(subject: str, via: str | None) -> str:
    return f"{via} {subject}" if via else subject


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _refuse(subject: str, reason: str) -> EgressRefused:
    logger.warning("egress refused %s: %s", subject, reason, extra={"egress_reason": reason})
    return EgressRefused(f"refused {subject}: {reason}")


# --- Resolution and pinning ---------------------------------------------------------------------


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system's resolver gives for `host` (the production path)."""
    loop = asyncio.get_running_loop()
    answers = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(answer[4][0]) for answer in answers))


# Process-wide (worker threads run the engine on their own event loops), innermost override last.
_resolver_overrides: list[Resolver] = []


@contextlib.contextmanager
def override_resolver(resolver: Resolver) -> Iterator[None]:
    """Answer every lookup with `resolver` inside the block (tests: a name that resolves anywhere)."""
    _resolver_overrides.append(resolver)
    try:
        yield
    finally:
        _resolver_overrides.remove(resolver)


def current_resolver() -> Resolver:
    return _resolver_overrides[-1] if _resolver_overrides else system_resolver


async def resolve(url: str, *, timeout: float | None = 10.0) -> list[str]:
    """Check `url`, look its host up once and return its addresses, all allowed (else EgressRefused)."""
    target = _check(url)
    return [str(address) for address in await _pin(target, allow_list(), None, timeout=timeout)]


async def _pin(
    target: Target, allow: AllowList, via: str | None, *, timeout: float | None, resolver: Resolver | None = None
) -> list[IPAddress]:
    if target.address is not None:
        return [target.address]
    try:
        async with asyncio.timeout(timeout):
            answers = await (resolver or current_resolver())(target.host, target.port)
    except TimeoutError as exc:
        raise httpx.ConnectTimeout(f"no answer looking up {target.subject} in time") from exc
    except (OSError, UnicodeError) as exc:
        raise httpx.ConnectError(f"cannot look up {target.subject}") from exc
    addresses = [ipaddress.ip_address(answer) for answer in answers]
    if not addresses:
        raise httpx.ConnectError(f"{target.subject} has no address")
    for address in addresses:
        problem = _address_problem_for(target, address, allow)
        if problem:
            raise _refuse(_subject(target.subject, via), f"it resolves to {address}, {problem}")
    return addresses


class EgressTransport(httpx.AsyncBaseTransport):
    """
    An httpx transport that checks, resolves once and pins every request it sends.

    Build clients with `async_client()`, or with `trust_env=False`: an httpx client that trusts the
    environment mounts proxy transports from `HTTP_PROXY`/`ALL_PROXY`, and requests they match never
    reach this transport. Redirects: with `follow_redirects=False` the caller decides (each hop it
    sends is checked here); with httpx following them every hop is checked here too, but httpx drops
    only `Authorization` and `Cookie` when the origin changes (`request()` drops more).

    `max_bytes` caps each answer's body and `total_timeout` each exchange from request to last byte;
    leave them unset for long-lived streams (MCP's SSE) and rely on the client's per-read timeouts.
    """

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | bool = True,
        max_bytes: int | None = None,
        total_timeout: float | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self._verify = verify
        self._max_bytes = max_bytes
        self._total_timeout = total_timeout
        self._resolver = resolver
        # One pool per (scheme, host name): httpcore pools connections by the address it dials, and a
        # TLS connection verified for one name must never carry a request for another name.
        self._pools: dict[tuple[str, str], httpx.AsyncHTTPTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._total_timeout if self._total_timeout is not None else None
        via = request.extensions.get(_VIA)
        target = _check(request.url, via)
        try:
            async with asyncio.timeout_at(deadline):
                timeouts = request.extensions.get("timeout") or {}
                addresses = await _pin(
                    target, allow_list(), via, timeout=timeouts.get("connect"), resolver=self._resolver
                )
                response = await self._send_pinned(request, target, addresses)
        except TimeoutError as exc:
            raise EgressTimeout(f"no answer from {target.subject} in time", request=request) from exc
        declared = response.headers.get("content-length", "")
        if self._max_bytes is not None and declared.isdigit() and int(declared) > self._max_bytes:
            await response.aclose()
            raise _refuse(_subject(target.subject, via), f"the answer is larger than {self._max_bytes} bytes")
        if self._max_bytes is not None or deadline is not None:
            response.stream = _GuardedStream(
                response.stream, target=target, via=via, max_bytes=self._max_bytes, deadline=deadline, request=request
            )
        return response

    async def _send_pinned(self, request: httpx.Request, target: Target, addresses: list[IPAddress]) -> httpx.Response:
        extensions = {key: value for key, value in request.extensions.items() if key != _VIA}
        if target.scheme == "https" and target.address is None:
            extensions["sni_hostname"] = target.name
        headers = httpx.Headers(request.headers)
        headers.setdefault("Host", request.url.netloc.decode("ascii"))
        pool = self._pool(target)
        failure: httpx.ConnectError | None = None
        for address in addresses:
            pinned = httpx.Request(
                request.method,
                request.url.copy_with(host=str(address)),
                headers=headers,
                stream=request.stream,
                extensions=extensions,
            )
            try:
                return await pool.handle_async_request(pinned)
            except httpx.ConnectError as exc:  # try the next checked address, as a resolver's order intends
                failure = exc
        raise failure or httpx.ConnectError(f"{target.subject} has no address", request=request)

    def _pool(self, target: Target) -> httpx.AsyncHTTPTransport:
        key = (target.scheme, target.name)
        if key not in self._pools:
            self._pools[key] = httpx.AsyncHTTPTransport(verify=self._verify, retries=0)
        return self._pools[key]

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()


class _GuardedStream(httpx.AsyncByteStream):
    """A response body read under the size cap and the exchange's deadline (not per read)."""

    def __init__(
        self,
        stream: httpx.AsyncByteStream,
        *,
        target: Target,
        via: str | None,
        max_bytes: int | None,
        deadline: float | None,
        request: httpx.Request,
    ) -> None:
        self._stream, self._target, self._via = stream, target, via
        self._max_bytes, self._deadline, self._request = max_bytes, deadline, request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks, size = aiter(self._stream), 0
        while True:
            try:
                async with asyncio.timeout_at(self._deadline):
                    chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            except TimeoutError as exc:
                raise EgressTimeout(
                    f"no complete answer from {self._target.subject} in time", request=self._request
                ) from exc
            size += len(chunk)
            if self._max_bytes is not None and size > self._max_bytes:
                raise _refuse(
                    _subject(self._target.subject, self._via), f"the answer is larger than {self._max_bytes} bytes"
                )
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


def async_client(
    headers: dict[str, str] | None = None,
    timeout: httpx.Timeout | float | None = None,
    auth: httpx.Auth | None = None,
    *,
    transport: EgressTransport | None = None,
) -> httpx.AsyncClient:
    """
    An httpx client whose every request goes through `EgressTransport`, with no proxies from the
    environment and no automatic redirects. Its first three parameters match the MCP SDK's
    `McpHttpClientFactory`, so it can be passed as `httpx_client_factory`.
    """
    options: dict = {"headers": headers, "auth": auth}
    if timeout is not None:
        options["timeout"] = timeout
    return httpx.AsyncClient(
        transport=transport or EgressTransport(), trust_env=False, follow_redirects=False, **options
    )


# --- One exchange, redirects followed by hand ---------------------------------------------------


async def request(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    content: bytes | str | None = None,
    timeout: float,
    max_bytes: int,
    secret_headers: Iterable[str] = (),
) -> EgressResponse:
    """
    Send one request and follow up to MAX_REDIRECTS redirects, every hop checked and pinned.

    `timeout` bounds the whole exchange (lookups, connections, redirects, every byte of the body):
    past it, EgressTimeout (an httpx.TimeoutException). `max_bytes` caps the final body. When a
    redirect leaves the origin (scheme, host, port), SENSITIVE_HEADERS, `secret_headers` and any
    header whose name looks secret are dropped for the rest of the exchange.
    """
    target = _check(url)
    secret = {name.lower() for name in secret_headers}
    transport = EgressTransport(max_bytes=max_bytes)
    try:
        async with (
            asyncio.timeout(timeout),
            async_client(timeout=httpx.Timeout(timeout), transport=transport) as client,
        ):
            return await _exchange(client, method, httpx.URL(url), dict(headers or {}), content, secret)
    except TimeoutError as exc:
        raise EgressTimeout(f"no complete answer from {target.subject} within {timeout:g} s") from exc


async def _exchange(
    client: httpx.AsyncClient,
    method: str,
    url: httpx.URL,
    headers: dict[str, str],
    content: bytes | str | None,
    secret: set[str],
) -> EgressResponse:
    via: str | None = None
    for _ in range(MAX_REDIRECTS + 1):
        extensions = {_VIA: via} if via else {}
        outgoing = client.build_request(method, url, headers=headers, content=content, extensions=extensions)
        response = await client.send(outgoing, stream=True)
        try:
            location = response.headers.get("location")
            if not (response.is_redirect and location):
                body = await response.aread()
                return EgressResponse(response.status_code, dict(response.headers), body, str(url))
        finally:
            await response.aclose()
        via = f"a redirect from {_shorten(url.netloc.decode('ascii'))} to"
        try:
            target_url = url.join(location)
        except httpx.InvalidURL as exc:
            raise _refuse(_subject("the URL", via), f"it is not a valid URL ({exc})") from exc
        _check(target_url, via)
        if _origin(target_url) != _origin(url):
            headers = {name: value for name, value in headers.items() if not _is_secret(name, secret)}
        if response.status_code in (301, 302, 303) and method.upper() != "HEAD":
            method, content = "GET", None
            headers = {n: v for n, v in headers.items() if n.lower() not in {"content-type", "content-length"}}
        url = target_url
    raise _refuse(_shorten(url.netloc.decode("ascii")), f"more than {MAX_REDIRECTS} redirects")


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    return (
        url.scheme,
        url.raw_host.decode("ascii").lower().removesuffix("."),
        url.port or (443 if url.scheme == "https" else 80),
    )


def _is_secret(name: str, secret: set[str]) -> bool:
    lowered = name.lower()
    return lowered in SENSITIVE_HEADERS or lowered in secret or bool(_SECRET_LOOKING.search(lowered))
