"""Login records past their retention are deleted by a nightly actor."""

from __future__ import annotations

from datetime import timedelta

import dramatiq
import pytest
from django.utils import timezone

from apps.users.models import LoginAttempt
from apps.users.tasks import prune_login_attempts


def make_attempts(*ages_in_days: int) -> None:
    now = timezone.now()
    LoginAttempt.objects.bulk_create(
        [
            LoginAttempt(identifier=f"a{age}", outcome="failed", created_at=now - timedelta(days=age))
            for age in ages_in_days
        ]
    )


@pytest.mark.django_db
def test_it_deletes_only_records_older_than_the_retention(settings):
    settings.LOGIN_ATTEMPT_RETENTION_DAYS = 30
    make_attempts(1, 29, 31, 400)
    prune_login_attempts()
    assert sorted(LoginAttempt.objects.values_list("identifier", flat=True)) == ["a1", "a29"]
    prune_login_attempts()  # a second delivery changes nothing
    assert LoginAttempt.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_it_runs_through_the_configured_broker_and_a_worker(settings):
    settings.LOGIN_ATTEMPT_RETENTION_DAYS = 30
    make_attempts(5, 45)
    broker = dramatiq.get_broker()
    broker.flush("maintenance")
    # Its own queue only: a worker stopped with other tests' messages in hand would strand them.
    worker = dramatiq.Worker(broker, queues={"maintenance"}, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        prune_login_attempts.send()
        broker.join("maintenance", timeout=20_000)
        worker.join()
    finally:
        worker.stop()
    assert list(LoginAttempt.objects.values_list("identifier", flat=True)) == ["a5"]


def test_it_is_scheduled_nightly():
    from dramatiq_crontab import scheduler

    jobs = {job.name: job for job in scheduler.get_jobs()}
    assert "prune_login_attempts" in jobs
    assert str(jobs["prune_login_attempts"].trigger).startswith("cron[")
