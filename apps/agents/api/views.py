from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.agents import services
from apps.agents.api.serializers import (
    AgentInput,
    AgentOutput,
    CredentialInput,
    CredentialOutput,
    CredentialRevokeAllOutput,
    CredentialSyncInput,
    CredentialSyncOutput,
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


class CredentialFilter(django_filters.FilterSet):
    revoked = django_filters.BooleanFilter(
        field_name="revoked_at", lookup_expr="isnull", exclude=True, label="Only revoked (true) or usable (false) ones."
    )

    class Meta:
        model = Credential
        fields = ["kind", "client_id", "revoked"]


class CredentialViewSet(
    ApiMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """
    The user's secrets for providers and HTTP headers. The secret is write-only: responses show
    `secret_hint`, the client id, whether it is revoked and when (and by which run) it was last used.
    A client keeps its whole set in step with `sync/`; `revoke/` and `revoke-all/` stop every run
    from using them; deleting one leaves the agents that used it without a credential.
    """

    queryset = Credential.objects.all()
    serializer_class = CredentialOutput
    filterset_class = CredentialFilter

    def get_queryset(self) -> QuerySet[Credential]:
        return services.credentials_listed(self.request.user)

    @extend_schema(request=CredentialInput, responses={201: CredentialOutput})
    def create(self, request: Request) -> Response:
        data = CredentialInput(data=request.data)
        data.is_valid(raise_exception=True)
        credential = services.credential_create(owner=request.user, actor=request.user, **data.validated_data)
        return Response(CredentialOutput(credential).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: Credential) -> None:
        services.credential_delete(credential=instance, actor=self.request.user)

    @extend_schema(
        description=(
            "Push your whole set: each item is matched by your `id` for it, and created or updated (a new "
            "secret also lifts a revocation). Items equal to what is stored change nothing, so pushing the "
            "same set twice is harmless. All or nothing: a bad item is a 400 naming `credentials.<index>.<field>` "
            "and nothing is saved. With `prune`, your synced credentials missing from the set are deleted "
            "(credentials created without an id never are)."
        ),
        request=CredentialSyncInput,
        responses={200: CredentialSyncOutput},
    )
    @action(detail=False, methods=["post"], filter_backends=[], pagination_class=None)
    def sync(self, request: Request) -> Response:
        data = CredentialSyncInput(data=request.data)
        data.is_valid(raise_exception=True)
        items = [
            services.SyncItem(
                client_id=item["id"],
                name=item["name"],
                kind=item["kind"],
                secret=item["secret"],
                base_url=item["base_url"],
                header_name=item["header_name"],
            )
            for item in data.validated_data["credentials"]
        ]
        result = services.credentials_sync(
            owner=request.user, items=items, prune=data.validated_data["prune"], actor=request.user
        )
        listed = self.get_queryset().in_bulk([outcome.credential.pk for outcome in result.items])
        body = {
            "credentials": [
                {"id": outcome.client_id, "outcome": outcome.outcome, "credential": listed[outcome.credential.pk]}
                for outcome in result.items
            ],
            "deleted": [{"id": client_id, "credential": pk} for client_id, pk in result.deleted],
            "counts": result.counts(),
        }
        return Response(CredentialSyncOutput(body).data)

    @extend_schema(
        description="No run can use it any more (a node that tries fails with `credential_revoked`). "
        "Revoking a revoked credential changes nothing.",
        request=None,
        responses={200: CredentialOutput},
    )
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        credential = self.get_object()
        services.credential_revoke(credential=credential, actor=request.user)
        return Response(CredentialOutput(self.get_queryset().get(pk=credential.pk)).data)

    @extend_schema(
        description="Revoke every credential of yours at once (the rows and their history stay).",
        request=None,
        responses={200: CredentialRevokeAllOutput},
    )
    @action(detail=False, methods=["post"], url_path="revoke-all", filter_backends=[], pagination_class=None)
    def revoke_all(self, request: Request) -> Response:
        revoked = services.credentials_revoke_all(owner=request.user, actor=request.user)
        return Response(CredentialRevokeAllOutput({"revoked": revoked}).data)
