from __future__ import annotations

from django.contrib import admin
from django.db import models
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from apps.agents.models import Agent, Credential


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin):
    """Metadata only: the secret is never shown, not even to operators."""

    list_display = ["name", "kind", "owner", "secret_hint", "agent_count", "created_at", "updated_at"]
    list_filter = ["kind", "created_at"]
    search_fields = ["name", "owner__username", "owner__email"]
    list_select_related = ["owner"]
    autocomplete_fields = ["owner"]
    readonly_fields = ["secret_hint", "created_at", "updated_at"]
    fields = ["owner", "name", "kind", "base_url", "header_name", "secret_hint", "created_at", "updated_at"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Credential]:
        return super().get_queryset(request).annotate(agent_count=Count("agents"))

    @admin.display(description=_("agents"), ordering="agent_count")
    def agent_count(self, credential: Credential) -> int:
        return credential.agent_count

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # secrets are entered by their owners, through the API and pages


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "provider", "model", "credential", "max_iterations", "updated_at"]
    list_filter = ["provider", "updated_at"]
    search_fields = ["name", "description", "model", "owner__username"]
    list_select_related = ["owner", "credential"]
    autocomplete_fields = ["owner", "credential"]
    readonly_fields = ["created_at", "updated_at"]
