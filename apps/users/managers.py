from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import UserManager as DjangoUserManager
from django.db import models


class UserQuerySet(models.QuerySet):
    def operators(self) -> UserQuerySet:
        return self.filter(is_active=True, is_staff=True)


class UserManager(DjangoUserManager.from_queryset(UserQuerySet)):
    pass


class LoginAttemptQuerySet(models.QuerySet):
    def failed(self) -> LoginAttemptQuerySet:
        return self.exclude(outcome="succeeded")

    def older_than(self, moment: datetime) -> LoginAttemptQuerySet:
        return self.filter(created_at__lt=moment)


class ApiKeyQuerySet(models.QuerySet):
    def visible_to(self, user) -> ApiKeyQuerySet:
        if not getattr(user, "is_authenticated", False):
            return self.none()
        return self.filter(owner=user)

    def usable(self, now: datetime) -> ApiKeyQuerySet:
        return self.filter(status="active").filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now))
