"""
Pages of runs for end users. The dashboard: recent runs, credits and plan usage, 30 days of usage.

Each figure is one query whatever the number of runs (a test pins the count), and each is scoped
to the signed-in user (runs through `visible_to(user)`).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from apps.billing import services as billing
from apps.billing.models import Subscription
from apps.billing.usage import usage_daily, user_zone
from apps.executions.models import Execution

RECENT_RUNS = 10
USAGE_DAYS = 30


@require_safe
def dashboard(request: HttpRequest) -> HttpResponse:
    """`/`: the signed-in user's dashboard; a visitor is sent to the sign-in page, and back here after."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    user = request.user
    context = {
        "recent_runs": recent_runs(user),
        "credit_balance": billing.balance_of(user),
        "plan": plan_usage(user),
        "usage": usage_last_days(user, days=USAGE_DAYS),
    }
    return render(request, "app/dashboard.html", context)


def recent_runs(user: Any, *, limit: int = RECENT_RUNS) -> list[Execution]:
    return list(
        Execution.objects.visible_to(user)
        .select_related("workflow")
        .only("id", "status", "cost", "created_at", "started_at", "finished_at", "workflow__id", "workflow__name")
        .order_by("-created_at")[:limit]
    )


def plan_usage(user: Any) -> dict[str, Any] | None:
    """
    The user's plan with what is used of its limits, counted as admission counts them (runs queued
    or running; runs queued since midnight UTC): two queries. None for a user with no plan yet.
    """
    subscription = Subscription.objects.select_related("plan").filter(user=user).first()
    if subscription is None:
        return None
    plan = subscription.plan
    day_start = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    used = Execution.objects.visible_to(user).aggregate(
        concurrent=Count("pk", filter=Q(status__in=(Execution.Status.QUEUED, Execution.Status.RUNNING))),
        today=Count("pk", filter=Q(queued_at__gte=day_start)),
    )
    return {
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


def usage_last_days(user: Any, *, days: int) -> dict[str, Any]:
    """Credits spent per day over the last `days` calendar days in the user's time zone: one query."""
    zone = user_zone(user)
    now = timezone.now()
    first = now.astimezone(zone).date() - timedelta(days=days - 1)
    rows = usage_daily(user=user, start=datetime.combine(first, time.min, tzinfo=zone), end=now, zone=zone)
    spent = [row["credits"] for row in rows]
    return {
        "days": rows,
        "credits": spent,
        "total": sum(spent),
        "peak": max(rows, key=lambda row: row["credits"]) if any(spent) else None,
        "first": rows[0]["date"],
        "last": rows[-1]["date"],
    }
