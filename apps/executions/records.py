"""
The engine's two writes per node attempt (it started; it ended), each with its event.

These are the hot path: a 50-node chain makes a hundred of them. On PostgreSQL each is one
statement (data-modifying CTEs: the lease check and event number, the node row, the event), so
it costs one round trip and one commit instead of five; elsewhere (SQLite) the same rows are
written through the ORM in a transaction. Both paths produce identical rows; the suite runs on both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from apps.executions import events
from apps.executions.models import Execution, ExecutionEvent, NodeExecution


@dataclass
class Finished:
    status: str
    outputs: dict | None
    usage: dict
    delta: dict
    duration_ms: int
    error: dict | None = None


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def node_started(
    execution: Execution, *, lease: str, node_id: str, node_type: str, attempt: int, inputs: dict, step: int
) -> tuple[int, ExecutionEvent]:
    now = timezone.now()
    payload = events.node_started_payload(node_type=node_type, attempt=attempt, inputs=inputs)
    if connection.vendor != "postgresql":
        with transaction.atomic():
            record = NodeExecution.objects.create(
                execution_id=execution.pk,
                node_id=node_id,
                node_type=node_type,
                attempt=attempt,
                inputs=inputs,
                started_at=now,
                step=step,
            )
            # A sink, not on_commit: the engine publishes the returned event from its own loop.
            event = events.node_event(
                execution, kind="node.started", node_id=node_id, payload=payload, lease=lease, sink=[]
            )
        return record.pk, event
    row = _one(
        f"""
        WITH seq AS ({_NEXT_SEQ}),
        node AS (
            INSERT INTO {_NODES} (execution_id, node_id, node_type, status, attempt, inputs, usage, error_code,
                                  error_message, started_at, step, state_delta)
            SELECT %(run)s, %(node)s, %(type)s, 'running', %(attempt)s, %(inputs)s::jsonb, '{{}}'::jsonb, '', '',
                   %(now)s, %(step)s, '{{}}'::jsonb
            FROM seq
            RETURNING id
        )
        INSERT INTO {_EVENTS} (execution_id, seq, type, node_id, payload, created_at)
        SELECT %(run)s, seq.last_event_seq, 'node.started', %(node)s, %(payload)s::jsonb, %(now)s FROM seq
        RETURNING id, seq, (SELECT id FROM node)
        """,  # noqa: S608 - table names are ours; values are parameters
        {
            "run": execution.pk,
            "lease": lease,
            "node": node_id,
            "type": node_type,
            "attempt": attempt,
            "inputs": _json(inputs),
            "now": now,
            "step": step,
            "payload": _json(payload),
        },
    )
    event_id, seq, record_id = row
    return record_id, _event(execution, event_id, seq, "node.started", node_id, payload, now)


def node_finished(
    execution: Execution, *, lease: str, record_id: int, node_id: str, node_type: str, attempt: int, result: Finished
) -> ExecutionEvent:
    now = timezone.now()
    kind, payload = events.node_finished_payload(
        node_type=node_type,
        attempt=attempt,
        status=result.status,
        outputs=result.outputs,
        usage=result.usage,
        error=result.error,
        duration_ms=result.duration_ms,
    )
    error = result.error or {}
    if connection.vendor != "postgresql":
        with transaction.atomic():
            NodeExecution.objects.filter(pk=record_id).update(
                status=result.status,
                outputs=result.outputs,
                usage=result.usage,
                state_delta=result.delta,
                error_code=error.get("code", ""),
                error_message=error.get("message", ""),
                finished_at=now,
                duration_ms=result.duration_ms,
            )
            event = events.node_event(execution, kind=kind, node_id=node_id, payload=payload, lease=lease, sink=[])
        return event
    row = _one(
        f"""
        WITH seq AS ({_NEXT_SEQ}),
        node AS (
            UPDATE {_NODES} SET status = %(status)s, outputs = %(outputs)s::jsonb, usage = %(usage)s::jsonb,
                state_delta = %(delta)s::jsonb, error_code = %(code)s, error_message = %(message)s,
                finished_at = %(now)s, duration_ms = %(duration)s
            WHERE id = %(record)s AND EXISTS (SELECT 1 FROM seq)
            RETURNING id
        )
        INSERT INTO {_EVENTS} (execution_id, seq, type, node_id, payload, created_at)
        SELECT %(run)s, seq.last_event_seq, %(kind)s, %(node)s, %(payload)s::jsonb, %(now)s FROM seq
        RETURNING id, seq, (SELECT id FROM node)
        """,  # noqa: S608 - table names are ours; values are parameters
        {
            "run": execution.pk,
            "lease": lease,
            "record": record_id,
            "status": result.status,
            "outputs": None if result.outputs is None else _json(result.outputs),
            "usage": _json(result.usage),
            "delta": _json(result.delta),
            "code": error.get("code", ""),
            "message": error.get("message", ""),
            "now": now,
            "duration": result.duration_ms,
            "kind": kind,
            "node": node_id,
            "payload": _json(payload),
        },
    )
    event_id, seq, _ = row
    return _event(execution, event_id, seq, kind, node_id, payload, now)


def run_claimed(*, execution_id: Any, worker_id: str, lease_seconds: int) -> ExecutionEvent | None:
    """PostgreSQL: queued -> running under this worker's lease, with its event, in one statement."""
    now = timezone.now()
    payload_sql = "jsonb_build_object('status', 'running', 'attempt', attempt)"
    row = _maybe_one(
        f"""
        WITH claimed AS (
            UPDATE {_RUNS} SET status = 'running', lease_owner = %(lease)s,
                lease_expires_at = %(now)s + make_interval(secs => %(lease_seconds)s), heartbeat_at = %(now)s,
                attempt = attempt + 1, started_at = COALESCE(started_at, %(now)s), last_event_seq = last_event_seq + 1
            WHERE id = %(run)s AND status = 'queued'
            RETURNING id, last_event_seq, attempt
        )
        INSERT INTO {_EVENTS} (execution_id, seq, type, node_id, payload, created_at)
        SELECT id, last_event_seq, 'execution.status', '', {payload_sql}, %(now)s FROM claimed
        RETURNING id, seq, (SELECT attempt FROM claimed)
        """,  # noqa: S608 - table names are ours; values are parameters
        {"run": execution_id, "lease": worker_id, "now": now, "lease_seconds": lease_seconds},
    )
    if row is None:
        return None
    event_id, seq, attempt = row
    # Django reads jsonb as text; the payload is rebuilt here rather than parsed back.
    payload = {"status": "running", "attempt": attempt}
    return _status_event(execution_id, event_id, seq, payload, now)


