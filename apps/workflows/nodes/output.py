"""`output`: one field of the workflow's outputs."""

from __future__ import annotations

from apps.workflows.nodes.base import NodeContext, NodeResult, NodeType, object_schema, register


async def run(context: NodeContext, config: dict, inputs: dict) -> NodeResult:
    return NodeResult(outputs={"value": inputs.get("value")})


OUTPUT = register(
    NodeType(
        type="output",
        description="A field of the workflow's outputs: the value connected to it when the run ends.",
        category="io",
        config_schema={
            "type": "object",
            "properties": {
                "name": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,63}$"},
                "schema": {"type": "object"},
                "description": {"type": "string", "maxLength": 1000},
            },
            "required": ["name"],
        },
        inputs_schema=object_schema({"value": {}}, ["value"]),
        outputs_schema=object_schema({"value": {}}),
        cost={"basis": "none"},
        run=run,
        default_timeout=5,
    )
)
