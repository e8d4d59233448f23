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
from django.db.models import F
from django.utils import timezone

from apps.billing import notices
from apps.billing.models import CreditAccount, CreditTransaction
from apps.billing.services import Cost, ledger_post
from apps.executions import events
from apps.executions.models import Execution, ExecutionEvent, NodeExecution

FREE = Cost(amount=0, lines=())


@dataclass
class Finished:
    status: str
    outputs: dict | None
    usage: dict
    delta: dict
    duration_ms: int
    error: dict | None = None
    cost: Cost = FREE


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def node_started(
    execution: Execution, *, lease: str, node_id: str, node_type: str, attempt: int, inputs: dict, step: int
) -> tuple[int, ExecutionEvent, int]:
    """The attempt's record and event, and the owner's balance as it stood (micro-credits; 0 with no account)."""
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
            balance = CreditAccount.objects.filter(user_id=execution.owner_id).values_list("balance", flat=True)
            return record.pk, event, balance.first() or 0
    row = _one(
        f"""
        WITH seq AS ({_NEXT_SEQ}),
        node AS (
            INSERT INTO {_NODES} (execution_id, node_id, node_type, status, attempt, inputs, usage, error_code,
                                  error_message, started_at, step, state_delta, cost)
            SELECT %(run)s, %(node)s, %(type)s, 'running', %(attempt)s, %(inputs)s::jsonb, '{{}}'::jsonb, '', '',
                   %(now)s, %(step)s, '{{}}'::jsonb, 0
            FROM seq
            RETURNING id
        )
        INSERT INTO {_EVENTS} (execution_id, seq, type, node_id, payload, created_at)
        SELECT %(run)s, seq.last_event_seq, 'node.started', %(node)s, %(payload)s::jsonb, %(now)s FROM seq
        RETURNING id, seq, (SELECT id FROM node), (SELECT balance FROM {_ACCOUNTS} WHERE user_id = %(owner)s)
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
            "owner": execution.owner_id,
        },
    )
    event_id, seq, record_id, balance = row
    return record_id, _event(execution, event_id, seq, "node.started", node_id, payload, now), balance or 0


def node_finished(
    execution: Execution, *, lease: str, record_id: int, node_id: str, node_type: str, attempt: int, result: Finished
) -> ExecutionEvent:
    """
    The attempt's end, its event, and its charge (`result.cost`), all in one transaction: the
    ledger row's key `node:<record id>` means a node attempt is paid for once, whatever happens.
    """
    now = timezone.now()
    cost = result.cost.amount
    kind, payload = events.node_finished_payload(
        node_type=node_type,
        attempt=attempt,
        status=result.status,
        outputs=result.outputs,
        usage=result.usage,
        error=result.error,
        duration_ms=result.duration_ms,
        cost=cost,
    )
    error = result.error or {}
    description = _charge_description(execution, node_id, result.cost)
    if connection.vendor != "postgresql":
        with transaction.atomic():
            # Only a running attempt ends (and is charged): finishing one twice changes nothing.
            ended = NodeExecution.objects.filter(pk=record_id, status=NodeExecution.Status.RUNNING).update(
                status=result.status,
                outputs=result.outputs,
                usage=result.usage,
                state_delta=result.delta,
                error_code=error.get("code", ""),
                error_message=error.get("message", ""),
                finished_at=now,
                duration_ms=result.duration_ms,
                cost=cost,
            )
            event = events.node_event(execution, kind=kind, node_id=node_id, payload=payload, lease=lease, sink=[])
            if cost and ended:
                Execution.objects.filter(pk=execution.pk).update(cost=F("cost") + cost)
                ledger_post(
                    user=execution.owner_id,
                    kind=CreditTransaction.Kind.USAGE,
                    amount=-cost,
                    idempotency_key=f"node:{record_id}",
                    description=description,
                    execution=execution.pk,
                    node_execution=record_id,
                    fallback_price=result.cost.fallback,
                )
        return event
    # One statement: the lease check and event number (which also adds to the run's cost), the
    # node row (only a running attempt ends: finishing one twice charges nothing), the owner's
    # balance (an upsert holds its row lock until commit, as ledger_post's SELECT FOR UPDATE does),
    # the ledger row, and the event. No charge: the account is untouched.
    row = _one(
        f"""
        WITH running AS (SELECT 1 FROM {_NODES} WHERE id = %(record)s AND status = 'running'),
        seq AS (
            UPDATE {_RUNS} SET last_event_seq = last_event_seq + 1,
                cost = cost + CASE WHEN EXISTS (SELECT 1 FROM running) THEN %(cost)s ELSE 0 END
            WHERE id = %(run)s AND lease_owner = %(lease)s RETURNING last_event_seq
        ),
        node AS (
            UPDATE {_NODES} SET status = %(status)s, outputs = %(outputs)s::jsonb, usage = %(usage)s::jsonb,
                state_delta = %(delta)s::jsonb, error_code = %(code)s, error_message = %(message)s,
                finished_at = %(now)s, duration_ms = %(duration)s, cost = %(cost)s
            WHERE id = %(record)s AND status = 'running' AND EXISTS (SELECT 1 FROM seq)
            RETURNING id
        ),
        account AS (
            INSERT INTO {_ACCOUNTS} (user_id, balance, updated_at)
            SELECT %(owner)s, -%(cost)s, %(now)s FROM node WHERE %(cost)s > 0
            ON CONFLICT (user_id) DO UPDATE
                SET balance = {_ACCOUNTS}.balance + EXCLUDED.balance, updated_at = EXCLUDED.updated_at
            RETURNING balance
        ),
        charge AS (
            INSERT INTO {_LEDGER} (user_id, kind, amount, balance_after, execution_id, node_execution_id,
                                   description, fallback_price, idempotency_key, created_at)
            SELECT %(owner)s, 'usage', -%(cost)s, account.balance, %(run)s, %(record)s, %(description)s,
                   %(fallback)s, %(key)s, %(now)s
            FROM account
            RETURNING balance_after
        )
        INSERT INTO {_EVENTS} (execution_id, seq, type, node_id, payload, created_at)
        SELECT %(run)s, seq.last_event_seq, %(kind)s, %(node)s, %(payload)s::jsonb, %(now)s FROM seq
        RETURNING id, seq, (SELECT balance_after FROM charge)
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
            "cost": cost,
            "owner": execution.owner_id,
            "description": description,
            "fallback": result.cost.fallback,
            "key": f"node:{record_id}",
        },
    )
    event_id, seq, balance_after = row
    if balance_after is not None:
        notices.balance_moved(user_id=execution.owner_id, before=balance_after + cost, after=balance_after)
    return _event(execution, event_id, seq, kind, node_id, payload, now)


def _charge_description(execution: Execution, node_id: str, cost: Cost) -> str:
    return f"Run {execution.pk}, node {node_id}: " + "; ".join(cost.lines)


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
_ACCOUNTS = CreditAccount._meta.db_table
_LEDGER = CreditTransaction._meta.db_table
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
