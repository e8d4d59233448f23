"""`llm`: one chat-model call with a templated prompt, streamed, optionally structured by a JSON Schema."""

from __future__ import annotations

import contextlib
from typing import Any

import jsonschema

from apps.workflows import templating
from apps.workflows.nodes.base import NodeContext, NodeError, NodeResult, NodeType, object_schema, register

MODEL_CONFIG_PROPERTIES: dict[str, dict] = {
    "provider": {"type": "string", "minLength": 1},
    "model": {"type": "string", "minLength": 1, "maxLength": 200},
    "parameters": {"type": "object"},
    "credential": {"type": ["integer", "null"]},
}


def prompt_variables(config: dict) -> set[str]:
    names: set[str] = set()
    for key in ("system_prompt", "prompt"):
        with contextlib.suppress(templating.TemplateProblem):
            names |= templating.variables(config.get(key) or "")
    return names


def pins(config: dict, resolver) -> tuple[dict, dict]:
    names = sorted(prompt_variables(config))
    outputs = {"text": {"type": "string"}}
    if config.get("output_schema"):
        outputs["data"] = config["output_schema"]
    return object_schema({name: {} for name in names}, names), object_schema(outputs)


def check_model(config: dict, resolver) -> list[tuple[str, str]]:
    from apps.agents.providers import PROVIDERS

    problems = []
    if config.get("provider") not in PROVIDERS:
        problems.append(("provider", f"unknown provider {config.get('provider')!r}; one of {', '.join(PROVIDERS)}"))
    credential = config.get("credential")
    if credential is not None and resolver.credential_kind(credential) is None:
        problems.append(("credential", f"no credential {credential} of yours exists"))
    return problems


def check(config: dict, resolver) -> list[tuple[str, str]]:
    problems = check_model(config, resolver)
    for key in ("system_prompt", "prompt"):
        try:
            templating.check(config.get(key) or "")
        except templating.TemplateProblem as exc:
            problems.append((key, str(exc)))
    if config.get("output_schema"):
        try:
            jsonschema.Draft202012Validator.check_schema(config["output_schema"])
        except jsonschema.SchemaError as exc:
            problems.append(("output_schema", f"not a valid JSON Schema: {exc.message}"))
    return problems


def render_messages(config: dict, inputs: dict) -> list:
    from langchain_core.messages import HumanMessage, SystemMessage  # heavy: see agent.run

    try:
        messages: list = []
        if config.get("system_prompt"):
            messages.append(SystemMessage(templating.render(config["system_prompt"], inputs)))
        messages.append(HumanMessage(templating.render(config.get("prompt") or "", inputs)))
    except templating.TemplateProblem as exc:
        raise NodeError("template_error", str(exc)) from exc
    return messages


def usage_of(message: Any, config: dict) -> dict:
    metadata = getattr(message, "usage_metadata", None) or {}
    return {
        "provider": config["provider"],
        "model": config["model"],
        "input_tokens": int(metadata.get("input_tokens", 0)),
        "output_tokens": int(metadata.get("output_tokens", 0)),
    }


async def run(context: NodeContext, config: dict, inputs: dict) -> NodeResult:
    model = await context.chat_model(
        provider=config["provider"],
        model=config["model"],
        parameters=config.get("parameters") or {},
        credential_id=config.get("credential"),
    )
    messages = render_messages(config, inputs)
    if config.get("output_schema"):
        return await run_structured(model, messages, config)
    reply = None
    async for chunk in model.astream(messages):
        reply = chunk if reply is None else reply + chunk
        if chunk.text:
            await context.stream_text(chunk.text)
    text = reply.text if reply is not None else ""
    return NodeResult(outputs={"text": text}, usage=usage_of(reply, config))


async def run_structured(model: Any, messages: list, config: dict) -> NodeResult:
    schema = config["output_schema"]
    result = await model.with_structured_output(schema, include_raw=True).ainvoke(messages)
    raw, data = (
        (result.get("raw"), result.get("parsed")) if isinstance(result, dict) and "raw" in result else (None, result)
    )
    if data is None:
        raise NodeError("invalid_structured_output", "the model's reply did not match the output schema")
    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as exc:
        raise NodeError(
            "invalid_structured_output", f"the model's reply does not match the schema: {exc.message}"
        ) from exc
    text = raw.text if raw is not None else ""
    return NodeResult(outputs={"text": text, "data": data}, usage=usage_of(raw, config))


LLM = register(
    NodeType(
        type="llm",
        description=(
            "Calls a chat model with a prompt template (each {{ variable }} is an input); streams the reply, "
            "or returns data matching `output_schema`."
        ),
        category="ai",
        config_schema={
            "type": "object",
            "properties": {
                **MODEL_CONFIG_PROPERTIES,
                "system_prompt": {"type": "string", "maxLength": templating.MAX_TEMPLATE_CHARS},
                "prompt": {"type": "string", "maxLength": templating.MAX_TEMPLATE_CHARS},
                "output_schema": {"type": ["object", "null"]},
            },
            "required": ["provider", "model", "prompt"],
        },
        inputs_schema=object_schema({}),
        outputs_schema=object_schema({"text": {"type": "string"}, "data": {}}),
        cost={"basis": "tokens"},
        run=run,
        default_timeout=120,
        pins=pins,
        check=check,
    )
)
