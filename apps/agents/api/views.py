from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from apps.agents import services
from apps.agents.api.serializers import (
    AgentInput,
    AgentOutput,
    CredentialInput,
    CredentialOutput,
)
from apps.agents.models import Agent, Credential
from apps.users.api.base import ApiMixin


class AgentViewSet(ApiMixin, viewsets.ModelViewSet):
    """The user's agents: a model, a system prompt and the tools it may call."""

    queryset = Agent.objects.all()
    serializer_class = AgentOutput
    filterset_fields = ["provider"]

    def get_queryset(self) -> QuerySet[Agent]:
        return Agent.objects.visible_to(self.request.user)

    @extend_schema(request=AgentInput, responses={201: AgentOutput})
    def create(self, request: Request) -> Response:
        data = AgentInput(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        agent = services.agent_create(owner=request.user, values=data.validated_data)
        return Response(AgentOutput(agent).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=AgentInput, responses={200: AgentOutput})
    def update(self, request: Request, pk: str | None = None, partial: bool = False) -> Response:
        agent = self.get_object()
        data = AgentInput(data=request.data, partial=partial, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        agent = services.agent_update(agent=agent, values=data.validated_data)
        return Response(AgentOutput(agent).data)

    @extend_schema(request=AgentInput, responses={200: AgentOutput})
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        return self.update(request, pk, partial=True)


class CredentialViewSet(
    ApiMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """
    The user's secrets for providers and HTTP headers. The secret is write-only: responses show
    `secret_hint`. To change a secret, create a new credential and delete the old one.
    Deleting one leaves the agents that used it without a credential.
    """

    queryset = Credential.objects.all()
    serializer_class = CredentialOutput
    filterset_fields = ["kind"]

    def get_queryset(self) -> QuerySet[Credential]:
        return Credential.objects.visible_to(self.request.user)

    @extend_schema(request=CredentialInput, responses={201: CredentialOutput})
    def create(self, request: Request) -> Response:
        data = CredentialInput(data=request.data)
        data.is_valid(raise_exception=True)
        credential = services.credential_create(owner=request.user, **data.validated_data)
        return Response(CredentialOutput(credential).data, status=status.HTTP_201_CREATED)
