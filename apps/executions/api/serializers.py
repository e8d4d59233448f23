"""What the runs API accepts (`…Input`) and what it shows (`…Output`); no rules here, only shapes."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import ResolvedComponent, build_choice_field
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.billing.api.serializers import Credits
from apps.executions.models import Execution, NodeExecution, RunArtifact

# --- input ---------------------------------------------------------------------------


class WorkflowRunInput(serializers.Serializer):
    version = serializers.IntegerField(
        min_value=1, required=False, help_text="A published version's number; the latest when left out."
    )
    inputs = serializers.DictField(
        required=False, default=dict, help_text="Values for the version's input schema; defaults fill the rest."
    )


class ExecutionCreateInput(WorkflowRunInput):
    workflow = serializers.IntegerField(help_text="The id of one of your workflows.")


# --- output --------------------------------------------------------------------------


class RunErrorOutput(serializers.Serializer):
    """A run's or a node's failure (not an API error: see the `Error` schema)."""

    code = serializers.CharField()
    message = serializers.CharField()


def error_of(record: Execution | NodeExecution) -> dict | None:
    if not (record.error_code or record.error_message):
        return None
    return {"code": record.error_code, "message": record.error_message}


class NamedEnumField(serializers.ChoiceField):
    """A choice field whose OpenAPI enum has a name of its own (`enum_name`), not its field's."""

    def __init__(self, *, enum_name: str, **kwargs: object) -> None:
        self.enum_name = enum_name
        super().__init__(**kwargs)


class NamedEnumFieldSchema(OpenApiSerializerFieldExtension):
    # drf-spectacular names an enum after its field, and `status` has several choice sets
    # (keys, runs, node runs); a set shown by two components is then an unresolvable collision
    # (a warning, and a hashed name). A component per set names each once.
    target_class = NamedEnumField

    def map_serializer_field(self, auto_schema: object, direction: str) -> dict:
        component = ResolvedComponent(
            name=self.target.enum_name,
            type=ResolvedComponent.SCHEMA,
            object=self.target.enum_name,
            schema=build_choice_field(self.target),
        )
        auto_schema.registry.register_on_missing(component)
        return component.ref


class RunArtifactOutput(serializers.ModelSerializer):
    """A file a node made (a browser screenshot); `url` downloads it (its owner only)."""

    kind = NamedEnumField(choices=RunArtifact.Kind.choices, enum_name="RunArtifactKindEnum")
    url = serializers.CharField(source="get_absolute_url", help_text="The download path in this API.")

    class Meta:
        model = RunArtifact
        fields = ["id", "kind", "name", "content_type", "size", "created_at", "url"]
        read_only_fields = fields


class NodeExecutionOutput(serializers.ModelSerializer):
    status = NamedEnumField(choices=NodeExecution.Status.choices, enum_name="NodeExecutionStatusEnum")
    error = serializers.SerializerMethodField()
    cost = Credits(help_text="Credits this attempt was charged (its ledger row's key is node:<id>).")
    artifacts = RunArtifactOutput(many=True, read_only=True, help_text="Files this attempt made (screenshots).")

    class Meta:
        model = NodeExecution
        fields = [
            "node_id",
            "node_type",
            "status",
            "attempt",
            "inputs",
            "outputs",
            "error",
            "usage",
            "started_at",
            "finished_at",
            "duration_ms",
            "cost",
            "artifacts",
        ]

    @extend_schema_field(RunErrorOutput(allow_null=True))
    def get_error(self, node: NodeExecution) -> dict | None:
        return error_of(node)


class ExecutionOutput(serializers.ModelSerializer):
    workflow = serializers.IntegerField(source="workflow_id", help_text="The workflow's id.")
    version = serializers.IntegerField(source="version.number", help_text="The number of the version that runs.")
    status = NamedEnumField(choices=Execution.Status.choices, enum_name="ExecutionStatusEnum")
    error = serializers.SerializerMethodField()
    duration_ms = serializers.IntegerField(allow_null=True, help_text="From start to finish; null until both.")
    retry_of = serializers.UUIDField(source="retry_of_id", allow_null=True, help_text="The run this one retries.")
    cost = Credits(help_text="Credits charged for the run's nodes so far.")

    class Meta:
        model = Execution
        fields = [
            "id",
            "workflow",
            "version",
            "status",
            "trigger",
            "inputs",
            "outputs",
            "error",
            "created_at",
            "queued_at",
            "started_at",
            "finished_at",
            "duration_ms",
            "retry_of",
            "cost",
        ]
        read_only_fields = fields

    @extend_schema_field(RunErrorOutput(allow_null=True))
    def get_error(self, execution: Execution) -> dict | None:
        return error_of(execution)


class ExecutionDetailOutput(ExecutionOutput):
    nodes = NodeExecutionOutput(source="node_executions", many=True, help_text="Node attempts, in start order.")

    class Meta(ExecutionOutput.Meta):
        fields = [*ExecutionOutput.Meta.fields, "nodes"]
        read_only_fields = fields
