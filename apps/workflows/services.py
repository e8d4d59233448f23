"""Publishing workflows: validate the draft, freeze it as the next version."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from apps.agents.models import Agent, Credential
from apps.workflows import graph as graphs
from apps.workflows.models import Workflow, WorkflowVersion


class OwnerResolver:
    """Validation's lookups, scoped to one owner (another user's objects do not exist)."""

    def __init__(self, owner: Any) -> None:
        self.owner = owner

    def agent_exists(self, agent_id: Any) -> bool:
        return isinstance(agent_id, int) and Agent.objects.visible_to(self.owner).filter(pk=agent_id).exists()

    def credential_kind(self, credential_id: Any) -> str | None:
        if not isinstance(credential_id, int):
            return None
        return Credential.objects.visible_to(self.owner).filter(pk=credential_id).values_list("kind", flat=True).first()

    def published_version(self, workflow_id: Any, number: int | None) -> dict | None:
        if not isinstance(workflow_id, int):
            return None
        versions = WorkflowVersion.objects.visible_to(self.owner).filter(workflow_id=workflow_id)
        version = versions.filter(number=number).first() if number else versions.latest_first().first()
        if version is None:
            return None
        return {"number": version.number, "input_schema": version.input_schema, "output_schema": version.output_schema}


def workflow_validate(*, workflow: Workflow, graph: Any = None) -> graphs.Plan:
    """The plan of the draft (or of `graph`); GraphInvalid lists every problem by node and field."""
    return graphs.validate(workflow.graph if graph is None else graph, OwnerResolver(workflow.owner))


def workflow_publish(*, workflow: Workflow, actor: Any) -> WorkflowVersion:
    """Validate the draft and freeze it as version N+1 (numbers never repeat, even under races)."""
    plan = workflow_validate(workflow=workflow)
    with transaction.atomic():
        locked = Workflow.objects.select_for_update().get(pk=workflow.pk)
        if locked.graph != workflow.graph:
            # The draft changed since it was validated: validate what is being frozen.
            plan = workflow_validate(workflow=locked)
        number = locked.latest_version_number + 1
        version = WorkflowVersion.objects.create(
            workflow=locked,
            number=number,
            graph=locked.graph,
            input_schema=plan.input_schema,
            output_schema=plan.output_schema,
            created_by=actor,
        )
        Workflow.objects.filter(pk=locked.pk).update(latest_version_number=number)
    workflow.latest_version_number = number
    return version


WORKFLOW_FIELDS = ("name", "description", "graph")


def workflow_create(*, owner: Any, name: str, graph: dict, description: str = "") -> Workflow:
    """A new workflow whose draft is `graph`, validated first: GraphInvalid and nothing is saved."""
    workflow = Workflow(owner=owner, name=name, description=description, graph=graph)
    workflow_validate(workflow=workflow)
    workflow.save()
    return workflow


def workflow_update(*, workflow: Workflow, values: dict[str, Any]) -> Workflow:
    """Change the given WORKFLOW_FIELDS; a new `graph` is validated first (GraphInvalid: nothing saved)."""
    if "graph" in values:
        workflow_validate(workflow=workflow, graph=values["graph"])
    changed = [name for name in WORKFLOW_FIELDS if name in values]
    for name in changed:
        setattr(workflow, name, values[name])
    # Only these columns: a publish in between moves latest_version_number, which must not go back.
    workflow.save(update_fields=[*changed, "updated_at"])
    return workflow
