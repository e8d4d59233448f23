from __future__ import annotations

from datetime import datetime

from django.db import models


class ExecutionQuerySet(models.QuerySet):
    def visible_to(self, user) -> ExecutionQuerySet:
        if not getattr(user, "is_authenticated", False):
            return self.none()
        return self.filter(owner=user)

    def active(self) -> ExecutionQuerySet:
        return self.filter(status__in=("queued", "running"))

    def running(self) -> ExecutionQuerySet:
        return self.filter(status="running")

    def lease_expired(self, now: datetime) -> ExecutionQuerySet:
        return self.filter(status="running", lease_expires_at__lt=now)

    def waiting_since(self, moment: datetime) -> ExecutionQuerySet:
        """Queued before `moment` and never claimed: their message may be lost."""
        return self.filter(status="queued", queued_at__lt=moment)


class NodeExecutionQuerySet(models.QuerySet):
    def finished(self) -> NodeExecutionQuerySet:
        return self.exclude(status="running")


class ExecutionEventQuerySet(models.QuerySet):
    def after(self, seq: int) -> ExecutionEventQuerySet:
        return self.filter(seq__gt=seq).order_by("seq")
