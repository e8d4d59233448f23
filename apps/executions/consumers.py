"""
`/ws/executions/<id>/`: one run's events, stored ones first, then live ones, with no gap and no
duplicate across that boundary (the client's cursor is `seq`), closing after the final status.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.executions.broadcast import event_message, execution_group
from apps.executions.models import Execution, ExecutionEvent

CLOSE_UNAUTHENTICATED = 4001
CLOSE_FORBIDDEN = 4003
CLOSE_BAD_REQUEST = 4400
CLOSE_NOT_FOUND = 4004
TERMINAL = {str(status) for status in Execution.TERMINAL}


class ExecutionConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        # Accept first: a close code can only be sent on an open socket; nothing else is sent.
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        try:
            execution_id = uuid.UUID(self.scope["url_route"]["kwargs"]["execution_id"])
        except ValueError:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode())
        after = query.get("after_seq", ["0"])[0]
        if not after.isdigit():
            await self.close(code=CLOSE_BAD_REQUEST)
            return
        self.last_seq = int(after)
        if not await self._visible(user, execution_id):
            await self.close(code=CLOSE_NOT_FOUND)  # missing and not yours look the same
            return
        self.execution_id = execution_id
        self.group = execution_group(execution_id)
        self.closing = False
        # Join before reading: whatever commits after the read arrives live; the seq cursor drops repeats.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self._catch_up()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def execution_events(self, message: dict) -> None:
        for event in message["events"]:
            if self.closing:
                return
            if event["seq"] > self.last_seq + 1:
                await self._catch_up()  # a message was missed (e.g. a full channel): read the gap
            if event["seq"] == self.last_seq + 1:
                await self._deliver(event)

    async def execution_delta(self, message: dict) -> None:
        if not self.closing:
            await self.send_json({"type": "delta", "node_id": message["node_id"], "text": message["text"]})

    async def _catch_up(self) -> None:
        for event in await self._stored_after(self.execution_id, self.last_seq):
            if self.closing:
                return
            await self._deliver(event)

    async def _deliver(self, event: dict) -> None:
        await self.send_json({"type": "event", **event})
        self.last_seq = event["seq"]
        if event["event_type"] == "execution.status" and event["payload"].get("status") in TERMINAL:
            self.closing = True
            await self.close(code=1000)

    @database_sync_to_async
    def _visible(self, user: Any, execution_id: uuid.UUID) -> bool:
        return Execution.objects.visible_to(user).filter(pk=execution_id).exists()

    @database_sync_to_async
    def _stored_after(self, execution_id: uuid.UUID, seq: int) -> list[dict]:
        return [event_message(event) for event in ExecutionEvent.objects.filter(execution_id=execution_id).after(seq)]
