"""
Usage reports: what a user's runs spent over a period, read from the ledger.

Each figure is an aggregate query over the user's `usage` ledger rows (one per charged node run,
keyed `node:<node run id>`), joined to that node run's `usage` JSON for its tokens, model and
agent; no report loops over ledger rows in Python, so its query count is the same for ten rows
or a million. Periods are half-open: `start <= created_at < end`.

The ledger does not import the engine: node runs and runs are reached through the ledger's string
foreign keys, and agents (known to the ledger only as the id the engine wrote into a node's usage)
through the user's own `agents`.
"""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from django.conf import settings
from django.db.models import BigIntegerField, Count, DecimalField, F, Q, QuerySet, Sum, TextField, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce, TruncDate

from apps.billing.models import CreditTransaction

USAGE = Q(kind=CreditTransaction.Kind.USAGE)
RUN_REFUND = Q(kind=CreditTransaction.Kind.REFUND, execution__isnull=False)
NODE_REFUND = RUN_REFUND & Q(node_execution__isnull=False)
_USAGE_JSON = "node_execution__usage"


def _usage_number(key: str) -> Cast:
    # `->>` gives text on PostgreSQL and a number on SQLite. Through numeric, so that a whole
    # number written as 3.0 (JSON Schema's "integer" admits it) casts to bigint on both.
    whole = Cast(KeyTextTransform(key, _USAGE_JSON), DecimalField(max_digits=20, decimal_places=0))
    return Cast(whole, BigIntegerField())


def _usage_text(key: str) -> Coalesce:
    return Coalesce(KeyTextTransform(key, _USAGE_JSON), Value(""), output_field=TextField())


def _total(expression: Any, condition: Q) -> Coalesce:
    """The sum of `expression` over the rows matching `condition`; 0, not NULL, when there are none."""
    return Coalesce(Sum(expression, filter=condition), Value(0), output_field=BigIntegerField())


def _spending() -> dict[str, Any]:
    """Credits spent (micro-credits, positive) and distinct runs charged, over usage rows."""
    return {
        "credits": _total(-F("amount"), USAGE),
        "runs": Count("execution", filter=USAGE, distinct=True),
    }


def _figures() -> dict[str, Any]:
    """Spending plus the tokens of the charged node runs (refund rows never add tokens)."""
    return {
        **_spending(),
        "input_tokens": _total(_usage_number("input_tokens"), USAGE),
        "output_tokens": _total(_usage_number("output_tokens"), USAGE),
    }


def _in_period(user: Any, start: datetime, end: datetime) -> QuerySet[CreditTransaction]:
    return CreditTransaction.objects.visible_to(user).filter(created_at__gte=start, created_at__lt=end)


def usage_summary(*, user: Any, start: datetime, end: datetime) -> dict[str, Any]:
    """
    Totals of `user`'s usage in the period, and the same per (provider, model): two queries.

    `refunded` counts refund rows tied to a run; per model, only those that also name a node run
    (a refund of a whole run has no model). Charges without a model (per-call prices) and charges
    whose node run is no longer stored are grouped under provider "" and model "".
    """
    rows = _in_period(user, start, end)
    totals = rows.filter(USAGE | RUN_REFUND).aggregate(**_figures(), refunded=_total("amount", RUN_REFUND))
    by_model = (
        rows.filter(USAGE | NODE_REFUND)
        .values(provider=_usage_text("provider"), model=_usage_text("model"))
        .annotate(**_figures(), refunded=_total("amount", NODE_REFUND))
        .order_by("-credits", "provider", "model")
    )
    return {"start": start, "end": end, **totals, "by_model": list(by_model)}


def usage_breakdown(*, user: Any, start: datetime, end: datetime) -> dict[str, Any]:
    """
    Spending per agent (nodes whose usage names an `agent_id`) and per workflow, most credits
    first: three queries. An agent that no longer exists, or is not `user`'s, has no name; charges
    whose run was deleted are one workflow row with no id and no name.
    """
    rows = _in_period(user, start, end).filter(USAGE)
    agents = list(
        rows.filter(node_execution__usage__has_key="agent_id")
        .values(agent_id=_usage_number("agent_id"))
        .annotate(**_spending())
        .order_by("-credits", "agent_id")
    )
    names = dict(user.agents.filter(pk__in=[row["agent_id"] for row in agents]).values_list("pk", "name"))
    for row in agents:  # one per agent, never per ledger row
        row["name"] = names.get(row["agent_id"])
    workflows = (
        rows.values(workflow_id=F("execution__workflow_id"), name=F("execution__workflow__name"))
        .annotate(**_spending())
        .order_by("-credits", "workflow_id")
    )
    return {"start": start, "end": end, "agents": agents, "workflows": list(workflows)}


def user_zone(user: Any) -> tzinfo:
    """The user's time zone, else the platform's (also when tzdata no longer knows the stored name)."""
    try:
        return zoneinfo.ZoneInfo(user.time_zone or settings.TIME_ZONE)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def usage_daily(*, user: Any, start: datetime, end: datetime, zone: tzinfo) -> list[dict[str, Any]]:
    """
    One row per calendar day in `zone` that the period touches (the first and last may be partial),
    days without usage as zeros: one query. A run charged on two days counts on both.
    """
    by_day = {
        row["date"]: row
        for row in _in_period(user, start, end)
        .filter(USAGE)
        .values(date=TruncDate("created_at", tzinfo=zone))
        .annotate(**_figures())
        .order_by("date")
    }
    first = start.astimezone(zone).date()
    last = (end - timedelta(microseconds=1)).astimezone(zone).date()
    return [by_day.get(day) or _nothing_on(day) for day in _days(first, last)]


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _nothing_on(day: date) -> dict[str, Any]:
    return {"date": day, "credits": 0, "runs": 0, "input_tokens": 0, "output_tokens": 0}
