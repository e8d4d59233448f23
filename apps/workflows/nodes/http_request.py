"""`http_request`: one HTTP call with templated URL, headers and body, through the egress module."""

from __future__ import annotations

import contextlib
import json
from urllib.parse import urlsplit

import httpx

from apps.agents import egress
from apps.workflows import templating
from apps.workflows.nodes.base import NodeContext, NodeError, NodeResult, NodeType, object_schema, register

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
TEMPLATED = ("url", "body")


def variables(config: dict) -> set[str]:
    names: set[str] = set()
    sources = [config.get(key) or "" for key in TEMPLATED] + list((config.get("headers") or {}).values())
    for source in sources:
        with contextlib.suppress(templating.TemplateProblem):
            names |= templating.variables(source)
    return names


def pins(config: dict, resolver) -> tuple[dict, dict]:
    names = sorted(variables(config))
    return object_schema({name: {} for name in names}, names), HTTP_REQUEST.outputs_schema


def check(config: dict, resolver) -> list[tuple[str, str]]:
    problems = []
    for key in TEMPLATED:
        try:
            templating.check(config.get(key) or "")
        except templating.TemplateProblem as exc:
            problems.append((key, str(exc)))
    credential = config.get("credential")
    if credential is not None and resolver.credential_kind(credential) != "http_header":
        problems.append(("credential", f"no HTTP header credential {credential} of yours exists"))
    return problems


def render(config: dict, inputs: dict) -> tuple[str, dict[str, str], str | None]:
    try:
        url = templating.render(config["url"], inputs).strip()
        headers = {name: templating.render(value, inputs) for name, value in (config.get("headers") or {}).items()}
        body = templating.render(config["body"], inputs) if config.get("body") else None
    except templating.TemplateProblem as exc:
        raise NodeError("template_error", str(exc)) from exc
    return url, headers, body


def _where(url: str) -> str:
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or '?'}{port}"


async def run(context: NodeContext, config: dict, inputs: dict) -> NodeResult:
    url, headers, body = render(config, inputs)
    secret_headers: tuple[str, ...] = ()
    if config.get("credential") is not None:
        name, secret = await context.http_header(config["credential"])
        headers[name] = secret
        secret_headers = (name,)  # dropped if a redirect leaves the origin
    # Errors name the address without its path and query, which may carry tokens.
    where = _where(url)
    try:
        response = await egress.request(
            config.get("method", "GET"),
            url,
            headers=headers,
            content=body,
            timeout=float(config.get("timeout_seconds", 30)),
            max_bytes=int(config.get("max_response_bytes", 1_000_000)),
            secret_headers=secret_headers,
        )
    except egress.EgressRefused as exc:
        raise NodeError("egress_refused", str(exc)) from exc
    except httpx.TimeoutException as exc:
        raise NodeError("http_timeout", f"no answer from {where} in time", transient=True) from exc
    except httpx.HTTPError as exc:
        raise NodeError("http_unreachable", f"{type(exc).__name__} for {where}", transient=True) from exc
    if response.status == 429 or response.status >= 500:
        raise NodeError("http_status", f"{where} answered {response.status}", transient=True)
    if response.status >= 400 and config.get("fail_on_error", True):
        raise NodeError("http_status", f"{where} answered {response.status}")
    try:
        parsed = json.loads(response.body) if "json" in response.headers.get("content-type", "") else response.text
    except ValueError:
        parsed = response.text
    return NodeResult(
        outputs={"status": response.status, "body": parsed, "headers": response.headers},
        usage={"http_calls": 1},
    )


HTTP_REQUEST = register(
    NodeType(
        type="http_request",
        description="Sends an HTTP request (URL, headers and body may use {{ variables }}) and returns the answer.",
        category="integration",
        config_schema={
            "type": "object",
            "properties": {
                "method": {"enum": METHODS},
                "url": {"type": "string", "minLength": 1, "maxLength": 4000},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "body": {"type": ["string", "null"]},
                "credential": {"type": ["integer", "null"]},
                "max_response_bytes": {"type": "integer", "minimum": 1, "maximum": 10_000_000},
                "fail_on_error": {"type": "boolean"},
            },
            "required": ["url"],
        },
        inputs_schema=object_schema({}),
        outputs_schema=object_schema({"status": {"type": "integer"}, "body": {}, "headers": {"type": "object"}}),
        cost={"basis": "call"},
        run=run,
        default_timeout=30,
        pins=pins,
        check=check,
    )
)
