"""
Live run events over WebSockets.

- `/ws/executions/<id>/`: one run, stored events first, then live ones, then closed after the
  final status. Messages: `{"type": "event", execution_id, seq, event_type, node_id, payload,
  created_at}` and live-only `{"type": "delta", node_id, text}` (an LLM's text as it streams).
- `/ws/`: many subscriptions on one socket, in the AutoGPT platform's envelope
  `{method, data, success, channel, error}`.

Both authenticate in the handshake (apps.users.sockets), scope with `visible_to`, and share the
gap-free cursor of apps.executions.streams.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer
from django.conf import settings

from apps.executions.broadcast import execution_group, workflow_group
from apps.executions.streams import RunStream, visible_execution, visible_workflow, whole_number
from apps.users.sockets import refusal_code

CLOSE_BAD_REQUEST = 4400
CLOSE_NOT_FOUND = 4004


class RelayMixin:
    """
    Channels closes stale database connections before every message it dispatches: a hop to the
    server's one sync thread, per message and per subscriber, which dominated the cost of a live
    event fanned out to many sockets (make bench, B3). Relayed channel-layer messages touch the
    database only through `database_sync_to_async`, which closes stale connections itself; so only
    the socket's own messages go through the stock dispatch.
    """

    async def dispatch(self, message: dict) -> None:
        if message["type"].startswith("websocket."):
            return await super().dispatch(message)
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)


class EventTexts:
    """
    Each event's JSON text, made once per process rather than once per subscriber. Events are
    immutable facts, so `(execution_id, seq)` names the text for good; a small LRU suffices.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.texts: OrderedDict[tuple[str, int], str] = OrderedDict()

    def __call__(self, event: dict) -> str:
        key = (event["execution_id"], event["seq"])
        text = self.texts.get(key)
        if text is None:
            text = self.texts[key] = json.dumps({"type": "event", **event})
            if len(self.texts) > self.size:
                self.texts.popitem(last=False)
        return text


event_text = EventTexts()


