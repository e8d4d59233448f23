"""
Real worker processes (`manage.py rundramatiq`) on real brokers: Redis and RabbitMQ.

The test enqueues through its own broker object, so it exercises the same
path whatever this suite's own settings are.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker

from apps.users.models import LoginAttempt
from apps.users.tasks import prune_login_attempts
from tests.support.services import wait_until, worker_process

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def old_and_new_attempts() -> None:
    now = timezone.now()
    LoginAttempt.objects.bulk_create(
        [
            LoginAttempt(identifier="recent", outcome="failed", created_at=now - timedelta(days=1)),
            LoginAttempt(identifier="ancient", outcome="failed", created_at=now - timedelta(days=365)),
        ]
    )


def only_recent_left() -> bool:
    return list(LoginAttempt.objects.values_list("identifier", flat=True)) == ["recent"]


def test_a_worker_process_on_redis_runs_an_actor(redis_url):
    old_and_new_attempts()
    broker = RedisBroker(url=redis_url)
    broker.flush_all()
    with worker_process(REDIS_URL=redis_url, DRAMATIQ_BROKER_URL=None) as process:
        broker.declare_queue("maintenance")
        broker.enqueue(prune_login_attempts.message())
        wait_until(lambda: only_recent_left() or process.poll() is not None, timeout=60, what="the Redis worker")
        assert process.poll() is None, "the worker exited"
    assert only_recent_left()


def test_a_worker_process_on_rabbitmq_runs_an_actor(rabbitmq_url):
    old_and_new_attempts()
    broker = RabbitmqBroker(url=rabbitmq_url)
    broker.declare_queue("maintenance")
    broker.flush("maintenance")
    with worker_process(DRAMATIQ_BROKER_URL=rabbitmq_url, REDIS_URL=None) as process:
        broker.enqueue(prune_login_attempts.message())
        wait_until(lambda: only_recent_left() or process.poll() is not None, timeout=60, what="the RabbitMQ worker")
        assert process.poll() is None, "the worker exited"
    broker.close()
    assert only_recent_left()
