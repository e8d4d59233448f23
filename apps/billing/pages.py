"""
The billing page (`/billing/`): balance, plan and what is used of it, usage charts over a chosen
period (by day, by agent, by model, by workflow), the ledger's transactions, and buying credits.

Figures come from the functions that own them (apps.billing.usage, apps.billing.services,
apps.billing.services.plan_usage); this module only shapes them for the template (bar geometry,
percentages). The number of queries does not depend on the number of transactions or days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST, require_safe

from apps.billing import payments
from apps.billing import services as billing
from apps.billing.models import CreditTransaction
from apps.billing.usage import usage_breakdown, usage_daily, usage_summary, user_zone

PERIODS = (7, 30, 90)
DEFAULT_PERIOD = 30
TRANSACTIONS_PER_PAGE = 20
CHECKOUT_OUTCOMES = ("success", "cancelled")

# The daily chart's drawing box (SVG user units); it stretches to the card's width.
CHART_WIDTH = 720
CHART_HEIGHT = 160
CHART_TOP = 8


class OverviewFilters(forms.Form):
    days = forms.TypedChoiceField(
        label=gettext_lazy("Period"),
        choices=[(str(days), str(days)) for days in PERIODS],
        coerce=int,
        required=False,
        empty_value=DEFAULT_PERIOD,
    )
    kind = forms.ChoiceField(
        label=gettext_lazy("Kind"),
        choices=[("", gettext_lazy("All")), *CreditTransaction.Kind.choices],
        required=False,
    )


@dataclass(frozen=True)
class Period:
    days: int
    start: datetime
    end: datetime


def period_of(user: Any, days: int) -> Period:
    """The last `days` calendar days in the user's time zone, today included, up to now."""
    zone = user_zone(user)
    now = timezone.now()
    first = now.astimezone(zone).date() - timedelta(days=days - 1)
    return Period(days=days, start=datetime.combine(first, time.min, tzinfo=zone), end=now)


def daily_chart(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """usage_daily's rows as bars of an SVG chart scaled to the busiest day, with a summary."""
    peak = max((row["credits"] for row in rows), default=0)
    slot = CHART_WIDTH / max(len(rows), 1)
    usable = CHART_HEIGHT - CHART_TOP
    bars = []
    for index, row in enumerate(rows):
        height = round(usable * row["credits"] / peak, 1) if peak else 0
        # A day with usage stays visible however small it is next to the peak.
        if row["credits"] and height < 1:
            height = 1
        bars.append(
            {
                **row,
                "x": round(index * slot + slot * 0.15, 1),
                "width": round(slot * 0.7, 1),
                "y": round(CHART_HEIGHT - height, 1),
                "height": height,
            }
        )
    busiest = max(rows, key=lambda row: row["credits"]) if peak else None
    return {
        "bars": bars,
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "total": sum(row["credits"] for row in rows),
        "busiest": busiest,
        "first": rows[0]["date"] if rows else None,
        "last": rows[-1]["date"] if rows else None,
    }


def with_shares(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row with `percent`: its credits as a share of the largest row's, for a horizontal bar."""
    peak = max((row["credits"] for row in rows), default=0)
    return [{**row, "percent": round(100 * row["credits"] / peak) if peak else 0} for row in rows]


def pack_price(pack: payments.CreditPack) -> str:
    """A pack's price as "45.00 USD" (amounts are in the currency's smallest unit, cents here)."""
    return f"{Decimal(pack.unit_amount) / 100:.2f} {pack.currency.upper()}"


def transactions_page(user: Any, *, kind: str, number: Any) -> Any:
    """One page of the user's transactions, newest first: two queries (count and page)."""
    rows = (
        CreditTransaction.objects.visible_to(user)
        .select_related("execution__workflow")
        .only(
            "id",
            "kind",
            "amount",
            "balance_after",
            "description",
            "created_at",
            "execution__id",
            "execution__workflow__id",
            "execution__workflow__name",
        )
        .order_by("-created_at", "-pk")
    )
    if kind:
        rows = rows.filter(kind=kind)
    return Paginator(rows, TRANSACTIONS_PER_PAGE).get_page(number)


@require_safe
@login_required
def overview(request: HttpRequest) -> HttpResponse:
    user = request.user
    filters = OverviewFilters(request.GET)
    valid = filters.is_valid()
    days = filters.cleaned_data["days"] if valid else DEFAULT_PERIOD
    kind = filters.cleaned_data["kind"] if valid else ""
    period = period_of(user, days)
    zone = user_zone(user)
    summary = usage_summary(user=user, start=period.start, end=period.end)
    breakdown = usage_breakdown(user=user, start=period.start, end=period.end)
    configured = payments.payments_configured()
    checkout = request.GET.get("checkout")
    context = {
        "filters": filters,
        "days": days,
        "periods": PERIODS,
        "kind": kind,
        "kinds": CreditTransaction.Kind.choices,
        "credit_balance": billing.balance_of(user),
        "plan": billing.plan_usage(user),
        "summary": summary,
        "chart": daily_chart(usage_daily(user=user, start=period.start, end=period.end, zone=zone)),
        "by_model": with_shares(summary["by_model"]),
        "by_agent": with_shares(breakdown["agents"]),
        "by_workflow": with_shares(breakdown["workflows"]),
        "page_obj": transactions_page(user, kind=kind, number=request.GET.get("page")),
        "payments_configured": configured,
        "packs": [{"pack": pack, "price": pack_price(pack)} for pack in payments.credit_packs()] if configured else [],
        "checkout": checkout if checkout in CHECKOUT_OUTCOMES else "",
    }
    return render(request, "billing/overview.html", context, status=200 if valid else 400)


@require_POST
@login_required
def checkout(request: HttpRequest) -> HttpResponse:
    """Start buying a pack: a Stripe Checkout Session, then off to Stripe's page to pay."""
    back = request.build_absolute_uri(reverse("billing:overview"))
    try:
        session = payments.checkout_create(
            user=request.user,
            pack_id=request.POST.get("pack", ""),
            success_url=f"{back}?checkout=success",
            cancel_url=f"{back}?checkout=cancelled",
        )
    except payments.UnknownPack:
        messages.error(request, _("Pack: there is no such credit pack; choose one of the packs below."))
    except payments.PaymentsNotConfigured:
        messages.error(request, _("Buying credits is not available on this server."))
    except payments.PaymentProviderError:
        messages.error(request, _("The payment provider could not be reached; nothing was charged. Try again later."))
    else:
        return redirect(session.url)
    return redirect(f"{back}#buy")
