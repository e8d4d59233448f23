from __future__ import annotations

import json

from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpRequest
from django.template.response import TemplateResponse
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
    actions = ["publish", "run_latest"]

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

    @admin.action(description=_("Run the latest version with inputs…"))
    def run_latest(self, request: HttpRequest, queryset):
        """An intermediate page: the inputs as JSON (pre-filled with the defaults), then one run each."""
        from apps.executions import services as runs
        from apps.executions.models import Execution

        workflows = list(queryset.filter(latest_version_number__gt=0).select_related("owner"))
        if not workflows:
            self.message_user(request, _("None of the selected workflows is published."), messages.ERROR)
            return None
        raw = request.POST.get("inputs", "")
        error = ""
        if "apply" in request.POST:
            try:
                inputs = json.loads(raw or "{}")
                started = []
                with transaction.atomic():  # all or none: one refused input starts nothing
                    for workflow in workflows:
                        version = workflow.versions.get(number=workflow.latest_version_number)
                        started.append(
                            runs.execution_run(
                                version=version, inputs=inputs, owner=workflow.owner, trigger=Execution.Trigger.ADMIN
                            )
                        )
            except runs.ExecutionRefused as exc:
                error = str(exc)
            except ValueError:
                error = _("The inputs are not valid JSON.")
            else:
                self.message_user(request, ngettext("%d run started.", "%d runs started.", len(started)) % len(started))
                return None
        else:
            version = workflows[0].versions.get(number=workflows[0].latest_version_number)
            defaults = {
                name: field.get("default", "") for name, field in version.input_schema.get("properties", {}).items()
            }
            raw = json.dumps(defaults, indent=2, ensure_ascii=False)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Run workflows"),
            "workflows": workflows,
            "inputs": raw,
            "error": error,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/workflows/run_workflows.html", context)


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
