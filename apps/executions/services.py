"""
Runs as a state machine in the database. Every transition is a compare-and-set UPDATE
(0 rows: someone else moved the run first), writes its event in the same transaction,
and sends messages only after commit.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import jsonschema
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.billing import services as billing
from apps.executions import events, records
from apps.executions.models import Execution, NodeExecution
from apps.workflows.models import WorkflowVersion

logger = logging.getLogger(__name__)

Status = Execution.Status


class ExecutionRefused(Exception):
    """The request cannot be carried out; `code` is machine-readable, the message is for the user."""

    def __init__(self, code: str, message: str, *, errors: list[dict] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.errors = errors or []


# --- creating and starting -------------------------------------------------------


def _input_field(error: jsonschema.ValidationError) -> str | None:
    """The input a schema error is about; a missing required one is named, not its parent."""
    path = [str(part) for part in error.absolute_path]
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [name for name in error.validator_value if name not in error.instance]
        if missing:
            path.append(missing[0])
    return ".".join(path) or None


def inputs_validate(*, version: WorkflowVersion, inputs: Any) -> dict:
    """The inputs with defaults filled in, or ExecutionRefused naming every bad field."""
    if not isinstance(inputs, dict):
        raise ExecutionRefused("invalid_inputs", "inputs must be a JSON object")
    schema = version.input_schema
    validator = jsonschema.Draft202012Validator(schema)
    errors = [
        {"field": _input_field(error), "message": error.message}
        for error in sorted(validator.iter_errors(inputs), key=lambda e: list(e.absolute_path))
    ]
    if errors:
        detail = "; ".join(f"{e['field'] or 'inputs'}: {e['message']}" for e in errors[:5])
        raise ExecutionRefused(
            "invalid_inputs", f"the inputs do not match the workflow's input schema: {detail}", errors=errors
        )
    filled = dict(inputs)
    for name, field_schema in schema.get("properties", {}).items():
        if name not in filled and "default" in field_schema:
            filled[name] = field_schema["default"]
    return filled


def execution_create(
    *,
    version: WorkflowVersion,
    inputs: Any,
    owner: Any,
    trigger: str = Execution.Trigger.API,
    parent: Execution | None = None,
    parent_node_id: str = "",
    retry_of: Execution | None = None,
) -> Execution:
    """A pending run of `version`; nothing is sent until it is started."""
    filled = inputs_validate(version=version, inputs=inputs)
    with transaction.atomic():
        execution = Execution.objects.create(
            owner=owner,
            workflow_id=version.workflow_id,
            version=version,
            inputs=filled,
            trigger=trigger,
            parent=parent,
            parent_node_id=parent_node_id,
            retry_of=retry_of,
            time_budget_seconds=min(settings.EXECUTION_TIME_BUDGET_SECONDS, billing.run_seconds_allowed(owner)),
        )
        events.execution_status(execution, status=Status.PENDING)
    return execution


def execution_start(*, execution: Execution) -> Execution:
    """
    pending -> queued, and one message to the workers once that is committed. The owner's plan
    admits it first (credits, concurrent runs, runs today), under their subscription's row lock.
    """
    with transaction.atomic():
        owner_runs = Execution.objects.filter(owner_id=execution.owner_id)
        try:
            billing.admission_check(
                user=execution.owner,
                active_runs=lambda: owner_runs.filter(status__in=(Status.QUEUED, Status.RUNNING)).count(),
                runs_since=lambda moment: owner_runs.filter(queued_at__gte=moment).count(),
            )
        except billing.AdmissionRefused as refused:
            raise ExecutionRefused(refused.code, str(refused)) from None
        now = timezone.now()
        moved = Execution.objects.filter(pk=execution.pk, status=Status.PENDING).update(
            status=Status.QUEUED, queued_at=now
        )
        if not moved:
            execution.refresh_from_db()
            raise ExecutionRefused("not_pending", f"the run is {execution.status}; only a pending run can be started")
        execution.status, execution.queued_at = Status.QUEUED, now
        events.execution_status(execution, status=Status.QUEUED)
        _send_on_commit(execution.pk)
    return execution


def execution_run(
    *, version: WorkflowVersion, inputs: Any, owner: Any, trigger: str = Execution.Trigger.API
) -> Execution:
    execution = execution_create(version=version, inputs=inputs, owner=owner, trigger=trigger)
    return execution_start(execution=execution)


def _send_on_commit(execution_id: Any) -> None:
    from apps.executions.tasks import run_execution

    transaction.on_commit(lambda: run_execution.send(str(execution_id)))


# --- cancelling, retrying, requeueing ----------------------------------------------


def execution_cancel(*, execution: Execution, reason: str = "cancelled by request") -> bool:
    """Cancel a pending, queued or running run; a running worker notices within a poll interval."""
    with transaction.atomic():
        now = timezone.now()
        moved = Execution.objects.filter(pk=execution.pk, status__in=Execution.CANCELLABLE).update(
            status=Status.CANCELLED, finished_at=now, error_code="cancelled", error_message=reason
        )
        if not moved:
            return False
        execution.refresh_from_db()
        events.execution_status(execution, status=Status.CANCELLED, error={"code": "cancelled", "message": reason})
    return True


def execution_retry(*, execution: Execution, trigger: str = Execution.Trigger.API) -> Execution:
    """A new run of the same version and inputs, linked to the one it retries."""
    if not execution.can_retry():
        raise ExecutionRefused("not_retryable", f"a {execution.status} run cannot be retried")
    retry = execution_create(
        version=execution.version, inputs=execution.inputs, owner=execution.owner, trigger=trigger, retry_of=execution
    )
    return execution_start(execution=retry)


def execution_requeue(*, execution: Execution) -> bool:
    """Operators' lever for a stuck run: back to queued (resuming from its completed nodes) and resent."""
    with transaction.atomic():
        moved = Execution.objects.filter(pk=execution.pk, status__in=(Status.QUEUED, Status.RUNNING)).update(
            status=Status.QUEUED, lease_owner="", lease_expires_at=None, queued_at=timezone.now()
        )
        if not moved:
            return False
        execution.refresh_from_db()
        events.execution_status(execution, status=Status.QUEUED, reason="requeued")
        _send_on_commit(execution.pk)
    return True


