from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from apps.executions import services
from apps.executions.models import Execution, ExecutionEvent, NodeExecution


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class NodeExecutionInline(ReadOnlyInline):
    model = NodeExecution
    fields = ["node_id", "node_type", "status", "attempt", "duration_ms", "error_code", "usage", "started_at"]
    readonly_fields = fields
    ordering = ["started_at", "pk"]


@admin.register(Execution)
class ExecutionAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "workflow",
        "version_number",
        "owner",
        "status_badge",
        "trigger",
        "attempt",
        "created_at",
        "duration",
    ]
    list_filter = ["status", "trigger", "created_at"]
    search_fields = ["id", "workflow__name", "owner__username", "error_code"]
    list_select_related = ["workflow", "version", "owner"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = [field.name for field in Execution._meta.fields]
    inlines = [NodeExecutionInline]
    actions = ["cancel", "retry", "requeue"]

    @admin.display(description=_("version"), ordering="version__number")
    def version_number(self, execution: Execution) -> int:
        return execution.version.number

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, execution: Execution) -> str:
        return format_html('<span class="status status-{}">{}</span>', execution.status, execution.get_status_display())

    @admin.display(description=_("duration"))
    def duration(self, execution: Execution) -> str:
        return f"{execution.duration_ms / 1000:.1f} s" if execution.duration_ms is not None else "—"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.action(description=_("Cancel the selected runs"), permissions=["change"])
    def cancel(self, request: HttpRequest, queryset) -> None:
        done = sum(
            services.execution_cancel(execution=e, reason=f"cancelled by operator {request.user}") for e in queryset
        )
        self.message_user(request, ngettext("%d run cancelled.", "%d runs cancelled.", done) % done)

    @admin.action(description=_("Retry the selected runs"), permissions=["change"])
    def retry(self, request: HttpRequest, queryset) -> None:
        done = 0
        for execution in queryset.select_related("version", "owner"):
            try:
                services.execution_retry(execution=execution, trigger=Execution.Trigger.ADMIN)
                done += 1
            except services.ExecutionRefused as exc:
                self.message_user(request, f"{execution.pk}: {exc}", level="error")
        self.message_user(request, ngettext("%d retry started.", "%d retries started.", done) % done)

    @admin.action(description=_("Requeue stuck runs"), permissions=["change"])
    def requeue(self, request: HttpRequest, queryset) -> None:
        done = sum(services.execution_requeue(execution=e) for e in queryset)
        self.message_user(request, ngettext("%d run requeued.", "%d runs requeued.", done) % done)


@admin.register(ExecutionEvent)
class ExecutionEventAdmin(admin.ModelAdmin):
    """Read-only: events are facts."""

    list_display = ["execution", "seq", "type", "node_id", "created_at"]
    list_filter = ["type"]
    search_fields = ["execution__id", "node_id"]
    show_full_result_count = False
    readonly_fields = ["execution", "seq", "type", "node_id", "payload", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
