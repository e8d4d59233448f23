from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apps.billing.models import MICRO, ModelPrice
from apps.executions import engine
from apps.executions import services as runs
from apps.executions.models import Execution
from apps.users.models import User
from apps.workflows.models import WorkflowVersion
from tests.factories import UserFactory, published, scripted


@pytest.fixture
def member(db) -> User:
    return UserFactory(username="ada", display_name="Ada L.")


@pytest.fixture
def signed_in(client: Client, member: User) -> Client:
    client.force_login(member)
    return client


@pytest.fixture
def priced_flow(member: User) -> WorkflowVersion:
    """A published input -> llm -> output workflow on the scripted model, priced so that each run costs credits."""
    ModelPrice.objects.filter(provider="scripted").delete()
    ModelPrice.objects.create(
        provider="scripted", model="scripted-1", input_per_million=20 * MICRO, output_per_million=40 * MICRO
    )
    return published(
        member,
        [
            ("in", "input", {"name": "text"}),
            ("answer", "llm", {**scripted("a short scripted answer"), "prompt": "answer {{ x }}"}),
            ("out", "output", {"name": "result"}),
        ],
        [("in", "value", "answer", "x"), ("answer", "text", "out", "value")],
        name="Support triage",
    )


def run_to_the_end(version: WorkflowVersion, owner: User) -> Execution:
    """A real run: created, queued, executed by the engine in this thread as a worker would."""
    execution = runs.execution_run(version=version, inputs={"text": "hello"}, owner=owner)
    engine.run_execution(execution.pk)
    execution.refresh_from_db()
    return execution


def stored_runs(version: WorkflowVersion, owner: User, statuses: list[str]) -> list[Execution]:
    """Run rows in the given states, newest last (as the dashboard reads them, not as the engine makes them)."""
    now = timezone.now()
    made = []
    for index, status in enumerate(statuses):
        moment = now - timedelta(minutes=len(statuses) - index)
        finished = moment + timedelta(seconds=3) if status in Execution.TERMINAL else None
        execution = Execution.objects.create(
            owner=owner,
            workflow=version.workflow,
            version=version,
            status=status,
            time_budget_seconds=60,
            queued_at=moment,
            started_at=moment if status != "queued" else None,
            finished_at=finished,
            cost=1_500 * index,
        )
        # created_at is auto_now_add: set it after, so the order is the one asked for.
        Execution.objects.filter(pk=execution.pk).update(created_at=moment)
        made.append(execution)
    return made