class ExecutionConsumer(RelayMixin, AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        # Accept first: a close code can only be sent on an open socket; nothing else is sent.
        await self.accept()
        if code := refusal_code(self.scope):
            await self.close(code=code)
            return
        after = whole_number(parse_qs(self.scope.get("query_string", b"").decode()).get("after_seq", ["0"])[0])
        if after is None:
            await self.close(code=CLOSE_BAD_REQUEST)
            return
        run = await visible_execution(self.scope["user"], self.scope["url_route"]["kwargs"]["execution_id"])
        if run is None:
            await self.close(code=CLOSE_NOT_FOUND)  # missing, malformed and not yours look the same
            return
        self.stream = RunStream(run["id"], after, ended=run["ended"])
        self.group = execution_group(run["id"])
        # Join before reading: whatever commits after the read arrives live; the cursor drops repeats.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self._send_events(await self.stream.catch_up())

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        pass  # this socket only speaks; whatever a client sends is ignored

    async def execution_events(self, message: dict) -> None:
        await self._send_events(await self.stream.take(message["events"]))

    async def execution_delta(self, message: dict) -> None:
        if not self.stream.finished:
            await self.send_json({"type": "delta", "node_id": message["node_id"], "text": message["text"]})

    async def _send_events(self, events: list[dict]) -> None:
        for event in events:
            await self.send(text_data=event_text(event))
        if self.stream.finished:
            await self.close(code=1000)


# --- /ws/: the multiplexed socket ------------------------------------------------------------------


EMPTY_ENVELOPE = {"method": None, "data": None, "success": None, "channel": None, "error": None}


class RequestError(Exception):
    """A client message the server cannot act on; its text is sent back as the error."""


def run_channel(user_id: int, execution_id: Any) -> str:
    return f"{user_id}|graph_exec#{execution_id}"


def workflow_channel(user_id: int, workflow_id: Any) -> str:
    return f"{user_id}|graph#{workflow_id}|executions"


class MultiplexConsumer(RelayMixin, AsyncWebsocketConsumer):
    """
    Client methods: `subscribe_graph_execution {graph_exec_id, after_seq?}` (stored events after
    `after_seq`, then live ones), `subscribe_graph_executions {graph_id}` (live events of every run
    of a workflow, new runs included), `unsubscribe {channel}` (or the id it was made with),
    `heartbeat`. Server messages: `graph_execution_event` (the run's status) and
    `node_execution_event`, each with its `channel` and the event in `data`.
    """

    async def connect(self) -> None:
        await self.accept()
        if code := refusal_code(self.scope):
            await self.close(code=code)
            return
        self.user = self.scope["user"]
        self.streams: dict[str, RunStream] = {}  # run id -> cursor, shared by run and workflow subscriptions
        self.workflow_of: dict[str, int] = {}  # run id -> its workflow id, for the envelope
        self.runs: set[str] = set()  # runs subscribed one by one
        self.workflows: set[str] = set()

    async def disconnect(self, code: int) -> None:
        for execution_id in getattr(self, "runs", ()):
            await self.channel_layer.group_discard(execution_group(execution_id), self.channel_name)
        for workflow_id in getattr(self, "workflows", ()):
            await self.channel_layer.group_discard(workflow_group(workflow_id), self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        method = None
        try:
            size = len(text_data.encode() if text_data is not None else bytes_data or b"")
            if size > settings.WEBSOCKET_MAX_MESSAGE_BYTES:
                raise RequestError(f"Message too large: {size} bytes (at most {settings.WEBSOCKET_MAX_MESSAGE_BYTES}).")
            message = self._parse(text_data)
            method = message["method"]
            handler = self.METHODS.get(method)
            if handler is None:
                raise RequestError(f"Unknown method {method[:64]!r}; use one of {', '.join(sorted(self.METHODS))}.")
            data = message.get("data")
            if method != "heartbeat" and not isinstance(data, dict):
                raise RequestError(f"{method} needs an object in 'data'.")
            await handler(self, data)
        except RequestError as error:
            method = method if method in self.METHODS else None
            await self._send({"method": "error", "success": False, "error": str(error), "data": {"method": method}})

    @staticmethod
    def _parse(text_data: str | None) -> dict:
        if text_data is None:
            raise RequestError("Send JSON text messages, not binary ones.")
        try:
            message = json.loads(text_data)
        except ValueError as error:
            raise RequestError(f"Malformed JSON: {error}.") from None
        if not isinstance(message, dict) or not isinstance(message.get("method"), str):
            raise RequestError("A message is a JSON object with a 'method' string.")
        return message

    async def _heartbeat(self, data: Any) -> None:
        await self._send({"method": "heartbeat", "data": "pong", "success": True})

    async def _subscribe_run(self, data: dict) -> None:
        after = data.get("after_seq", 0)
        if isinstance(after, str) or whole_number(after) is None:
            raise RequestError("'after_seq' must be a whole number, 0 or more.")
        run = await visible_execution(self.user, data.get("graph_exec_id"))
        if run is None:
            raise RequestError("No such execution.")  # missing and not yours look the same
        execution_id = str(run["id"])
        if execution_id not in self.runs:
            self.runs.add(execution_id)
            self.workflow_of[execution_id] = run["workflow_id"]
            # Already followed through its workflow: what was sent stays sent.
            self.streams.setdefault(execution_id, RunStream(execution_id, after, ended=run["ended"]))
            await self.channel_layer.group_add(execution_group(execution_id), self.channel_name)
        channel = run_channel(self.user.pk, execution_id)
        await self._send({"method": "subscribe_graph_execution", "success": True, "channel": channel})
        await self._relay(execution_id, await self.streams[execution_id].catch_up())

    async def _subscribe_workflow(self, data: dict) -> None:
        workflow_id = await visible_workflow(self.user, data.get("graph_id"))
        if workflow_id is None:
            raise RequestError("No such workflow.")
        if str(workflow_id) not in self.workflows:
            self.workflows.add(str(workflow_id))
            await self.channel_layer.group_add(workflow_group(workflow_id), self.channel_name)
        channel = workflow_channel(self.user.pk, workflow_id)
        await self._send({"method": "subscribe_graph_executions", "success": True, "channel": channel})

    async def _unsubscribe(self, data: dict) -> None:
        channel = data.get("channel")
        for execution_id in list(self.runs):
            if channel == run_channel(self.user.pk, execution_id) or str(data.get("graph_exec_id")) == execution_id:
                self.runs.discard(execution_id)
                self._forget(execution_id)
                await self.channel_layer.group_discard(execution_group(execution_id), self.channel_name)
                channel = run_channel(self.user.pk, execution_id)
                return await self._send({"method": "unsubscribe", "success": True, "channel": channel})
        for workflow_id in list(self.workflows):
            if channel == workflow_channel(self.user.pk, workflow_id) or str(data.get("graph_id")) == workflow_id:
                self.workflows.discard(workflow_id)
                await self.channel_layer.group_discard(workflow_group(workflow_id), self.channel_name)
                channel = workflow_channel(self.user.pk, workflow_id)
                return await self._send({"method": "unsubscribe", "success": True, "channel": channel})
        raise RequestError("Not subscribed to that channel.")

    METHODS = {
        "heartbeat": _heartbeat,
        "subscribe_graph_execution": _subscribe_run,
        "subscribe_graph_executions": _subscribe_workflow,
        "unsubscribe": _unsubscribe,
    }

    async def execution_events(self, message: dict) -> None:
        execution_id = message["execution_id"]
        stream = self.streams.get(execution_id)
        if stream is None:
            workflow_id = message.get("workflow_id")
            if execution_id in self.runs or str(workflow_id) not in self.workflows:
                return  # unsubscribed while the message was on its way
            # A run first seen through its workflow: follow it from this batch on.
            stream = self.streams[execution_id] = RunStream(execution_id, message["events"][0]["seq"] - 1)
            self.workflow_of[execution_id] = workflow_id
        await self._relay(execution_id, await stream.take(message["events"]))

    async def execution_delta(self, message: dict) -> None:
        pass  # text deltas are for /ws/executions/<id>/ (the run page); this envelope has no such message

    async def _relay(self, execution_id: str, events: list[dict]) -> None:
        workflow_id = self.workflow_of.get(execution_id)
        if execution_id in self.runs:
            channel = run_channel(self.user.pk, execution_id)
        else:
            channel = workflow_channel(self.user.pk, workflow_id)
        for event in events:
            method = "graph_execution_event" if event["event_type"].startswith("execution.") else "node_execution_event"
            data = {**event, "graph_exec_id": execution_id, "graph_id": workflow_id}
            await self._send({"method": method, "success": True, "channel": channel, "data": data})
        if execution_id not in self.runs and self.streams[execution_id].finished:
            self._forget(execution_id)  # a workflow's finished run: nothing more will come

    def _forget(self, execution_id: str) -> None:
        self.streams.pop(execution_id, None)
        self.workflow_of.pop(execution_id, None)

    async def _send(self, envelope: dict) -> None:
        await self.send(text_data=json.dumps({**EMPTY_ENVELOPE, **envelope}))
