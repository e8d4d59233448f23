"""What a running node may reach: the owner's credentials, agents and workflows, logs, child runs."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.core.files.base import ContentFile
from django.db import transaction

from apps.agents import browser_tools
from apps.agents.browser import BrowserSession, session_for
from apps.agents.crypto import StreamRedactor, redact_all, redact_value
from apps.agents.models import Agent, Credential
from apps.agents.providers import build_chat_model
from apps.agents.runtime import AgentRuntime, agent_runtime
from apps.agents.services import CredentialUnavailable, credential_resolve
from apps.executions import broadcast, events, services
from apps.executions.models import Execution, NodeExecution, RunArtifact
from apps.workflows.models import Workflow, WorkflowVersion
from apps.workflows.nodes import NodeError

if TYPE_CHECKING:
    from apps.executions.engine import Runner

db = sync_to_async

MAX_SUBWORKFLOW_DEPTH = 5


class RunContext:
    """The NodeContext of one node attempt (see apps.workflows.nodes.base)."""

    def __init__(self, runner: Runner, node_id: str, timeout: float) -> None:
        self.runner = runner
        self.execution_id = str(runner.execution.pk)
        self.node_id = node_id
        self.timeout = timeout
        self.stream_redactor = StreamRedactor(runner.secrets)

    @property
    def owner_id(self) -> int:
        return self.runner.execution.owner_id

    async def log(self, message: str, **data: Any) -> None:
        await self.runner._published(await db(self._log)(message, data))

    def _log(self, message: str, data: dict) -> list:
        published: list = []
        with transaction.atomic():
            events.node_log(
                self.runner.execution,
                node_id=self.node_id,
                message=redact_all(message, self.runner.secrets),
                data=redact_value(data, self.runner.secrets),
                lease=self.runner.worker_id,
                sink=published,
            )
        return published

    async def stream_text(self, text: str) -> None:
        # Held back while it could be the start of a secret the run resolved (see StreamRedactor).
        text = self.stream_redactor.feed(text)
        if text:
            await broadcast.text_delta(self.execution_id, self.node_id, text)

    # --- credentials and models -----------------------------------------------------------

    def _credential(self, credential_id: Any) -> tuple[Credential, str]:
        try:
            credential, secret = credential_resolve(
                owner_id=self.owner_id,
                credential_id=credential_id,
                execution_id=self.execution_id,
                node_id=self.node_id,
            )
        except CredentialUnavailable as exc:
            raise NodeError(exc.code, str(exc)) from exc
        if secret and secret not in self.runner.secrets:
            self.runner.secrets.append(secret)  # redacted from errors, logs and streamed text
        return credential, secret

    async def chat_model(self, *, provider: str, model: str, parameters: dict, credential_id: Any | None) -> Any:
        secret = base_url = None
        if credential_id is not None:
            credential, secret = await db(self._credential)(credential_id)
            base_url = credential.base_url or None
        try:
            return build_chat_model(
                provider=provider,
                model=model,
                parameters=parameters,
                secret=secret,
                base_url=base_url,
                timeout=self.timeout,
            )
        except ValueError as exc:
            raise NodeError("invalid_model_config", str(exc)) from exc

    async def agent(self, agent_id: Any) -> AgentRuntime:
        agent = await db(self._agent)(agent_id)
        secret = None
        if agent.credential_id is not None:
            _, secret = await db(self._credential)(agent.credential_id)
        browser_tools.bind(self)  # its browser tools act for this node, in this run's browser context
        try:
            return agent_runtime(agent, secret=secret, timeout=self.timeout)
        except ValueError as exc:
            raise NodeError("invalid_agent", str(exc)) from exc

    def _agent(self, agent_id: Any) -> Agent:
        agent = Agent.objects.filter(owner_id=self.owner_id, pk=agent_id).select_related("credential").first()
        if agent is None:
            raise NodeError("unknown_agent", f"no agent {agent_id} of yours exists")
        return agent

    async def http_header(self, credential_id: Any) -> tuple[str, str]:
        credential, secret = await db(self._credential)(credential_id)
        if credential.kind != Credential.Kind.HTTP_HEADER:
            raise NodeError("wrong_credential_kind", f"credential {credential_id} is not an HTTP header credential")
        return credential.header_name or "Authorization", secret

    # --- the browser and artifacts --------------------------------------------------------

    @functools.cached_property
    def _browser_session(self) -> BrowserSession:
        return session_for(self.execution_id, self.node_id)

    def browser(self) -> BrowserSession:
        """The run's browser context (opened on first use, closed when the run ends), in this node's tab."""
        return self._browser_session

    async def save_artifact(self, *, kind: str, content: bytes, content_type: str, name: str) -> dict:
        """Store a file this node made (a screenshot) with the run and announce it in a node.log event."""
        artifact = await db(self._save_artifact)(kind, content, content_type, name)
        described = {
            "id": artifact.pk,
            "kind": artifact.kind,
            "name": artifact.name,
            "content_type": artifact.content_type,
            "size": artifact.size,
            "url": artifact.get_absolute_url(),
        }
        await self.log(f"saved {artifact.kind} {artifact.name}", artifact=described)
        return described

    def _save_artifact(self, kind: str, content: bytes, content_type: str, name: str) -> RunArtifact:
        # This node's running attempt: a node never runs twice at once in one run.
        attempt = (
            NodeExecution.objects.filter(
                execution_id=self.execution_id, node_id=self.node_id, status=NodeExecution.Status.RUNNING
            )
            .order_by("-pk")
            .values_list("pk", flat=True)
            .first()
        )
        artifact = RunArtifact(
            execution_id=self.execution_id,
            node_execution_id=attempt,
            kind=kind,
            name=name[:200],
            content_type=content_type,
            size=len(content),
        )
        artifact.file.save(name, ContentFile(content), save=False)
        artifact.save()
        return artifact

    # --- child runs ------------------------------------------------------------------------

    async def run_subworkflow(self, *, workflow_id: Any, version: int | None, inputs: dict) -> dict:
        from apps.executions.engine import Runner

        parent = self.runner.execution
        chain = (*self.runner.ancestors, parent.workflow_id)
        if int(workflow_id) in chain or len(chain) > MAX_SUBWORKFLOW_DEPTH:
            raise NodeError(
                "subworkflow_recursion", f"workflow {workflow_id} would run inside itself (or nest too deep)"
            )
        child, claimed = await db(self._create_child)(workflow_id, version, inputs)
        runner = Runner(child, self.runner.worker_id, ancestors=chain, published=claimed)
        runner.secrets = self.runner.secrets
        status = await runner.run()
        child = await db(Execution.objects.get)(pk=child.pk)
        if status != Execution.Status.SUCCEEDED:
            raise NodeError(
                f"subworkflow_{child.status}", f"sub-workflow run {child.pk} {child.status}: {child.error_message}"
            )
        return child.outputs or {}

    def _create_child(self, workflow_id: Any, number: int | None, inputs: dict) -> tuple[Execution, list]:
        workflow = Workflow.objects.filter(owner_id=self.owner_id, pk=workflow_id).first()
        if workflow is None:
            raise NodeError("unknown_workflow", f"no workflow {workflow_id} of yours exists")
        number = number or workflow.latest_version_number
        version = WorkflowVersion.objects.filter(workflow=workflow, number=number).select_related("workflow").first()
        if version is None:
            raise NodeError(
                "unknown_version", f"workflow {workflow_id} has no published version {number or ''}".strip()
            )
        parent = self.runner.execution
        try:
            child = services.execution_create(
                version=version,
                inputs=inputs,
                owner=parent.owner,
                trigger=Execution.Trigger.SUBWORKFLOW,
                parent=parent,
                parent_node_id=self.node_id,
            )
        except services.ExecutionRefused as exc:
            raise NodeError(exc.code, str(exc)) from exc
        claimed: list = []
        child = services.execution_claim_child(execution=child, worker_id=self.runner.worker_id, sink=claimed)
        remaining = int(self.runner.remaining_budget()) + 1
        if remaining < child.time_budget_seconds:
            Execution.objects.filter(pk=child.pk).update(time_budget_seconds=remaining)
            child.time_budget_seconds = remaining
        return Execution.objects.select_related("version", "workflow", "owner").get(pk=child.pk), claimed
