from __future__ import annotations

import logging

import dramatiq
from dramatiq_crontab import cron

from apps.billing import services

logger = logging.getLogger(__name__)


@cron("7 * * * *")
@dramatiq.actor(queue_name="maintenance", max_retries=3, time_limit=10 * 60_000)
def renew_subscriptions() -> None:
    """Hourly: start the next period of every subscription whose period ended, granting it once."""
    renewed = services.subscriptions_renew()
    logger.info("renewed %d subscriptions", renewed)
