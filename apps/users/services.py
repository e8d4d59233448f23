"""Workflows that touch several account models: login records, profiles, groups, the demo operator."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import string
from datetime import datetime, timedelta

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from apps.users.models import ApiKey, AuditEntry, IdempotencyRecord, LoginAttempt, User

logger = logging.getLogger(__name__)

OPERATORS_GROUP = "Operators"
MEMBERS_GROUP = "Members"

# What the Operators group may do in the admin: app label -> codenames, or "*" for all of the app.
# Apps that gain models later are covered as soon as their permissions exist.
OPERATOR_PERMISSIONS: dict[str, str | tuple[str, ...]] = {
    "executions": "*",
    "billing": "*",
    "users": (
        "view_user",
        "change_user",
        "view_loginattempt",
        "view_apikey",
        "change_apikey",
        "view_auditentry",
        "view_notice",
    ),
    "agents": (
        "view_agent",
        "view_credential",
        "view_credentialevent",
        "view_tool",
        "add_tool",
        "change_tool",
        "delete_tool",
    ),
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


# --- API keys -------------------------------------------------------------------------------------

API_KEY_PREFIX = "sb_"
API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)
_API_KEY_SHAPE = re.compile(r"^sb_[A-Za-z0-9]{12}_[A-Za-z0-9]{40}$")


def _api_key_hash(salt: str, key: str) -> str:
    return hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()


def api_key_create(
    *,
    owner: User,
    name: str,
    scopes: list[str],
    description: str = "",
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new key for `owner`; returns the row and the full key, which is never available again."""
    unknown = sorted(set(scopes) - set(ApiKey.Scope.values))
    if unknown or not scopes:
        raise ValidationError(
            {"scopes": f"Unknown scope(s): {', '.join(unknown)}." if unknown else "Give at least one scope."}
        )
    if not name.strip():
        raise ValidationError({"name": "The key needs a name."})
    alphabet = string.ascii_letters + string.digits
    lookup = "".join(secrets.choice(alphabet) for _ in range(12))
    key = f"{API_KEY_PREFIX}{lookup}_{''.join(secrets.choice(alphabet) for _ in range(40))}"
    salt = secrets.token_hex(16)
    api_key = ApiKey.objects.create(
        owner=owner,
        name=name.strip()[:100],
        description=description,
        scopes=[scope for scope in ApiKey.Scope.values if scope in scopes],
        prefix=f"{API_KEY_PREFIX}{lookup}",
        last_four=key[-4:],
        salt=salt,
        hashed_key=_api_key_hash(salt, key),
        expires_at=expires_at,
    )
    return api_key, key


def api_key_authenticate(key: str) -> ApiKey | None:
    """
    The usable key `key` names, or None. The prefix finds the row; the salted hash is compared in
    constant time. `last_used_at` is written at most once a minute per key, not on every request.
    """
    if not _API_KEY_SHAPE.match(key or ""):
        return None
    now = timezone.now()
    api_key = ApiKey.objects.usable(now).select_related("owner").filter(prefix=key[:15]).first()
    if api_key is None or not hmac.compare_digest(api_key.hashed_key, _api_key_hash(api_key.salt, key)):
        return None
    if not api_key.owner.is_active:
        return None
    if api_key.last_used_at is None or api_key.last_used_at < now - API_KEY_TOUCH_INTERVAL:
        ApiKey.objects.filter(pk=api_key.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - API_KEY_TOUCH_INTERVAL)
        ).update(last_used_at=now)
    return api_key


def api_key_revoke(*, api_key: ApiKey) -> bool:
    """Revoke; False when it was already revoked (compare-and-set, so two revokes record one time)."""
    return bool(
        ApiKey.objects.filter(pk=api_key.pk, status=ApiKey.Status.ACTIVE).update(
            status=ApiKey.Status.REVOKED, revoked_at=timezone.now()
        )
    )


# --- API audit trail and idempotency --------------------------------------------------------------

IDEMPOTENCY_TTL = timedelta(hours=24)


def client_ip(request: HttpRequest) -> str | None:
    """The client's address through allauth's trusted-proxy rules (ALLAUTH_TRUSTED_PROXY_COUNT)."""
    from allauth.account.adapter import get_adapter

    try:
        return get_adapter(request).get_client_ip(request)
    except PermissionDenied:
        return None


def audit_record(
    *,
    request: HttpRequest,
    actor: User | None,
    api_key: ApiKey | None,
    action: str,
    object_type: str,
    object_id: str,
    status_code: int,
) -> AuditEntry:
    from django_guid import get_guid

    return AuditEntry.objects.create(
        actor=actor,
        api_key=api_key,
        action=action[:100],
        method=request.method or "",
        path=request.path[:255],
        object_type=object_type[:100],
        object_id=object_id[:64],
        status_code=status_code,
        ip_address=client_ip(request),
        request_id=(get_guid() or "")[:64],
    )


def idempotency_records_prune(*, older_than: timedelta) -> int:
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - older_than).delete()
    return deleted
