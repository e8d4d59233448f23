"""Credits in templates (`{% load credits %}`): amounts are integer micro-credits everywhere else."""

from __future__ import annotations

from django import template
from django.conf import settings

from apps.billing.models import credits as as_credits
from apps.billing.services import balance_of

register = template.Library()


@register.filter
def credits(micro: int | None) -> str:
    """1_500_000 -> "1.5"; None -> "0"."""
    return as_credits(int(micro or 0))


@register.filter
def is_low(micro: int | None) -> bool:
    """Below the low-balance threshold that sends a notice (BILLING_LOW_BALANCE_MICRO)."""
    return micro is not None and micro < settings.BILLING_LOW_BALANCE_MICRO


@register.simple_tag(takes_context=True)
def credit_balance(context: template.Context) -> int | None:
    """
    The signed-in user's balance in micro-credits (None for a visitor). A page that already read it
    passes it as `credit_balance`, so the header costs no second query.
    """
    if "credit_balance" in context:
        return context["credit_balance"]
    user = context.get("user")
    if user is None or not user.is_authenticated:
        return None
    return balance_of(user)
