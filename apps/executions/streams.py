"""
One run's event stream as a client sees it, shared by the WebSocket consumers and the SSE view:
a `seq` cursor, stored events read from the database, live batches from the channel layer with
repeats dropped and gaps read back, so every client gets every event exactly once, in order.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from channels.db import database_sync_to_async

from apps.executions.broadcast import event_message
from apps.executions.models import Execution, ExecutionEvent
from apps.workflows.models import Workflow

TERMINAL = frozenset(str(status) for status in Execution.TERMINAL)
CATCH_UP_BATCH = 500
WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")


def is_terminal(event: dict) -> bool:
    return event["event_type"] == "execution.status" and event["payload"].get("status") in TERMINAL


class RunStream:
    """The events of one run after `last_seq` that this client has not had yet."""

    def __init__(self, execution_id: uuid.UUID | str, last_seq: int = 0, *, ended: bool = False) -> None:
        self.execution_id = uuid.UUID(str(execution_id))
        self.last_seq = last_seq
        self.finished = False
        # The run had already ended when the client arrived (read before the first catch-up): its
        # final event is stored, so a cursor at or past it has nothing left to wait for.
        self.ended = ended

    async def stored(self) -> list[dict]:
        """Stored events after the cursor (up to CATCH_UP_BATCH; call again while it returns a full batch)."""
        events = await stored_events_after(self.execution_id, self.last_seq, limit=CATCH_UP_BATCH)
        self._advance(events)
        return events

    async def catch_up(self) -> list[dict]:
        events: list[dict] = []
        while batch := await self.stored():
            events.extend(batch)
            if len(batch) < CATCH_UP_BATCH or self.finished:
                break
        self.finished = self.finished or self.ended
        return events

    async def take(self, live: list[dict]) -> list[dict]:
        """The new events of a live batch in order: repeats dropped, a gap read from the database."""
        events: list[dict] = []
        for event in live:
            if self.finished or event["seq"] <= self.last_seq:
                continue
            if event["seq"] > self.last_seq + 1:
                events.extend(await self.catch_up())  # a message was missed (a full channel, a restart)
                continue
            self._advance([event])
            events.append(event)
        return events

    def _advance(self, events: list[dict]) -> None:
        for index, event in enumerate(events):
            self.last_seq = event["seq"]
            if is_terminal(event):
                self.finished = True
                del events[index + 1 :]
                return


@database_sync_to_async
def stored_events_after(execution_id: uuid.UUID, seq: int, *, limit: int) -> list[dict]:
    events = ExecutionEvent.objects.filter(execution_id=execution_id).after(seq)[:limit]
    return [event_message(event) for event in events]


def whole_number(value: Any) -> int | None:
    """`value` as an int when it is one (or its plain ASCII digits), else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    if isinstance(value, str) and WHOLE_NUMBER.fullmatch(value):
        return int(value)
    return None


@database_sync_to_async
def visible_execution(user: Any, execution_id: Any) -> dict | None:
    """
    `{"id", "workflow_id", "ended"}` of the user's run, or None when it is missing, malformed or
    not theirs. `ended`: its final status is stored (and so is its final event).
    """
    try:
        execution_id = uuid.UUID(str(execution_id))
    except ValueError:
        return None
    row = (
        Execution.objects.visible_to(user)
        .filter(pk=execution_id)
        .values("id", "status", "version__workflow_id")
        .first()
    )
    if row is None:
        return None
    return {"id": row["id"], "workflow_id": row["version__workflow_id"], "ended": row["status"] in TERMINAL}


@database_sync_to_async
def visible_workflow(user: Any, workflow_id: Any) -> int | None:
    workflow_id = whole_number(workflow_id)
    if workflow_id is None:
        return None
    return Workflow.objects.visible_to(user).filter(pk=workflow_id).values_list("pk", flat=True).first()
