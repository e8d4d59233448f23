from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from apps.agents import mcp, services
from apps.agents.models import Agent, Credential, CredentialEvent, Tool


class CredentialAdminForm(forms.ModelForm):
    class Meta:
        model = Credential
        fields = []  # the admin's `fields` decide, built with its formfield_overrides

    def _post_clean(self) -> None:
        super()._post_clean()
        try:
            services.credential_fields_check(self.instance)  # the kind's rules, shown on their fields
        except ValidationError as exc:
            self._update_errors(exc)


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin):
    """Metadata only: the secret is never shown, not even to operators. Changes leave CredentialEvents."""

    list_display = [
        "name",
        "kind",
        "owner",
        "client_id",
        "secret_hint",
        "agent_count",
        "revoked_at",
        "created_at",
        "updated_at",
    ]
    list_filter = ["kind", ("revoked_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["name", "client_id", "owner__username", "owner__email"]
    list_select_related = ["owner"]
    form = CredentialAdminForm
    # Owner and kind are the secret's identity: moving it to another user or provider is not an edit.
    readonly_fields = ["owner", "kind", "client_id", "secret_hint", "revoked_at", "created_at", "updated_at"]
    fields = [
        "owner",
        "name",
        "kind",
        "base_url",
        "header_name",
        "client_id",
        "secret_hint",
        "revoked_at",
        "created_at",
        "updated_at",
    ]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    actions = ["revoke"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Credential]:
        return super().get_queryset(request).annotate(agent_count=Count("agents"))

    @admin.display(description=_("agents"), ordering="agent_count")
    def agent_count(self, credential: Credential) -> int:
        return credential.agent_count

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # secrets are entered by their owners, through the API and pages

    def save_model(self, request: HttpRequest, obj: Credential, form, change: bool) -> None:
        services.credential_update(credential=obj, changed_fields=list(form.changed_data), actor=request.user)

    def delete_model(self, request: HttpRequest, obj: Credential) -> None:
        services.credential_delete(credential=obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Credential]) -> None:
        for credential in queryset:
            services.credential_delete(credential=credential, actor=request.user)

    @admin.action(description=_("Revoke the selected credentials (no run can use them)"), permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[Credential]) -> None:
        revoked = sum(services.credential_revoke(credential=c, actor=request.user) for c in queryset)
        self.message_user(
            request,
            ngettext("%(n)d credential revoked.", "%(n)d credentials revoked.", revoked) % {"n": revoked},
            messages.SUCCESS,
        )


@admin.register(CredentialEvent)
class CredentialEventAdmin(admin.ModelAdmin):
    """The credentials' audit trail: read-only, for operators."""

    list_display = [
        "created_at",
        "action",
        "credential_name",
        "credential_pk",
        "owner",
        "actor",
        "execution_id",
        "node_id",
        "changed_fields",
    ]
    list_filter = ["action", ("owner", admin.RelatedOnlyFieldListFilter), "created_at"]
    search_fields = ["credential_name", "=credential_pk", "owner__username", "=execution_id", "node_id"]
    list_select_related = ["owner", "actor"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: CredentialEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: CredentialEvent | None = None) -> bool:
        return False


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "provider", "model", "credential", "max_iterations", "updated_at"]
    list_filter = ["provider", "updated_at"]
    search_fields = ["name", "description", "model", "owner__username"]
    list_select_related = ["owner", "credential"]
    autocomplete_fields = ["owner", "credential"]
    readonly_fields = ["created_at", "updated_at"]


class ToolForm(forms.ModelForm):
    class Meta:
        model = Tool
        fields = ["owner", *Tool.SETTINGS]

    def clean(self) -> dict:
        cleaned = super().clean()
        owner = cleaned.get("owner")
        for credential in cleaned.get("credentials") or []:
            if owner is not None and credential.owner_id != owner.pk:
                self.add_error("credentials", _("%(name)s belongs to another user.") % {"name": credential.name})
            elif credential.kind != Credential.Kind.HTTP_HEADER:
                self.add_error(
                    "credentials", _("%(name)s is not an HTTP header credential.") % {"name": credential.name}
                )
        return cleaned


@admin.register(Tool)
class ToolAdmin(admin.ModelAdmin):
    """HTTP tools and MCP servers; stdio servers (a command run on the worker) are defined only here."""

    form = ToolForm
    list_display = ["name", "kind", "transport", "owner", "enabled", "listed_count", "listed_at", "updated_at"]
    list_filter = ["kind", "transport", "enabled", "updated_at"]
    search_fields = ["name", "url", "url_template", "command", "owner__username"]
    list_select_related = ["owner"]
    autocomplete_fields = ["owner", "credentials"]
    readonly_fields = ["listed_tools", "listed_at", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["owner", "kind", "name", "description", "enabled", "timeout_seconds"]}),
        (_("Headers"), {"fields": ["credentials", "headers"]}),
        (_("HTTP tool"), {"fields": ["method", "url_template", "input_schema"]}),
        (_("MCP server"), {"fields": ["transport", "url", "command", "args", "listed_tools", "listed_at"]}),
        (None, {"fields": ["created_at", "updated_at"]}),
    ]
    actions = ["test_servers"]

    @admin.display(description=_("tools listed"))
    def listed_count(self, tool: Tool) -> int | None:
        return len(tool.listed_tools) if tool.kind == Tool.Kind.MCP else None

    @admin.action(description=_("Test the selected MCP servers (connect and list their tools)"))
    def test_servers(self, request: HttpRequest, queryset: QuerySet[Tool]) -> None:
        for tool in queryset.filter(kind=Tool.Kind.MCP).prefetch_related("credentials")[:20]:
            result = mcp.tool_test(tool=tool)
            if result["ok"]:
                names = ", ".join(listed["name"] for listed in result["tools"]) or _("none")
                self.message_user(request, _("%(tool)s: tools %(names)s") % {"tool": tool.name, "names": names})
            else:
                error = result["error"]
                self.message_user(request, f"{tool.name}: {error['code']}: {error['message']}", level=messages.WARNING)
