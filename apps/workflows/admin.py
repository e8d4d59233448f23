from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from apps.workflows import services
from apps.workflows.graph import GraphInvalid
from apps.workflows.models import Workflow, WorkflowVersion


class WorkflowVersionInline(admin.TabularInline):
    model = WorkflowVersion
    fields = ["number", "created_by", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ["-number"]

    def has_add_permission(self, request: HttpRequest, obj: Workflow | None = None) -> bool:
        return False


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "latest_version_number", "updated_at", "created_at"]
    list_filter = ["updated_at"]
    search_fields = ["name", "description", "owner__username"]
    list_select_related = ["owner"]
    autocomplete_fields = ["owner"]
    readonly_fields = ["latest_version_number", "created_at", "updated_at"]
    inlines = [WorkflowVersionInline]
    actions = ["publish"]

    @admin.action(description=_("Publish the draft as a new version"))
    def publish(self, request: HttpRequest, queryset) -> None:
        published = 0
        for workflow in queryset:
            try:
                services.workflow_publish(workflow=workflow, actor=request.user)
                published += 1
            except GraphInvalid as exc:
                self.message_user(request, f"{workflow}: {exc}", messages.ERROR)
        if published:
            self.message_user(
                request, ngettext("%d workflow published.", "%d workflows published.", published) % published
            )


@admin.register(WorkflowVersion)
class WorkflowVersionAdmin(admin.ModelAdmin):
    """Read-only: a published version never changes."""

    list_display = ["workflow", "number", "created_by", "created_at"]
    search_fields = ["workflow__name", "workflow__owner__username"]
    list_select_related = ["workflow", "created_by"]
    readonly_fields = ["workflow", "number", "graph", "input_schema", "output_schema", "created_by", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: WorkflowVersion | None = None) -> bool:
        return False
