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
