"""
The egress module against real servers on loopback: odd encodings of internal hosts, names that
resolve inside, DNS rebinding, redirects, credentials on redirects, size and time caps, the
allow-list, TLS to a pinned address, and the same refusals through a real http_request node.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from django.core.exceptions import ImproperlyConfigured

from apps.agents import egress
from apps.executions import engine, services
from apps.executions.models import Execution
from tests.factories import UserFactory, published
from tests.support.http_server import Answer, ScriptedHTTPServer

SECRET_HEADERS = {
    "Authorization": "Bearer a-token-abcdef",
    "Cookie": "session=cookie-abcdef",
    "Proxy-Authorization": "Basic cHJveHk=",
    "X-Api-Key": "key-abcdef",
    "X-Token": "credential-abcdef",  # looks secret: dropped although the caller did not mark it
    "X-Signed": "marked-abcdef",  # marked by the caller through secret_headers
}


@pytest.fixture
def server():
    """A loopback server that is NOT on the allow-list."""
    server = ScriptedHTTPServer()
    server.route("/", Answer(200, "internal"))
    yield server
    server.close()


@pytest.fixture
def allowed(egress_allow):
    """A loopback server the test opens by host:port."""
    server = ScriptedHTTPServer()
    egress_allow(server.netloc)
    yield server
    server.close()


@pytest.fixture
def egress_log(caplog):
    caplog.set_level(logging.INFO, logger="apps.agents.egress")
    return lambda: [record for record in caplog.records if record.name == "apps.agents.egress"]


class FakeResolver:
    """Answers lookups from a script (one answer per call, the last repeats) and records them."""

    def __init__(self, answers: dict[str, list[list[str]]] | None = None) -> None:
        self.answers = {name: list(script) for name, script in (answers or {}).items()}
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        script = self.answers.get(host)
        if not script:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return script.pop(0) if len(script) > 1 else script[0]


async def fetch(url: str, **options) -> egress.EgressResponse:
    options.setdefault("timeout", 5)
    options.setdefault("max_bytes", 100_000)
    return await egress.request(options.pop("method", "GET"), url, **options)


def header(request: dict, name: str) -> str | None:
    return {key.lower(): value for key, value in request["headers"].items()}.get(name.lower())


@contextlib.asynccontextmanager
async def raw_server(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[int]:
    """An asyncio server on 127.0.0.1 whose connections `handler` serves byte by byte; yields its port."""
    tasks: set[asyncio.Task] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.add(asyncio.current_task())
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    listener = await asyncio.start_server(tracked, "127.0.0.1", 0, ssl=ssl_context)
    try:
        yield listener.sockets[0].getsockname()[1]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        listener.close()


# --- Loopback in every spelling -----------------------------------------------------------------

LOOPBACK_SPELLINGS = [
    "http://127.0.0.1:{port}/",
    "http://localhost:{port}/",
    "http://LOCALHOST.:{port}/",
    "http://api.localhost:{port}/",
    "http://2130706433:{port}/",
    "http://0177.0.0.1:{port}/",
    "http://0x7f.1:{port}/",
    "http://0x7f000001:{port}/",
    "http://127.1:{port}/",
    "http://127.0.1:{port}/",
    "http://127.0.0.1.:{port}/",
    "http://127.000.000.001:{port}/",
    "http://0:{port}/",
    "http://0.0.0.0:{port}/",
    "http://[::]:{port}/",
    "http://[::1]:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://[::ffff:7f00:1]:{port}/",
    "http://[0:0:0:0:0:ffff:7f00:1]:{port}/",
    "http://[::127.0.0.1]:{port}/",
    "http://[64:ff9b::7f00:1]:{port}/",
    "http://[2002:7f00:1::1]:{port}/",
    "http://[fe80::1%25lo]:{port}/",
    "http://evil@127.0.0.1:{port}/",
    "http://example.com@127.0.0.1:{port}/",
    "http://example.com\\@127.0.0.1:{port}/",
    "http://１２７.０.０.１:{port}/",
    "http://ⓛocalhost:{port}/",
    "http://127.0.0.1%2f@example.com:{port}/",
]


@pytest.mark.parametrize("spelling", LOOPBACK_SPELLINGS)
async def test_it_refuses_a_loopback_server_in_every_spelling(server, egress_log, spelling):
    port = server.httpd.server_address[1]
    resolver = FakeResolver()
    with egress.override_resolver(resolver), pytest.raises(egress.EgressRefused) as refused:
        await fetch(spelling.format(port=port))
    assert str(refused.value).startswith("refused ")
    assert server.requests == []
    assert resolver.calls == []  # refused on its form, before any lookup
    assert len(egress_log()) == 1
    assert egress_log()[0].levelno == logging.WARNING


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata address"),
        ("http://[fd00:ec2::254]/latest/meta-data/", "cloud metadata address"),
        ("http://100.100.100.200/latest/meta-data/", "cloud metadata address"),
        ("http://168.63.129.16/machine", "cloud metadata address"),
        ("http://[::ffff:169.254.169.254]/", "cloud metadata address"),
        ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata name"),
        ("http://METADATA.google.internal./computeMetadata/v1/", "cloud metadata name"),
        ("http://metadata/computeMetadata/v1/", "cloud metadata name"),
        ("http://10.0.0.1/", "a private address"),
        ("http://172.16.5.4/", "a private address"),
        ("http://192.168.1.1/", "a private address"),
        ("http://100.64.0.1/", "carrier-grade NAT"),
        ("http://169.254.1.1/", "link-local"),
        ("http://224.0.0.1/", "multicast"),
        ("http://255.255.255.255/", "broadcast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://198.18.0.1/", "benchmarking"),
        ("http://192.0.2.1/", "documentation"),
        ("http://[fc00::1]/", "unique local"),
        ("http://[fd12:3456::1]/", "unique local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[ff02::1]/", "multicast"),
        ("http://[2001:db8::1]/", "documentation"),
        ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "Teredo"),
        ("http://[::ffff:10.0.0.1]/", "a private address"),
        ("http://[64:ff9b::a00:1]/", "a private address"),
        ("http://[2002:c0a8:101::1]/", "a private address"),
        ("http://[::ffff:8.8.8.8]/", "written as IPv6"),
    ],
)
def test_check_url_refuses_internal_literals_and_metadata_names_with_the_reason(egress_log, url, reason):
    with pytest.raises(egress.EgressRefused, match=reason):
        egress.check_url(url)
    assert len(egress_log()) == 1


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "only http and https"),
        ("gopher://127.0.0.1:70/_x", "only http and https"),
        ("ftp://example.com/", "only http and https"),
        ("javascript:alert(1)", "only http and https"),
        ("data:text/plain,hi", "only http and https"),
        ("/relative/path", "only http and https"),
        ("http:///no-host", "no host"),
        ("http://example.com:0/", "port 0"),
        ("http://example.com:70000/", "port 70000"),
        ("http://exa mple.com/", "a host with '%'"),
        ("http://a..b/", "not a valid host name"),
        ("http://[::1/", "not a valid URL"),
    ],
)
def test_check_url_refuses_other_schemes_and_malformed_urls(url, reason):
    with pytest.raises(egress.EgressRefused, match=reason):
        egress.check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://93.184.216.34/",
        "http://[2606:4700::1111]/",
        "https://example.com:8443/path?q=1",
        "http://example.com:25/",  # any port on a public address: the address is the boundary
        "http://bücher.example/",
        "http://[64:ff9b::808:808]/",  # NAT64 of a public address (DNS64 networks give these)
        "http://[2002:808:808::1]/",  # 6to4 of a public address
        "http://example.com./",
    ],
)
def test_check_url_accepts_public_hosts_and_any_port(url):
    egress.check_url(url)


async def test_messages_and_logs_never_carry_the_query_or_userinfo(server, egress_log):
    port = server.httpd.server_address[1]
    with pytest.raises(egress.EgressRefused) as refused:
        await fetch(f"http://user:hunter2@127.0.0.1:{port}/reset?token=s3cr3t")
    with pytest.raises(egress.EgressRefused) as loopback:
        await fetch(f"http://127.0.0.1:{port}/reset?token=s3cr3t")
    logged = " ".join(record.getMessage() for record in egress_log())
    for text in (str(refused.value), str(loopback.value), logged):
        assert "hunter2" not in text
        assert "s3cr3t" not in text
    assert f"127.0.0.1:{port}" in str(loopback.value)
    assert "loopback" in str(loopback.value)


# --- Names that resolve inside, and rebinding ---------------------------------------------------


async def test_a_public_looking_name_that_resolves_to_loopback_is_refused(server):
    port = server.httpd.server_address[1]
    resolver = FakeResolver({"innocent.example.com": [["127.0.0.1"]]})
    with egress.override_resolver(resolver), pytest.raises(egress.EgressRefused) as refused:
        await fetch(f"http://innocent.example.com:{port}/")
    assert "resolves to 127.0.0.1, a loopback address" in str(refused.value)
    assert resolver.calls == [("innocent.example.com", port)]
    assert server.requests == []


@pytest.mark.parametrize(
    "answer",
    [
        ["93.184.216.34", "127.0.0.1"],  # one bad address among good ones is enough to refuse
        ["93.184.216.34", "::ffff:10.0.0.7"],
        ["169.254.169.254"],
        ["fd00:ec2::254"],
    ],
)
async def test_every_resolved_address_is_checked(answer):
    with egress.override_resolver(FakeResolver({"mixed.example.com": [answer]})), pytest.raises(egress.EgressRefused):
        await egress.resolve("https://mixed.example.com/")


async def test_resolve_returns_the_checked_addresses_and_a_failed_lookup_is_unreachable():
    resolver = FakeResolver({"public.example.com": [["93.184.216.34", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]]})
    with egress.override_resolver(resolver):
        assert await egress.resolve("https://public.example.com/") == [
            "93.184.216.34",
            "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
        ]
        with pytest.raises(httpx.ConnectError, match=r"cannot look up nowhere\.example"):
            await egress.resolve("https://nowhere.example/")


def bind_pair() -> tuple[ScriptedHTTPServer, ScriptedHTTPServer]:
    """Two servers on the same port: one on 127.0.0.2 (the 'public' one), one on 127.0.0.1."""
    for _ in range(10):
        public = ScriptedHTTPServer(host="127.0.0.2")
        try:
            return public, ScriptedHTTPServer(host="127.0.0.1", port=public.httpd.server_address[1])
        except OSError:
            public.close()
    raise RuntimeError("no port free on both 127.0.0.1 and 127.0.0.2")


@pytest.fixture
def rebinding(egress_allow):
    """A name that first resolves to 127.0.0.2 (allowed: it stands for a public address), then to 127.0.0.1."""
    public, internal = bind_pair()
    egress_allow("127.0.0.2/32")
    public.route("/page", Answer(200, "public page"))
    public.route("/hop", Answer(302, "", {"Location": "/page"}))
    internal.route("/page", Answer(200, "internal secrets"))
    resolver = FakeResolver({"rebind.example": [["127.0.0.2"], ["127.0.0.1"]]})
    with egress.override_resolver(resolver):
        yield public, internal, resolver
    public.close()
    internal.close()


async def test_dns_rebinding_cannot_move_the_connection_after_the_check(rebinding):
    public, internal, resolver = rebinding
    port = public.httpd.server_address[1]
    response = await fetch(f"http://rebind.example:{port}/page")
    assert response.text == "public page"
    assert resolver.calls == [("rebind.example", port)]  # one lookup; nobody asked again
    assert header(public.requests[0], "Host") == f"rebind.example:{port}"
    assert internal.requests == []
    assert response.url == f"http://rebind.example:{port}/page"


async def test_a_redirect_hop_is_looked_up_and_checked_again(rebinding):
    public, internal, resolver = rebinding
    port = public.httpd.server_address[1]
    with pytest.raises(egress.EgressRefused) as refused:
        await fetch(f"http://rebind.example:{port}/hop")
    assert str(refused.value) == (
        f"refused a redirect from rebind.example:{port} to rebind.example:{port}: "
        "it resolves to 127.0.0.1, a loopback address"
    )
    assert len(resolver.calls) == 2
    assert internal.requests == []


async def test_a_long_lived_client_checks_every_request_it_sends(rebinding):
    public, internal, _resolver = rebinding
    port = public.httpd.server_address[1]
    async with egress.async_client() as client:
        assert (await client.get(f"http://rebind.example:{port}/page")).text == "public page"
        with pytest.raises(egress.EgressRefused, match=r"resolves to 127\.0\.0\.1"):
            await client.get(f"http://rebind.example:{port}/page")
    assert len(public.requests) == 1
    assert internal.requests == []


def test_the_production_path_uses_the_system_resolver():
    assert egress.current_resolver() is egress.system_resolver
    fake = FakeResolver()
    with egress.override_resolver(fake):
        assert egress.current_resolver() is fake
    assert egress.current_resolver() is egress.system_resolver


async def test_a_hostname_entry_opens_that_name_on_that_port_through_the_real_resolver(egress_allow, server):
    other = ScriptedHTTPServer()
    port = server.httpd.server_address[1]
    egress_allow(f"localhost:{port}")
    try:
        assert (await fetch(f"http://localhost:{port}/")).text == "internal"
        with pytest.raises(egress.EgressRefused, match="localhost names the machine itself"):
            await fetch(f"http://localhost:{other.httpd.server_address[1]}/")
    finally:
        other.close()
    assert other.requests == []


async def test_a_lookup_that_never_answers_ends_within_the_time_limit():
    async def stuck(host: str, port: int) -> list[str]:
        await asyncio.Event().wait()
        return []

    started = time.monotonic()
    with egress.override_resolver(stuck), pytest.raises(httpx.TimeoutException):
        await fetch("http://slow-dns.example/", timeout=0.3)
    assert time.monotonic() - started < 2


# --- Redirects and credentials --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://127.0.0.1:{port}/", "a loopback address"),
        ("http://localhost:{port}/", "localhost names the machine itself"),
        ("http://[::ffff:127.0.0.1]:{port}/", "a loopback address"),
        ("http://2130706433:{port}/", "dotted quad"),
        ("http://169.254.169.254/latest/meta-data/iam/", "cloud metadata address"),
        ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata name"),
        ("file:///etc/passwd", "only http and https"),
        ("gopher://127.0.0.1:{port}/_SET%20x", "only http and https"),
        ("http://user:pw@example.com/", "credentials in the URL"),
    ],
)
async def test_a_redirect_to_an_internal_target_is_refused(allowed, server, location, reason):
    allowed.route("/go", Answer(302, "", {"Location": location.format(port=server.httpd.server_address[1])}))
    with pytest.raises(egress.EgressRefused, match=reason) as refused:
        await fetch(allowed.url + "/go")
    assert str(refused.value).startswith(f"refused a redirect from {allowed.netloc} to ")
    assert "pw" not in str(refused.value)
    assert len(allowed.requests) == 1
    assert server.requests == []


async def test_credentials_are_dropped_when_a_redirect_leaves_the_origin(allowed, egress_allow):
    elsewhere = ScriptedHTTPServer()
    egress_allow(elsewhere.netloc)
    allowed.route("/start", Answer(302, "", {"Location": elsewhere.url + "/land"}))
    allowed.route("/back", Answer(200, "back"))
    elsewhere.route("/land", Answer(307, "", {"Location": allowed.url + "/back"}))
    try:
        response = await fetch(
            allowed.url + "/start", headers={**SECRET_HEADERS, "X-Plain": "kept"}, secret_headers=("x-signed",)
        )
    finally:
        elsewhere.close()
    assert response.text == "back"
    first, back = allowed.requests
    assert all(header(first, name) == value for name, value in SECRET_HEADERS.items())
    for request in (elsewhere.requests[0], back):  # dropped, and not restored on the way back
        assert [name for name in SECRET_HEADERS if header(request, name) is not None] == []
        assert header(request, "X-Plain") == "kept"


async def test_credentials_are_kept_on_a_same_origin_redirect(allowed):
    allowed.route("/start", Answer(301, "", {"Location": "/land"}))
    allowed.route("/land", Answer(200, "landed"))
    response = await fetch(allowed.url + "/start", headers=SECRET_HEADERS, secret_headers=("x-signed",))
    assert response.text == "landed"
    landed = allowed.requests[1]
    assert landed["path"] == "/land"
    assert all(header(landed, name) == value for name, value in SECRET_HEADERS.items())


async def test_a_303_turns_a_post_into_a_get_and_307_keeps_it(allowed):
    allowed.route("/see-other", Answer(303, "", {"Location": "/done"}))
    allowed.route("/temporary", Answer(307, "", {"Location": "/done"}))
    allowed.route("/done", Answer(200, "done"))
    await fetch(allowed.url + "/see-other", method="POST", content=b'{"a": 1}')
    await fetch(allowed.url + "/temporary", method="POST", content=b'{"a": 1}')
    assert [(r["method"], r["path"], r["body"]) for r in allowed.requests] == [
        ("POST", "/see-other", '{"a": 1}'),
        ("GET", "/done", ""),
        ("POST", "/temporary", '{"a": 1}'),
        ("POST", "/done", '{"a": 1}'),
    ]


async def test_too_many_redirects_are_refused(allowed):
    allowed.route("/loop", Answer(302, "", {"Location": "/loop"}))
    with pytest.raises(egress.EgressRefused, match=f"more than {egress.MAX_REDIRECTS} redirects"):
        await fetch(allowed.url + "/loop")
    assert len(allowed.requests) == egress.MAX_REDIRECTS + 1


# --- Size and time --------------------------------------------------------------------------------


async def test_an_answer_over_the_cap_is_refused(allowed):
    allowed.route("/big", Answer(200, "x" * 5000))
    allowed.route("/fits", Answer(200, "x" * 1000))
    with pytest.raises(egress.EgressRefused, match="larger than 1000 bytes"):
        await fetch(allowed.url + "/big", max_bytes=1000)
    assert len((await fetch(allowed.url + "/fits", max_bytes=1000)).body) == 1000


async def test_an_answer_without_a_length_is_cut_at_the_cap(egress_allow):
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        while True:  # until the client hangs up
            writer.write(b"y" * 1024)
            await writer.drain()

    async with raw_server(endless) as port:
        egress_allow(f"127.0.0.1:{port}")
        with pytest.raises(egress.EgressRefused, match="larger than 10000 bytes"):
            await fetch(f"http://127.0.0.1:{port}/", max_bytes=10_000)


async def test_a_server_that_never_answers_ends_within_the_time_limit(egress_allow):
    connected = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        await reader.read()  # reads the request, answers nothing, until the client hangs up

    async with raw_server(silent) as port:
        egress_allow(f"127.0.0.1:{port}")
        started = time.monotonic()
        with pytest.raises(httpx.TimeoutException):
            await fetch(f"http://127.0.0.1:{port}/", timeout=0.4)
        elapsed = time.monotonic() - started
    assert connected.is_set()
    assert 0.3 < elapsed < 2


async def test_a_server_that_trickles_bytes_is_cut_off_by_the_total_time_limit(egress_allow):
    sent = 0

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n")
        while True:  # one byte every 50 ms: no single read ever waits long
            writer.write(b"z")
            await writer.drain()
            sent += 1
            await asyncio.sleep(0.05)

    async with raw_server(trickle) as port:
        egress_allow(f"127.0.0.1:{port}")
        started = time.monotonic()
        with pytest.raises(egress.EgressTimeout, match=f"127.0.0.1:{port} within 0.6 s"):
            await fetch(f"http://127.0.0.1:{port}/", timeout=0.6)
        elapsed = time.monotonic() - started
    assert sent > 3  # bytes kept arriving, so only the total limit could end it
    assert 0.5 < elapsed < 2


async def test_the_transport_caps_size_and_total_time_for_library_clients(egress_allow):
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
        while True:
            writer.write(b"z" * 100)
            await writer.drain()
            await asyncio.sleep(0.02)

    async with raw_server(trickle) as port:
        egress_allow(f"127.0.0.1:{port}")
        transport = egress.EgressTransport(total_timeout=0.5)
        async with egress.async_client(transport=transport) as client:
            with pytest.raises(egress.EgressTimeout):
                await client.get(f"http://127.0.0.1:{port}/")
        capped = egress.EgressTransport(max_bytes=500)
        async with egress.async_client(transport=capped) as client:
            with pytest.raises(egress.EgressRefused, match="larger than 500 bytes"):
                await client.get(f"http://127.0.0.1:{port}/")


# --- The allow-list -------------------------------------------------------------------------------


async def test_a_host_port_entry_opens_one_server_and_not_another_port(allowed, server):
    allowed.route("/", Answer(200, "allowed"))
    assert (await fetch(allowed.url + "/")).text == "allowed"
    with pytest.raises(egress.EgressRefused, match="loopback"):
        await fetch(server.url + "/")
    assert server.requests == []


async def test_a_cidr_entry_opens_its_addresses_on_any_port(egress_allow, server):
    egress_allow("127.0.0.0/8")
    other = ScriptedHTTPServer()
    other.route("/", Answer(200, "other"))
    try:
        assert (await fetch(server.url + "/")).text == "internal"
        assert (await fetch(other.url + "/")).text == "other"
    finally:
        other.close()
    with pytest.raises(egress.EgressRefused, match="a private address"):
        egress.check_url("http://10.1.2.3/")


def test_a_metadata_address_needs_an_entry_naming_exactly_that_address(egress_allow):
    egress_allow("169.254.0.0/16", "100.64.0.0/10")
    egress.check_url("http://169.254.10.10/")
    for url in ("http://169.254.169.254/", "http://100.100.100.200/"):
        with pytest.raises(egress.EgressRefused, match="cloud metadata address"):
            egress.check_url(url)
    egress_allow("169.254.169.254:80")
    egress.check_url("http://169.254.169.254/")
    with pytest.raises(egress.EgressRefused, match="cloud metadata address"):
        egress.check_url("http://169.254.169.254:8080/")


async def test_a_name_entry_does_not_open_a_metadata_address_it_resolves_to(egress_allow):
    egress_allow("service.corp.example")
    with (
        egress.override_resolver(FakeResolver({"service.corp.example": [["169.254.169.254"]]})),
        pytest.raises(egress.EgressRefused, match=r"resolves to 169\.254\.169\.254, a cloud metadata address"),
    ):
        await egress.resolve("http://service.corp.example/")


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("10.0.0.0/33", "not a valid CIDR range"),
        ("example.com:http", "the port must be a number"),
        ("example.com:0", "the port must be a number"),
        ("[::1", "bracketed IPv6"),
        ("127.1", "dotted-quad"),
        ("exa mple.com", "not a valid host name"),
    ],
)
def test_a_malformed_allow_entry_stops_start_up_with_the_variable_named(settings, entry, problem):
    settings.EGRESS_ALLOW = ["example.org", entry]
    with pytest.raises(ImproperlyConfigured, match=f"EGRESS_ALLOW entry 2 .*{problem}"):
        egress.check_url("http://example.org/")
    errors = egress.check_egress_allow()
    assert [error.id for error in errors] == ["egress.E001"]


def test_an_allow_entry_with_credentials_is_not_echoed(settings):
    settings.EGRESS_ALLOW = ["http://admin:hunter2@wiki.example"]
    with pytest.raises(ImproperlyConfigured) as problem:
        egress.check_url("http://example.org/")
    assert "hunter2" not in str(problem.value)


async def test_a_client_from_async_client_ignores_proxy_variables(allowed, server, monkeypatch):
    allowed.route("/", Answer(200, "direct"))
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, server.url)
    async with egress.async_client() as client:
        assert (await client.get(allowed.url + "/")).text == "direct"
    assert server.requests == []


# --- TLS to a pinned address ------------------------------------------------------------------------


def certificates(tmp_path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A throwaway CA and a server certificate for `name` only; returns (server, client) contexts."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "egress test CA")])

    def builder(subject: x509.Name, public_key) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        )

    ca = (
        builder(ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), key.public_key())
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (tmp_path / "server.pem").write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    (tmp_path / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    client = ssl.create_default_context(cadata=ca.public_bytes(pem).decode())
    return server, client


async def test_https_to_a_pinned_address_sends_the_real_name_and_verifies_its_certificate(tmp_path, egress_allow):
    server_context, client_context = certificates(tmp_path, "secure.example")
    server_names: list[str | None] = []
    hosts: list[bytes] = []
    server_context.sni_callback = lambda _socket, name, _context: server_names.append(name)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        hosts.extend(line for line in head.split(b"\r\n") if line.lower().startswith(b"host:"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecure")
        await writer.drain()

    resolver = FakeResolver({"secure.example": [["127.0.0.1"]], "impostor.example": [["127.0.0.1"]]})
    async with raw_server(answer, server_context) as port:
        egress_allow("secure.example", "impostor.example", f"127.0.0.1:{port}")
        transport = egress.EgressTransport(verify=client_context)
        async with egress.async_client(transport=transport) as client:
            with egress.override_resolver(resolver):
                response = await client.get(f"https://secure.example:{port}/")
                # The same address under a name the certificate does not cover, and the bare
                # address: both fail verification, so the name (not the IP) is what is checked.
                for url in (f"https://impostor.example:{port}/", f"https://127.0.0.1:{port}/"):
                    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                        await client.get(url)
    assert response.text == "secure"
    assert server_names[0] == "secure.example"
    assert hosts == [f"Host: secure.example:{port}".encode()]


# --- Through the callers: the http_get tool and a real http_request node ----------------------------


async def test_the_http_get_tool_reports_a_refusal_to_the_model(server):
    from langchain_core.tools import ToolException

    from apps.agents import tools

    with pytest.raises(ToolException, match=f"refused {server.netloc}: it is a loopback address"):
        await tools.http_get(server.url + "/")
    assert server.requests == []


@pytest.fixture
def run_http_node(db):
    owner = UserFactory(username="egress-owner")

    def run(url: str) -> Execution:
        node = ("h", "http_request", {"url": url})
        version = published(
            owner,
            [("in", "input", {"name": "text"}), node, ("out", "output", {"name": "result"})],
            [("in", "value", "h", "token"), ("h", "status", "out", "value")],
        )
        execution = services.execution_run(version=version, inputs={"text": "s3cret-token"}, owner=owner)
        engine.run_execution(execution.pk)
        execution.refresh_from_db()
        return execution

    return run


def test_a_node_reaching_for_loopback_fails_with_egress_refused(run_http_node, server):
    execution = run_http_node(server.url + "/admin?token={{ token }}")
    assert (execution.status, execution.error_code) == (Execution.Status.FAILED, "egress_refused")
    assert f"refused {server.netloc}: it is a loopback address" in execution.error_message
    assert "s3cret-token" not in execution.error_message
    assert server.requests == []


def test_a_node_whose_name_resolves_inside_fails_with_egress_refused(run_http_node, server):
    port = server.httpd.server_address[1]
    with egress.override_resolver(FakeResolver({"api.partner.example": [["10.0.0.8"]]})):
        execution = run_http_node(f"http://api.partner.example:{port}/?t={{{{ token }}}}")
    assert execution.error_code == "egress_refused"
    assert "resolves to 10.0.0.8, a private address" in execution.error_message


def test_a_node_redirected_to_metadata_fails_with_egress_refused(run_http_node, allowed):
    allowed.route("/go", Answer(302, "", {"Location": "http://169.254.169.254/latest/meta-data/"}))
    execution = run_http_node(allowed.url + "/go?t={{ token }}")
    assert execution.error_code == "egress_refused"
    assert f"refused a redirect from {allowed.netloc} to 169.254.169.254: it is a cloud metadata address" in (
        execution.error_message
    )
    assert len(allowed.requests) == 1
