"""
Real MCP servers for tests, built with the `mcp` package's FastMCP: over streamable HTTP (uvicorn in
a thread, on loopback) and over stdio (this file run as a program: `python mcp_servers.py stdio`).

Their tools: `add` (a sum), `whoami` (the X-Token header the server received, for HTTP), `fail`
(raises), `has_env` (whether a variable is set), `hang` (answers only when the HTTP server is
closed; over stdio, never).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from pathlib import Path

import anyio
from mcp.server.fastmcp import Context, FastMCP

HERE = Path(__file__).resolve()
TOOL_NAMES = ["add", "whoami", "fail", "has_env", "hang"]


def build_server(release: threading.Event | None = None) -> FastMCP:
    server = FastMCP("test-tools", log_level="WARNING")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two whole numbers."""
        return a + b

    @server.tool()
    def whoami(ctx: Context) -> str:
        """Say which X-Token header the request carried."""
        request = ctx.request_context.request
        token = request.headers.get("x-token", "") if request is not None else ""
        return f"token={token}" if token else "anonymous"

    @server.tool()
    def fail(message: str) -> str:
        """Always raise, with this message."""
        raise ValueError(message)

    @server.tool()
    def has_env(name: str) -> bool:
        """Whether the server's environment has this variable."""
        return name in os.environ

    @server.tool()
    async def hang() -> str:
        """Never answer while the server runs."""
        if release is None:
            await anyio.sleep_forever()
        await anyio.to_thread.run_sync(release.wait)
        return "released"

    return server


class McpHttpServer:
    """A FastMCP server over streamable HTTP on 127.0.0.1; `url` is its endpoint."""

    def __init__(self) -> None:
        import uvicorn

        self.release = threading.Event()
        self.headers: list[dict[str, str]] = []
        app = build_server(self.release).streamable_http_app()
        recorded = self.headers

        async def recording(scope, receive, send):  # every request's headers, for assertions
            if scope["type"] == "http":
                recorded.append({k.decode(): v.decode() for k, v in scope["headers"]})
            await app(scope, receive, send)

        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        config = uvicorn.Config(recording, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the MCP test server did not start")
            time.sleep(0.01)  # uvicorn offers no start event: poll its flag, bounded by the deadline

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}/mcp"

    def close(self) -> None:
        self.release.set()
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()


def stdio_command() -> tuple[str, list[str]]:
    """The command and arguments that run the stdio server (as an operator would define them)."""
    return sys.executable, [str(HERE), "stdio"]


if __name__ == "__main__" and sys.argv[1:] == ["stdio"]:
    build_server().run("stdio")
