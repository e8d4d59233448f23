"""
Buying credits through Stripe Checkout, and what Stripe's signed webhooks do to the ledger.

Every movement goes through `ledger_post`, keyed by Stripe's own object ids, so a webhook
delivered twice, or an object carried by several events, moves credits once:

    stripe:pi:<payment intent>:checkout:<session id>:paid:<amount paid>       top-up
    stripe:pi:<payment intent>:refund:<refund id>:amount:<amount refunded>     refund (negative)
    stripe:pi:<payment intent>:dispute:<dispute id>:amount:<amount disputed>   lost dispute (negative)

Amounts are in the currency's smallest unit, and each is fixed for its Stripe object, so every key
is a function of one Stripe id. The shared `stripe:pi:<payment intent>:` prefix is how a refund or
a dispute finds the top-up it reverses and what was paid for it, with no table of our own (Stripe's
charges and disputes name the payment intent, not the session). Reversals take back the refunded
or disputed share of the credits, cumulatively, never more than were credited. See docs/payments.md.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import stripe
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from apps.billing.models import MICRO, CreditAccount, CreditTransaction, credits
from apps.billing.services import LedgerRefused, ledger_post

logger = logging.getLogger(__name__)

# Each network call to Stripe: (connect, read) seconds; the client retries twice with the same
# idempotency key it generates, so a retried create never makes two sessions.
STRIPE_TIMEOUT = (5, 10)
STRIPE_RETRIES = 2
# Refunds still counted as money returned: a pending refund is usually final within days.
REFUND_COUNTED = {"succeeded", "pending"}
# Stripe ids are letters, digits and underscores; anything else must not reach a ledger key.
STRIPE_ID = re.compile(r"^[A-Za-z0-9_]{1,80}$")


class PaymentsNotConfigured(Exception):
    """STRIPE_SECRET_KEY or STRIPE_WEBHOOK_SECRET is not set."""


class UnknownPack(ValueError):
    """No credit pack with this id in BILLING_CREDIT_PACKS."""


class PaymentProviderError(Exception):
    """Stripe could not be reached, or refused a request; safe to retry later."""


class WebhookRefused(ValueError):
    """A webhook that is not Stripe's (`invalid_signature`) or not an event (`invalid_payload`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class CreditPack:
    id: str
    credits_micro: int
    unit_amount: int
    currency: str


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str


def payments_configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY and settings.STRIPE_WEBHOOK_SECRET)


def credit_packs() -> list[CreditPack]:
    """The packs on sale, from BILLING_CREDIT_PACKS, in their configured order."""
    return [
        CreditPack(
            id=pack_id,
            credits_micro=int(Decimal(str(pack["credits"])) * MICRO),
            unit_amount=int(pack["unit_amount"]),
            currency=str(pack["currency"]).lower(),
        )
        for pack_id, pack in settings.BILLING_CREDIT_PACKS.items()
    ]


def credit_pack(pack_id: str) -> CreditPack:
    for pack in credit_packs():
        if pack.id == pack_id:
            return pack
    raise UnknownPack(f"There is no credit pack {pack_id!r}.")


def _client() -> stripe.StripeClient:
    if not payments_configured():
        raise PaymentsNotConfigured("Payments are not configured on this server.")
    base = {"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else None
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses=base,
        http_client=stripe.RequestsClient(timeout=STRIPE_TIMEOUT),
        max_network_retries=STRIPE_RETRIES,
    )


def _provider_error(exc: stripe.StripeError, doing: str) -> PaymentProviderError:
    # Stripe's own message can quote (part of) the key: log the kind of failure, never the text.
    logger.error(
        "stripe refused or failed while %s: %s (status %s, code %s, request %s)",
        doing,
        type(exc).__name__,
        exc.http_status,
        exc.code,
        exc.request_id,
    )
    return PaymentProviderError("The payment provider could not handle the request; try again later.")


# --- Checkout ---------------------------------------------------------------------------------------


def checkout_create(*, user: Any, pack_id: str, success_url: str, cancel_url: str) -> CheckoutSession:
    """A Stripe Checkout Session selling `pack_id` to `user`; the webhook credits it once paid."""
    pack = credit_pack(pack_id)
    client = _client()
    metadata = {"user_id": str(user.pk), "pack": pack.id, "credits_micro": str(pack.credits_micro)}
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": pack.currency,
                    "unit_amount": pack.unit_amount,
                    "product_data": {"name": f"{credits(pack.credits_micro)} Switchboard credits ({pack.id} pack)"},
                },
            }
        ],
        "client_reference_id": str(user.pk),
        "metadata": metadata,
        # Also on the payment intent, so the payment is recognisable in Stripe's dashboard.
        "payment_intent_data": {"metadata": metadata},
        "success_url": success_url,
        "cancel_url": cancel_url,
    }
    if getattr(user, "email", ""):
        params["customer_email"] = user.email
    try:
        session = client.v1.checkout.sessions.create(params=params)
    except stripe.StripeError as exc:
        raise _provider_error(exc, "creating a checkout session") from None
    logger.info("checkout session %s created for user %s (%s pack)", session.id, user.pk, pack.id)
    return CheckoutSession(id=session.id, url=session.url)


