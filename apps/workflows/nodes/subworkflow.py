"""`subworkflow`: runs a published version of another workflow as a child run."""

from __future__ import annotations

from apps.workflows.nodes.base import NodeContext, NodeResult, NodeType, object_schema, register


def pins(config: dict, resolver) -> tuple[dict, dict]:
    version = resolver.published_version(config.get("workflow"), config.get("version")) if resolver else None
    if version is None:
        return object_schema({}), object_schema({})
    inputs = version["input_schema"]
    outputs = version["output_schema"]
    return (
        object_schema(inputs.get("properties", {}), inputs.get("required", [])),
        object_schema(outputs.get("properties", {})),
    )


def check(config: dict, resolver) -> list[tuple[str, str]]:
    if resolver.published_version(config.get("workflow"), config.get("version")) is None:
        which = f"version {config['version']}" if config.get("version") else "a published version"
        return [("workflow", f"workflow {config.get('workflow')} of yours has no {which}")]
    return []


async def run(context: NodeContext, config: dict, inputs: dict) -> NodeResult:
    outputs = await context.run_subworkflow(
        workflow_id=config["workflow"], version=config.get("version"), inputs=inputs
    )
    return NodeResult(outputs=outputs)


SUBWORKFLOW = register(
    NodeType(
        type="subworkflow",
        description=(
            "Runs a published version of another of your workflows as a child run: its inputs and outputs "
            "become this node's pins."
        ),
        category="logic",
        config_schema={
            "type": "object",
            "properties": {
                "workflow": {"type": "integer"},
                "version": {"type": ["integer", "null"], "minimum": 1},
            },
            "required": ["workflow"],
        },
        inputs_schema=object_schema({}),
        outputs_schema=object_schema({}),
        cost={"basis": "child_run"},
        run=run,
        default_timeout=600,
        pins=pins,
        check=check,
    )
)
