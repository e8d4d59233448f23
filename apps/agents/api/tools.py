"""
The tool catalogue: built-in tools (read-only), the user's HTTP tools and MCP servers, and testing
an entry. Serializers and views together: they serve these endpoints only.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from apps.agents import mcp
from apps.agents import tools as builtin_tools
from apps.agents.api.serializers import refuse_nul_characters
from apps.agents.models import Credential, Tool
from apps.users.api.base import ApiMixin

# --- serializers ---------------------------------------------------------------------------------


# Inline in the schema (under allOf, which the enum naming hook leaves alone): other components
# have `kind` enums too, and shared enum names would collide without a settings override.
@extend_schema_field({"allOf": [{"type": "string", "enum": list(Tool.Kind.values)}], "description": "`http` or `mcp`."})
class ToolKindField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=Tool.Kind.choices, **kwargs)


class ListedToolOutput(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    input_schema = serializers.DictField()


class ToolOutput(serializers.ModelSerializer):
    kind = ToolKindField(read_only=True)
    credentials = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    listed_tools = ListedToolOutput(many=True, read_only=True)
    agent_tools = serializers.SerializerMethodField(help_text="The names an agent's `tools` list gives for it.")

    class Meta:
        model = Tool
        fields = [
            "id",
            *Tool.SETTINGS,
            "listed_tools",
            "listed_at",
            "agent_tools",
            "created_at",
            "updated_at",
        ]

    def get_agent_tools(self, tool: Tool) -> list[str]:
        return tool.agent_tool_names()


class ToolInput(serializers.Serializer):
    """
    `kind` `http`: `method`, `url_template` (`{name}` takes that argument, escaped; other arguments
    go in the query for GET and DELETE, else in a JSON body), `input_schema`. `kind` `mcp`:
    `transport` `streamable_http` and `url` (`stdio` servers are defined by operators only).
    Secrets go in `credentials` (HTTP header credentials), never in `headers`.
    PUT replaces (absent optional fields return to their defaults); PATCH changes what it names.
    """

    kind = ToolKindField(help_text="Cannot change later.")
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(allow_blank=True, required=False, default="")
    enabled = serializers.BooleanField(required=False, default=True)
    timeout_seconds = serializers.IntegerField(min_value=1, max_value=300, required=False, default=30)
    credentials = serializers.PrimaryKeyRelatedField(
        many=True,
        queryset=Credential.objects.none(),
        required=False,
        default=list,
        pk_field=serializers.IntegerField(),
    )
    headers = serializers.DictField(child=serializers.CharField(), required=False, default=dict)
    method = serializers.ChoiceField(choices=Tool.Method.choices, allow_blank=True, required=False, default="")
    url_template = serializers.CharField(max_length=2000, allow_blank=True, required=False, default="")
    input_schema = serializers.DictField(required=False, default=dict, validators=[refuse_nul_characters])
    transport = serializers.ChoiceField(choices=Tool.Transport.choices, allow_blank=True, required=False, default="")
    url = serializers.CharField(max_length=2000, allow_blank=True, required=False, default="")
    command = serializers.CharField(max_length=500, allow_blank=True, required=False, default="")
    args = serializers.ListField(child=serializers.CharField(), required=False, default=list)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        # Another user's credential is "does not exist", exactly like an id nobody has.
        self.fields["credentials"].child_relation.queryset = Credential.objects.visible_to(
            request.user if request is not None else None
        )
        self.fields["credentials"].child_relation.error_messages["does_not_exist"] = (
            "No credential {pk_value} of yours exists."
        )


class ToolTestInput(serializers.Serializer):
    arguments = serializers.DictField(
        required=False, default=dict, validators=[refuse_nul_characters], help_text="HTTP tools: the call's arguments."
    )


class ToolTestError(serializers.Serializer):
    code = serializers.CharField(
        help_text="unreachable, egress_refused, timeout, http_error, protocol_error, command_failed, tool_error, …"
    )
    message = serializers.CharField()


class ToolTestOutput(serializers.Serializer):
    ok = serializers.BooleanField()
    error = ToolTestError(allow_null=True)
    tools = ListedToolOutput(many=True, help_text="MCP servers: the tools listed (kept on the entry).")
    output = serializers.CharField(allow_null=True, help_text="HTTP tools: the answer, `HTTP <status>` and the body.")
    elapsed_ms = serializers.IntegerField()


class BuiltinToolOutput(serializers.Serializer):
    name = serializers.CharField(help_text="Also the name an agent's `tools` list gives.")
    description = serializers.CharField()
    input_schema = serializers.DictField()


# --- views ---------------------------------------------------------------------------------------


class ToolViewSet(ApiMixin, viewsets.ModelViewSet):
    """
    Your tool catalogue: HTTP tools and MCP servers, which agents name in `tools` (see each entry's
    `agent_tools`). `POST tools/{id}/test/` connects to an MCP server and lists its tools, or calls
    an HTTP tool once; a failure is reported in the answer (`ok: false`), not as an error status.
    """

    queryset = Tool.objects.all()
    serializer_class = ToolOutput
    filterset_fields = ["kind", "enabled"]
    lookup_value_regex = r"[0-9]+"
    action_scopes = {"test": "execute"}

    def get_queryset(self) -> QuerySet[Tool]:
        return Tool.objects.visible_to(self.request.user).with_credentials()

    @extend_schema(request=ToolInput, responses={201: ToolOutput})
    def create(self, request: Request) -> Response:
        data = ToolInput(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        kind, credentials = values.pop("kind"), values.pop("credentials")
        try:
            tool = mcp.tool_create(owner=request.user, kind=kind, values=values, credentials=credentials)
        except mcp.StdioRefused as exc:
            raise PermissionDenied(str(exc)) from None
        return Response(ToolOutput(tool).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ToolInput, responses={200: ToolOutput})
    def update(self, request: Request, pk: str | None = None, partial: bool = False) -> Response:
        tool = self.get_object()
        data = ToolInput(data=request.data, partial=partial, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        if values.pop("kind", tool.kind) != tool.kind:
            raise ValidationError({"kind": ["The kind of an entry cannot change: create a new one."]})
        credentials = values.pop("credentials", None)
        try:
            tool = mcp.tool_update(tool=tool, values=values, credentials=credentials)
        except mcp.StdioRefused as exc:
            raise PermissionDenied(str(exc)) from None
        return Response(ToolOutput(tool).data)

    @extend_schema(request=ToolInput, responses={200: ToolOutput})
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        return self.update(request, pk, partial=True)

    @extend_schema(request=ToolTestInput, responses={200: ToolTestOutput})
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        tool = self.get_object()
        data = ToolTestInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = mcp.tool_test(tool=tool, arguments=data.validated_data["arguments"])
        return Response(ToolTestOutput(result).data)


class BuiltinToolListView(ApiMixin, GenericAPIView):
    """The built-in tools every agent may be given, by name, with their input schemas. Not paginated."""

    pagination_class = None
    filter_backends: list = []
    serializer_class = BuiltinToolOutput

    @extend_schema(responses={200: BuiltinToolOutput(many=True)})
    def get(self, request: Request) -> Response:
        return Response(BuiltinToolOutput(builtin_tools.describe(), many=True).data)
