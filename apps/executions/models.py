from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from apps.executions.managers import ExecutionEventQuerySet, ExecutionQuerySet, NodeExecutionQuerySet


class Execution(models.Model):
    """One run of a workflow version: a state machine whose transitions are compare-and-set updates."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")
        TIMED_OUT = "timed_out", _("Timed out")

    class Trigger(models.TextChoices):
        API = "api", "API"
        UI = "ui", "UI"
        ADMIN = "admin", _("Admin")
        SUBWORKFLOW = "subworkflow", _("Sub-workflow")
        CLI = "cli", _("Command line")

    TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.TIMED_OUT})
    CANCELLABLE = frozenset({Status.PENDING, Status.QUEUED, Status.RUNNING})

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="executions")
    workflow = models.ForeignKey("workflows.Workflow", on_delete=models.CASCADE, related_name="executions")
    version = models.ForeignKey("workflows.WorkflowVersion", on_delete=models.PROTECT, related_name="executions")
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PENDING)
    trigger = models.CharField(_("trigger"), max_length=16, choices=Trigger.choices, default=Trigger.API)
    inputs = models.JSONField(_("inputs"), default=dict)
    outputs = models.JSONField(_("outputs"), null=True, blank=True)
    error_code = models.CharField(_("error code"), max_length=64, blank=True)
    error_message = models.TextField(_("error message"), blank=True)
    parent = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="children", verbose_name=_("parent run")
    )
    parent_node_id = models.CharField(max_length=64, blank=True)
    retry_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="retries", verbose_name=_("retry of")
    )
    attempt = models.PositiveIntegerField(_("deliveries"), default=0, help_text=_("Times a worker claimed this run."))
    lease_owner = models.CharField(_("lease owner"), max_length=64, blank=True)
    lease_expires_at = models.DateTimeField(_("lease expires"), null=True, blank=True)
    heartbeat_at = models.DateTimeField(_("heartbeat"), null=True, blank=True)
    time_budget_seconds = models.PositiveIntegerField(_("time budget (s)"))
    cost = models.BigIntegerField(
        _("cost (micro-credits)"), default=0, help_text=_("What the run's nodes were charged so far.")
    )
    last_event_seq = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    queued_at = models.DateTimeField(_("queued"), null=True, blank=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    objects = ExecutionQuerySet.as_manager()

    class Meta:
        verbose_name = _("execution")
        verbose_name_plural = _("executions")
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="execution_owner_created"),
            models.Index(fields=["workflow", "-created_at"], name="execution_workflow_created"),
            models.Index(fields=["status", "lease_expires_at"], name="execution_status_lease"),
        ]

    def __str__(self) -> str:
        return f"{self.pk} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL

    def can_cancel(self) -> bool:
        return self.status in self.CANCELLABLE

    def can_retry(self) -> bool:
        return self.status in {self.Status.FAILED, self.Status.CANCELLED, self.Status.TIMED_OUT}

    @property
    def duration_ms(self) -> int | None:
        if self.started_at and self.finished_at:
            return int((self.finished_at - self.started_at).total_seconds() * 1000)
        return None


class NodeExecution(models.Model):
    """One attempt at one node of a run; its row is written in the same transaction as its events."""

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")
        TIMED_OUT = "timed_out", _("Timed out")
        SKIPPED = "skipped", _("Skipped")

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="node_executions")
    node_id = models.CharField(_("node"), max_length=64)
    node_type = models.CharField(_("type"), max_length=64)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.RUNNING)
    attempt = models.PositiveSmallIntegerField(_("attempt"), default=1)
    inputs = models.JSONField(_("inputs"), default=dict)
    outputs = models.JSONField(_("outputs"), null=True, blank=True)
    error_code = models.CharField(_("error code"), max_length=64, blank=True)
    error_message = models.TextField(_("error message"), blank=True)
    usage = models.JSONField(
        _("usage"), default=dict, blank=True, help_text=_("model, input_tokens, output_tokens, tool_calls")
    )
    started_at = models.DateTimeField(_("started"))
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), null=True, blank=True)
    cost = models.BigIntegerField(
        _("cost (micro-credits)"), default=0, help_text=_("Charged when the node finished (ledger key node:<id>).")
    )
    # The engine's bookkeeping: the superstep this attempt ran in, and what it changed in
    # the run's dataflow state; a resumed run folds these to pick up where it stopped.
    step = models.PositiveIntegerField(default=0)
    state_delta = models.JSONField(default=dict, blank=True)

    objects = NodeExecutionQuerySet.as_manager()

    class Meta:
        verbose_name = _("node execution")
        verbose_name_plural = _("node executions")
        ordering = ["execution", "started_at", "pk"]
        indexes = [models.Index(fields=["execution", "node_id"], name="nodeexecution_execution_node")]

    def __str__(self) -> str:
        return f"{self.node_id} #{self.attempt} ({self.status})"


class ExecutionEvent(models.Model):
    """An append-only fact about a run; `seq` is strictly increasing per run (the replay cursor)."""

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=32)
    node_id = models.CharField(max_length=64, blank=True)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ExecutionEventQuerySet.as_manager()

    class Meta:
        verbose_name = _("execution event")
        verbose_name_plural = _("execution events")
        ordering = ["execution", "seq"]
        constraints = [models.UniqueConstraint(fields=["execution", "seq"], name="executionevent_unique_seq")]

    def __str__(self) -> str:
        return f"{self.execution_id}#{self.seq} {self.type}"


def artifact_path(artifact: RunArtifact, filename: str) -> str:
    """Files of a run together; the stored name is random, the download name is `name`."""
    extension = filename.rsplit(".", 1)[-1] if "." in filename else "bin"
    return f"artifacts/{artifact.execution_id}/{uuid.uuid4().hex}.{extension}"


class RunArtifact(models.Model):
    """A file a run produced (a browser screenshot), kept in the media storage; its owner downloads it."""

    class Kind(models.TextChoices):
        SCREENSHOT = "screenshot", _("Screenshot")

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="artifacts")
    node_execution = models.ForeignKey(
        NodeExecution, on_delete=models.CASCADE, null=True, blank=True, related_name="artifacts"
    )
    kind = models.CharField(_("kind"), max_length=32, choices=Kind.choices)
    name = models.CharField(_("name"), max_length=200, help_text=_("The file name offered on download."))
    file = models.FileField(_("file"), upload_to=artifact_path, max_length=255)
    content_type = models.CharField(_("content type"), max_length=100)
    size = models.PositiveIntegerField(_("size (bytes)"))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("run artifact")
        verbose_name_plural = _("run artifacts")
        ordering = ["execution", "pk"]

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"

    def get_absolute_url(self) -> str:
        """Where its owner downloads it (the runs API)."""
        return reverse("executions-api:execution-artifact", args=[self.execution_id, self.pk])
