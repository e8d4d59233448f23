"""
A small website on loopback for the browser tests: a form, links, a table, a page that never
finishes loading, one that eats memory until its renderer dies, cookies and storage, redirects.
"""

from __future__ import annotations

import html
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit


def page(title: str, body: str, head: str = "") -> str:
    head = f"<meta charset='utf-8'><title>{title}</title>{head}"
    return f"<!doctype html><html><head>{head}</head><body>{body}</body></html>"


FORM = page(
    "Order form",
    """<h1>Order</h1>
    <form method="post" action="/submit">
      <label>Name <input id="name" name="name"></label>
      <label>Colour <select id="colour" name="colour">
        <option value="red">Red</option><option value="green">Green</option><option value="blue">Blue</option>
      </select></label>
      <button id="send" type="submit">Send</button>
    </form>""",
)

LINKS = page(
    "Links",
    """<nav id="menu"><a href="/a">First page</a> <a href="b">Second page</a> <a href="/table">Prices</a></nav>
    <p>Elsewhere: <a href="http://example.invalid/x">outside</a></p>""",
)

TABLE = page(
    "Prices",
    """<table id="prices">
      <tr><th>Item</th><th>Price</th></tr>
      <tr><td>Tea</td><td>2.50</td></tr>
      <tr><td>Coffee</td><td>3.10</td></tr>
    </table>""",
)

REMEMBER = page(
    "Remember",
    """<p id="state">stored</p>
    <script>document.cookie = "js_cookie=from-script; path=/"; localStorage.setItem("secret", "run-one");</script>""",
)

RECALL = page(
    "Recall",
    """<p id="state"></p>
    <script>document.getElementById("state").textContent =
      "cookie=[" + document.cookie + "] storage=[" + (localStorage.getItem("secret") || "") + "]";</script>""",
)

# A click makes it allocate until the page's JavaScript heap limit (BROWSER_JS_HEAP_MB) kills its renderer.
MEMORY = page(
    "Hungry",
    """<button id="eat">Eat</button><script>
      const hoard = [];
      const eat = () => { while (true) hoard.push(new Array(1e6).fill(Math.random())); };
      document.getElementById("eat").onclick = () => setTimeout(eat, 100);
    </script>""",
)

SOCKET = page(
    "Socket",
    """<p id="state">connecting</p><script>
      const state = document.getElementById("state");
      try {
        const socket = new WebSocket("ws://" + location.host + "/socket");
        socket.onopen = () => state.textContent = "open";
        socket.onerror = () => state.textContent = "refused";
        socket.onclose = () => { if (state.textContent === "connecting") state.textContent = "refused"; };
      } catch (e) { state.textContent = "refused"; }
    </script>""",
)


class TestPages:
    """The site, served by a thread; `url` is its base, `netloc` the `host:port` to allow."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()  # ends every hanging answer at once
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                site._record(self)
                site._get(self)

            def do_POST(self) -> None:
                site._record(self)
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                if urlsplit(self.path).path == "/submit":
                    name, colour = form.get("name", [""])[0], form.get("colour", [""])[0]
                    target = f"/thanks?name={quote(name)}&colour={quote(colour)}"
                    site._send(self, 303, "", {"Location": target, "Set-Cookie": f"customer={quote(name)}; Path=/"})
                else:
                    site._send(self, 404, "not found")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def netloc(self) -> str:
        return f"127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.netloc}"

    def paths(self) -> list[str]:
        return [request["path"] for request in self.requests]

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def _record(self, handler: BaseHTTPRequestHandler) -> None:
        self.requests.append({"method": handler.command, "path": handler.path, "headers": dict(handler.headers)})

    def _send(self, handler: BaseHTTPRequestHandler, status: int, body: str, headers: dict | None = None) -> None:
        payload = body.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def _get(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        path = parts.path
        if path == "/hang":
            # Headers and half a page, then nothing until the test ends: a load that never finishes.
            handler.send_response(200)
            handler.send_header("Content-Type", "text/html")
            handler.send_header("Content-Length", "100000")
            handler.end_headers()
            handler.wfile.write(b"<html><body><p>loading")
            handler.wfile.flush()
            self.release.wait(120)
            return
        pages = {
            "/form": FORM,
            "/links": LINKS,
            "/table": TABLE,
            "/remember": REMEMBER,
            "/recall": RECALL,
            "/memory": MEMORY,
            "/socket": SOCKET,
            "/a": page("Page A", "<h1>First</h1><p id='where'>page a</p>"),
            "/b": page("Page B", "<h1>Second</h1><p id='where'>page b</p>"),
        }
        if path in pages:
            headers = {"Set-Cookie": "server_cookie=set-by-server; Path=/"} if path == "/remember" else None
            self._send(handler, 200, pages[path], headers)
        elif path == "/thanks":
            name, colour = html.escape(query.get("name", "")), html.escape(query.get("colour", ""))
            cookie = html.escape(handler.headers.get("Cookie", ""))
            body = f"<p id='result'>Thanks, {name}! You chose {colour}.</p><p id='cookie'>{cookie}</p>"
            self._send(handler, 200, page("Thanks", body))
        elif path == "/embed":
            # An image and a fetch() from `src`: subresources, each routed through the egress rules.
            src = html.escape(query.get("src", ""), quote=True)
            body = (
                f"<img id='picture' src='{src}'><p id='state'>pending</p><script>"
                f"fetch('{src}?by=fetch').then(() => 'fetched', () => 'blocked')"
                ".then((result) => document.getElementById('state').textContent = result);</script>"
            )
            self._send(handler, 200, page("Embed", body))
        elif path == "/redirect":
            self._send(handler, 302, "", {"Location": query.get("to", "/a")})
        elif path == "/download":
            self._send(handler, 200, "a,b\n1,2\n", {"Content-Disposition": "attachment; filename=data.csv"})
        else:
            self._send(handler, 404, page("Not found", "<p>not found</p>"))
