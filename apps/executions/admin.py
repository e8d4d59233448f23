from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from apps.billing import services as billing
from apps.billing.models import credits
from apps.executions import services
from apps.executions.models import Execution, ExecutionEvent, NodeExecution, RunArtifact


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
    fields = [
        "node_id",
        "node_type",
        "status",
        "attempt",
        "duration_ms",
        "cost_credits",
        "error_code",
        "usage",
        "started_at",
    ]
    readonly_fields = fields
    ordering = ["started_at", "pk"]

    @admin.display(description=_("cost (credits)"))
    def cost_credits(self, node: NodeExecution) -> str:
        return credits(node.cost)


class RunArtifactInline(ReadOnlyInline):
    """Files the run made (screenshots): what and how big; the owner downloads them through the API."""

    model = RunArtifact
    fields = ["kind", "name", "node", "content_type", "size", "created_at"]
    readonly_fields = fields
    ordering = ["pk"]

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("node_execution")

    @admin.display(description=_("node"))
    def node(self, artifact: RunArtifact) -> str:
        return str(artifact.node_execution) if artifact.node_execution_id else "—"


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
        "cost_credits",
    ]
    list_filter = ["status", "trigger", "created_at"]
    search_fields = ["id", "workflow__name", "owner__username", "error_code"]
    list_select_related = ["workflow", "version", "owner"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    # Every field read-only; the cost in credits rather than micro-credits.
    readonly_fields = [*(field.name for field in Execution._meta.fields if field.name != "cost"), "cost_credits"]
    inlines = [NodeExecutionInline, RunArtifactInline]
    actions = ["cancel", "retry", "requeue", "refund"]

    @admin.display(description=_("version"), ordering="version__number")
    def version_number(self, execution: Execution) -> int:
        return execution.version.number

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, execution: Execution) -> str:
        return format_html('<span class="status status-{}">{}</span>', execution.status, execution.get_status_display())

    @admin.display(description=_("duration"))
    def duration(self, execution: Execution) -> str:
        return f"{execution.duration_ms / 1000:.1f} s" if execution.duration_ms is not None else "—"

    @admin.display(description=_("cost (credits)"), ordering="cost")
    def cost_credits(self, execution: Execution) -> str:
        return credits(execution.cost)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.action(description=_("Refund the selected runs' charges"), permissions=["change"])
    def refund(self, request: HttpRequest, queryset) -> None:
        done = 0
        for execution in queryset:
            try:
                row = billing.run_refund(execution=execution, actor=request.user)
            except billing.RefundRefused as refused:
                self.message_user(request, str(refused), level=messages.WARNING)
                continue
            done += 1
            self.message_user(
                request,
                _("%(run)s: %(credits)s credits refunded.") % {"run": execution.pk, "credits": credits(row.amount)},
            )
        self.message_user(request, ngettext("%d run refunded.", "%d runs refunded.", done) % done)

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
