from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.billing.models import CreditTransaction, credits


@extend_schema_field({"type": "string", "pattern": r"^-?\d+(\.\d{1,6})?$", "example": "1.5"})
class Credits(serializers.Field):
    """Micro-credits shown as an exact decimal string of credits ("1.5")."""

    def to_representation(self, value: int) -> str:
        return credits(value)


class BalanceOutput(serializers.Serializer):
    balance = Credits(help_text="Credits, as an exact decimal string.")
    balance_micro_credits = serializers.IntegerField()


class TransactionOutput(serializers.ModelSerializer):
    amount = Credits()
    balance_after = Credits()
    created = serializers.DateTimeField(source="created_at")

    class Meta:
        model = CreditTransaction
        fields = [
            "id",
            "kind",
            "amount",
            "balance_after",
            "execution",
            "node_execution",
            "description",
            "idempotency_key",
            "created",
        ]


class Limit(serializers.Serializer):
    limit = serializers.IntegerField()
    used = serializers.IntegerField()


class PlanOutput(serializers.Serializer):
    name = serializers.CharField()
    credits_per_period = Credits()
    max_run_seconds = serializers.IntegerField()
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    concurrent_runs = Limit()
    runs_today = Limit()
