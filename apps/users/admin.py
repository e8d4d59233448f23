from __future__ import annotations

from datetime import timedelta

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from apps.users import services
from apps.users.models import ApiKey, AuditEntry, LoginAttempt, Notice, User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = [
        "username",
        "email",
        "display_name",
        "is_active",
        "is_staff",
        "date_joined",
        "last_login",
        "failed_logins_24h",
    ]
    list_filter = ["is_active", "is_staff", "is_superuser", "groups", "language", "date_joined"]
    search_fields = ["username", "email", "display_name"]
    readonly_fields = ["last_login", "date_joined"]
    ordering = ["-date_joined"]
    fieldsets = [
        *DjangoUserAdmin.fieldsets,
        (_("Profile"), {"fields": ["display_name", "avatar", "language", "time_zone"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        since = timezone.now() - timedelta(hours=24)
        failed = (
            LoginAttempt.objects.failed()
            .filter(user=OuterRef("pk"), created_at__gte=since)
            .order_by()
            .values("user")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(failed_logins_24h=Coalesce(Subquery(failed, output_field=IntegerField()), 0))
        )

    @admin.display(description=_("failed logins (24 h)"), ordering="failed_logins_24h")
    def failed_logins_24h(self, user: User) -> int:
        return user.failed_logins_24h


@admin.register(LoginAttempt)
class LoginAttemptAdmin(admin.ModelAdmin):
    """Read-only: the audit trail of sign-in attempts."""

    list_display = ["created_at", "identifier", "user", "outcome", "source", "ip_address", "short_user_agent"]
    list_filter = ["outcome", "source", "created_at"]
    search_fields = ["identifier", "ip_address", "user__username", "user__email"]
    list_select_related = ["user"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = [field.name for field in LoginAttempt._meta.fields]

    @admin.display(description=_("user agent"))
    def short_user_agent(self, attempt: LoginAttempt) -> str:
        agent = attempt.user_agent
        return agent if len(agent) <= 60 else f"{agent[:57]}…"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: LoginAttempt | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: LoginAttempt | None = None) -> bool:
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Operators see and revoke keys; keys are created by their owners (the full key is never stored)."""

    list_display = ["name", "masked", "owner", "scopes", "status", "created_at", "last_used_at", "expires_at"]
    list_filter = ["status", "created_at", "last_used_at"]
    search_fields = ["name", "prefix", "owner__username", "owner__email"]
    list_select_related = ["owner"]
    autocomplete_fields = ["owner"]
    readonly_fields = ["owner", "prefix", "last_four", "created_at", "last_used_at", "revoked_at", "status", "scopes"]
    fields = ["name", "description", *readonly_fields, "expires_at"]
    actions = ["revoke"]

    @admin.display(description=_("key"))
    def masked(self, api_key: ApiKey) -> str:
        return api_key.masked

    @admin.action(description=_("Revoke selected keys"), permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = sum(services.api_key_revoke(api_key=api_key) for api_key in queryset)
        self.message_user(request, _("%(count)d key(s) revoked.") % {"count": revoked})

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: every successful write through the API, beside Django's own admin log."""

    list_display = ["created_at", "action", "object_type", "object_id", "actor", "api_key", "ip_address", "request_id"]
    list_filter = ["method", "object_type", "created_at"]
    search_fields = ["action", "object_id", "request_id", "actor__username", "ip_address"]
    list_select_related = ["actor", "api_key"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = [field.name for field in AuditEntry._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False


class NoticeReadFilter(admin.SimpleListFilter):
    title = _("read")
    parameter_name = "read"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", pgettext_lazy("notice", "Read")), ("no", _("Unread"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Notice]) -> QuerySet[Notice]:
        if self.value() in {"yes", "no"}:
            return queryset.filter(read_at__isnull=self.value() == "no")
        return queryset


@admin.register(Notice)
class NoticeAdmin(admin.ModelAdmin):
    """Read-only: what each user was told in the app, and whether they read it."""

    list_display = ["created_at", "user", "kind", "title", "read_at", "emailed_at"]
    list_filter = ["kind", NoticeReadFilter, "created_at"]
    search_fields = ["user__username", "user__email", "title"]
    list_select_related = ["user"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = [field.name for field in Notice._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Notice | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Notice | None = None) -> bool:
        return False
