from __future__ import annotations

from django.db.models import ProtectedError, QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from apps.users.api.base import ApiMixin
from apps.users.api.errors import Conflict
from apps.users.api.pagination import NewestFirst
from apps.workflows import services
from apps.workflows.api.serializers import NodeTypeOutput, WorkflowInput, WorkflowOutput, WorkflowVersionOutput
from apps.workflows.graph import GraphInvalid
from apps.workflows.models import Workflow, WorkflowVersion
from apps.workflows.nodes import REGISTRY


def graph_errors(exc: GraphInvalid) -> serializers.ValidationError:
    """
    Every problem of the graph as a field error: `graph.nodes.<node id>.<field>` for a node's
    (`config.<key>`, `inputs.<pin>`, `type`, …), plain `graph` for the graph as a whole.
    """
    fields: dict[str, list[str]] = {}
    for problem in exc.as_list():
        parts = ["graph"]
        if problem["node"] is not None:
            parts += ["nodes", problem["node"]]
        if problem["field"]:
            parts.append(problem["field"])
        fields.setdefault(".".join(parts), []).append(problem["message"])
    return serializers.ValidationError(fields)


class WorkflowViewSet(ApiMixin, viewsets.ModelViewSet):
    """
    The user's workflows and their drafts. A draft's `graph` is validated whenever it is sent:
    an invalid graph is a 400 naming each node's problem, and nothing is saved. Runs use
    published versions (POST …/publish/), never the draft. Deleting a workflow deletes its
    versions; once it has runs, which keep the versions they ran, it cannot be deleted (409).
    """

    queryset = Workflow.objects.all()
    serializer_class = WorkflowOutput

    def get_queryset(self) -> QuerySet[Workflow]:
        return Workflow.objects.visible_to(self.request.user)

    @extend_schema(request=WorkflowInput, responses={201: WorkflowOutput})
    def create(self, request: Request) -> Response:
        data = WorkflowInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            workflow = services.workflow_create(owner=request.user, **data.validated_data)
        except GraphInvalid as exc:
            raise graph_errors(exc) from exc
        return Response(WorkflowOutput(workflow).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=WorkflowInput, responses={200: WorkflowOutput})
    def update(self, request: Request, pk: str | None = None, partial: bool = False) -> Response:
        workflow = self.get_object()
        data = WorkflowInput(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        try:
            workflow = services.workflow_update(workflow=workflow, values=data.validated_data)
        except GraphInvalid as exc:
            raise graph_errors(exc) from exc
        return Response(WorkflowOutput(workflow).data)

    @extend_schema(request=WorkflowInput, responses={200: WorkflowOutput})
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        return self.update(request, pk, partial=True)

    def perform_destroy(self, instance: Workflow) -> None:
        try:
            instance.delete()
        except ProtectedError as exc:
            raise Conflict("The workflow has runs, which keep the versions they ran: it cannot be deleted.") from exc

    @extend_schema(
        request=None,
        responses={201: WorkflowVersionOutput},
        description="Freeze the draft as the next version (1, 2, …). A draft that no longer validates "
        "(an agent it names was deleted, say) is a 400 naming each problem.",
    )
    @action(detail=True, methods=["post"])
    def publish(self, request: Request, pk: str | None = None) -> Response:
        workflow = self.get_object()
        try:
            version = services.workflow_publish(workflow=workflow, actor=request.user)
        except GraphInvalid as exc:
            raise graph_errors(exc) from exc
        return Response(WorkflowVersionOutput(version).data, status=status.HTTP_201_CREATED)


class LatestNumberFirst(NewestFirst):
    ordering = ("-number",)


class WorkflowVersionViewSet(ApiMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """A workflow's published versions, latest first; each is immutable."""

    queryset = WorkflowVersion.objects.all()
    serializer_class = WorkflowVersionOutput
    pagination_class = LatestNumberFirst
    lookup_field = "number"

    def get_queryset(self) -> QuerySet[WorkflowVersion]:
        return WorkflowVersion.objects.visible_to(self.request.user).filter(workflow_id=self.kwargs.get("workflow_id"))

    def list(self, request: Request, workflow_id: int) -> Response:
        # Another user's workflow, or none, is a 404 rather than an empty list.
        if not Workflow.objects.visible_to(request.user).filter(pk=workflow_id).exists():
            raise NotFound("Not found.")
        return super().list(request)


class NodeTypeListView(ApiMixin, GenericAPIView):
    """Every node type a graph may use, with the JSON Schemas of its config and pins. Not paginated."""

    pagination_class = None
    filter_backends: list = []
    serializer_class = NodeTypeOutput

    @extend_schema(responses={200: NodeTypeOutput(many=True)})
    def get(self, request: Request) -> Response:
        described = [REGISTRY[name].describe() for name in sorted(REGISTRY)]
        return Response(NodeTypeOutput(described, many=True).data)
