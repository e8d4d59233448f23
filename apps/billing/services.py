"""
The ledger and prices. `ledger_post` is the only way a balance changes: under the account's row
lock, one insert-only row per movement, keyed so that the same movement is never applied twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from apps.billing import notices
from apps.billing.models import (
    MICRO,
    CreditAccount,
    CreditTransaction,
    ModelPrice,
    Plan,
    Subscription,
    UnitPrice,
    credits,
)

logger = logging.getLogger(__name__)


class LedgerRefused(ValueError):
    """A movement that may not be posted (zero, absurd, or on a key already used for another user)."""


def _locked_account(user_id: Any) -> CreditAccount:
    CreditAccount.objects.get_or_create(user_id=user_id)
    return CreditAccount.objects.select_for_update().get(user_id=user_id)


def ledger_post(
    *,
    user: Any,
    kind: str,
    amount: int,
    idempotency_key: str,
    description: str = "",
    execution: Any = None,
    node_execution: Any = None,
    actor: Any = None,
    fallback_price: bool = False,
) -> tuple[CreditTransaction, bool]:
    """
    Post `amount` micro-credits (negative spends) to `user` (a user or its id); `(row, True)`, or
    the row already posted under `idempotency_key` and False, changing nothing. Call inside the
    transaction that records what is being paid for, so both commit or neither does.
    """
    if not isinstance(amount, int) or isinstance(amount, bool) or amount == 0:
        raise LedgerRefused("The amount must be a whole, non-zero number of micro-credits.")
    if abs(amount) > settings.BILLING_MAX_MOVEMENT_CREDITS * MICRO:
        raise LedgerRefused(f"At most {settings.BILLING_MAX_MOVEMENT_CREDITS} credits move at once.")
    if kind not in CreditTransaction.Kind.values:
        raise LedgerRefused(f"Unknown kind {kind!r}.")
    if not idempotency_key or len(idempotency_key) > 200:
        raise LedgerRefused("A movement needs an idempotency key of 1 to 200 characters.")
    user_id = getattr(user, "pk", user)
    try:
        with transaction.atomic():
            # The lock orders every movement of this user; the key check under it sees any
            # movement with the same key that committed before.
            account = _locked_account(user_id)
            posted = CreditTransaction.objects.filter(idempotency_key=idempotency_key).first()
            if posted is not None:
                return _already(posted, user_id)
            CreditAccount.objects.filter(pk=account.pk).update(balance=F("balance") + amount)
            row = CreditTransaction.objects.create(
                user_id=user_id,
                kind=kind,
                amount=amount,
                balance_after=account.balance + amount,
                execution_id=getattr(execution, "pk", execution),
                node_execution_id=getattr(node_execution, "pk", node_execution),
                description=description[:255],
                fallback_price=fallback_price,
                idempotency_key=idempotency_key,
                actor=actor,
            )
            notices.balance_moved(user_id=user_id, before=account.balance, after=row.balance_after)
            return row, True
    except IntegrityError:
        # The same key committed for another user's account between our check and insert.
        posted = CreditTransaction.objects.filter(idempotency_key=idempotency_key).first()
        if posted is None:
            raise
        return _already(posted, user_id)


def _already(posted: CreditTransaction, user_id: Any) -> tuple[CreditTransaction, bool]:
    if posted.user_id != user_id:
        raise LedgerRefused(f"The key {posted.idempotency_key!r} was used for another account.")
    return posted, False


def balance_of(user: Any) -> int:
    return CreditAccount.objects.filter(user=user).values_list("balance", flat=True).first() or 0


# --- Prices -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cost:
    """A node's price in micro-credits, how it was reached, and whether a fallback price was used."""

    amount: int
    lines: tuple[str, ...]
    fallback: bool = False


