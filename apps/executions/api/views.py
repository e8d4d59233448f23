"""
The runs API.

`executions/` (list, create, read, start, cancel, retry, nodes) and `workflows/<id>/run/`: DRF
views, thin over `apps.executions.services`; every lookup goes through `visible_to(user)`.

`GET /api/v1/executions/<id>/events/`: a run's events. With `Accept: text/event-stream` a
Server-Sent Events stream (`id:` = seq, `event:` = type, `data:` = the event as JSON) that resumes
after `Last-Event-ID` (or `?after_seq=`), sends keep-alive comments and ends after the final
status; otherwise the stored events as JSON, a page at a time.

The events view is async, not DRF: a stream that lasts as long as a run must not hold a thread.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

from channels.layers import get_channel_layer
from django.conf import settings
from django.db.models import Prefetch, QuerySet
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response

from apps.executions import services
from apps.executions.api.filters import ExecutionFilter
from apps.executions.api.serializers import (
    ExecutionCreateInput,
    ExecutionDetailOutput,
    ExecutionOutput,
    NodeExecutionOutput,
    WorkflowRunInput,
)
from apps.executions.broadcast import execution_group
from apps.executions.models import Execution, NodeExecution
from apps.executions.streams import RunStream, stored_events_after, visible_execution, whole_number
from apps.users.api.base import ApiMixin
from apps.users.api.errors import Conflict, error_body
from apps.users.authentication import request_principal
from apps.workflows.models import Workflow, WorkflowVersion

PAGE_DEFAULT = 500
PAGE_MAX = 1000
STATUS_OF_ERROR = {"not_authenticated": 401, "invalid_api_key": 401, "missing_scope": 403}


def error_response(status: int, code: str, message: str, fields: dict | None = None) -> JsonResponse:
    """The API's one error shape (apps.users.api.errors), for this plain async view."""
    return JsonResponse(error_body(code, message, fields), status=status)


def _whole_number(value: str | None, name: str) -> int | JsonResponse:
    if value is None or value == "":
        return 0
    if whole_number(value) is None:
        return error_response(400, "invalid", f"'{name}' must be a whole number, 0 or more.", {name: ["Not a number."]})
    return whole_number(value)


