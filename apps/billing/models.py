"""
Credits. Amounts are integer micro-credits (1 credit = 1,000,000), so sums are exact.

The ledger (`CreditTransaction`) is insert-only; `CreditAccount.balance` changes only in the
same transaction as a ledger row, under the account's row lock, so it always equals the sum.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.billing.managers import CreditTransactionQuerySet, ModelPriceQuerySet

MICRO = 1_000_000


def credits(micro: int) -> str:
    """Micro-credits as a decimal string of credits: 1500000 -> "1.5"."""
    sign = "-" if micro < 0 else ""
    whole, fraction = divmod(abs(micro), MICRO)
    return f"{sign}{whole}.{fraction:06d}".rstrip("0").rstrip(".")


class CreditAccount(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE, related_name="credit_account"
    )
    balance = models.BigIntegerField(_("balance (micro-credits)"), default=0)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("credit account")
        verbose_name_plural = _("credit accounts")

    def __str__(self) -> str:
        return f"{self.user} {credits(self.balance)}"


class CreditTransaction(models.Model):
    """One movement of credits: insert-only; a correction is a new row."""

    class Kind(models.TextChoices):
        TOPUP = "topup", _("Top-up")
        GRANT = "grant", _("Grant")
        USAGE = "usage", _("Usage")
        REFUND = "refund", _("Refund")
        ADJUSTMENT = "adjustment", _("Adjustment")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE, related_name="credit_transactions"
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    amount = models.BigIntegerField(_("amount (micro-credits)"), help_text=_("Positive adds credits, negative spends."))
    balance_after = models.BigIntegerField(_("balance after (micro-credits)"))
    execution = models.ForeignKey(
        "executions.Execution",
        verbose_name=_("run"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="credit_transactions",
    )
    node_execution = models.ForeignKey(
        "executions.NodeExecution",
        verbose_name=_("node run"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="credit_transactions",
    )
    description = models.CharField(_("description"), max_length=255, blank=True)
    fallback_price = models.BooleanField(
        _("fallback price"),
        default=False,
        help_text=_("Charged at BILLING_FALLBACK_PER_MILLION because its model has no price: set one."),
    )
    idempotency_key = models.CharField(_("idempotency key"), max_length=200, unique=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("by operator"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, db_index=True)

    objects = CreditTransactionQuerySet.as_manager()

    class Meta:
        verbose_name = _("credit transaction")
        verbose_name_plural = _("credit transactions")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["user", "-created_at"], name="credit_tx_user_created")]
        constraints = [models.CheckConstraint(condition=~models.Q(amount=0), name="credit_tx_amount_not_zero")]

    def __str__(self) -> str:
        return f"{self.kind} {credits(self.amount)} ({self.idempotency_key})"


class ModelPrice(models.Model):
    """What a provider's model costs per million tokens, from a date (old runs keep their price)."""

    provider = models.CharField(_("provider"), max_length=32)
    model = models.CharField(
        _("model"), max_length=200, help_text=_("Exact model name, or * for the provider's others.")
    )
    input_per_million = models.BigIntegerField(_("micro-credits per million input tokens"))
    output_per_million = models.BigIntegerField(_("micro-credits per million output tokens"))
    effective_from = models.DateTimeField(_("effective from"), default=timezone.now)
    effective_to = models.DateTimeField(_("effective until"), null=True, blank=True)

    objects = ModelPriceQuerySet.as_manager()

    class Meta:
        verbose_name = _("model price")
        verbose_name_plural = _("model prices")
        ordering = ["provider", "model", "-effective_from"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(input_per_million__gte=0, output_per_million__gte=0), name="model_price_not_negative"
            )
        ]

    def __str__(self) -> str:
        return f"{self.provider}/{self.model} from {self.effective_from:%Y-%m-%d}"


class UnitPrice(models.Model):
    """A price per call of a node type or a tool (and, for the browser, per minute)."""

    class Subject(models.TextChoices):
        NODE = "node", _("Node type")
        TOOL = "tool", _("Tool")

    subject = models.CharField(_("subject"), max_length=8, choices=Subject.choices)
    name = models.CharField(_("name"), max_length=100)
    per_call = models.BigIntegerField(_("micro-credits per call"), default=0)
    per_minute = models.BigIntegerField(_("micro-credits per minute"), default=0)

    class Meta:
        verbose_name = _("unit price")
        verbose_name_plural = _("unit prices")
        constraints = [
            models.UniqueConstraint(fields=["subject", "name"], name="unit_price_subject_name"),
            models.CheckConstraint(
                condition=models.Q(per_call__gte=0, per_minute__gte=0), name="unit_price_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subject} {self.name}"


class Plan(models.Model):
    """What a subscription gives: credits each period and the limits on running."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    monthly_grant = models.BigIntegerField(_("credits granted each period (micro-credits)"), default=0)
    max_concurrent_runs = models.PositiveIntegerField(_("max concurrent runs"), default=5)
    max_runs_per_day = models.PositiveIntegerField(_("max runs per day"), default=500)
    max_run_seconds = models.PositiveIntegerField(_("max run time (s)"), default=3600)
    is_default = models.BooleanField(_("default for new users"), default=False)

    class Meta:
        verbose_name = _("plan")
        verbose_name_plural = _("plans")
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=models.Q(is_default=True), name="one_default_plan"
            ),
            models.CheckConstraint(condition=models.Q(monthly_grant__gte=0), name="plan_grant_not_negative"),
        ]

    def __str__(self) -> str:
        return self.name


class Subscription(models.Model):
    """A user's plan and current period; its row is the lock that orders the user's run starts."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE, related_name="subscription"
    )
    plan = models.ForeignKey(Plan, verbose_name=_("plan"), on_delete=models.PROTECT, related_name="subscriptions")
    period_start = models.DateTimeField(_("period start"))
    period_end = models.DateTimeField(_("period end"))

    class Meta:
        verbose_name = _("subscription")
        verbose_name_plural = _("subscriptions")

    def __str__(self) -> str:
        return f"{self.user} on {self.plan}"