def _per_million(tokens: int, price: int) -> int:
    # Round up: a fraction of a micro-credit is still charged, never given away.
    return -(-tokens * price // 1_000_000)


class PriceBook:
    """
    The prices one run is charged at, read from the database once per run: those in effect when
    the run started, so a price changed mid-run applies from the next run on.
    """

    def __init__(self, moment: datetime) -> None:
        self.moment = moment
        self._models: dict[tuple[str, str], tuple[int, int, bool]] = {}
        self._units: dict[tuple[str, str], UnitPrice] | None = None

    def model(self, provider: str, model: str) -> tuple[int, int, bool]:
        """(input, output) micro-credits per million tokens, and whether it is the fallback."""
        if (provider, model) not in self._models:
            prices = ModelPrice.objects.effective_at(self.moment).filter(provider=provider, model__in=[model, "*"])
            best = sorted(prices, key=lambda price: (price.model == "*", -price.effective_from.timestamp()))
            if best:
                found = (best[0].input_per_million, best[0].output_per_million, False)
            else:
                fallback = settings.BILLING_FALLBACK_PER_MILLION * MICRO
                found = (fallback, fallback, True)
            self._models[provider, model] = found
        return self._models[provider, model]

    def unit(self, subject: str, name: str) -> UnitPrice | None:
        if self._units is None:
            self._units = {(price.subject, price.name): price for price in UnitPrice.objects.all()}
        return self._units.get((subject, name))

    def cost(self, *, node_type: str, usage: dict) -> Cost:
        """What a finished node costs: its tokens at its model's price, plus per-call prices."""
        amount, lines, fallback = 0, [], False
        if usage.get("model") and (usage.get("input_tokens") or usage.get("output_tokens")):
            provider, model = str(usage.get("provider", "")), str(usage["model"])
            per_input, per_output, fallback = self.model(provider, model)
            tokens_in, tokens_out = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
            amount += _per_million(tokens_in, per_input) + _per_million(tokens_out, per_output)
            lines.append(
                f"{provider}/{model}: {tokens_in} in, {tokens_out} out" + (" (fallback price)" if fallback else "")
            )
        node_price = self.unit(UnitPrice.Subject.NODE, node_type)
        if node_price is not None and node_price.per_call:
            amount += node_price.per_call
            lines.append(f"{node_type} node")
        seconds = float(usage.get("browser_seconds", 0) or 0)
        browser_price = self.unit(UnitPrice.Subject.NODE, "browser")
        if seconds > 0 and browser_price is not None and browser_price.per_minute:
            # Browser time, per minute, pro rata to the millisecond and rounded up.
            amount += -(-round(seconds * 1000) * browser_price.per_minute // 60_000)
            lines.append(f"{seconds:.1f} s of browser")
        calls = int(usage.get("tool_calls", 0) or 0)
        tool_price = self.unit(UnitPrice.Subject.TOOL, "*")
        if calls and tool_price is not None and tool_price.per_call:
            amount += calls * tool_price.per_call
            lines.append(f"{calls} tool call(s)")
        if fallback:
            logger.warning(
                "no price for %s/%s: charged at the fallback price", usage.get("provider"), usage.get("model")
            )
        return Cost(amount=amount, lines=tuple(lines), fallback=fallback)


def model_price(provider: str, model: str, moment: datetime) -> tuple[int, int, bool]:
    """(input, output) micro-credits per million tokens at `moment`, and whether it is the fallback."""
    return PriceBook(moment).model(provider, model)


def node_cost(*, node_type: str, usage: dict, moment: datetime) -> Cost:
    """What a finished node costs at the prices in effect at `moment`."""
    return PriceBook(moment).cost(node_type=node_type, usage=usage)


def operator_grant(*, user: Any, amount: int, reason: str, actor: Any) -> CreditTransaction:
    """Credits given by an operator: a new ledger row naming them."""
    if amount <= 0:
        raise LedgerRefused("A grant adds credits: the amount must be positive.")
    row, _ = ledger_post(
        user=user,
        kind=CreditTransaction.Kind.GRANT,
        amount=amount,
        idempotency_key=f"grant:{uuid.uuid4()}",
        description=f"Granted by {actor}: {reason}"[:255],
        actor=actor,
    )
    return row


class RefundRefused(ValueError):
    """A run whose charges may not be refunded now (still running, or nothing left to give back)."""


def run_refund(*, execution: Any, actor: Any, reason: str = "") -> CreditTransaction:
    """
    Give a finished run's charges back to its owner: one `refund` row naming the operator. What
    was already refunded is not given twice: the key carries the total charged, so a repeated
    or simultaneous refund of the same run posts once.
    """
    if execution.status not in execution.TERMINAL:
        raise RefundRefused(f"Run {execution.pk} is {execution.status}: refund it once it has finished.")
    moved = CreditTransaction.objects.filter(execution_id=execution.pk).aggregate(
        charged=Sum("amount", filter=Q(kind=CreditTransaction.Kind.USAGE), default=0),
        refunded=Sum("amount", filter=Q(kind=CreditTransaction.Kind.REFUND), default=0),
    )
    due = -moved["charged"] - moved["refunded"]
    if due <= 0:
        raise RefundRefused(f"Run {execution.pk} has no charges left to refund.")
    row, _ = ledger_post(
        user=execution.owner_id,
        kind=CreditTransaction.Kind.REFUND,
        amount=due,
        idempotency_key=f"refund:run:{execution.pk}:{-moved['charged']}",
        description=f"Run {execution.pk} refunded by {actor}" + (f": {reason}" if reason else ""),
        execution=execution.pk,
        actor=actor,
    )
    return row


# --- Plans, subscriptions and admission ----------------------------------------------------------

PERIOD = timedelta(days=30)


class AdmissionRefused(Exception):
    """A run may not start: `code` is insufficient_credits, concurrency_limit or daily_limit."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def default_plan() -> Plan:
    """The plan marked default; if an operator removed them all, the built-in Free plan comes back."""
    plan = Plan.objects.filter(is_default=True).first()
    if plan is None:
        plan, _ = Plan.objects.get_or_create(
            name="Free",
            defaults={
                "monthly_grant": 10 * MICRO,
                "max_concurrent_runs": 20,
                "max_runs_per_day": 1000,
                "max_run_seconds": 3600,
                "is_default": not Plan.objects.filter(is_default=True).exists(),
            },
        )
    return plan


def subscription_start(*, user: Any, plan: Plan | None = None, now: datetime | None = None) -> Subscription:
    """Put `user` on `plan` (the default) and grant its credits for the first period, once."""
    now = now or timezone.now()
    with transaction.atomic():
        subscription, created = Subscription.objects.get_or_create(
            user=user,
            defaults={"plan": plan or default_plan(), "period_start": now, "period_end": now + PERIOD},
        )
        if created:
            _period_grant(subscription)
    return subscription


def _period_grant(subscription: Subscription) -> None:
    if subscription.plan.monthly_grant > 0:
        ledger_post(
            user=subscription.user,
            kind=CreditTransaction.Kind.GRANT,
            amount=subscription.plan.monthly_grant,
            idempotency_key=f"plan-grant:{subscription.user_id}:{subscription.period_start:%Y-%m-%dT%H:%M:%S}",
            description=f"{subscription.plan.name} plan: the period from {subscription.period_start:%Y-%m-%d}",
        )


def subscriptions_renew(*, now: datetime | None = None) -> int:
    """Start the next period of every subscription whose period ended, granting its credits once."""
    now = now or timezone.now()
    renewed = 0
    for pk in Subscription.objects.filter(period_end__lte=now).values_list("pk", flat=True):
        with transaction.atomic():
            subscription = Subscription.objects.select_for_update().select_related("plan", "user").get(pk=pk)
            while subscription.period_end <= now:
                subscription.period_start = subscription.period_end
                subscription.period_end = subscription.period_start + PERIOD
                _period_grant(subscription)
            subscription.save(update_fields=["period_start", "period_end"])
        renewed += 1
    return renewed


def admission_check(*, user: Any, active_runs: Callable[[], int], runs_since: Callable[[datetime], int]) -> Plan:
    """
    Call inside the transaction that starts a run. The user's subscription row is locked, so
    simultaneous starts of one user are decided one after another on committed counts: a plan
    admitting 10 concurrent runs admits exactly 10 of 50 simultaneous starts.
    """
    subscription = Subscription.objects.select_for_update().select_related("plan").filter(user=user).first()
    if subscription is None:
        subscription_start(user=user)
        subscription = Subscription.objects.select_for_update().select_related("plan").get(user=user)
    plan = subscription.plan
    balance = balance_of(user)
    minimum = settings.BILLING_RUN_MINIMUM_MICRO
    if balance < minimum:
        raise AdmissionRefused(
            "insufficient_credits",
            f"The balance ({credits(balance)} credits) is below a run's minimum of {credits(minimum)}.",
        )
    if active_runs() >= plan.max_concurrent_runs:
        raise AdmissionRefused(
            "concurrency_limit", f"The {plan.name} plan runs at most {plan.max_concurrent_runs} runs at once."
        )
    day_start = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    if runs_since(day_start) >= plan.max_runs_per_day:
        raise AdmissionRefused(
            "daily_limit", f"The {plan.name} plan starts at most {plan.max_runs_per_day} runs a day."
        )
    return plan


def plan_usage(user: Any) -> dict[str, Any] | None:
    """
    The user's plan with what is used of its limits, counted as admission counts them (runs queued
    or running; runs queued since midnight UTC): two queries. None for a user with no plan yet.
    Runs are read through the user's reverse relation: the ledger does not import the engine.
    """
    subscription = Subscription.objects.select_related("plan").filter(user=user).first()
    if subscription is None:
        return None
    plan = subscription.plan
    day_start = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    used = user.executions.aggregate(
        concurrent=Count("pk", filter=Q(status__in=("queued", "running"))),
        today=Count("pk", filter=Q(queued_at__gte=day_start)),
    )
    return {
        "subscription": subscription,
        "name": plan.name,
        "period_end": subscription.period_end,
        "limits": [
            _limit("concurrent", used["concurrent"], plan.max_concurrent_runs),
            _limit("today", used["today"], plan.max_runs_per_day),
        ],
    }


def _limit(kind: str, used: int, limit: int) -> dict[str, Any]:
    percent = min(100, round(100 * used / limit)) if limit else 100
    return {"kind": kind, "used": used, "limit": limit, "percent": percent, "full": used >= limit}


def run_seconds_allowed(user: Any) -> int:
    """The longest a run of `user` may take under their plan (the default plan's before they have one)."""
    plan = Plan.objects.filter(subscriptions__user=user).first() or default_plan()
    return plan.max_run_seconds