# --- the worker's side -----------------------------------------------------------------


def execution_claim(*, execution_id: Any, worker_id: str, sink: list | None = None) -> Execution | None:
    """queued -> running under this worker's lease; None when another worker has it or it ended."""
    if connection.vendor == "postgresql" and sink is not None:
        # The hot path of every run: one statement (records.py); the ORM path below is its twin.
        event = records.run_claimed(
            execution_id=execution_id, worker_id=worker_id, lease_seconds=settings.EXECUTION_LEASE_SECONDS
        )
        if event is None:
            return None
        sink.append(event)
        return Execution.objects.select_related("version", "workflow").get(pk=execution_id)
    now = timezone.now()
    with transaction.atomic():
        claimed = Execution.objects.filter(pk=execution_id, status=Status.QUEUED).update(
            status=Status.RUNNING,
            lease_owner=worker_id,
            lease_expires_at=now + timedelta(seconds=settings.EXECUTION_LEASE_SECONDS),
            heartbeat_at=now,
            attempt=F("attempt") + 1,
            # A resumed run keeps its first start: its time budget counts from there.
            started_at=Coalesce("started_at", Value(now)),
        )
        if not claimed:
            return None
        execution = Execution.objects.select_related("version", "workflow").get(pk=execution_id)
        events.execution_status(execution, status=Status.RUNNING, attempt=execution.attempt, sink=sink)
    return execution


def execution_claim_child(*, execution: Execution, worker_id: str, sink: list | None = None) -> Execution:
    """A sub-workflow run is claimed by its parent's worker at once (it runs inline)."""
    now = timezone.now()
    with transaction.atomic():
        Execution.objects.filter(pk=execution.pk, status=Status.PENDING).update(
            status=Status.RUNNING,
            lease_owner=worker_id,
            lease_expires_at=now + timedelta(seconds=settings.EXECUTION_LEASE_SECONDS),
            heartbeat_at=now,
            attempt=1,
            queued_at=now,
            started_at=now,
        )
        execution.refresh_from_db()
        events.execution_status(execution, status=Status.RUNNING, attempt=execution.attempt, sink=sink)
    return execution


