from django.urls import path

from apps.billing.api import usage

urlpatterns = [
    path("billing/usage/", usage.UsageView.as_view(), name="billing-usage"),
    path("billing/usage/history/", usage.HistoryView.as_view(), name="billing-usage-history"),
    path("billing/agent-breakdown/", usage.BreakdownView.as_view(), name="billing-agent-breakdown"),
]
