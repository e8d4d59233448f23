from __future__ import annotations

from django.db import models


class WorkflowQuerySet(models.QuerySet):
    def visible_to(self, user) -> WorkflowQuerySet:
        if not getattr(user, "is_authenticated", False):
            return self.none()
        return self.filter(owner=user)


class WorkflowVersionQuerySet(models.QuerySet):
    def visible_to(self, user) -> WorkflowVersionQuerySet:
        if not getattr(user, "is_authenticated", False):
            return self.none()
        return self.filter(workflow__owner=user)

    def latest_first(self) -> WorkflowVersionQuerySet:
        return self.order_by("-number")