def lease_renew(*, execution_id: Any, worker_id: str) -> bool:
    now = timezone.now()
    return bool(
        Execution.objects.filter(pk=execution_id, status=Status.RUNNING, lease_owner=worker_id).update(
            lease_expires_at=now + timedelta(seconds=settings.EXECUTION_LEASE_SECONDS), heartbeat_at=now
        )
    )


def execution_finish(
    *,
    execution: Execution,
    worker_id: str,
    status: str,
    outputs: dict | None = None,
    error: dict | None = None,
    sink: list | None = None,
) -> bool:
    """running -> a terminal status, only while this worker holds the lease (a cancel wins)."""
    if connection.vendor == "postgresql" and sink is not None:
        event = records.run_finished(
            execution_id=execution.pk, worker_id=worker_id, status=status, outputs=outputs, error=error
        )
        if event is not None:
            sink.append(event)
        return event is not None
    with transaction.atomic():
        moved = Execution.objects.filter(pk=execution.pk, status=Status.RUNNING, lease_owner=worker_id).update(
            status=status,
            outputs=outputs,
            error_code=(error or {}).get("code", ""),
            error_message=(error or {}).get("message", ""),
            finished_at=timezone.now(),
            lease_owner="",
            lease_expires_at=None,
        )
        if not moved:
            return False
        execution.refresh_from_db()
        events.execution_status(execution, status=status, error=error, sink=sink)
    return True


def reap(*, now: Any = None) -> dict[str, int]:
    """
    Runs whose worker stopped renewing its lease go back to the queue (they resume from their
    completed nodes); after EXECUTION_MAX_DELIVERIES deliveries they fail instead, so a run that
    kills its worker cannot loop forever. Queued runs nobody claimed for a while are resent.
    """
    now = now or timezone.now()
    counts = {"requeued": 0, "quarantined": 0, "resent": 0, "orphaned": 0, "raced": 0}
    for execution in Execution.objects.lease_expired(now).only("pk", "attempt", "parent_id", "lease_owner"):
        counts[_reap_one(execution)] += 1
    stale = now - timedelta(seconds=settings.EXECUTION_LEASE_SECONDS * 4)
    for execution_id in Execution.objects.waiting_since(stale).filter(parent__isnull=True).values_list("pk", flat=True):
        # A lost message (an embedded worker's restart, a broker failover): send another; the
        # claim's compare-and-set makes a duplicate harmless.
        if Execution.objects.filter(pk=execution_id, status=Status.QUEUED).update(queued_at=now):
            _send_now(execution_id)
            counts["resent"] += 1
    return counts


def _reap_one(execution: Execution) -> str:
    expired = {"pk": execution.pk, "status": Status.RUNNING, "lease_owner": execution.lease_owner}
    with transaction.atomic():
        if execution.parent_id is not None:
            # Its parent's worker died too; the parent resumes and starts a fresh child.
            error = {"code": "parent_lost", "message": "the parent run's worker stopped"}
            outcome, status = "orphaned", Status.FAILED
        elif execution.attempt >= settings.EXECUTION_MAX_DELIVERIES:
            error = {
                "code": "worker_lost",
                "message": f"the run's worker stopped {execution.attempt} times; it will not be retried automatically",
            }
            outcome, status = "quarantined", Status.FAILED
        else:
            error, outcome, status = None, "requeued", Status.QUEUED
        if error is None:
            moved = Execution.objects.filter(**expired).update(
                status=Status.QUEUED, lease_owner="", lease_expires_at=None, queued_at=timezone.now()
            )
        else:
            moved = Execution.objects.filter(**expired).update(
                status=status, error_code=error["code"], error_message=error["message"], finished_at=timezone.now()
            )
        if not moved:
            return "raced"  # its worker renewed the lease, or it ended, in the meantime
        NodeExecution.objects.filter(execution_id=execution.pk, status=NodeExecution.Status.RUNNING).update(
            status=NodeExecution.Status.FAILED,
            error_code="worker_lost",
            error_message="the worker stopped during this node",
            finished_at=timezone.now(),
        )
        fresh = Execution.objects.get(pk=execution.pk)
        events.execution_status(fresh, status=status, error=error, reason="lease expired")
        if status == Status.QUEUED:
            _send_on_commit(execution.pk)
    logger.warning("reaped run %s: %s", execution.pk, outcome)
    return outcome


def _send_now(execution_id: Any) -> None:
    from apps.executions.tasks import run_execution

    run_execution.send(str(execution_id))
