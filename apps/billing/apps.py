from django.apps import AppConfig


class BillingConfig(AppConfig):
    """Credits (an insert-only ledger and balances), prices, plans and quotas."""

    name = "apps.billing"
    label = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from django.conf import settings
        from django.db.models.signals import post_save

        from apps.billing import signals

        post_save.connect(signals.user_created, sender=settings.AUTH_USER_MODEL, dispatch_uid="billing.user_created")
