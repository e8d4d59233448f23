from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.workflows.managers import WorkflowQuerySet, WorkflowVersionQuerySet


def empty_graph() -> dict:
    return {"nodes": [], "edges": []}


class Workflow(models.Model):
    """A graph of steps with a mutable draft; runs use its immutable published versions."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="workflows")
    name = models.CharField(_("name"), max_length=150)
    description = models.TextField(_("description"), blank=True)
    graph = models.JSONField(_("draft graph"), default=empty_graph)
    latest_version_number = models.PositiveIntegerField(_("latest version"), default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = WorkflowQuerySet.as_manager()

    class Meta:
        verbose_name = _("workflow")
        verbose_name_plural = _("workflows")
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["owner", "-updated_at"], name="workflow_owner_updated")]

    def __str__(self) -> str:
        return self.name


class WorkflowVersion(models.Model):
    """A published, frozen graph: never edited, so a run always knows exactly what it ran."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField(_("number"))
    graph = models.JSONField(_("graph"))
    input_schema = models.JSONField(_("input schema"))
    output_schema = models.JSONField(_("output schema"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = WorkflowVersionQuerySet.as_manager()

    class Meta:
        verbose_name = _("workflow version")
        verbose_name_plural = _("workflow versions")
        ordering = ["workflow", "-number"]
        constraints = [models.UniqueConstraint(fields=["workflow", "number"], name="workflowversion_unique_number")]

    def __str__(self) -> str:
        return f"{self.workflow.name} v{self.number}"
