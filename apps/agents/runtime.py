"""An agent made ready to run: its model built with the owner's credential, its tools resolved."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.tools import BaseTool

from apps.agents import mcp, tools
from apps.agents.models import Agent
from apps.agents.providers import build_chat_model


@dataclass
class AgentRuntime:
    name: str
    provider: str
    model_name: str
    model: Any
    tools: list[BaseTool]
    system_prompt: str
    max_iterations: int


def agent_runtime(agent: Agent, *, secret: str | None, timeout: float) -> AgentRuntime:
    base_url = agent.credential.base_url if agent.credential_id and agent.credential.base_url else None
    model = build_chat_model(
        provider=agent.provider,
        model=agent.model,
        parameters=agent.parameters or {},
        secret=secret,
        base_url=base_url,
        timeout=timeout,
    )
    # HTTP tools and MCP tools of the owner's catalogue; they load at the model's first call.
    model, catalogue_tools = mcp.agent_catalogue(
        model, owner_id=agent.owner_id, names=agent.tools or [], timeout=timeout
    )
    return AgentRuntime(
        name=agent.name,
        provider=agent.provider,
        model_name=agent.model,
        model=model,
        tools=[*tools.resolve(agent.tools or []), *catalogue_tools],
        system_prompt=agent.system_prompt,
        max_iterations=agent.max_iterations,
    )
