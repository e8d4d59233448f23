from __future__ import annotations

import factory
from allauth.account.models import EmailAddress

from apps.users.models import User

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def verified_email(self, create: bool, extracted: bool | None, **kwargs) -> None:
        """A verified primary address unless `verified_email=False`, as after a real sign-up."""
        if create and extracted is not False:
            EmailAddress.objects.create(user=self, email=self.email, primary=True, verified=True)
        if create:
            self.save()


def graph(nodes: list[tuple], edges: list[tuple]) -> dict:
    """A graph from (id, type, config) and (source, output, target, input) tuples."""
    return {
        "nodes": [{"id": i, "type": t, "config": c, "position": {"x": 0, "y": 0}} for i, t, c in nodes],
        "edges": [{"source": s, "source_output": so, "target": t, "target_input": ti} for s, so, t, ti in edges],
    }


def published(owner: User, nodes: list[tuple], edges: list[tuple], name: str = "flow"):
    """A workflow whose draft is `graph(nodes, edges)`, published as version 1."""
    from apps.workflows.models import Workflow
    from apps.workflows.services import workflow_publish

    workflow = Workflow.objects.create(owner=owner, name=name, graph=graph(nodes, edges))
    return workflow_publish(workflow=workflow, actor=owner)


def scripted(*replies, **parameters) -> dict:
    """Config of an llm node on the scripted provider."""
    return {"provider": "scripted", "model": "scripted-1", "parameters": {"replies": list(replies), **parameters}}
