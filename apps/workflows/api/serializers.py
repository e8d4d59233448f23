from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.agents.api.serializers import refuse_nul_characters
from apps.workflows.models import Workflow, WorkflowVersion


class WorkflowOutput(serializers.ModelSerializer):
    class Meta:
        model = Workflow
        fields = ["id", "name", "description", "graph", "latest_version_number", "created_at", "updated_at"]


@extend_schema_field(
    {
        "type": "object",
        "description": "The draft graph: `{nodes: [{id, type, config, position}], "
        "edges: [{source, source_output, target, target_input}]}`; see node-types/ for each type's config.",
        "properties": {
            "nodes": {"type": "array", "items": {"type": "object", "additionalProperties": True}},
            "edges": {"type": "array", "items": {"type": "object", "additionalProperties": True}},
        },
        "required": ["nodes", "edges"],
    }
)
class GraphField(serializers.JSONField):
    """Any JSON here: the graph's own validation names every problem by node and field."""


class WorkflowInput(serializers.Serializer):
    """PUT replaces (description returns to blank when absent); PATCH changes what it names."""

    name = serializers.CharField(max_length=150)
    description = serializers.CharField(allow_blank=True, required=False, default="")
    graph = GraphField(validators=[refuse_nul_characters])


class WorkflowVersionOutput(serializers.ModelSerializer):
    created_by = serializers.IntegerField(source="created_by_id", allow_null=True, read_only=True)

    class Meta:
        model = WorkflowVersion
        fields = ["number", "graph", "input_schema", "output_schema", "created_at", "created_by"]


@extend_schema_field(OpenApiTypes.OBJECT)
class ObjectField(serializers.JSONField):
    """A JSON object (a JSON Schema, a cost rule) shown as such in the OpenAPI document."""


class NodeTypeOutput(serializers.Serializer):
    type = serializers.CharField()
    description = serializers.CharField()
    category = serializers.CharField(help_text="io, text, ai, logic or integration: for grouping in a builder.")
    config_schema = ObjectField(help_text="JSON Schema of the node's `config`, the keys every node takes included.")
    inputs_schema = ObjectField(help_text="JSON Schema whose properties are the input pins (some depend on config).")
    outputs_schema = ObjectField(help_text="JSON Schema whose properties are the output pins.")
    cost = ObjectField(help_text='How a run of it is charged: `{"basis": "none" | "tokens" | "call" | "child_run"}`.')
