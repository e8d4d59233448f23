from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    """Workflows: mutable drafts, immutable published versions, and the node-type registry."""

    name = "apps.workflows"
    label = "workflows"
    verbose_name = "Workflows"

    def ready(self) -> None:
        from apps.workflows import nodes  # noqa: F401 - registers the node types
