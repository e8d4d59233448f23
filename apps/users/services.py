"""Workflows that touch several account models: login records, profiles, groups, the demo operator."""

from __future__ import annotations

import logging
from datetime import timedelta

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from apps.users.models import LoginAttempt, User

logger = logging.getLogger(__name__)

OPERATORS_GROUP = "Operators"
MEMBERS_GROUP = "Members"

# What the Operators group may do in the admin: app label -> codenames, or "*" for all of the app.
# Apps that gain models later are covered as soon as their permissions exist.
OPERATOR_PERMISSIONS: dict[str, str | tuple[str, ...]] = {
    "executions": "*",
    "billing": "*",
    "users": ("view_user", "change_user", "view_loginattempt", "view_apikey", "change_apikey", "delete_apikey"),
    "agents": ("view_agent", "view_credential"),
    "workflows": ("view_workflow", "view_workflowversion"),
    "account": ("view_emailaddress",),
}


def login_attempt_record(
    *,
    request: HttpRequest | None,
    identifier: str,
    outcome: LoginAttempt.Outcome,
    user: User | None = None,
    ip_address: str | None = None,
) -> LoginAttempt:
    """Store one sign-in attempt; the account is looked up by login name when not given."""
    identifier = (identifier or "").strip()[:254]
    if user is None and identifier:
        user = User.objects.filter(Q(username__iexact=identifier) | Q(email__iexact=identifier)).order_by("pk").first()
    source = LoginAttempt.Source.SITE
    user_agent = ""
    if request is not None:
        user_agent = request.headers.get("User-Agent", "")[:512]
        if request.path.startswith("/admin/"):
            source = LoginAttempt.Source.ADMIN
    attempt = LoginAttempt.objects.create(
        user=user,
        identifier=identifier,
        outcome=outcome,
        source=source,
        ip_address=ip_address,
        user_agent=user_agent,
    )
    if outcome != LoginAttempt.Outcome.SUCCEEDED:
        logger.info("login %s for %r from %s", outcome, identifier, ip_address)
    return attempt


def login_attempts_prune(*, older_than_days: int) -> int:
    """Delete login records past their retention; returns how many were deleted."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted, _ = LoginAttempt.objects.older_than(cutoff).delete()
    return deleted


@transaction.atomic
def user_profile_update(
    *,
    user: User,
    display_name: str,
    language: str,
    time_zone: str,
    avatar: UploadedFile | None = None,
    remove_avatar: bool = False,
) -> User:
    """Save profile fields (validated by the caller's form); a replaced avatar file is deleted after commit."""
    old_avatar_name = user.avatar.name if user.avatar else ""
    user.display_name = display_name
    user.language = language
    user.time_zone = time_zone
    if avatar is not None:
        user.avatar = avatar
    elif remove_avatar:
        user.avatar = None
    user.full_clean(exclude=["password", "username", "email"])
    user.save(update_fields=["display_name", "language", "time_zone", "avatar"])
    if old_avatar_name and old_avatar_name != (user.avatar.name if user.avatar else ""):
        storage = user.avatar.storage
        transaction.on_commit(lambda: storage.delete(old_avatar_name))
    return user


def user_language_set(*, user: User, language: str) -> None:
    user.language = language
    user.save(update_fields=["language"])


def user_join_members(*, user: User) -> None:
    group, _ = Group.objects.get_or_create(name=MEMBERS_GROUP)
    user.groups.add(group)


def default_groups_sync() -> None:
    """Create the default groups and grant Operators the permissions that exist so far."""
    operators, _ = Group.objects.get_or_create(name=OPERATORS_GROUP)
    Group.objects.get_or_create(name=MEMBERS_GROUP)
    wanted = Q(pk__in=[])
    for app_label, codenames in OPERATOR_PERMISSIONS.items():
        if codenames == "*":
            wanted |= Q(content_type__app_label=app_label)
        else:
            wanted |= Q(content_type__app_label=app_label, codename__in=codenames)
    operators.permissions.add(*Permission.objects.filter(wanted).exclude(group=operators))


@transaction.atomic
def demo_operator_ensure(*, username: str, email: str, password: str) -> tuple[User, bool]:
    """Create (or reset the password of) the demo operator: a superuser with a verified email."""
    if settings.PRODUCTION:
        raise RuntimeError("The demo operator exists only outside production.")
    user, created = User.objects.get_or_create(
        username=username,
        defaults={"email": email, "is_staff": True, "is_superuser": True, "display_name": "Demo operator"},
    )
    user.set_password(password)
    user.is_staff = user.is_superuser = user.is_active = True
    user.save()
    user.groups.add(Group.objects.get_or_create(name=OPERATORS_GROUP)[0])
    EmailAddress.objects.update_or_create(user=user, email=user.email, defaults={"verified": True, "primary": True})
    return user, created
