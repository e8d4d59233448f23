"""Node types: one module each. Importing this package registers them all."""

from apps.workflows.nodes import (  # noqa: F401 - imported to register
    agent,
    browser,
    condition,
    http_request,
    input,
    llm,
    output,
    subworkflow,
    template,
)
from apps.workflows.nodes.base import REGISTRY, NodeContext, NodeError, NodeResult, NodeType, register

__all__ = ["REGISTRY", "NodeContext", "NodeError", "NodeResult", "NodeType", "register"]
