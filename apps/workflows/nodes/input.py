"""`input`: one field of the workflow's inputs, validated against its schema when a run starts."""

from __future__ import annotations

from apps.workflows.nodes.base import NodeContext, NodeResult, NodeType, object_schema, register


async def run(context: NodeContext, config: dict, inputs: dict) -> NodeResult:
    # The engine hands the run's value for this field in as the `value` input.
    return NodeResult(outputs={"value": inputs.get("value", config.get("default"))})


INPUT = register(
    NodeType(
        type="input",
        description="A field of the workflow's inputs. Its name and JSON Schema become part of the input schema.",
        category="io",
        config_schema={
            "type": "object",
            "properties": {
                "name": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,63}$"},
                "schema": {"type": "object"},
                "description": {"type": "string", "maxLength": 1000},
                "required": {"type": "boolean"},
                "default": {},
            },
            "required": ["name"],
        },
        inputs_schema=object_schema({}),
        outputs_schema=object_schema({"value": {}}),
        cost={"basis": "none"},
        run=run,
        default_timeout=5,
    )
)
