"""`manage.py run_workflow WORKFLOW_ID --input key=value … [--wait]`: start a run and follow its events."""

from __future__ import annotations

import json
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from apps.executions import engine, services
from apps.executions.models import Execution, ExecutionEvent
from apps.workflows.models import Workflow, WorkflowVersion


def parse_inputs(pairs: list[str]) -> dict:
    inputs = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise CommandError(f"--input must look like key=value, not {pair!r}")
        try:
            inputs[key] = json.loads(raw)  # numbers, booleans, objects…
        except ValueError:
            inputs[key] = raw  # …or plain text
    return inputs


def run_and_close(execution_id: object) -> None:
    try:
        engine.run_execution(execution_id)
    finally:
        connections.close_all()  # this thread's own connection


class Command(BaseCommand):
    help = "Run a published workflow version with inputs; with --wait, print its events until it ends."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("workflow_id", type=int)
        parser.add_argument("--input", action="append", default=[], metavar="KEY=VALUE", help="JSON or text value")
        parser.add_argument("--workflow-version", dest="number", type=int, help="version number (default: the latest)")
        parser.add_argument("--wait", action="store_true", help="follow the events until the run ends")
        parser.add_argument("--timeout", type=float, default=600, help="seconds to wait with --wait")

    def handle(
        self, *args, workflow_id: int, input: list[str], number: int | None, wait: bool, timeout: float, **options
    ):
        workflow = Workflow.objects.filter(pk=workflow_id).select_related("owner").first()
        if workflow is None:
            raise CommandError(f"no workflow {workflow_id}")
        number = number or workflow.latest_version_number
        published = WorkflowVersion.objects.filter(workflow=workflow, number=number).first()
        if published is None:
            raise CommandError(f"workflow {workflow_id} has no published version {number or ''}".strip())
        try:
            execution = services.execution_run(
                version=published, inputs=parse_inputs(input), owner=workflow.owner, trigger=Execution.Trigger.CLI
            )
        except services.ExecutionRefused as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"run {execution.pk} of {workflow.name} v{published.number}")
        runner = None
        if settings.EMBEDDED_WORKER:
            # No separate worker exists on the embedded default: this process is the worker.
            runner = threading.Thread(target=run_and_close, args=(execution.pk,), daemon=True)
            runner.start()
        if not wait and runner is None:
            return
        final = self.follow(execution, timeout)
        if runner is not None:
            runner.join(timeout=5)
        if final != Execution.Status.SUCCEEDED:
            raise CommandError(f"run {execution.pk} ended {final}")

    def follow(self, execution: Execution, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        seq = 0
        while time.monotonic() < deadline:
            for event in ExecutionEvent.objects.filter(execution=execution).after(seq):
                seq = event.seq
                self.stdout.write(self.describe(event))
            execution.refresh_from_db(fields=["status", "outputs", "error_code", "error_message"])
            if execution.is_terminal and not ExecutionEvent.objects.filter(execution=execution).after(seq).exists():
                if execution.outputs is not None:
                    self.stdout.write(json.dumps(execution.outputs, indent=2, ensure_ascii=False))
                return execution.status
            time.sleep(0.2)  # polling the event table; the live stream is for browsers and programs
        raise CommandError(f"run {execution.pk} did not end within {timeout:g} s (it goes on)")

    @staticmethod
    def describe(event: ExecutionEvent) -> str:
        payload = event.payload
        detail = ""
        if event.type == "execution.status":
            detail = payload["status"]
            if payload.get("error"):
                detail += f" ({payload['error']['code']}: {payload['error']['message']})"
        elif event.type == "node.completed":
            detail = f"{payload['duration_ms']} ms {json.dumps(payload['outputs'], ensure_ascii=False)[:200]}"
        elif event.type == "node.failed":
            detail = f"{payload['status']} {payload['error']['code']}: {payload['error']['message']}"
        elif event.type == "node.log":
            detail = payload["message"]
        node = f" {event.node_id}" if event.node_id else ""
        return f"#{event.seq:<4} {event.type:<17}{node} {detail}".rstrip()
