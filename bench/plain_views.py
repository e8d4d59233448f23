"""
The plain Django views B4 measures the REST API against: the same rows of the same runs with the
same fields, read with `.values()` and returned by `JsonResponse`. They authenticate with the same
API-key lookup and scope rule, scope with the same `visible_to(user)`, and pass through the same
middleware; what they leave out is DRF itself (request wrapping, authentication and permission
classes, throttling, filter backends, cursor pagination, serializers, renderer).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from apps.executions.models import Execution, NodeExecution
from apps.users.authentication import api_key_from_headers
from apps.users.services import api_key_authenticate

RUN_FIELDS = (
    "id",
    "workflow_id",
    "version__number",
    "status",
    "trigger",
    "inputs",
    "outputs",
    "error_code",
    "error_message",
    "created_at",
    "queued_at",
    "started_at",
    "finished_at",
    "retry_of_id",
)
NODE_FIELDS = (
    "node_id",
    "node_type",
    "status",
    "attempt",
    "inputs",
    "outputs",
    "error_code",
    "error_message",
    "usage",
    "started_at",
    "finished_at",
    "duration_ms",
)
PAGE_SIZE_DEFAULT = 25
PAGE_SIZE_MAX = 100


def _owner(request: HttpRequest) -> Any:
    key = api_key_from_headers(request)
    api_key = api_key_authenticate(key) if key else None
    if api_key is None or not api_key.has_scope("read"):
        return None
    return api_key.owner


def _error(row: dict) -> dict | None:
    code, message = row.pop("error_code"), row.pop("error_message")
    return {"code": code, "message": message} if code or message else None


def _run(row: dict) -> dict:
    """A `.values()` row in the API's shape (field names, `error`, `duration_ms`)."""
    started, finished = row["started_at"], row["finished_at"]
    row["workflow"] = row.pop("workflow_id")
    row["version"] = row.pop("version__number")
    row["error"] = _error(row)
    row["duration_ms"] = int((finished - started).total_seconds() * 1000) if started and finished else None
    row["retry_of"] = row.pop("retry_of_id")
    return row


def _node(row: dict) -> dict:
    row["error"] = _error(row)
    return row


def _unauthorized() -> JsonResponse:
    return JsonResponse(
        {"error": {"code": "not_authenticated", "message": "Send an API key.", "fields": {}}}, status=401
    )


@require_GET
def execution_list(request: HttpRequest) -> JsonResponse:
    owner = _owner(request)
    if owner is None:
        return _unauthorized()
    try:
        size = max(1, min(int(request.GET.get("page_size", PAGE_SIZE_DEFAULT)), PAGE_SIZE_MAX))
    except ValueError:
        size = PAGE_SIZE_DEFAULT
    rows = Execution.objects.visible_to(owner).order_by("-created_at", "-pk").values(*RUN_FIELDS)[:size]
    return JsonResponse({"results": [_run(row) for row in rows]})


@require_GET
def execution_detail(request: HttpRequest, execution_id: UUID) -> JsonResponse:
    owner = _owner(request)
    if owner is None:
        return _unauthorized()
    row = Execution.objects.visible_to(owner).filter(pk=execution_id).values(*RUN_FIELDS).first()
    if row is None:
        return JsonResponse({"error": {"code": "not_found", "message": "No such execution.", "fields": {}}}, status=404)
    nodes = NodeExecution.objects.filter(execution_id=row["id"]).order_by("started_at", "pk").values(*NODE_FIELDS)
    return JsonResponse({**_run(row), "nodes": [_node(node) for node in nodes]})
