"""
Low-balance notices: when a movement takes a balance below BILLING_LOW_BALANCE_MICRO, the user
gets one in-app notice and, after commit, one email. The ledger calls `balance_moved` after each
movement, under the account's row lock, so two movements never both see themselves crossing.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.mail import get_connection, send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from apps.billing.models import CreditTransaction, credits
from apps.users.models import Notice, User

logger = logging.getLogger(__name__)

# An SMTP server that stops answering must not hold a worker thread until the actor's time limit.
EMAIL_TIMEOUT_SECONDS = 20


def balance_moved(*, user_id: Any, before: int, after: int) -> None:
    """
    Called inside the transaction of every ledger movement with the balance before and after
    (micro-credits). Costs nothing unless the movement crosses the threshold downwards.
    """
    threshold = settings.BILLING_LOW_BALANCE_MICRO
    if not before >= threshold > after:
        return
    notice = low_balance_notice_create(user_id=user_id, before=before, after=after, threshold=threshold)
    if notice is not None and notice.user.email:
        # Imported here, not at the top: tasks imports this module.
        from apps.billing.tasks import send_low_balance_email

        notice_id = notice.pk
        # robust: the movement has committed by then; a broker that is down must not make the
        # caller believe it failed. The notice is in the app either way. A lambda, not a
        # functools.partial: Django names a failed robust callback by its __qualname__.
        transaction.on_commit(lambda: send_low_balance_email.send(notice_id, after), robust=True)


def low_balance_notice_create(*, user_id: Any, before: int, after: int, threshold: int) -> Notice | None:
    """
    The notice for one crossing, in the user's language; None when this crossing already has one
    (the same movement reported twice, e.g. by the ledger and again after commit by its caller).
    """
    user = User.objects.only("pk", "email", "language").get(pk=user_id)
    with translation.override(user.language or settings.LANGUAGE_CODE):
        title = _("Your balance is low: %(balance)s credits") % {"balance": credits(after)}
        body = _(
            "Your balance fell to %(balance)s credits, below %(threshold)s. Runs stop when it runs out: "
            "buy a credit pack, or ask an operator for a grant, to keep your workflows running."
        ) % {"balance": credits(after), "threshold": credits(threshold)}
    key = _crossing_key(user_id=user_id, before=before, after=after)
    if key and Notice.objects.filter(user_id=user_id, dedupe_key=key).exists():
        return None
    try:
        with transaction.atomic():  # a savepoint: a duplicate must not break the ledger's transaction
            notice = Notice.objects.create(
                user=user, kind=Notice.Kind.LOW_BALANCE, title=title, body=body, dedupe_key=key
            )
    except IntegrityError:
        return None
    logger.info("low balance notice %s for user %s at %s credits", notice.pk, user_id, credits(after))
    return notice


def _crossing_key(*, user_id: Any, before: int, after: int) -> str:
    """
    The ledger row of this movement names the crossing; under the ledger's lock it is the user's
    newest row. No row (a caller outside the ledger) means no key: a notice without deduplication.
    """
    row = (
        CreditTransaction.objects.filter(user_id=user_id, balance_after=after, amount=after - before)
        .order_by("-created_at", "-pk")
        .values_list("pk", flat=True)
        .first()
    )
    return f"low_balance:tx:{row}" if row is not None else ""


def low_balance_email_send(*, notice_id: int, balance: int) -> bool:
    """
    Email a low-balance notice to its user, in their language and time zone. Safe to run twice:
    the notice is claimed first (`emailed_at`), and released again only if sending fails.
    False when there is nothing to send (already sent, notice gone, or no address).
    """
    notice = Notice.objects.select_related("user").filter(pk=notice_id, emailed_at__isnull=True).first()
    if notice is None or not notice.user.email:
        return False
    if not Notice.objects.filter(pk=notice.pk, emailed_at__isnull=True).update(emailed_at=timezone.now()):
        return False  # another delivery of the same message claimed it
    try:
        subject, message = _low_balance_email(notice, balance)
        timeout = getattr(settings, "EMAIL_TIMEOUT", None) or EMAIL_TIMEOUT_SECONDS
        send_mail(subject, message, None, [notice.user.email], connection=get_connection(timeout=timeout))
    except Exception:
        Notice.objects.filter(pk=notice.pk).update(emailed_at=None)
        raise
    return True


def _low_balance_email(notice: Notice, balance: int) -> tuple[str, str]:
    user = notice.user
    context = {
        "name": user.get_display_name(),
        "balance": credits(balance),
        "threshold": credits(settings.BILLING_LOW_BALANCE_MICRO),
        "when": notice.created_at,
    }
    with (
        translation.override(user.language or settings.LANGUAGE_CODE),
        timezone.override(user.time_zone or settings.TIME_ZONE),
    ):
        subject = render_to_string("billing/email/low_balance_subject.txt", context)
        message = render_to_string("billing/email/low_balance_message.txt", context)
    return " ".join(subject.split()), message
