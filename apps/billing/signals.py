"""Signal receivers, connected in BillingConfig.ready(); each hands over to a service."""

from __future__ import annotations

from typing import Any

from apps.billing import services


def user_created(sender: Any, instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    """A new account joins the default plan and gets its credits, so it can run workflows at once."""
    if created and not raw:
        services.subscription_start(user=instance)
