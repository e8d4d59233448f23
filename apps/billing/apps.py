from django.apps import AppConfig


class BillingConfig(AppConfig):
    """Credits, prices, plans and quotas (filled by the billing issue)."""

    name = "apps.billing"
    label = "billing"
    verbose_name = "Billing"
