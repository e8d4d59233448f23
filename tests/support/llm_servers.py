"""
Loopback LLM servers that speak the providers' wire protocols.

Each server binds 127.0.0.1 on a free port, serves from a daemon thread and answers with replies the
test queues, closely enough that the official clients (openai, anthropic, ollama) and their LangChain
classes work unmodified. Nothing here fakes a client: the point is to exercise the real HTTP paths,
streaming parsers and error mapping.

    with OpenAIServer() as server:
        server.reply("Hello there", input_tokens=3, output_tokens=2)
        model = ChatOpenAI(base_url=f"{server.base_url}/v1", api_key=server.api_key, ...)
"""

from __future__ import annotations

import abc
import itertools
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self

__all__ = ["AnthropicServer", "LoopbackLLMServer", "OllamaServer", "OpenAIServer", "Reply"]


@dataclass
class Reply:
    """One canned answer. `status` other than 200 answers with the protocol's error shape instead."""

    text: str = ""
    # Each call: {"name": str, "args": dict} and optionally "id".
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    # None counts whitespace-separated words (prompt text in, reply text out), like the scripted model.
    input_tokens: int | None = None
    output_tokens: int | None = None
    # Seconds before the first byte (status line included), to provoke client timeouts.
    delay: float = 0.0
    status: int = 200
    error_message: str = "Something went wrong."
    # Overrides the error body entirely when set.
    body: Any = None
    # Characters per streamed text delta (and per tool-argument delta).
    chunk_size: int = 4


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), max(size, 1))]


def _text_of(value: Any) -> str:
    """The human-readable text in a message's content, whatever block shape the client chose."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(_text_of(item) for item in value)
    if isinstance(value, dict):
        return " ".join(_text_of(value.get(key)) for key in ("text", "content") if key in value)
    return ""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = None
        self.server.app.handle(self, body)

    def do_GET(self) -> None:
        self.send_json(404, {"error": f"no such path: {self.path}"})

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet: pytest shows a failing test's output, and a request log there is noise.
        pass

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def start_stream(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache")
        # Chunked framing keeps the connection reusable, as the real APIs do.
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def write_chunk(self, data: str) -> None:
        encoded = data.encode()
        self.wfile.write(b"%X\r\n%s\r\n" % (len(encoded), encoded))
        self.wfile.flush()

    def end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # A handler parked in a long delay must not hold up close(); close() also wakes it.
    block_on_close = False

    def __init__(self, app: LoopbackLLMServer) -> None:
        self.app = app
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        # Without it small SSE writes wait on delayed ACKs: ~40 ms per call instead of ~4 ms.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is the expected end of a timeout test, not a failure.
        pass


class LoopbackLLMServer(abc.ABC):
    """The shared machinery: socket, thread, request log, reply queue and key check."""

    chat_path: ClassVar[str]
    default_api_key: ClassVar[str | None]

    def __init__(self, *, api_keys: Iterable[str] | None = None) -> None:
        if api_keys is None:
            api_keys = [self.default_api_key] if self.default_api_key else []
        self.api_keys: set[str] = set(api_keys)
        self.requests: list[dict[str, Any]] = []
        self.replies: deque[Reply] = deque()
        self._ids = itertools.count(1)
        self._closing = threading.Event()
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__, daemon=True
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_key(self) -> str:
        """A key this server accepts."""
        return sorted(self.api_keys)[0]

    def reply(self, text: str = "", **options: Any) -> Reply:
        """Queue a reply for the next chat request and return it."""
        reply = Reply(text=text, **options)
        self.replies.append(reply)
        return reply

    def close(self) -> None:
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- request handling ---------------------------------------------------------------------------------

    def handle(self, handler: _Handler, body: Any) -> None:
        self.requests.append(
            {"path": handler.path, "headers": {k.lower(): v for k, v in handler.headers.items()}, "json": body}
        )
        if not handler.path.split("?")[0].endswith(self.chat_path):
            handler.send_json(404, self.error_body(404, f"Unknown path {handler.path}"))
            return
        if self.api_keys and self.presented_key(handler) not in self.api_keys:
            handler.send_json(401, self.unauthorized_body(self.presented_key(handler) or ""))
            return
        try:
            reply = self.replies.popleft()
        except IndexError:
            handler.send_json(500, self.error_body(500, "No reply queued on the loopback server."))
            return
        # Wait on the closing event rather than sleeping so close() never waits for a parked handler.
        if reply.delay and self._closing.wait(reply.delay):
            return
        if reply.status != 200:
            handler.send_json(reply.status, reply.body or self.error_body(reply.status, reply.error_message))
            return
        body = body if isinstance(body, dict) else {}
        usage = self.usage(body, reply)
        if body.get("stream", self.streams_by_default):
            self.stream(handler, body, reply, usage)
        else:
            handler.send_json(200, self.complete(body, reply, usage))

    def usage(self, body: dict[str, Any], reply: Reply) -> tuple[int, int]:
        prompt = _text_of(body.get("messages")) + " " + _text_of(body.get("system"))
        input_tokens = reply.input_tokens if reply.input_tokens is not None else len(prompt.split())
        output_tokens = (
            reply.output_tokens if reply.output_tokens is not None else len(reply.text.split()) + len(reply.tool_calls)
        )
        return input_tokens, output_tokens

    def next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):04d}"

    # -- protocol hooks -----------------------------------------------------------------------------------

    streams_by_default: ClassVar[bool] = False

    def presented_key(self, handler: _Handler) -> str | None:
        authorization = handler.headers.get("Authorization") or ""
        return authorization.removeprefix("Bearer ").strip() or None

    @abc.abstractmethod
    def unauthorized_body(self, key: str) -> Any:
        """The body of the 401 answer for a wrong key, in the vendor's shape."""

    @abc.abstractmethod
    def error_body(self, status: int, message: str) -> Any:
        """The body of an error answer with this status, in the vendor's shape."""

    @abc.abstractmethod
    def complete(self, body: dict[str, Any], reply: Reply, usage: tuple[int, int]) -> dict[str, Any]:
        """The non-streaming answer."""

    @abc.abstractmethod
    def stream(self, handler: _Handler, body: dict[str, Any], reply: Reply, usage: tuple[int, int]) -> None:
        """Write the streaming answer to the handler."""


