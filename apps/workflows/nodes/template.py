"""`template`: text made from the inputs by a sandboxed Jinja2 template."""

from __future__ import annotations

from apps.workflows import templating
from apps.workflows.nodes.base import NodeContext, NodeError, NodeResult, NodeType, object_schema, register


def variable_pins(template: str) -> dict[str, dict]:
    try:
        return {name: {} for name in sorted(templating.variables(template))}
    except templating.TemplateProblem:
        return {}


def pins(config: dict, resolver) -> tuple[dict, dict]:
    names = variable_pins(config.get("template", ""))
    return object_schema(names, list(names)), TEMPLATE.outputs_schema


def check(config: dict, resolver) -> list[tuple[str, str]]:
    try:
        templating.check(config.get("template", ""))
    except templating.TemplateProblem as exc:
        return [("template", str(exc))]
    return []


async def run(context: NodeContext, config: dict, inputs: dict) -> NodeResult:
    try:
        # Inline: the sandbox bounds the work, and a thread hop would cost more than most renders.
        text = templating.render(config["template"], inputs)
    except templating.TemplateProblem as exc:
        raise NodeError("template_error", str(exc)) from exc
    return NodeResult(outputs={"text": text})


TEMPLATE = register(
    NodeType(
        type="template",
        description="Builds text from its inputs with a sandboxed Jinja2 template; each variable is an input.",
        category="text",
        config_schema={
            "type": "object",
            "properties": {"template": {"type": "string", "maxLength": templating.MAX_TEMPLATE_CHARS}},
            "required": ["template"],
        },
        inputs_schema=object_schema({}),
        outputs_schema=object_schema({"text": {"type": "string"}}),
        cost={"basis": "none"},
        run=run,
        default_timeout=10,
        pins=pins,
        check=check,
    )
)