# --- Webhook ---------------------------------------------------------------------------------------


def webhook_handle(*, payload: bytes, signature: str | None) -> str:
    """
    Verify a Stripe webhook and apply its event; returns what happened, for the log. Raises
    WebhookRefused for a forged, stale or unparseable delivery, PaymentsNotConfigured, or
    PaymentProviderError when Stripe must be asked for more and cannot be (Stripe retries).
    """
    if not payments_configured():
        raise PaymentsNotConfigured("Payments are not configured on this server.")
    event = _verified_event(payload, signature)
    handler = EVENT_HANDLERS.get(str(event.get("type")))
    if handler is None:
        return "ignored"
    data = event.get("data")
    subject = data.get("object") if isinstance(data, dict) else None
    if not isinstance(subject, dict):
        raise WebhookRefused("invalid_payload", "The event carries no object.")
    outcome = handler(subject)
    logger.info("stripe event %s (%s): %s", event.get("id"), event.get("type"), outcome)
    return outcome


def _verified_event(payload: bytes, signature: str | None) -> dict[str, Any]:
    try:
        event = stripe.Webhook.construct_event(
            payload, signature, settings.STRIPE_WEBHOOK_SECRET, tolerance=settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS
        )
    except stripe.SignatureVerificationError:
        # The exception carries the header: neither it nor its message goes to the log.
        logger.warning("stripe webhook refused: missing, forged or stale signature")
        raise WebhookRefused("invalid_signature", "The Stripe-Signature header is missing, wrong or stale.") from None
    except (ValueError, TypeError, AttributeError, KeyError):
        # Not UTF-8, not JSON, or JSON that is not an event object.
        raise WebhookRefused("invalid_payload", "The body is not a Stripe event.") from None
    return event.to_dict()


def _stripe_id(value: Any) -> str | None:
    """The id of an object that may be expanded (a dict) or not (its id), if it is a sane one."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and STRIPE_ID.match(value) else None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _checkout_completed(session: dict[str, Any]) -> str:
    """A paid session credits its pack once, whichever events carry it and however often."""
    if session.get("payment_status") != "paid":
        return "not paid yet"
    metadata = session.get("metadata") if isinstance(session.get("metadata"), dict) else {}
    user_id = metadata.get("user_id") or session.get("client_reference_id")
    micro = _as_int(metadata.get("credits_micro"))
    if not user_id or micro is None:
        return "not a credit purchase"
    session_id, intent = _stripe_id(session.get("id")), _stripe_id(session.get("payment_intent"))
    paid = _as_int(session.get("amount_total"))
    if session_id is None or intent is None or not paid or paid <= 0 or micro <= 0:
        logger.error("stripe checkout session %r is paid but incomplete: not credited", session.get("id"))
        return "incomplete session"
    user = get_user_model().objects.filter(pk=_as_int(user_id)).first()
    if user is None:
        logger.error("stripe checkout session %s paid for unknown user %r: not credited", session_id, user_id)
        return "unknown user"
    pack = metadata.get("pack") or "credit"
    return _post(
        user=user,
        kind=CreditTransaction.Kind.TOPUP,
        amount=micro,
        idempotency_key=f"stripe:pi:{intent}:checkout:{session_id}:paid:{paid}",
        description=f"{pack} pack: {credits(micro)} credits bought (Stripe payment {intent})",
    )


def _charge_refunded(charge: dict[str, Any]) -> str:
    """Each refund of the charge takes back its share of the credits, once per refund."""
    intent = _stripe_id(charge.get("payment_intent"))
    top_up = _top_up(intent) if intent else None
    if top_up is None:
        logger.warning("stripe refund of payment %r, which credited nothing here: ignored", intent)
        return "unknown payment"
    outcomes = []
    for refund in _refunds_of(charge):
        refund_id, amount = _stripe_id(refund.get("id")), _as_int(refund.get("amount"))
        if refund_id is None or not amount or amount < 0 or refund.get("status") not in REFUND_COUNTED:
            continue
        outcomes.append(
            _reverse(
                top_up,
                reversal=f"refund:{refund_id}",
                part=amount,
                kind=CreditTransaction.Kind.REFUND,
                description=f"Stripe refund {refund_id} of payment {intent}",
            )
        )
    return ", ".join(outcomes) or "no refunds"


def _refunds_of(charge: dict[str, Any]) -> list[dict[str, Any]]:
    """The charge's refunds: from the event when it lists them all, else asked of Stripe."""
    listed = charge.get("refunds")
    if isinstance(listed, dict) and isinstance(listed.get("data"), list) and not listed.get("has_more"):
        return [refund for refund in listed["data"] if isinstance(refund, dict)]
    # Since API version 2022-11-15 the charge in an event no longer lists its refunds.
    charge_id = _stripe_id(charge.get("id"))
    if charge_id is None:
        return []
    try:
        page = _client().v1.refunds.list(params={"charge": charge_id, "limit": 100})
        return [refund.to_dict() for refund in page.auto_paging_iter()]
    except stripe.StripeError as exc:
        raise _provider_error(exc, f"listing the refunds of {charge_id}") from None


