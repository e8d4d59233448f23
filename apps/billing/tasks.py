from __future__ import annotations

import logging

import dramatiq
from dramatiq_crontab import cron

from apps.billing import notices, services

logger = logging.getLogger(__name__)


@cron("7 * * * *")
@dramatiq.actor(queue_name="maintenance", max_retries=3, time_limit=10 * 60_000)
def renew_subscriptions() -> None:
    """Hourly: start the next period of every subscription whose period ended, granting it once."""
    renewed = services.subscriptions_renew()
    logger.info("renewed %d subscriptions", renewed)


@dramatiq.actor(queue_name="email", max_retries=5, time_limit=60_000)
def send_low_balance_email(notice_id: int, balance: int) -> None:
    """Sent on commit of a low-balance notice: email it once (a second delivery sends nothing)."""
    notices.low_balance_email_send(notice_id=notice_id, balance=balance)
