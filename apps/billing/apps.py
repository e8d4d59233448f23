from django.apps import AppConfig


class BillingConfig(AppConfig):
    """Credits (an insert-only ledger and balances), prices, plans and quotas."""

    name = "apps.billing"
    label = "billing"
    verbose_name = "Billing"
