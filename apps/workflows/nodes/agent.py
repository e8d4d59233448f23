"""`agent`: runs one of the user's agents (a LangChain tool-calling loop) on a templated prompt."""

from __future__ import annotations

from apps.workflows import templating
from apps.workflows.nodes.base import NodeContext, NodeError, NodeResult, NodeType, object_schema, register


def pins(config: dict, resolver) -> tuple[dict, dict]:
    try:
        names = sorted(templating.variables(config.get("prompt") or ""))
    except templating.TemplateProblem:
        names = []
    return object_schema({name: {} for name in names}, names), AGENT.outputs_schema


def check(config: dict, resolver) -> list[tuple[str, str]]:
    problems = []
    if not resolver.agent_exists(config.get("agent")):
        problems.append(("agent", f"no agent {config.get('agent')} of yours exists"))
    try:
        templating.check(config.get("prompt") or "")
    except templating.TemplateProblem as exc:
        problems.append(("prompt", str(exc)))
    return problems


async def run(context: NodeContext, config: dict, inputs: dict) -> NodeResult:
    # Imported here: LangChain's agent stack costs most of a second to import, which every
    # web process and management command would otherwise pay at start-up.
    from langchain.agents import create_agent
    from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
    from langgraph.errors import GraphRecursionError

    runtime = await context.agent(config["agent"])
    try:
        prompt = templating.render(config["prompt"], inputs)
    except templating.TemplateProblem as exc:
        raise NodeError("template_error", str(exc)) from exc
    graph = create_agent(runtime.model, runtime.tools, system_prompt=runtime.system_prompt or None)
    final: dict = {}
    try:
        async for mode, payload in graph.astream(
            {"messages": [HumanMessage(prompt)]},
            # Each iteration is a model step and a tool step.
            {"recursion_limit": 2 * runtime.max_iterations + 1},
            stream_mode=["messages", "values"],
        ):
            if mode == "values":
                await log_tool_traffic(context, final.get("messages", []), payload.get("messages", []))
                final = payload
            elif isinstance(payload[0], AIMessageChunk) and payload[0].text:
                await context.stream_text(payload[0].text)
    except GraphRecursionError as exc:
        raise NodeError(
            "agent_iteration_limit", f"the agent did not finish within {runtime.max_iterations} iterations"
        ) from exc
    messages = final.get("messages", [])
    replies = [message for message in messages if isinstance(message, AIMessage)]
    usage = {
        "agent_id": config["agent"],
        "provider": runtime.provider,
        "model": runtime.model_name,
        "input_tokens": sum((m.usage_metadata or {}).get("input_tokens", 0) for m in replies),
        "output_tokens": sum((m.usage_metadata or {}).get("output_tokens", 0) for m in replies),
        "tool_calls": sum(1 for message in messages if isinstance(message, ToolMessage)),
    }
    browsed = context.browser().seconds  # time its browser tools spent, charged per browser-minute
    if browsed:
        usage["browser_seconds"] = round(browsed, 3)
    text = replies[-1].text if replies else ""
    return NodeResult(outputs={"text": text, "steps": len(replies)}, usage=usage)


async def log_tool_traffic(context: NodeContext, before: list, after: list) -> None:
    """A node.log event per tool call and per tool answer, as they happen."""
    for message in after[len(before) :]:
        for call in getattr(message, "tool_calls", None) or []:
            await context.log(f"calls tool {call['name']}", tool=call["name"], args=call["args"])
        if getattr(message, "type", "") == "tool":
            await context.log(f"tool {message.name} answered", tool=message.name, result=str(message.content)[:2000])


AGENT = register(
    NodeType(
        type="agent",
        description="Runs one of your agents on a prompt template: it may call its tools until it answers.",
        category="ai",
        config_schema={
            "type": "object",
            "properties": {
                "agent": {"type": "integer"},
                "prompt": {"type": "string", "minLength": 1, "maxLength": templating.MAX_TEMPLATE_CHARS},
            },
            "required": ["agent", "prompt"],
        },
        inputs_schema=object_schema({}),
        outputs_schema=object_schema({"text": {"type": "string"}, "steps": {"type": "integer"}}),
        cost={"basis": "tokens", "per_tool_call": True},
        run=run,
        default_timeout=300,
        pins=pins,
        check=check,
    )
)
