from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import UserManager as DjangoUserManager
from django.db import models
from django.utils import timezone


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


class NoticeQuerySet(models.QuerySet):
    def visible_to(self, user) -> NoticeQuerySet:
        if not getattr(user, "is_authenticated", False):
            return self.none()
        return self.filter(user=user)

    def unread(self) -> NoticeQuerySet:
        return self.filter(read_at__isnull=True)

    def mark_read(self, now: datetime | None = None) -> int:
        """Mark the unread ones read now; already read ones keep their first time. How many changed."""
        return self.unread().update(read_at=now or timezone.now())
