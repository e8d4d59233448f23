"""The embedded worker runs in the server process only: never in migrate, the shell or the tests."""

from __future__ import annotations

import threading

import pytest

from tests.support.services import manage, process_env, serve_process

EMBEDDED = {"REDIS_URL": None, "DRAMATIQ_BROKER_URL": None}


def test_the_test_process_runs_no_worker_threads():
    from config import embedded

    assert not embedded.is_running()
    names = [type(thread).__name__ for thread in threading.enumerate()]
    assert "_WorkerThread" not in names
    assert "_ConsumerThread" not in names


@pytest.mark.django_db(transaction=True)
def test_management_commands_do_not_start_it():
    result = manage(
        "shell",
        "-c",
        "from config import embedded; print('running' if embedded.is_running() else 'idle')",
        env=process_env(**EMBEDDED),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("idle")


@pytest.mark.django_db(transaction=True)
def test_serve_starts_it_beside_daphne():
    with serve_process(**EMBEDDED) as server:
        response = server.get("/health/ready")
        log = server.log()
    assert response.status_code == 200, response.text
    assert response.json()["checks"]["broker"]["backend"] == "embedded"
    assert "Embedded worker: 4 threads and the scheduler in this process." in log


@pytest.mark.django_db(transaction=True)
def test_serve_with_a_broker_starts_no_embedded_worker(redis_url):
    with serve_process(REDIS_URL=redis_url, DRAMATIQ_BROKER_URL=None) as server:
        log = server.log()
    assert "Embedded worker" not in log
    assert "run workers with `manage.py rundramatiq`" in log