def run_finished(
    *, execution_id: Any, worker_id: str, status: str, outputs: dict | None, error: dict | None
) -> ExecutionEvent | None:
    """PostgreSQL: running -> a final status, only under this worker's lease, with its event, in one statement."""
    now = timezone.now()
    payload = {"status": status, **({"error": error} if error else {})}
    row = _maybe_one(
        f"""
        WITH done AS (
            UPDATE {_RUNS} SET status = %(status)s, outputs = %(outputs)s::jsonb, error_code = %(code)s,
                error_message = %(message)s, finished_at = %(now)s, lease_owner = '', lease_expires_at = NULL,
                last_event_seq = last_event_seq + 1
            WHERE id = %(run)s AND status = 'running' AND lease_owner = %(lease)s
            RETURNING id, last_event_seq
        )
        INSERT INTO {_EVENTS} (execution_id, seq, type, node_id, payload, created_at)
        SELECT id, last_event_seq, 'execution.status', '', %(payload)s::jsonb, %(now)s FROM done
        RETURNING id, seq
        """,  # noqa: S608 - table names are ours; values are parameters
        {
            "run": execution_id,
            "lease": worker_id,
            "status": status,
            "outputs": None if outputs is None else _json(outputs),
            "code": (error or {}).get("code", ""),
            "message": (error or {}).get("message", ""),
            "now": now,
            "payload": _json(payload),
        },
    )
    if row is None:
        return None
    event_id, seq = row
    return _status_event(execution_id, event_id, seq, payload, now)


_RUNS = Execution._meta.db_table
_NODES = NodeExecution._meta.db_table
_EVENTS = ExecutionEvent._meta.db_table
# The run's next event number, which also proves this worker still holds the lease.
_NEXT_SEQ = (
    f"UPDATE {Execution._meta.db_table} SET last_event_seq = last_event_seq + 1 "  # noqa: S608 - our table
    "WHERE id = %(run)s AND lease_owner = %(lease)s RETURNING last_event_seq"
)


def _maybe_one(sql: str, params: dict) -> tuple | None:
    # Autocommit: a single statement is its own transaction (one round trip, one commit).
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _one(sql: str, params: dict) -> tuple:
    row = _maybe_one(sql, params)
    if row is None:
        raise events.LeaseLost(f"run {params['run']} is no longer leased to {params['lease']}")
    return row


def _status_event(execution_id: Any, event_id: int, seq: int, payload: dict, now: datetime) -> ExecutionEvent:
    return ExecutionEvent(
        id=event_id,
        execution_id=execution_id,
        seq=seq,
        type="execution.status",
        node_id="",
        payload=payload,
        created_at=now,
    )


def _event(
    execution: Execution, event_id: int, seq: int, kind: str, node_id: str, payload: dict, now: datetime
) -> ExecutionEvent:
    return ExecutionEvent(
        id=event_id, execution_id=execution.pk, seq=seq, type=kind, node_id=node_id, payload=payload, created_at=now
    )