class OpenAIServer(LoopbackLLMServer):
    """OpenAI Chat Completions: `POST /v1/chat/completions`; pass `f"{base_url}/v1"` to the client."""

    chat_path = "/chat/completions"
    default_api_key = "sk-loopback-openai-0123456789abcdefWXYZ"

    def unauthorized_body(self, key: str) -> Any:
        masked = f"{key[:3]}...{key[-4:]}"
        return {
            "error": {
                "message": f"Incorrect API key provided: {masked}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        }

    def error_body(self, status: int, message: str) -> Any:
        if status == 429:
            kind, code = "requests", "rate_limit_exceeded"
        else:
            kind, code = ("server_error" if status >= 500 else "invalid_request_error"), None
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    def _tool_calls(self, reply: Reply) -> list[dict[str, Any]]:
        return [
            {
                "id": call.get("id") or self.next_id("call_"),
                "type": "function",
                "function": {"name": call["name"], "arguments": json.dumps(call.get("args", {}))},
            }
            for call in reply.tool_calls
        ]

    def _envelope(self, body: dict[str, Any], kind: str) -> dict[str, Any]:
        return {
            "id": self.next_id("chatcmpl-"),
            "object": kind,
            "created": int(time.time()),
            "model": body.get("model"),
        }

    @staticmethod
    def _usage(usage: tuple[int, int]) -> dict[str, int]:
        return {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}

    def complete(self, body: dict[str, Any], reply: Reply, usage: tuple[int, int]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None, "refusal": None}
        if reply.tool_calls:
            message["tool_calls"] = self._tool_calls(reply)
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": "tool_calls" if reply.tool_calls else "stop",
        }
        return {**self._envelope(body, "chat.completion"), "choices": [choice], "usage": self._usage(usage)}

    def stream(self, handler: _Handler, body: dict[str, Any], reply: Reply, usage: tuple[int, int]) -> None:
        envelope = self._envelope(body, "chat.completion.chunk")

        def event(choices: list[dict[str, Any]], **extra: Any) -> None:
            handler.write_chunk(f"data: {json.dumps({**envelope, 'choices': choices, **extra})}\n\n")

        def delta(content: dict[str, Any], finish_reason: str | None = None) -> None:
            event([{"index": 0, "delta": content, "logprobs": None, "finish_reason": finish_reason}])

        handler.start_stream("text/event-stream")
        delta({"role": "assistant", "content": ""})
        for piece in _pieces(reply.text, reply.chunk_size):
            delta({"content": piece})
        for index, call in enumerate(self._tool_calls(reply)):
            function = call["function"]
            head = {"index": index, "id": call["id"], "type": "function", "function": {"name": function["name"]}}
            delta({"tool_calls": [{**head, "function": {**head["function"], "arguments": ""}}]})
            for piece in _pieces(function["arguments"], reply.chunk_size):
                delta({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        delta({}, "tool_calls" if reply.tool_calls else "stop")
        if (body.get("stream_options") or {}).get("include_usage"):
            event([], usage=self._usage(usage))
        handler.write_chunk("data: [DONE]\n\n")
        handler.end_stream()


class AnthropicServer(LoopbackLLMServer):
    """Anthropic Messages: `POST /v1/messages`; pass `base_url` as is."""

    chat_path = "/v1/messages"
    default_api_key = "sk-ant-loopback-0123456789abcdefWXYZ"

    def presented_key(self, handler: _Handler) -> str | None:
        # anthropic 2.x sends the key as a bearer token; older clients and curl use x-api-key.
        return handler.headers.get("x-api-key") or super().presented_key(handler)

    def unauthorized_body(self, key: str) -> Any:
        return {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}

    def error_body(self, status: int, message: str) -> Any:
        kinds = {400: "invalid_request_error", 404: "not_found_error", 429: "rate_limit_error", 529: "overloaded_error"}
        return {"type": "error", "error": {"type": kinds.get(status, "api_error"), "message": message}}

    def _blocks(self, reply: Reply) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
        blocks += [
            {
                "type": "tool_use",
                "id": call.get("id") or self.next_id("toolu_"),
                "name": call["name"],
                "input": call.get("args", {}),
            }
            for call in reply.tool_calls
        ]
        return blocks

    def _message(self, body: dict[str, Any], content: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.next_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": content,
            "stop_reason": None,
            "stop_sequence": None,
        }

    @staticmethod
    def _stop_reason(reply: Reply) -> str:
        return "tool_use" if reply.tool_calls else "end_turn"

    def complete(self, body: dict[str, Any], reply: Reply, usage: tuple[int, int]) -> dict[str, Any]:
        return {
            **self._message(body, self._blocks(reply)),
            "stop_reason": self._stop_reason(reply),
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
        }

    def stream(self, handler: _Handler, body: dict[str, Any], reply: Reply, usage: tuple[int, int]) -> None:
        def event(name: str, **payload: Any) -> None:
            handler.write_chunk(f"event: {name}\ndata: {json.dumps({'type': name, **payload})}\n\n")

        handler.start_stream("text/event-stream")
        event(
            "message_start",
            message={**self._message(body, []), "usage": {"input_tokens": usage[0], "output_tokens": 1}},
        )
        for index, block in enumerate(self._blocks(reply)):
            if block["type"] == "text":
                event("content_block_start", index=index, content_block={"type": "text", "text": ""})
                for piece in _pieces(block["text"], reply.chunk_size):
                    event("content_block_delta", index=index, delta={"type": "text_delta", "text": piece})
            else:
                event("content_block_start", index=index, content_block={**block, "input": {}})
                for piece in _pieces(json.dumps(block["input"]), reply.chunk_size):
                    event("content_block_delta", index=index, delta={"type": "input_json_delta", "partial_json": piece})
            event("content_block_stop", index=index)
        event(
            "message_delta",
            delta={"stop_reason": self._stop_reason(reply), "stop_sequence": None},
            # The API reports cumulative usage here, input included; langchain-anthropic reads it from here.
            usage={"input_tokens": usage[0], "output_tokens": usage[1]},
        )
        event("message_stop")
        handler.end_stream()


class OllamaServer(LoopbackLLMServer):
    """Ollama: `POST /api/chat`, NDJSON when streaming (the default). No key unless the test configures one."""

    chat_path = "/api/chat"
    default_api_key = None
    streams_by_default = True

    def unauthorized_body(self, key: str) -> Any:
        return {"error": "unauthorized"}

    def error_body(self, status: int, message: str) -> Any:
        return {"error": message}

    def _frame(self, body: dict[str, Any], message: dict[str, Any], *, done: bool) -> dict[str, Any]:
        created_at = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        return {"model": body.get("model"), "created_at": created_at, "message": message, "done": done}

    def _tool_calls(self, reply: Reply) -> list[dict[str, Any]]:
        return [{"function": {"name": call["name"], "arguments": call.get("args", {})}} for call in reply.tool_calls]

    def _final(self, body: dict[str, Any], message: dict[str, Any], usage: tuple[int, int]) -> dict[str, Any]:
        return {
            **self._frame(body, message, done=True),
            "done_reason": "stop",
            "total_duration": 1_000_000,
            "load_duration": 1_000,
            "prompt_eval_count": usage[0],
            "prompt_eval_duration": 1_000,
            "eval_count": usage[1],
            "eval_duration": 1_000,
        }

    def complete(self, body: dict[str, Any], reply: Reply, usage: tuple[int, int]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if reply.tool_calls:
            message["tool_calls"] = self._tool_calls(reply)
        return self._final(body, message, usage)

    def stream(self, handler: _Handler, body: dict[str, Any], reply: Reply, usage: tuple[int, int]) -> None:
        def frames() -> Iterator[dict[str, Any]]:
            for piece in _pieces(reply.text, reply.chunk_size):
                yield self._frame(body, {"role": "assistant", "content": piece}, done=False)
            if reply.tool_calls:
                # Ollama sends a model's tool calls whole, in one frame before the final one.
                message = {"role": "assistant", "content": "", "tool_calls": self._tool_calls(reply)}
                yield self._frame(body, message, done=False)
            yield self._final(body, {"role": "assistant", "content": ""}, usage)

        handler.start_stream("application/x-ndjson")
        for frame in frames():
            handler.write_chunk(json.dumps(frame) + "\n")
        handler.end_stream()
