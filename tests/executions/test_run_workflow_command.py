"""`manage.py run_workflow` on the demo workflows: in-process (embedded) and with a real worker process."""

from __future__ import annotations

import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker

from apps.executions.models import Execution
from apps.workflows.demo import demo_seed
from tests.support.services import BASE_DIR, manage, process_env


@pytest.fixture
def demo(owner):
    return {workflow.name: workflow for workflow in demo_seed(owner=owner)}


def test_seeding_is_idempotent_and_publishes_three_workflows(owner, demo):
    again = demo_seed(owner=owner)
    assert [w.pk for w in again] == [w.pk for w in demo.values()]
    assert all(workflow.latest_version_number == 1 for workflow in again)


@pytest.mark.parametrize(
    ("name", "inputs", "expected"),
    [
        ("Support triage", {"message": "URGENT: db down"}, {"reply": "ESCALATE to on-call: URGENT: db down"}),
        ("Support triage", {"message": "printer slow"}, {"reply": "Summary: printer slow"}),
        ("Math helper", {}, {"answer": "(12 + 30) * 2 = 84."}),
        ("Daily report", {"message": "hi"}, {"report": "Daily report\n- message: hi\n- triage: Summary: hi"}),
    ],
)
def test_every_demo_workflow_runs_offline(demo, run, name, inputs, expected):
    version = demo[name].versions.get()
    execution = run(version, inputs)
    assert execution.status == "succeeded", execution.error_message
    assert execution.outputs == expected


@pytest.mark.django_db(transaction=True)
def test_on_the_embedded_default_it_runs_in_process_and_prints_every_event(owner, settings):
    settings.EMBEDDED_WORKER = True
    triage = demo_seed(owner=owner)[0]
    out = StringIO()
    call_command("run_workflow", triage.pk, "--input", "message=urgent: help", "--wait", stdout=out)
    printed = out.getvalue()
    assert "execution.status  running" in printed
    assert "node.skipped      summarise" in printed
    assert "node.completed    escalate" in printed
    assert printed.rstrip().endswith('"reply": "ESCALATE to on-call: urgent: help"\n}'.rstrip())
    assert Execution.objects.get().status == "succeeded"


def test_bad_arguments_are_refused_clearly_and_start_nothing(owner, demo):
    with pytest.raises(CommandError, match="no workflow 999"):
        call_command("run_workflow", 999)
    with pytest.raises(CommandError, match="key=value"):
        call_command("run_workflow", demo["Support triage"].pk, "--input", "oops")
    with pytest.raises(CommandError, match="'message' is a required property"):
        call_command("run_workflow", demo["Support triage"].pk)
    assert not Execution.objects.exists()


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_env(request):
    """Environment for processes on a real broker: Redis alone, or RabbitMQ for messages plus Redis."""
    redis_url = request.getfixturevalue("redis_url")
    RedisBroker(url=redis_url).flush_all()
    if request.param == "redis":
        return process_env(REDIS_URL=redis_url, DRAMATIQ_BROKER_URL=None)
    rabbitmq_url = request.getfixturevalue("rabbitmq_url")
    broker = RabbitmqBroker(url=rabbitmq_url)
    broker.declare_queue("executions")
    broker.flush("executions")
    broker.close()
    return process_env(REDIS_URL=redis_url, DRAMATIQ_BROKER_URL=rabbitmq_url)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_with_a_separate_worker_process_it_follows_the_run_to_its_end(owner, broker_env):
    triage = demo_seed(owner=owner)[0]
    env = broker_env
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "rundramatiq", "--processes", "1", "--threads", "2"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        result = manage(
            "run_workflow", str(triage.pk), "--input", "message=all fine", "--wait", "--timeout", "60", env=env
        )
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "node.completed    summarise" in result.stdout
    assert '"reply": "Summary: all fine"' in result.stdout
    assert Execution.objects.get().status == "succeeded"
