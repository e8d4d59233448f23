"""Dramatiq actors of the users app."""

import logging

import dramatiq
from django.conf import settings
from dramatiq_crontab import cron

from apps.users import services

logger = logging.getLogger(__name__)


@cron("17 3 * * *")
@dramatiq.actor(queue_name="maintenance", max_retries=3, time_limit=5 * 60_000)
def prune_login_attempts() -> None:
    """Nightly: delete login records older than LOGIN_ATTEMPT_RETENTION_DAYS (safe to run twice)."""
    deleted = services.login_attempts_prune(older_than_days=settings.LOGIN_ATTEMPT_RETENTION_DAYS)
    logger.info("pruned %d login attempts", deleted)


@cron("41 * * * *")
@dramatiq.actor(queue_name="maintenance", max_retries=3, time_limit=5 * 60_000)
def prune_idempotency_records() -> None:
    """Hourly: forget `Idempotency-Key` answers past their 24 hours (safe to run twice)."""
    deleted = services.idempotency_records_prune(older_than=services.IDEMPOTENCY_TTL)
    logger.info("pruned %d idempotency records", deleted)
