"""Query-parameter filters every list shares."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import django_filters
from django import forms


class UtcDateTimeField(django_filters.fields.IsoDateTimeField):
    """An ISO 8601 date-time, as UTC; offsets beyond ±14:00 and dates that leave the calendar are refused."""

    def clean(self, value: object) -> datetime | None:
        moment = super().clean(value)
        if moment is None:
            return None
        offset = moment.utcoffset()
        if offset is not None and abs(offset) > timedelta(hours=14):
            raise forms.ValidationError("The time zone offset must be between -14:00 and +14:00.")
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("The date is out of range.") from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField
