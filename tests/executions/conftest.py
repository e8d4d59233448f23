from __future__ import annotations

import pytest

from apps.executions import engine, services
from apps.executions.models import Execution
from tests.factories import UserFactory


@pytest.fixture
def owner(db):
    return UserFactory(username="owner")


@pytest.fixture
def run(owner):
    """Create, start and execute a run in this thread (as a worker would); returns it refreshed."""

    def run(version, inputs: dict | None = None) -> Execution:
        execution = services.execution_run(version=version, inputs=inputs or {}, owner=owner)
        engine.run_execution(execution.pk)
        execution.refresh_from_db()
        return execution

    return run


def node_statuses(execution: Execution) -> dict[str, list[str]]:
    statuses: dict[str, list[str]] = {}
    for record in execution.node_executions.order_by("step", "pk"):
        statuses.setdefault(record.node_id, []).append(record.status)
    return statuses


@pytest.fixture
def http_server(egress_allow):
    from tests.support.http_server import ScriptedHTTPServer

    server = ScriptedHTTPServer()
    egress_allow(server.netloc)  # this server's port only: egress refuses loopback otherwise
    yield server
    server.close()
