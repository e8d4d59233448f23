from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from apps.billing import services
from apps.billing.api.serializers import BalanceOutput, PlanOutput, TransactionOutput
from apps.billing.models import CreditTransaction, Subscription
from apps.users.api.base import ApiMixin
from apps.users.api.filters import UtcDateTimeFilter
from apps.users.api.pagination import NewestFirst


class BalanceView(ApiMixin, GenericAPIView):
    queryset = CreditTransaction.objects.none()
    serializer_class = BalanceOutput

    @extend_schema(responses=BalanceOutput)
    def get(self, request: Request) -> Response:
        balance = services.balance_of(request.user)
        return Response(BalanceOutput({"balance": balance, "balance_micro_credits": balance}).data)


class TransactionFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=CreditTransaction.Kind.choices)
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = CreditTransaction
        fields = ["kind", "created_after", "created_before"]


class LedgerPages(NewestFirst):
    """`?limit=` from 1 to 1000 rows a page (default 100)."""

    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 1000


class TransactionViewSet(ApiMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """The user's ledger, newest first: every movement of their credits."""

    serializer_class = TransactionOutput
    queryset = CreditTransaction.objects.all()
    filterset_class = TransactionFilter
    pagination_class = LedgerPages

    def get_queryset(self):
        return CreditTransaction.objects.visible_to(self.request.user)


class PlanView(ApiMixin, GenericAPIView):
    """The user's plan, its limits and what is used of them."""

    queryset = Subscription.objects.none()
    serializer_class = PlanOutput

    @extend_schema(responses=PlanOutput)
    def get(self, request: Request) -> Response:
        usage = services.plan_usage(request.user)
        if usage is None:
            services.subscription_start(user=request.user)
            usage = services.plan_usage(request.user)
        subscription, (concurrent, today) = usage["subscription"], usage["limits"]
        plan = subscription.plan
        data = {
            "name": plan.name,
            "credits_per_period": plan.monthly_grant,
            "max_run_seconds": plan.max_run_seconds,
            "period_start": subscription.period_start,
            "period_end": subscription.period_end,
            "concurrent_runs": {"limit": concurrent["limit"], "used": concurrent["used"]},
            "runs_today": {"limit": today["limit"], "used": today["used"]},
        }
        return Response(PlanOutput(data).data)
