"""A small HTTP server on loopback whose answers a test scripts, for the http_request node and tools."""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    status: int = 200
    body: Any = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class ScriptedHTTPServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.routes: dict[str, deque[Answer]] = {}
        self.requests: list[dict] = []
        self.release = threading.Event()  # set by a test to end every delayed answer at once
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                server.requests.append(
                    {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
                )
                queue = server.routes.get(self.path.split("?")[0])
                answer = (queue.popleft() if len(queue) > 1 else queue[0]) if queue else Answer(404, "not found")
                if answer.delay:
                    server.release.wait(answer.delay)
                payload = answer.body if isinstance(answer.body, str | bytes) else json.dumps(answer.body)
                payload = payload.encode() if isinstance(payload, str) else payload
                self.send_response(answer.status)
                content_type = "application/json" if not isinstance(answer.body, str | bytes) else "text/plain"
                self.send_header("Content-Type", answer.headers.pop("Content-Type", content_type))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def netloc(self) -> str:
        """`host:port`, the EGRESS_ALLOW entry that lets the egress module reach this server."""
        host, port = self.httpd.server_address[:2]
        return f"{host}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.netloc}"

    def route(self, path: str, *answers: Answer) -> None:
        """Answers in order; the last one repeats."""
        self.routes[path] = deque(answers)

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
