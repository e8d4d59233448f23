"""
The engine: runs one claimed execution's graph with LangGraph, in a worker.

Each workflow node is a LangGraph node; every superstep runs the ready nodes concurrently, and
each node routes to its successors, which decide by the dataflow rules (apps.executions.dataflow)
whether to run, wait or be skipped. A node's record, events and dataflow delta are written in one
transaction when it ends, so a resumed run (after its worker died) folds the deltas of completed
nodes and goes on from there: nothing that completed runs twice.

Async all the way down so that time limits and cancellation interrupt in-flight I/O (a streaming
LLM reply, an HTTP call); the ORM is reached through small sync_to_async helpers, which run in
the worker thread that called `run_execution` and so reuse its database connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import socket
import time
import traceback
import uuid
from collections import OrderedDict
from typing import Annotated, Any, TypedDict

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from langgraph.types import Command

from apps.agents.browser import release_run
from apps.agents.crypto import redact_value
from apps.agents.providers import ProviderError, provider_error, redact
from apps.billing.services import PriceBook
from apps.executions import broadcast, dataflow, events, records, services
from apps.executions.context import RunContext
from apps.executions.models import Execution, NodeExecution
from apps.workflows.graph import Plan, plan_for
from apps.workflows.nodes import REGISTRY, NodeError

logger = logging.getLogger(__name__)

db = sync_to_async  # thread_sensitive: back in the worker thread, on its connection

BEGIN = "sb_begin"
BROADCAST_COALESCE_SECONDS = 0.02
MAX_CACHED_GRAPHS = 256


class RunState(TypedDict, total=False):
    edges: Annotated[dict, dataflow.merge]
    last_run: Annotated[dict, dataflow.merge]
    visits: Annotated[dict, dataflow.merge]
    results: Annotated[dict, dataflow.merge]


class NodeFailed(Exception):
    """A node failed for good (retries spent); ends the run."""

    def __init__(self, node_id: str, code: str, message: str, status: str) -> None:
        super().__init__(message)
        self.node_id, self.code, self.status = node_id, code, status

    def error(self) -> dict:
        return {"code": self.code, "message": str(self), "node": self.node_id}


class StopRun(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def node_key(node_id: str) -> str:
    return f"n_{node_id}"


_compiled: OrderedDict[str, tuple[Plan, Any]] = OrderedDict()


def compiled_graph(graph: dict) -> tuple[Plan, Any]:
    """Plan and compiled LangGraph of a published graph, cached per process by its content."""
    key = hashlib.sha256(json.dumps(graph, sort_keys=True).encode()).hexdigest()
    if key in _compiled:
        _compiled.move_to_end(key)
        return _compiled[key]
    plan = plan_for(graph)
    builder = StateGraph(RunState)
    builder.add_node(BEGIN, _begin)
    builder.add_edge(START, BEGIN)
    for node_id in plan.nodes:
        builder.add_node(node_key(node_id), _step_for(node_id))
    _compiled[key] = (plan, builder.compile())
    while len(_compiled) > MAX_CACHED_GRAPHS:
        _compiled.popitem(last=False)
    return _compiled[key]


async def _begin(state: RunState, config: RunnableConfig) -> Command:
    runner: Runner = config["configurable"]["runner"]
    return Command(goto=[node_key(node_id) for node_id in runner.frontier()])


def _step_for(node_id: str):
    async def step(state: RunState, config: RunnableConfig) -> Command:
        runner: Runner = config["configurable"]["runner"]
        return await runner.step(node_id, state, config["metadata"]["langgraph_step"])

    step.__name__ = f"step_{node_id}"
    return step


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def run_execution(execution_id: Any) -> str | None:
    """Claim and run a queued execution to its end; returns its final status (None: not claimed)."""
    worker_id = worker_identity()
    claimed: list = []
    execution = services.execution_claim(execution_id=execution_id, worker_id=worker_id, sink=claimed)
    if execution is None:
        return None
    return async_to_sync(Runner(execution, worker_id, published=claimed).run)()


class Runner:
    def __init__(
        self, execution: Execution, worker_id: str, *, ancestors: tuple[int, ...] = (), published: list | None = None
    ) -> None:
        self.execution = execution
        self.worker_id = worker_id
        self.ancestors = ancestors
        self.plan, self.graph = compiled_graph(execution.version.graph)
        self.secrets: list[str] = []
        self.stop_reason: str | None = None
        self.failed_node: str | None = None
        self.step_offset = 0
        self.resumed = False
        self.attempts: dict[str, int] = {}  # attempts so far per node, for numbering the next one
        # Committed events wait here for one sender task: in seq order, off the nodes' critical path.
        self.outbox: list = list(published or [])
        self.outbox_ready: asyncio.Event | None = None
        # A run is charged at the prices in effect when it started (read once, as nodes need them).
        self.prices = PriceBook(execution.started_at or timezone.now())

    # --- the run -------------------------------------------------------------------------

    async def run(self) -> str:
        self.outbox_ready = asyncio.Event()
        self.outbox_ready.set()  # events committed before the run (its claim) go first
        self.outbox_closed = asyncio.Event()
        sender = asyncio.ensure_future(self._send_events())
        try:
            return await self._run()
        finally:
            self.outbox.append(None)  # the sender's signal to stop once the rest is sent
            self.outbox_closed.set()
            self.outbox_ready.set()
            await asyncio.shield(sender)
            # The run's browser context (cookies, storage, pages) ends with the run, whatever ended it.
            await asyncio.shield(release_run(str(self.execution.pk)))

    async def _send_events(self) -> None:
        last_sent = -BROADCAST_COALESCE_SECONDS
        while True:
            await self.outbox_ready.wait()
            pause = last_sent + BROADCAST_COALESCE_SECONDS - time.monotonic()
            if pause > 0 and None not in self.outbox:
                # At most one message per group every few milliseconds: what commits meanwhile
                # travels together, so Redis sees a fraction of the publishes of a busy run. The
                # first event after a quiet spell goes at once; the run's end cuts the wait short.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.outbox_closed.wait(), pause)
            self.outbox_ready.clear()
            batch, self.outbox = self.outbox, []
            done = None in batch
            last_sent = time.monotonic()
            if sent := [e for e in batch if e is not None]:
                await broadcast.on_sender_loop(broadcast.events_committed(sent, workflow_id=self.execution.workflow_id))
            if done:
                return

    async def _run(self) -> str:
        started = time.monotonic()
        try:
            outputs = await self._run_graph()
        except StopRun as stop:
            status, error, outputs = self._stopped(stop.reason), None, None
        except NodeFailed as failure:
            status, error, outputs = failure.status, failure.error(), None
        except asyncio.CancelledError:
            # A parent run was stopped while this one ran inline as its sub-workflow.
            await asyncio.shield(
                self._finish(
                    Execution.Status.CANCELLED, None, {"code": "cancelled", "message": "the parent run stopped"}
                )
            )
            raise
        except events.LeaseLost:
            return Execution.Status.RUNNING  # another worker owns the run now
        except Exception as exc:
            # The traceback may quote a credential (a library's message); log it redacted.
            trace = self._redact("".join(traceback.format_exception(exc)))
            logger.error("run %s failed inside the engine:\n%s", self.execution.pk, trace)
            status, outputs = Execution.Status.FAILED, None
            error = {"code": "internal_error", "message": self._redact(f"{type(exc).__name__}: {exc}")}
        else:
            status, error = Execution.Status.SUCCEEDED, None
        if status is not None:
            if status == Execution.Status.TIMED_OUT and error is None:
                error = {
                    "code": "run_timeout",
                    "message": f"the run took longer than {self.execution.time_budget_seconds} s",
                }
            await self._finish(status, outputs, error)
        logger.info(
            "run %s ended %s in %.3f s", self.execution.pk, status or self.stop_reason, time.monotonic() - started
        )
        return status or self.stop_reason or ""

    def _stopped(self, reason: str) -> str | None:
        # Cancelled runs were already moved by the cancel; a lost lease belongs to someone else.
        return Execution.Status.TIMED_OUT if reason == "timed_out" else None

    async def _finish(self, status: str, outputs: dict | None, error: dict | None) -> None:
        finished: list = []
        await db(services.execution_finish)(
            execution=self.execution,
            worker_id=self.worker_id,
            status=status,
            outputs=outputs,
            error=error,
            sink=finished,
        )
        await self._published(finished)

    async def _run_graph(self) -> dict:
        # A first delivery has no node records: no trip to the database for them.
        state = dataflow.empty_state() if self.execution.attempt <= 1 else await db(self._load_state)()
        config = {
            "configurable": {"runner": self},
            "recursion_limit": self._recursion_limit(),
        }
        graph_task = asyncio.ensure_future(self.graph.ainvoke(state, config))
        watcher = asyncio.ensure_future(self._watch())
        remaining = self.remaining_budget()
        try:
            done, _ = await asyncio.wait({graph_task, watcher}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            self.stop_reason = "cancelled"
            await self._cancel(graph_task, watcher)
            raise
        if graph_task in done:
            watcher.cancel()
            final = graph_task.result()
            return final.get("results") or {}
        self.stop_reason = watcher.result() if watcher in done else "timed_out"
        await self._cancel(graph_task, watcher)
        raise StopRun(self.stop_reason)

    async def _cancel(self, *tasks: asyncio.Future) -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def remaining_budget(self) -> float:
        started = self.execution.started_at or timezone.now()
        elapsed = (timezone.now() - started).total_seconds()
        return max(0.0, self.execution.time_budget_seconds - elapsed)

    def _recursion_limit(self) -> int:
        loops = sum(self.plan.config(node).get("loop_limit", 0) for node in self.plan.nodes)
        return min(100_000, 2 * len(self.plan.nodes) * (1 + loops) + 10)

    async def _watch(self) -> str:
        """Polls for a cancel and renews the lease; returns why the run must stop."""
        renew_every = max(1.0, settings.EXECUTION_LEASE_SECONDS / 3)
        last_renewal = time.monotonic()
        while True:
            await asyncio.sleep(settings.EXECUTION_CANCEL_POLL_SECONDS)
            status, lease_owner = await db(self._status)()
            if status == Execution.Status.CANCELLED:
                return "cancelled"
            if status != Execution.Status.RUNNING or lease_owner != self.worker_id:
                return "lease_lost"
            if time.monotonic() - last_renewal >= renew_every:
                if not await db(services.lease_renew)(execution_id=self.execution.pk, worker_id=self.worker_id):
                    return "lease_lost"
                last_renewal = time.monotonic()

    def _status(self) -> tuple[str, str]:
        return Execution.objects.filter(pk=self.execution.pk).values_list("status", "lease_owner").get()

    def _load_state(self) -> dict:
        """Fold the deltas of completed nodes (a resumed run); mark the dead worker's nodes failed."""
        state = dataflow.empty_state()
        records = NodeExecution.objects.filter(
            execution_id=self.execution.pk, status__in=(NodeExecution.Status.SUCCEEDED, NodeExecution.Status.SKIPPED)
        ).order_by("step", "pk")
        last_step = -1
        for record in records.only("state_delta", "step"):
            state = dataflow.fold(state, record.state_delta)
            last_step = max(last_step, record.step)
            self.resumed = True
        self.step_offset = last_step + 1
        # Failed attempts since a node's last success count: a resumed run keeps numbering.
        for node_id, status in (
            NodeExecution.objects.filter(execution_id=self.execution.pk).order_by("pk").values_list("node_id", "status")
        ):
            done = status in (NodeExecution.Status.SUCCEEDED, NodeExecution.Status.SKIPPED)
            self.attempts[node_id] = 0 if done else self.attempts.get(node_id, 0) + 1
        return state

    def frontier(self) -> list[str]:
        return list(self.plan.nodes) if self.resumed else self.plan.entry_nodes()

    # --- one node ------------------------------------------------------------------------

    async def step(self, node_id: str, state: dict, langgraph_step: int) -> Command:
        step = self.step_offset + langgraph_step
        decision = dataflow.decide(self.plan, node_id, state, self.execution.inputs)
        if decision.kind == dataflow.WAIT:
            return Command(goto=[])
        successors = [node_key(target) for target in self.plan.successors(node_id)]
        if decision.kind == dataflow.SKIP:
            delta = dataflow.skip_delta(self.plan, node_id, step)
            await self._published(await db(self._record_skip)(node_id, step, delta))
            return Command(update=delta, goto=successors)
        self._check_loop_limit(node_id, state)
        delta = await self._run_with_retries(node_id, decision.inputs, step, state)
        return Command(update=delta, goto=successors)

    def _check_loop_limit(self, node_id: str, state: dict) -> None:
        limit = self.plan.config(node_id).get("loop_limit")
        visits = state["visits"].get(node_id, 0)
        if limit and visits >= limit:
            raise NodeFailed(
                node_id,
                "loop_limit_exceeded",
                f"node {node_id!r} would run more than its loop_limit of {limit}",
                "failed",
            )

    async def _run_with_retries(self, node_id: str, inputs: dict, step: int, state: dict) -> dict:
        config = self.plan.config(node_id)
        retry = config.get("retry") or {}
        attempts = int(retry.get("attempts", 1))
        backoff = float(retry.get("backoff_seconds", 1.0))
        for tried in range(attempts):
            try:
                return await self._attempt(node_id, inputs, step, state)
            except NodeFailed as failure:
                if not getattr(failure, "transient", False) or tried == attempts - 1:
                    # Its siblings in this superstep are about to be cancelled: say why.
                    self.failed_node = self.failed_node or node_id
                    raise
                # Exponential backoff between attempts of a transient failure.
                await asyncio.sleep(backoff * 2**tried)
        raise AssertionError("unreachable")

    async def _published(self, events_: list) -> None:
        if events_:
            self.outbox.extend(events_)
            self.outbox_ready.set()

    async def _attempt(self, node_id: str, inputs: dict, step: int, state: dict) -> dict:
        node_type = REGISTRY[self.plan.node_type(node_id)]
        config = self.plan.config(node_id)
        timeout = float(config.get("timeout_seconds") or node_type.default_timeout)
        started = time.monotonic()
        record_id, attempt, started_events, balance = await db(self._record_start)(
            node_id, node_type.type, inputs, step
        )
        await self._published(started_events)
        if balance <= 0:
            # Out of credits: this node fails and the run with it, keeping what it produced so far.
            error = {"code": "insufficient_credits", "message": "the balance is used up: add credits and retry the run"}
            await self._fail(record_id, node_id, node_type.type, attempt, NodeExecution.Status.FAILED, error, started)
            raise NodeFailed(node_id, error["code"], error["message"], "failed")
        context = RunContext(self, node_id, timeout)
        try:
            result = await asyncio.wait_for(node_type.run(context, config, inputs), timeout)
            # A server or model may echo a secret of the run's back: it goes no further than here.
            outputs = redact_value(jsonable(result.outputs), self.secrets)
        except asyncio.CancelledError:
            status = (
                NodeExecution.Status.TIMED_OUT if self.stop_reason == "timed_out" else NodeExecution.Status.CANCELLED
            )
            if self.failed_node and not self.stop_reason:
                error = {"code": "stopped", "message": f"stopped because node {self.failed_node!r} failed"}
            else:
                error = {"code": self.stop_reason or "cancelled", "message": f"the run was {status.replace('_', ' ')}"}
            await asyncio.shield(self._fail(record_id, node_id, node_type.type, attempt, status, error, started))
            raise
        except Exception as exc:
            failure = self._failure(node_id, exc, timeout)
            status = NodeExecution.Status.TIMED_OUT if failure.code == "node_timeout" else NodeExecution.Status.FAILED
            await self._fail(record_id, node_id, node_type.type, attempt, status, failure.error(), started)
            raise failure from None
        delta = dataflow.run_delta(self.plan, node_id, step, state, outputs)
        await self._published(
            await db(self._record_success)(
                record_id, node_id, node_type.type, attempt, outputs, result.usage, delta, started
            )
        )
        self.attempts[node_id] = 0  # a loop's next pass is a new first attempt, not a retry
        return delta

    async def _fail(self, *args: Any) -> None:
        await self._published(await db(self._record_failure)(*args))

    def _failure(self, node_id: str, exc: BaseException, timeout: float) -> NodeFailed:
        if isinstance(exc, TimeoutError | asyncio.TimeoutError):
            code, message, transient = "node_timeout", f"node {node_id!r} did not finish within {timeout:g} s", True
        elif isinstance(exc, NodeFailed):
            return exc
        elif isinstance(exc, NodeError):
            code, message, transient = exc.code, str(exc), exc.transient
        else:
            error = exc if isinstance(exc, ProviderError) else provider_error(exc)
            code, message, transient = error.code, str(error), error.transient
        failure = NodeFailed(node_id, code, self._redact(message), "timed_out" if code == "node_timeout" else "failed")
        failure.transient = transient
        return failure

    def _redact(self, text: str) -> str:
        for secret in self.secrets:
            text = redact(text, secret)
        return text

    # --- records (each one transaction; run in the worker thread) -------------------------

    def _record_start(self, node_id: str, node_type: str, inputs: dict, step: int) -> tuple[int, int, list, int]:
        attempt = self.attempts.get(node_id, 0) + 1
        self.attempts[node_id] = attempt
        record_id, event, balance = records.node_started(
            self.execution,
            lease=self.worker_id,
            node_id=node_id,
            node_type=node_type,
            attempt=attempt,
            inputs=jsonable(inputs),
            step=step,
        )
        return record_id, attempt, [event], balance

    def _record_success(
        self,
        record_id: int,
        node_id: str,
        node_type: str,
        attempt: int,
        outputs: dict,
        usage: dict,
        delta: dict,
        started: float,
    ) -> list:
        result = records.Finished(
            status=NodeExecution.Status.SUCCEEDED,
            outputs=outputs,
            usage=usage,
            delta=delta,
            duration_ms=int((time.monotonic() - started) * 1000),
            cost=self.prices.cost(node_type=node_type, usage=usage),
        )
        return [self._record_end(record_id, node_id, node_type, attempt, result)]

    def _record_failure(
        self, record_id: int, node_id: str, node_type: str, attempt: int, status: str, error: dict, started: float
    ) -> list:
        result = records.Finished(
            status=status,
            outputs=None,
            usage={},
            delta={},
            duration_ms=int((time.monotonic() - started) * 1000),
            error=error,
        )
        return [self._record_end(record_id, node_id, node_type, attempt, result)]

    def _record_end(self, record_id: int, node_id: str, node_type: str, attempt: int, result: records.Finished):
        return records.node_finished(
            self.execution,
            lease=self.worker_id,
            record_id=record_id,
            node_id=node_id,
            node_type=node_type,
            attempt=attempt,
            result=result,
        )

    def _record_skip(self, node_id: str, step: int, delta: dict) -> list:
        now = timezone.now()
        node_type = self.plan.node_type(node_id)
        published: list = []
        with transaction.atomic():
            NodeExecution.objects.create(
                execution_id=self.execution.pk,
                node_id=node_id,
                node_type=node_type,
                status=NodeExecution.Status.SKIPPED,
                started_at=now,
                finished_at=now,
                duration_ms=0,
                step=step,
                state_delta=delta,
            )
            events.node_skipped(
                self.execution, node_id=node_id, node_type=node_type, lease=self.worker_id, sink=published
            )
        return published


def jsonable(value: Any) -> Any:
    """Node outputs as they will be stored: JSON types only (anything else as its text)."""
    return json.loads(json.dumps(value, default=str))
