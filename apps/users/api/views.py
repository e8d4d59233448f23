from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from apps.users import services
from apps.users.api.base import ApiMixin
from apps.users.api.serializers import (
    ApiKeyCreatedOutput,
    ApiKeyInput,
    ApiKeyOutput,
    MeInput,
    MeOutput,
    NoticeOutput,
    NoticesMarkedOutput,
    NoticeUnreadCountOutput,
)
from apps.users.models import ApiKey, Notice, User


class MeView(ApiMixin, GenericAPIView):
    """The signed-in user's profile; PATCH changes it (multipart for an avatar)."""

    queryset = User.objects.none()
    serializer_class = MeOutput
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(responses=MeOutput)
    def get(self, request: Request) -> Response:
        return Response(MeOutput(request.user, context={"request": request}).data)

    @extend_schema(request=MeInput, responses=MeOutput)
    def patch(self, request: Request) -> Response:
        data = MeInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        user = request.user
        values = data.validated_data
        services.user_profile_update(
            user=user,
            display_name=values.get("display_name", user.display_name),
            language=values.get("language", user.language),
            time_zone=values.get("time_zone", user.time_zone),
            avatar=values.get("avatar") or None,
            remove_avatar="avatar" in values and values["avatar"] is None,
        )
        return Response(MeOutput(user, context={"request": request}).data)


class ApiKeyViewSet(ApiMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The user's own API keys. DELETE revokes (the row stays, for the record)."""

    serializer_class = ApiKeyOutput
    queryset = ApiKey.objects.all()

    def get_queryset(self):
        return ApiKey.objects.visible_to(self.request.user)

    @extend_schema(request=ApiKeyInput, responses={201: ApiKeyCreatedOutput})
    def create(self, request: Request) -> Response:
        data = ApiKeyInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if values["expires_at"] is not None and values["expires_at"] <= timezone.now():
            raise serializers.ValidationError({"expires_at": ["Must be in the future."]})
        if isinstance(request.auth, ApiKey) and not set(values["scopes"]) <= set(request.auth.scopes):
            # A key may make keys, but never one that can do more than itself.
            raise PermissionDenied("A key cannot create a key with scopes it does not hold.", code="missing_scope")
        api_key, api_key.key = services.api_key_create(owner=request.user, **values)
        return Response(ApiKeyCreatedOutput(api_key).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: ApiKeyOutput})
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        api_key = self.get_object()
        services.api_key_revoke(api_key=api_key)
        api_key.refresh_from_db()
        return Response(ApiKeyOutput(api_key).data)


class NoticeFilter(django_filters.FilterSet):
    # A choice, not a BooleanFilter: that one ignores a value it cannot read and lists everything.
    unread = django_filters.ChoiceFilter(
        choices=[("true", "true"), ("false", "false")],
        method="filter_unread",
        label="true: only unread notices; false: only read ones.",
    )
    kind = django_filters.ChoiceFilter(choices=Notice.Kind.choices)

    class Meta:
        model = Notice
        fields = ["unread", "kind"]

    def filter_unread(self, queryset: QuerySet[Notice], name: str, value: str) -> QuerySet[Notice]:
        return queryset.filter(read_at__isnull=value == "true")


class NoticeViewSet(ApiMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The user's in-app notices (such as a low balance), newest first; reading needs `read`, marking `write`."""

    serializer_class = NoticeOutput
    queryset = Notice.objects.all()
    filterset_class = NoticeFilter

    def get_queryset(self):
        return Notice.objects.visible_to(self.request.user)

    @extend_schema(request=None, responses=NoticeOutput)
    @action(detail=True, methods=["post"])
    def read(self, request: Request, pk: str | None = None) -> Response:
        """Mark one notice read; one already read keeps the time it was first read."""
        notice = self.get_object()
        notice.mark_read()
        return Response(NoticeOutput(notice).data)

    @extend_schema(request=None, responses=NoticesMarkedOutput)
    @action(detail=False, methods=["post"], url_path="read-all")
    def read_all(self, request: Request) -> Response:
        """Mark every unread notice of the user read."""
        marked = self.get_queryset().mark_read()
        return Response(NoticesMarkedOutput({"marked": marked}).data)

    @extend_schema(responses=NoticeUnreadCountOutput)
    @action(detail=False, methods=["get"], url_path="unread-count", filterset_class=None, pagination_class=None)
    def unread_count(self, request: Request) -> Response:
        """How many notices are unread: cheap enough to poll for a badge."""
        count = self.get_queryset().unread().count()
        return Response(NoticeUnreadCountOutput({"unread_count": count}).data)
