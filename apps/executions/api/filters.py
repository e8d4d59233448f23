"""Query parameters of `GET /api/v1/executions/`; a bad value is a 400 naming the parameter."""

from __future__ import annotations

import django_filters
from django import forms
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from apps.executions.models import Execution
from apps.users.api.filters import UtcDateTimeFilter


@extend_schema_field(OpenApiTypes.INT)
class IdFilter(django_filters.NumberFilter):
    """A whole-number id (django-filter's NumberFilter takes decimals), within a database's bigint."""

    field_class = forms.IntegerField

    def __init__(self, *args: object, **kwargs: object) -> None:
        # Out of range, a foreign-key lookup overflows in the driver (a 500) instead of matching nothing.
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 2**63 - 1)
        super().__init__(*args, **kwargs)


class StatusIn(django_filters.BaseInFilter, django_filters.ChoiceFilter):
    """`?status=failed,timed_out`: any of the listed statuses."""


class ExecutionFilter(django_filters.FilterSet):
    status = StatusIn(
        choices=Execution.Status.choices, help_text="One status, or several separated by commas (`failed,timed_out`)."
    )
    workflow = IdFilter(field_name="workflow_id", help_text="Runs of this workflow (its id).")
    # A half-open window [after, before): adjacent windows neither overlap nor leave a gap.
    created_after = UtcDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="Created at or after this ISO 8601 date-time."
    )
    created_before = UtcDateTimeFilter(
        field_name="created_at", lookup_expr="lt", help_text="Created before this ISO 8601 date-time."
    )

    class Meta:
        model = Execution
        fields = ["status", "workflow", "created_after", "created_before"]
