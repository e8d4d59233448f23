"""
The node-type registry: each node type is one module that declares its schemas and how it runs.

A node type never imports the engine. It receives a NodeContext, implemented by
apps.executions, through which it reaches models, credentials, agents and child runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

# Config keys every node accepts; the engine reads them, the node's own code does not.
COMMON_CONFIG_PROPERTIES: dict[str, dict] = {
    "label": {"type": "string", "maxLength": 200},
    "timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
    "retry": {
        "type": "object",
        "properties": {
            "attempts": {"type": "integer", "minimum": 1, "maximum": 5},
            "backoff_seconds": {"type": "number", "minimum": 0, "maximum": 60},
        },
        "additionalProperties": False,
    },
    "loop_limit": {"type": "integer", "minimum": 1, "maximum": 1000},
}


class NodeError(Exception):
    """A node failed; `code` is machine-readable, the message is safe to show the user."""

    def __init__(self, code: str, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.transient = transient


@dataclass
class NodeResult:
    """What a node produced: values on the output pins that fire (a branch not taken is absent)."""

    outputs: dict[str, Any]
    usage: dict[str, Any] = field(default_factory=dict)


class Resolver(Protocol):
    """Owner-scoped lookups that validation needs (implemented in apps.workflows.services)."""

    def agent_exists(self, agent_id: Any) -> bool: ...

    def credential_kind(self, credential_id: Any) -> str | None: ...

    def published_version(self, workflow_id: Any, number: int | None) -> dict | None:
        """{"number", "input_schema", "output_schema"} of a published version, or None."""


class NodeContext(Protocol):
    """What a running node may use (implemented by apps.executions.engine)."""

    execution_id: str
    node_id: str

    async def log(self, message: str, **data: Any) -> None: ...

    async def stream_text(self, text: str) -> None: ...

    async def chat_model(self, *, provider: str, model: str, parameters: dict, credential_id: Any | None) -> Any: ...

    async def agent(self, agent_id: Any) -> Any:
        """An apps.agents.runtime.AgentRuntime for one of the owner's agents."""

    async def http_header(self, credential_id: Any) -> tuple[str, str]: ...

    async def run_subworkflow(self, *, workflow_id: Any, version: int, inputs: dict) -> dict: ...

    def browser(self) -> Any:
        """The run's browser context in this node's tab (apps.agents.browser.BrowserSession), opened on first use."""

    async def save_artifact(self, *, kind: str, content: bytes, content_type: str, name: str) -> dict:
        """Store a file the node made (a screenshot) with the run; its id, name, size and URL."""


RunFunction = Callable[[NodeContext, dict, dict], Awaitable[NodeResult]]
PinsFunction = Callable[[dict, "Resolver | None"], tuple[dict, dict]]
CheckFunction = Callable[[dict, Resolver], list[tuple[str, str]]]


@dataclass(frozen=True)
class NodeType:
    """
    A kind of step. `inputs_schema`/`outputs_schema` are JSON Schema objects whose
    properties are the pins; `pins(config)` refines them when they depend on the
    config (a template's variables, a sub-workflow's inputs). `check(config, resolver)`
    returns (field, message) pairs for rules a schema cannot express.
    """

    type: str
    description: str
    category: str
    config_schema: dict
    inputs_schema: dict
    outputs_schema: dict
    cost: dict
    run: RunFunction
    default_timeout: float = 30.0
    pins: PinsFunction | None = None
    check: CheckFunction | None = None

    def full_config_schema(self) -> dict:
        schema = dict(self.config_schema)
        schema["properties"] = {**COMMON_CONFIG_PROPERTIES, **schema.get("properties", {})}
        return schema

    def pins_for(self, config: dict, resolver: Resolver | None = None) -> tuple[dict, dict]:
        if self.pins is None:
            return self.inputs_schema, self.outputs_schema
        return self.pins(config, resolver)

    def describe(self) -> dict:
        return {
            "type": self.type,
            "description": self.description,
            "category": self.category,
            "config_schema": self.full_config_schema(),
            "inputs_schema": self.inputs_schema,
            "outputs_schema": self.outputs_schema,
            "cost": self.cost,
        }


REGISTRY: dict[str, NodeType] = {}


def register(node_type: NodeType) -> NodeType:
    if node_type.type in REGISTRY:
        raise ValueError(f"node type {node_type.type!r} is registered twice")
    REGISTRY[node_type.type] = node_type
    return node_type


def object_schema(properties: dict[str, dict], required: list[str] | None = None) -> dict:
    return {"type": "object", "properties": properties, "required": required or [], "additionalProperties": False}
