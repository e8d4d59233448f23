from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import PurePath

from django.contrib.auth.models import AbstractUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.users.managers import ApiKeyQuerySet, LoginAttemptQuerySet, NoticeQuerySet, UserManager
from apps.users.validators import validate_avatar, validate_time_zone


def avatar_upload_to(instance: User, filename: str) -> str:
    # A random name: no collisions, and nothing of the uploader's file name is kept.
    suffix = PurePath(filename).suffix.lower()[:8]
    return f"avatars/{uuid.uuid4().hex}{suffix}"


class User(AbstractUser):
    """A person who signs in: an end user, an operator (is_staff), or both."""

    class Language(models.TextChoices):
        ENGLISH = "en", "English"
        SIMPLIFIED_CHINESE = "zh-hans", "简体中文"

    display_name = models.CharField(_("display name"), max_length=150, blank=True)
    avatar = models.ImageField(_("avatar"), upload_to=avatar_upload_to, blank=True, validators=[validate_avatar])
    language = models.CharField(
        _("language"),
        max_length=10,
        choices=Language.choices,
        blank=True,
        help_text=_("Leave empty to follow the browser."),
    )
    time_zone = models.CharField(
        _("time zone"),
        max_length=64,
        blank=True,
        validators=[validate_time_zone],
        help_text=_("Leave empty to use the platform's time zone."),
    )

    objects = UserManager()

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"

    def __str__(self) -> str:
        return self.username

    def get_display_name(self) -> str:
        return self.display_name or self.username


class LoginAttempt(models.Model):
    """One try to sign in, on the site or the admin: an insert-only audit row."""

    class Outcome(models.TextChoices):
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        RATE_LIMITED = "rate_limited", _("Rate limited")

    class Source(models.TextChoices):
        SITE = "site", _("Site")
        ADMIN = "admin", _("Admin")

    user = models.ForeignKey(
        User,
        verbose_name=_("user"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="login_attempts",
        help_text=_("The account the login name belongs to, when there is one."),
    )
    identifier = models.CharField(_("login name"), max_length=254, help_text=_("What was typed as username or email."))
    outcome = models.CharField(_("outcome"), max_length=16, choices=Outcome.choices)
    source = models.CharField(_("source"), max_length=8, choices=Source.choices, default=Source.SITE)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=512, blank=True)
    created_at = models.DateTimeField(_("time"), default=timezone.now, db_index=True)

    objects = LoginAttemptQuerySet.as_manager()

    class Meta:
        verbose_name = _("login attempt")
        verbose_name_plural = _("login attempts")
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="loginattempt_user_time"),
            models.Index(fields=["ip_address", "-created_at"], name="loginattempt_ip_time"),
        ]

    def __str__(self) -> str:
        return f"{self.identifier} {self.outcome} at {self.created_at:%Y-%m-%d %H:%M:%S}"


class ApiKey(models.Model):
    """
    A program's credential. Only a salted SHA-256 of the key is stored: the key is shown once, at
    creation; afterwards only `prefix` (which also finds the row) and `last_four` identify it.
    """

    class Scope(models.TextChoices):
        READ = "read", _("Read")
        WRITE = "write", _("Write")
        EXECUTE = "execute", _("Execute")

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        REVOKED = "revoked", _("Revoked")

    owner = models.ForeignKey(User, verbose_name=_("owner"), on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(_("name"), max_length=100)
    description = models.TextField(_("description"), blank=True)
    scopes = models.JSONField(_("scopes"), default=list, help_text=_("Any of read, write, execute."))
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.ACTIVE)
    prefix = models.CharField(_("prefix"), max_length=24, unique=True, editable=False)
    last_four = models.CharField(_("last four"), max_length=4, editable=False)
    salt = models.CharField(max_length=32, editable=False)
    hashed_key = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="apikey_owner_time")]

    def __str__(self) -> str:
        return f"{self.name} ({self.masked})"

    @property
    def masked(self) -> str:
        return f"{self.prefix}…{self.last_four}"

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def is_usable(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        return self.status == self.Status.ACTIVE and (self.expires_at is None or self.expires_at > now)


class IdempotencyRecord(models.Model):
    """The first answer to a POST sent with an `Idempotency-Key`, replayed to repeats for 24 hours."""

    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True, help_text=_("Empty while the first request runs."))
    response_body = models.JSONField(null=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "key"], name="idempotency_owner_key")]

    def __str__(self) -> str:
        return f"{self.key} ({self.status_code or 'in progress'})"


class AuditEntry(models.Model):
    """One successful write through the API: insert-only, read-only for operators."""

    actor = models.ForeignKey(
        User, verbose_name=_("actor"), on_delete=models.SET_NULL, null=True, related_name="audit_entries"
    )
    api_key = models.ForeignKey(
        ApiKey, verbose_name=_("API key"), on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    action = models.CharField(_("action"), max_length=100)
    method = models.CharField(_("method"), max_length=8)
    path = models.CharField(_("path"), max_length=255)
    object_type = models.CharField(_("object type"), max_length=100, blank=True)
    object_id = models.CharField(_("object id"), max_length=64, blank=True)
    status_code = models.PositiveSmallIntegerField(_("status"))
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    request_id = models.CharField(_("request id"), max_length=64, blank=True)
    created_at = models.DateTimeField(_("time"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("API audit entry")
        verbose_name_plural = _("API audit entries")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["actor", "-created_at"], name="audit_actor_time")]

    def __str__(self) -> str:
        return f"{self.action} {self.object_type}:{self.object_id} at {self.created_at:%Y-%m-%d %H:%M:%S}"


class Notice(models.Model):
    """
    A message for one user, shown in the app (and, for some kinds, also sent by email). Written
    once by the feature that raises it; afterwards only `read_at` and `emailed_at` change.
    """

    class Kind(models.TextChoices):
        LOW_BALANCE = "low_balance", _("Low balance")

    user = models.ForeignKey(User, verbose_name=_("user"), on_delete=models.CASCADE, related_name="notices")
    kind = models.CharField(_("kind"), max_length=32, choices=Kind.choices)
    title = models.CharField(_("title"), max_length=200)
    body = models.TextField(_("body"), blank=True)
    link = models.CharField(_("link"), max_length=500, blank=True, help_text=_("A path or URL to act on it."))
    dedupe_key = models.CharField(
        _("dedupe key"),
        max_length=100,
        blank=True,
        editable=False,
        help_text=_("Set by the sender so that one event never gives two notices."),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)
    emailed_at = models.DateTimeField(_("emailed at"), null=True, blank=True, editable=False)

    objects = NoticeQuerySet.as_manager()

    class Meta:
        verbose_name = _("notice")
        verbose_name_plural = _("notices")
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="notice_user_time"),
            # The badge and `?unread=true`: a user's unread notices, newest first.
            models.Index(
                fields=["user", "-created_at"], name="notice_user_unread_time", condition=models.Q(read_at__isnull=True)
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "dedupe_key"], condition=~models.Q(dedupe_key=""), name="notice_user_dedupe_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} for {self.user_id} at {self.created_at:%Y-%m-%d %H:%M:%S}"

    @property
    def is_read(self) -> bool:
        return self.read_at is not None

    def mark_read(self, now: datetime | None = None) -> bool:
        """Read it now unless already read (compare-and-set, so the first time is kept); True if it changed."""
        now = now or timezone.now()
        changed = bool(Notice.objects.filter(pk=self.pk, read_at__isnull=True).update(read_at=now))
        if changed:
            self.read_at = now
        elif self.read_at is None:
            self.refresh_from_db(fields=["read_at"])
        return changed
