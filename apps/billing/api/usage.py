"""
`/api/v1/billing/usage/`, `usage/history/` and `agent-breakdown/`: reports of what the user's runs
spent, over a period given as `?start=&end=`. The figures come from `apps.billing.usage`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from apps.billing import usage
from apps.billing.api.serializers import Credits
from apps.billing.models import CreditTransaction
from apps.users.api.base import ApiMixin

DEFAULT_SPAN = timedelta(days=30)
LONGEST_SPAN = timedelta(days=366)
# Far enough inside the calendar that a default start, a day boundary in any zone and the
# longest period never leave it; no charge predates the epoch.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


class UtcDateTime(serializers.DateTimeField):
    """An ISO 8601 date-time read and shown as UTC: naive means UTC; offsets within ±14:00."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(default_timezone=UTC, **kwargs)

    def enforce_timezone(self, value: datetime) -> datetime:
        offset = value.utcoffset()
        if offset is not None and abs(offset) > timedelta(hours=14):
            raise serializers.ValidationError("The time zone offset must be between -14:00 and +14:00.")
        moment = super().enforce_timezone(value)
        if not EARLIEST <= moment < LATEST:
            raise serializers.ValidationError("The date must be between 1970 and 9998.")
        return moment


class PeriodInput(serializers.Serializer):
    start = UtcDateTime(
        required=False,
        help_text=(
            "Included. ISO 8601, UTC unless it has an offset; a bare date is its midnight. Default: 30 days "
            "before `end`. Before `end`, at most 366 days before it, from 1970."
        ),
    )
    end = UtcDateTime(
        required=False,
        help_text="Excluded. ISO 8601, UTC unless it has an offset; a bare date is its midnight. Default: now.",
    )

    def validate(self, attrs: dict) -> dict:
        end = attrs.get("end") or timezone.now()
        start = attrs.get("start") or end - DEFAULT_SPAN
        # Blame the bound the caller gave: `end` if they gave it, else their `start`.
        blamed = "end" if "end" in attrs else "start"
        if start >= end:
            raise serializers.ValidationError({blamed: "`start` must be before `end`."})
        if end - start > LONGEST_SPAN:
            raise serializers.ValidationError({blamed: "The period may be at most 366 days long."})
        return {"start": start, "end": end}


def period_of(request: Request) -> dict[str, datetime]:
    period = PeriodInput(data=request.query_params)
    period.is_valid(raise_exception=True)
    return period.validated_data


class ModelUsageOutput(serializers.Serializer):
    provider = serializers.CharField(help_text='"" for charges without a model (a per-call price).')
    model = serializers.CharField(help_text='"" for charges without a model (a per-call price).')
    runs = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    credits = Credits(help_text="Spent, as an exact decimal string.")
    refunded = Credits(help_text="Given back by refunds naming a node run of this model.")


class UsageOutput(serializers.Serializer):
    start = UtcDateTime()
    end = UtcDateTime()
    runs = serializers.IntegerField(help_text="Distinct runs charged in the period.")
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    credits = Credits(help_text="Spent, as an exact decimal string.")
    refunded = Credits(help_text="Given back by refunds of runs in the period.")
    by_model = ModelUsageOutput(many=True)


class AgentUsageOutput(serializers.Serializer):
    id = serializers.IntegerField(source="agent_id")
    name = serializers.CharField(allow_null=True, help_text="null once the agent is deleted.")
    credits = Credits()
    runs = serializers.IntegerField()


class WorkflowUsageOutput(serializers.Serializer):
    id = serializers.IntegerField(source="workflow_id", allow_null=True, help_text="null for deleted runs.")
    name = serializers.CharField(allow_null=True, help_text="null for deleted runs.")
    credits = Credits()
    runs = serializers.IntegerField()


class BreakdownOutput(serializers.Serializer):
    start = UtcDateTime()
    end = UtcDateTime()
    agents = AgentUsageOutput(many=True)
    workflows = WorkflowUsageOutput(many=True)


class DayUsageOutput(serializers.Serializer):
    date = serializers.DateField(help_text="A calendar day in `time_zone`.")
    credits = Credits()
    runs = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()


class HistoryOutput(serializers.Serializer):
    start = UtcDateTime()
    end = UtcDateTime()
    time_zone = serializers.CharField(help_text="The zone whose calendar days the series counts.")
    days = DayUsageOutput(many=True)


class UsageView(ApiMixin, GenericAPIView):
    """
    What the user's runs spent in a period: over their `usage` ledger rows (one per charged node
    run), `runs` (distinct runs charged), `input_tokens` and `output_tokens` (of the charged node
    runs), `credits` spent, and `refunded` (credits given back by refunds tied to a run, counted
    when the refund was made). `by_model` gives the same per provider and model, most credits
    first; charges without a model (the per-call price of an `http_request` node, say) are under
    provider "" and model "", and a refund of a whole run, naming no node, only in the total. A
    charge whose run was deleted since still counts in `credits` (under "" and ""), no longer in
    `runs` or tokens.

    The period is `?start=` (included) to `?end=` (excluded), by when each charge was posted: by
    default the 30 days up to now, at most 366 days. A bad value is a 400 naming the parameter.
    """

    queryset = CreditTransaction.objects.none()
    serializer_class = UsageOutput

    @extend_schema(parameters=[PeriodInput], responses=UsageOutput)
    def get(self, request: Request) -> Response:
        report = usage.usage_summary(user=request.user, **period_of(request))
        return Response(UsageOutput(report).data)


class BreakdownView(ApiMixin, GenericAPIView):
    """
    Where the user's credits went in a period, most credits first. `agents`: per agent, from the
    `agent_id` an agent node records, credits and runs (an agent deleted since is still listed, by
    id, with a null name); other nodes are in no agent's row. Ties go by id. `workflows`: per workflow, credits and
    runs; charges whose run was deleted are one row with a null id and name.

    The period is `?start=` (included) to `?end=` (excluded), by when each charge was posted: by
    default the 30 days up to now, at most 366 days. A bad value is a 400 naming the parameter.
    """

    queryset = CreditTransaction.objects.none()
    serializer_class = BreakdownOutput

    @extend_schema(parameters=[PeriodInput], responses=BreakdownOutput)
    def get(self, request: Request) -> Response:
        report = usage.usage_breakdown(user=request.user, **period_of(request))
        return Response(BreakdownOutput(report).data)


class HistoryView(ApiMixin, GenericAPIView):
    """
    A daily series for charts: one row per calendar day of the period in the user's time zone
    (their profile's, else the platform's; named in `time_zone`), oldest first, days without usage
    included as zeros. The first and last day may be partial. A day's `runs` are the distinct runs
    charged that day, so a run charged either side of midnight counts on both days.

    The period is `?start=` (included) to `?end=` (excluded), by when each charge was posted: by
    default the 30 days up to now, at most 366 days. A bad value is a 400 naming the parameter.
    """

    queryset = CreditTransaction.objects.none()
    serializer_class = HistoryOutput

    @extend_schema(parameters=[PeriodInput], responses=HistoryOutput)
    def get(self, request: Request) -> Response:
        period = period_of(request)
        zone = usage.user_zone(request.user)
        days = usage.usage_daily(user=request.user, zone=zone, **period)
        return Response(HistoryOutput({**period, "time_zone": str(zone), "days": days}).data)
