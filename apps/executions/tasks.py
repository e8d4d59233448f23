"""Dramatiq actors of the executions app."""

from __future__ import annotations

import logging

import dramatiq
from django.conf import settings
from dramatiq_crontab import cron

from apps.executions import engine, services

logger = logging.getLogger(__name__)


@dramatiq.actor(
    queue_name="executions",
    # Redelivery is the reaper's job (it resumes from completed nodes and counts deliveries);
    # a Dramatiq retry would run the graph again from an unknown point.
    max_retries=0,
    # A backstop only: the engine ends the run at its own budget first.
    time_limit=(settings.EXECUTION_TIME_BUDGET_SECONDS + 300) * 1000,
)
def run_execution(execution_id: str) -> None:
    """Claim a queued run and execute it; a duplicate message finds it claimed and does nothing."""
    engine.run_execution(execution_id)


@cron("* * * * *")
@dramatiq.actor(queue_name="maintenance", max_retries=0, time_limit=60_000)
def reap_executions() -> None:
    """Every minute: requeue runs whose worker died, fail those that died too often, resend lost messages."""
    counts = services.reap()
    if any(counts.values()):
        logger.warning("reaper: %s", counts)
