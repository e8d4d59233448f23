from __future__ import annotations

from datetime import datetime

from django.db import models


class CreditTransactionQuerySet(models.QuerySet):
    def visible_to(self, user) -> CreditTransactionQuerySet:
        if not getattr(user, "is_authenticated", False):
            return self.none()
        return self.filter(user=user)


class ModelPriceQuerySet(models.QuerySet):
    def effective_at(self, moment: datetime) -> ModelPriceQuerySet:
        return self.filter(effective_from__lte=moment).filter(
            models.Q(effective_to__isnull=True) | models.Q(effective_to__gt=moment)
        )