@require_GET
async def execution_events(request: HttpRequest, execution_id: str) -> HttpResponse:
    principal = await request_principal(request, scope="read")
    if principal.error:
        response = error_response(STATUS_OF_ERROR[principal.error], principal.error, principal.message)
        if response.status_code == 401:
            response["WWW-Authenticate"] = 'Bearer realm="api"'
        return response
    run = await visible_execution(principal.user, execution_id)
    if run is None:
        return error_response(404, "not_found", "No such execution.")
    streaming = "text/event-stream" in request.headers.get("Accept", "")
    cursor_name = "Last-Event-ID" if streaming and "Last-Event-ID" in request.headers else "after_seq"
    cursor = request.headers.get(cursor_name) if cursor_name == "Last-Event-ID" else request.GET.get("after_seq")
    after = _whole_number(cursor, cursor_name)
    if isinstance(after, JsonResponse):
        return after
    if streaming:
        stream = RunStream(run["id"], after, ended=run["ended"])
        response = StreamingHttpResponse(_event_stream(stream), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
        return response
    limit = _whole_number(request.GET.get("limit"), "limit")
    if isinstance(limit, JsonResponse):
        return limit
    limit = min(limit or PAGE_DEFAULT, PAGE_MAX)
    events = await stored_events_after(run["id"], after, limit=limit + 1)
    page = events[:limit]
    return JsonResponse(
        {
            "execution_id": str(run["id"]),
            "events": page,
            "next_after_seq": page[-1]["seq"] if page else after,
            "has_more": len(events) > limit,
        }
    )


def _sse(event: dict) -> str:
    return f"id: {event['seq']}\nevent: {event['event_type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


async def _event_stream(stream: RunStream) -> AsyncIterator[str]:
    """Stored events, then live ones from the run's group, exactly once each, until the final status."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    group = execution_group(stream.execution_id)
    # Join before reading, as the WebSocket consumer does: the cursor drops what arrives twice.
    await layer.group_add(group, channel)
    receiving: asyncio.Future | None = None
    try:
        yield "retry: 3000\n\n"
        for event in await stream.catch_up():
            yield _sse(event)
        while not stream.finished:
            # Never cancel a pending receive to time it out: a cancelled receive drops the
            # channel's subscription (channels-redis). Wait on it instead, and send a comment.
            receiving = receiving or asyncio.ensure_future(layer.receive(channel))
            done, _ = await asyncio.wait({receiving}, timeout=settings.SSE_KEEPALIVE_SECONDS)
            if not done:
                yield ": keep-alive\n\n"
                continue
            message, receiving = receiving.result(), None
            if message.get("type") == "execution.events":
                for event in await stream.take(message["events"]):
                    yield _sse(event)
    finally:
        if receiving is not None:
            receiving.cancel()
        await layer.group_discard(group, channel)


# --- the runs API (DRF) ----------------------------------------------------------------

EXECUTE = "execute"
ENDED = {
    Execution.Status.SUCCEEDED: "already succeeded",
    Execution.Status.FAILED: "already failed",
    Execution.Status.CANCELLED: "was already cancelled",
    Execution.Status.TIMED_OUT: "already timed out",
}


# The plan's answer to a start: no credits left is 402; a limit reached is 429 (try again later).
ADMISSION_STATUS = {"insufficient_credits": 402, "concurrency_limit": 429, "daily_limit": 429}


class AdmissionError(APIException):
    def __init__(self, detail: str, *, code: str, status: int) -> None:
        super().__init__(detail, code)
        self.status_code = status


def _sentence(text: str) -> str:
    text = text.strip().rstrip(".")
    return f"{text[:1].upper()}{text[1:]}."


@contextmanager
def refusals_as_api_errors() -> Iterator[None]:
    """A refused run as the API's errors: inputs that do not fit are a 400 naming each field, the rest a 409."""
    try:
        yield
    except services.ExecutionRefused as refused:
        if refused.code in ADMISSION_STATUS:
            raise AdmissionError(str(refused), code=refused.code, status=ADMISSION_STATUS[refused.code]) from refused
        if refused.code != "invalid_inputs":
            raise Conflict(_sentence(str(refused))) from refused
        fields: dict[str, list[str]] = {}
        for problem in refused.errors or [{"field": None, "message": str(refused)}]:
            name = f"inputs.{problem['field']}" if problem["field"] else "inputs"
            fields.setdefault(name, []).append(problem["message"])
        raise ValidationError(fields) from refused


def version_to_run(workflow: Workflow, number: int | None) -> WorkflowVersion:
    """Version `number` of `workflow`, or its latest published one."""
    versions = WorkflowVersion.objects.filter(workflow=workflow)
    if number is not None:
        version = versions.filter(number=number).first()
        if version is None:
            raise ValidationError({"version": [f"The workflow has no version {number}."]})
        return version
    version = versions.latest_first().first()
    if version is None:
        raise Conflict("The workflow has no published version; publish it before running it.")
    return version


class FileDownloadNegotiation(BaseContentNegotiation):
    """A download answers with the file's own type whatever `Accept` asks for; its errors stay JSON."""

    def select_parser(self, request: Request, parsers: list) -> object:
        return parsers[0]

    def select_renderer(self, request: Request, renderers: list, format_suffix: str | None = None) -> tuple:
        return renderers[0], renderers[0].media_type


class ExecutionViewSet(ApiMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """
    Your runs, newest first. Creating a run and starting, cancelling or retrying one needs the
    `execute` scope (reading needs `read`). Error answers: see the `Error` schema.
    """

    queryset = Execution.objects.all()
    serializer_class = ExecutionOutput
    filterset_class = ExecutionFilter
    action_scopes = {"create": EXECUTE, "start": EXECUTE, "cancel": EXECUTE, "retry": EXECUTE}

    def get_queryset(self) -> QuerySet[Execution]:
        # Only the version's number is shown: leave its graph and schemas (the bulk of a row) unread.
        runs = (
            Execution.objects.visible_to(self.request.user)
            .select_related("version")
            .defer("version__graph", "version__input_schema", "version__output_schema")
        )
        if self.action == "retrieve":
            runs = runs.prefetch_related(
                Prefetch(
                    "node_executions",
                    queryset=NodeExecution.objects.order_by("started_at", "pk").prefetch_related("artifacts"),
                )
            )
        return runs

    def filter_queryset(self, queryset: QuerySet[Execution]) -> QuerySet[Execution]:
        # The filters narrow the list; on one run they would only turn a mismatch into a 404.
        return super().filter_queryset(queryset) if self.action == "list" else queryset

    @extend_schema(responses=ExecutionDetailOutput)
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response(ExecutionDetailOutput(self.get_object()).data)

    @extend_schema(
        description=(
            "Create a **pending** run (nothing executes until `start/`). The inputs are checked against the "
            "version's input schema (400, `fields` like `inputs.<name>`); another user's or an unknown workflow "
            "is a 400 on `workflow`; a workflow with no published version is a 409 `conflict`."
        ),
        request=ExecutionCreateInput,
        responses={201: ExecutionOutput},
    )
    def create(self, request: Request) -> Response:
        data = ExecutionCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        workflow = Workflow.objects.visible_to(request.user).filter(pk=values["workflow"]).first()
        if workflow is None:
            raise ValidationError({"workflow": ["No such workflow."]})
        version = version_to_run(workflow, values.get("version"))
        with refusals_as_api_errors():
            execution = services.execution_create(version=version, inputs=values["inputs"], owner=request.user)
        return Response(ExecutionOutput(execution).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        description="pending → queued: a worker picks it up. A run that is not pending is a 409 `conflict`.",
        request=None,
        responses=ExecutionOutput,
    )
    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk: str | None = None) -> Response:
        execution = self.get_object()
        with refusals_as_api_errors():
            services.execution_start(execution=execution)
        return Response(ExecutionOutput(execution).data)

    @extend_schema(
        description=(
            "Cancel a pending, queued or running run (a running one stops within seconds). "
            "A finished run is a 409 `conflict` and stays as it was."
        ),
        request=None,
        responses=ExecutionOutput,
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        execution = self.get_object()
        if not services.execution_cancel(execution=execution):
            execution.refresh_from_db(fields=["status"])
            ended = ENDED.get(execution.status, f"is {execution.status}")
            raise Conflict(f"The run {ended}; only a pending, queued or running run can be cancelled.")
        return Response(ExecutionOutput(execution).data)

    @extend_schema(
        description=(
            "A new, queued run of the same version and inputs, linked by `retry_of`. Only failed, cancelled "
            "or timed-out runs can be retried; others are a 409 `conflict`."
        ),
        request=None,
        responses={201: ExecutionOutput},
    )
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        with refusals_as_api_errors():
            retry = services.execution_retry(execution=self.get_object())
        return Response(ExecutionOutput(retry).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        description="Every node attempt of the run, in the order they started; not paginated (the graph bounds it).",
        responses=NodeExecutionOutput(many=True),
    )
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def nodes(self, request: Request, pk: str | None = None) -> Response:
        nodes = self.get_object().node_executions.order_by("started_at", "pk").prefetch_related("artifacts")
        return Response(NodeExecutionOutput(nodes, many=True).data)

    @extend_schema(
        description=(
            "Download a file the run made (a browser screenshot): the `url` of an entry in a node attempt's "
            "`artifacts`. The answer is the file itself, with its own content type. Another user's run, or an "
            "artifact of another run, is a 404."
        ),
        parameters=[OpenApiParameter("artifact_id", int, OpenApiParameter.PATH, description="The artifact's id.")],
        responses={(200, "image/png"): OpenApiTypes.BINARY},
    )
    @action(
        detail=True,
        methods=["get"],
        url_path=r"artifacts/(?P<artifact_id>[0-9]+)",
        url_name="artifact",
        pagination_class=None,
        filter_backends=[],
        content_negotiation_class=FileDownloadNegotiation,
    )
    def artifact(self, request: Request, pk: str | None = None, artifact_id: str | None = None) -> FileResponse:
        artifact = self.get_object().artifacts.filter(pk=artifact_id).first()
        if artifact is None:
            raise NotFound("No such artifact.")
        try:
            file = artifact.file.open("rb")
        except FileNotFoundError:
            raise NotFound("The artifact's file is no longer stored.") from None
        response = FileResponse(file, content_type=artifact.content_type, filename=artifact.name)
        response["Cache-Control"] = "private, max-age=3600"
        return response


class WorkflowRunViewSet(ApiMixin, viewsets.GenericViewSet):
    """`POST workflows/<id>/run/`: create and enqueue a run in one call (needs the `execute` scope)."""

    queryset = Workflow.objects.all()
    serializer_class = WorkflowRunInput  # what OPTIONS describes
    action_scopes = {"run": EXECUTE}

    def get_queryset(self) -> QuerySet[Workflow]:
        return Workflow.objects.visible_to(self.request.user)

    @extend_schema(
        operation_id="workflows_run",
        description=(
            "Create a run of the workflow's latest (or the given) published version and queue it at once: "
            "**202**, then follow `executions/<id>/events/`. Inputs that do not fit the input schema are a 400 "
            "(`fields` like `inputs.<name>`); a workflow with no published version is a 409 `conflict`."
        ),
        parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH, description="The workflow's id.")],
        request=WorkflowRunInput,
        responses={202: ExecutionOutput},
    )
    def run(self, request: Request, pk: str | None = None) -> Response:
        workflow = self.get_object()
        data = WorkflowRunInput(data=request.data)
        data.is_valid(raise_exception=True)
        version = version_to_run(workflow, data.validated_data.get("version"))
        with refusals_as_api_errors():
            execution = services.execution_run(
                version=version, inputs=data.validated_data["inputs"], owner=request.user
            )
        return Response(ExecutionOutput(execution).data, status=status.HTTP_202_ACCEPTED)