def _dispute_closed(dispute: dict[str, Any]) -> str:
    """A lost dispute takes back the disputed share of the credits; a won one changes nothing."""
    if dispute.get("status") != "lost":
        return f"dispute {dispute.get('status')}: nothing to do"
    intent, dispute_id = _stripe_id(dispute.get("payment_intent")), _stripe_id(dispute.get("id"))
    amount = _as_int(dispute.get("amount"))
    top_up = _top_up(intent) if intent else None
    if top_up is None or dispute_id is None or not amount or amount < 0:
        logger.warning("stripe dispute %r lost on payment %r, which credited nothing here: ignored", dispute_id, intent)
        return "unknown payment"
    return _reverse(
        top_up,
        reversal=f"dispute:{dispute_id}",
        part=amount,
        kind=CreditTransaction.Kind.ADJUSTMENT,
        description=f"Stripe dispute {dispute_id} lost on payment {intent}",
    )


def _payment_rows(intent: str) -> list[CreditTransaction]:
    """Every ledger row of one Stripe payment: its top-up and the reversals of it."""
    prefix = f"stripe:pi:{intent}:"
    rows = CreditTransaction.objects.filter(idempotency_key__startswith=prefix).select_related("user")
    # SQLite's LIKE ignores case, Stripe's ids do not.
    return [row for row in rows if row.idempotency_key.startswith(prefix)]


def _top_up(intent: str) -> CreditTransaction | None:
    return next((row for row in _payment_rows(intent) if row.kind == CreditTransaction.Kind.TOPUP), None)


def _reverse(top_up: CreditTransaction, *, reversal: str, part: int, kind: str, description: str) -> str:
    """
    Take back the share of `top_up` that `part` (of the amount paid) returns, once per `reversal`
    ("refund:<id>", "dispute:<id>"). Shares are cumulative: after reversals returning `r` of `paid`,
    exactly floor(credited * r / paid) is taken back in all, capped at what was credited, so a
    payment refunded in parts loses exactly its credits and never more.
    """
    intent, paid = top_up.idempotency_key.split(":")[2], _key_amount(top_up.idempotency_key)
    prefix = f"stripe:pi:{intent}:{reversal}:"
    with transaction.atomic():
        # The account lock orders this after every other movement of the user, so the sums
        # below include each reversal of this payment that committed before.
        CreditAccount.objects.select_for_update().filter(user=top_up.user).first()
        earlier = [row for row in _payment_rows(intent) if row.pk != top_up.pk]
        if any(row.idempotency_key.startswith(prefix) for row in earlier):
            return "already applied"
        returned = sum(_key_amount(row.idempotency_key) for row in earlier) + part
        taken = -sum(row.amount for row in earlier)
        amount = min(top_up.amount, top_up.amount * returned // paid) - taken
        if amount <= 0:
            return "nothing left to reverse"
        return _post(
            user=top_up.user,
            kind=kind,
            amount=-amount,
            idempotency_key=f"{prefix}amount:{part}",
            description=description,
        )


def _key_amount(key: str) -> int:
    """The money amount a Stripe ledger key ends with (`…:paid:4500`, `…:amount:1500`)."""
    return int(key.rsplit(":", 1)[1])


def _post(*, user: Any, kind: str, amount: int, idempotency_key: str, description: str) -> str:
    try:
        _, created = ledger_post(
            user=user, kind=kind, amount=amount, idempotency_key=idempotency_key, description=description
        )
    except LedgerRefused as refused:
        # A key too long, an absurd amount, or a key of another account: no retry will fix it.
        logger.error("stripe movement %s not posted: %s", idempotency_key, refused)
        return "refused"
    return f"{kind} {credits(amount)}" if created else "already applied"


EVENT_HANDLERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "checkout.session.completed": _checkout_completed,
    # A delayed payment method (bank debit) completes the session unpaid, then sends this.
    "checkout.session.async_payment_succeeded": _checkout_completed,
    "charge.refunded": _charge_refunded,
    "charge.dispute.closed": _dispute_closed,
}
