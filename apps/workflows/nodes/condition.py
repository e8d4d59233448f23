"""`condition`: routes to its `true` or `false` output by a safe expression over its inputs."""

from __future__ import annotations

from apps.agents import expressions
from apps.workflows.nodes.base import NodeContext, NodeError, NodeResult, NodeType, object_schema, register


def pins(config: dict, resolver) -> tuple[dict, dict]:
    try:
        names = expressions.names(config.get("expression", ""))
    except expressions.ExpressionError:
        names = set()
    properties = {name: {} for name in sorted(names | {"value"})}
    return object_schema(properties, sorted(names)), CONDITION.outputs_schema


def check(config: dict, resolver) -> list[tuple[str, str]]:
    try:
        expressions.validate(config.get("expression", ""))
    except expressions.ExpressionError as exc:
        return [("expression", str(exc))]
    return []


async def run(context: NodeContext, config: dict, inputs: dict) -> NodeResult:
    try:
        result = expressions.evaluate(config["expression"], inputs)
    except expressions.ExpressionError as exc:
        raise NodeError("expression_error", str(exc)) from exc
    branch = "true" if result else "false"
    # The taken branch carries `value` when it is connected, else the verdict itself.
    return NodeResult(outputs={branch: inputs.get("value", bool(result))})


CONDITION = register(
    NodeType(
        type="condition",
        description=(
            "Evaluates an expression such as `score >= 0.8 and lang == 'en'` (no code execution) and "
            "continues on `true` or `false`; the other branch is skipped."
        ),
        category="logic",
        config_schema={
            "type": "object",
            "properties": {"expression": {"type": "string", "minLength": 1, "maxLength": 2000}},
            "required": ["expression"],
        },
        inputs_schema=object_schema({"value": {}}),
        outputs_schema=object_schema({"true": {}, "false": {}}),
        cost={"basis": "none"},
        run=run,
        default_timeout=5,
        pins=pins,
        check=check,
    )
)
