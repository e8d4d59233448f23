from __future__ import annotations

from django.db import models


class OwnedQuerySet(models.QuerySet):
    """The one scoping method for user-owned objects: another user's object does not exist."""

    def visible_to(self, user) -> OwnedQuerySet:
        if not getattr(user, "is_authenticated", False):
            return self.none()
        return self.filter(owner=user)


class CredentialQuerySet(OwnedQuerySet):
    pass


class AgentQuerySet(OwnedQuerySet):
    def with_credential(self) -> AgentQuerySet:
        return self.select_related("credential")
