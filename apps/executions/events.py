"""
Execution events: insert-only rows with a per-run `seq`, one small function per kind.

Each is written inside the caller's transaction and broadcast to the run's channel group
after that transaction commits, so a live client never sees an event the database lacks.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.db import connection, transaction

from apps.billing.models import credits
from apps.executions import broadcast
from apps.executions.models import Execution, ExecutionEvent

MAX_VALUE_CHARS = 4_000
TRUNCATED = "…[truncated]"


def truncate(value: Any, limit: int = MAX_VALUE_CHARS) -> Any:
    """Large values shortened with a marker; the full value stays on the NodeExecution."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    if len(text) <= limit:
        return value
    return text[: limit - len(TRUNCATED)] + TRUNCATED


class LeaseLost(Exception):
    """The worker writing this event no longer holds the run's lease (it was reaped and resumed elsewhere)."""


def _next_seq(execution_id: Any, lease: str | None) -> int | None:
    """
    The run's next event number, in one statement. The UPDATE holds the run's row lock until
    commit, so concurrent writers get consecutive numbers; for a worker's events it is also the
    lease check (no row: the run was given to another worker, and this one writes nothing).
    """
    table = Execution._meta.db_table
    sql = f"UPDATE {table} SET last_event_seq = last_event_seq + 1 WHERE id = %s"  # noqa: S608 - no user input
    run_id = execution_id if isinstance(execution_id, uuid.UUID) else uuid.UUID(str(execution_id))
    # Django keeps UUIDs as 32 hex characters in SQLite and as uuid in PostgreSQL.
    params: list[Any] = [run_id.hex if connection.vendor == "sqlite" else run_id]
    if lease is not None:
        sql += " AND lease_owner = %s"
        params.append(lease)
    with connection.cursor() as cursor:
        # RETURNING: PostgreSQL, and SQLite since 3.35.
        cursor.execute(sql + " RETURNING last_event_seq", params)
        row = cursor.fetchone()
    return row[0] if row else None


def _append(
    execution: Execution,
    type_: str,
    payload: dict,
    node_id: str = "",
    lease: str | None = None,
    sink: list | None = None,
) -> ExecutionEvent:
    seq = _next_seq(execution.pk, lease)
    if seq is None:
        raise LeaseLost(f"run {execution.pk} is no longer leased to {lease}")
    event = ExecutionEvent.objects.create(
        execution_id=execution.pk, seq=seq, type=type_, node_id=node_id, payload=payload
    )
    if sink is not None:
        # The engine broadcasts from its event loop once the transaction has committed.
        sink.append(event)
    else:
        workflow_id = execution.workflow_id
        transaction.on_commit(lambda: broadcast.event_committed(event, workflow_id=workflow_id))
    return event


def execution_status(
    execution: Execution, *, status: str, error: dict | None = None, sink: list | None = None, **extra: Any
) -> ExecutionEvent:
    payload = {"status": status, **extra}
    if error:
        payload["error"] = error
    return _append(execution, "execution.status", payload, sink=sink)


def node_started_payload(*, node_type: str, attempt: int, inputs: dict) -> dict:
    return {"node_type": node_type, "attempt": attempt, "inputs": truncate(inputs)}


def node_finished_payload(
    *,
    node_type: str,
    attempt: int,
    status: str,
    outputs: dict | None,
    usage: dict,
    error: dict | None,
    duration_ms: int,
    cost: int = 0,
) -> tuple[str, dict]:
    """
    The kind and payload of a node attempt's end: `node.completed` (with what it was charged,
    in credits), or `node.failed` with its error.
    """
    if status == "succeeded":
        payload = {"outputs": truncate(outputs), "duration_ms": duration_ms, "usage": usage, "cost": credits(cost)}
        return "node.completed", {"node_type": node_type, "attempt": attempt, **payload}
    payload = {"status": status, "error": error, "duration_ms": duration_ms}
    return "node.failed", {"node_type": node_type, "attempt": attempt, **payload}


def node_event(
    execution: Execution, *, kind: str, node_id: str, payload: dict, lease: str, sink: list | None = None
) -> ExecutionEvent:
    """A node's started/completed/failed event (payloads from the functions above)."""
    return _append(execution, kind, payload, node_id, lease, sink)


def node_skipped(
    execution: Execution, *, node_id: str, node_type: str, lease: str, sink: list | None = None
) -> ExecutionEvent:
    return _append(execution, "node.skipped", {"node_type": node_type}, node_id, lease, sink)


def node_log(
    execution: Execution, *, node_id: str, message: str, data: dict, lease: str, sink: list | None = None
) -> ExecutionEvent:
    payload = {"message": message[:2000], "data": truncate(data)}
    return _append(execution, "node.log", payload, node_id, lease, sink)
